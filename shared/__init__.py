"""What every side of kiln imports: settings, job specs, states, errors, Redis keys, status, artifacts.

Nothing in this package imports another kiln package (see DESIGN.md, dependency direction).
"""
