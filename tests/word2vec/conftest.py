"""Shared fixtures: a small synthetic corpus and the offline Wikipedia extract (from bench/corpora.py)."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def wiki_text():
    pytest.importorskip("gensim")
    from bench.corpora import wiki_extract_text

    return wiki_extract_text()


@pytest.fixture
def small_corpus(tmp_path):
    """~20k tokens of a tiny two-topic language, one sentence per line."""
    rng = np.random.default_rng(0)
    animals = "cat dog horse cow sheep goat mouse rat".split()
    foods = "bread rice apple pear cheese milk soup cake".split()
    glue = "the a and of with eats likes sees".split()
    lines = []
    for _ in range(1500):
        topic = animals if rng.random() < 0.5 else foods
        words = [topic[rng.integers(len(topic))] if rng.random() < 0.6 else glue[rng.integers(len(glue))]
                 for _ in range(rng.integers(5, 20))]
        lines.append(" ".join(words))
    path = tmp_path / "small.txt"
    path.write_text("\n".join(lines) + "\n")
    return path

