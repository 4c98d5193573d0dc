"""CNN image classifiers: datasets, models, the one training loop, checkpoints, inference, and the Ray job.

Every module here except ``job.py`` is plain PyTorch/numpy (no Ray, no Redis), so a test, a benchmark or
a GPU check can call it directly.
"""
