"""Ready-to-use model objects for registered versions.

word2vec: a ``Word2VecModel`` (``most_similar``, ``analogy``, ``similarity``) read through a cache of
unit-normalised vectors under ``$KILN_HOME/cache/<name>-<version>-<uid>`` (memory-mapped ``.npy`` + the
words), so repeated queries skip parsing and normalising. The uid is never reused: a deleted version's
number given out again gets a cache of its own. cnn: ``workers.cnn.inference.Classifier.load(model_dir)``,
an eval-mode ``torch.nn.Module`` with its preprocessing (torch is imported only then).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from services.model_files import local_path
from services.registry.entities import ModelVersion
from shared.artifacts import fetch, is_remote
from shared.errors import InvalidParameter, NotFound

CACHE_DIR = "cache"
"""Folder of KILN_HOME that holds the query caches."""
_CACHE_NAME = re.compile(r"-([0-9a-f]{32})(?:\.tmp-\d+)?\Z")


def cache_dir(kiln_home: Path, mv: ModelVersion) -> Path:
    """Where ``mv``'s normalised vectors are cached."""
    return Path(kiln_home) / CACHE_DIR / f"{mv.name}-{mv.version}-{mv.uid}"


def model_dir(mv: ModelVersion) -> Path:
    """The folder holding ``mv``'s files (NotFound if they are gone)."""
    paths = [local_path(uri) for _, uri in sorted(mv.artifacts.items())]
    if not paths:
        raise NotFound(f"{mv.ref} has no artifacts")
    uris = [uri for _, uri in sorted(mv.artifacts.items())]
    if all(p is None for p in paths) and all(is_remote(u) for u in uris):
        folders = {u.rstrip("/").rsplit("/", 1)[0] for u in uris}
        if len(folders) == 1:  # a URL artifact store: the model folder, downloaded once
            return fetch(folders.pop())
    if any(p is None for p in paths):
        raise InvalidParameter(f"{mv.ref}: only local artifact stores can be loaded")
    # An artifact may be the model folder itself (cnn's "model") or a file in it.
    folder = Path(os.path.commonpath([str(p if p.is_dir() else p.parent) for p in paths]))
    if not folder.is_dir():
        raise NotFound(f"{mv.ref}: its files are gone ({folder})")
    return folder


def load_word2vec(mv: ModelVersion, kiln_home: Path):
    """``mv``'s ``Word2VecModel`` through the normalised-vector cache."""
    import numpy as np  # noqa: PLC0415 - only the query commands need it

    from workers.word2vec.model import Word2VecModel  # noqa: PLC0415 - numpy + safetensors only

    if mv.kind != "word2vec":
        raise InvalidParameter(f"{mv.ref} is a {mv.kind} model, not word2vec")
    cache = cache_dir(kiln_home, mv)
    if (cache / "unit.npy").is_file() and (cache / "words.json").is_file():
        words = json.loads((cache / "words.json").read_text(encoding="utf-8"))
        unit = np.load(cache / "unit.npy", mmap_mode="r", allow_pickle=False)
        model = Word2VecModel(words, unit)
        model._unit = model.vectors  # already unit length
        return model
    model = word2vec_files(mv)
    tmp = cache.with_name(f"{cache.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "unit.npy", model.unit_vectors, allow_pickle=False)
    (tmp / "words.json").write_text(json.dumps(model.words, ensure_ascii=False), encoding="utf-8")
    try:
        tmp.rename(cache)  # atomic; another process may have been first, and its cache is as good
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return model


def word2vec_files(mv: ModelVersion):
    """``mv``'s ``Word2VecModel`` as trained (vectors not normalised), read from its artifact files."""
    from workers.word2vec.model import Word2VecModel  # noqa: PLC0415 - numpy + safetensors only

    if mv.kind != "word2vec":
        raise InvalidParameter(f"{mv.ref} is a {mv.kind} model, not word2vec")
    vectors = mv.artifacts.get("vectors")
    if vectors is None:
        raise NotFound(f"{mv.ref} has no vectors artifact")
    path = local_path(vectors)
    if path is None and is_remote(vectors):  # a URL artifact store: its model folder, downloaded once
        folder, name = vectors.rsplit("/", 1)
        path = fetch(folder) / name
    if path is None or not path.exists():
        raise NotFound(f"artifact {vectors} no longer exists")
    return Word2VecModel.load(path.parent)


def load_cnn(mv: ModelVersion):
    """``mv``'s classifier: an eval-mode torch module plus its preprocessing (workers/cnn)."""
    try:
        from workers.cnn.inference import Classifier  # noqa: PLC0415 - torch only when a CNN is loaded
    except ModuleNotFoundError as e:
        raise InvalidParameter(f"{mv.ref} is a cnn model, but this kiln cannot load CNNs ({e.name} is missing)") \
            from None
    return Classifier.load(model_dir(mv))


def load(mv: ModelVersion, kiln_home: Path):
    """The ready object for ``mv``, by kind."""
    if mv.kind == "word2vec":
        return load_word2vec(mv, kiln_home)
    if mv.kind == "cnn":
        return load_cnn(mv)
    raise InvalidParameter(f"{mv.ref}: kiln cannot load {mv.kind} models")


def drop_caches(kiln_home: Path, keep_uids: set[str] | None = None, uid: str | None = None) -> int:
    """Remove query caches: the one of version ``uid``, or every one whose uid is not in ``keep_uids``."""
    root = Path(kiln_home) / CACHE_DIR
    if not root.is_dir():
        return 0
    removed = 0
    for folder in root.iterdir():
        m = _CACHE_NAME.search(folder.name)
        found = m.group(1) if m else ""  # caches of kiln 0.1 (name-version) have no uid: always stale
        if (uid is not None and found == uid) or (keep_uids is not None and found not in keep_uids):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed
