"""The model service: list, show, export and query registered models (the Python API behind the CLI).

Query commands load a word2vec version's vectors once into a cache under ``$KILN_HOME/cache``
(unit-normalised float32 .npy + the vocabulary), memory-mapped on later calls so repeated
``kiln similar`` / ``kiln analogy`` calls skip parsing and normalising. Neither torch nor Ray is imported.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from services.backends import Backends
from services.registry.models import parse_ref
from shared.artifacts import ArtifactStore
from shared.errors import InvalidParameter, NotFound

EXPORT_FORMATS = ("word2vec-text", "word2vec-binary", "safetensors")


class ModelService:
    def __init__(self, backends: Backends):
        self.b = backends

    def list(self) -> list[dict]:
        """Every version of every model, newest first, as ``{"name","version","kind","created_at","metrics"}``."""
        out = []
        for mv in self.b.db.models.list_versions():
            d = mv.to_dict()
            out.append({k: d[k] for k in ("name", "version", "kind", "created_at", "metrics")} | {"aliases": d["aliases"]})
        return out

    def get(self, ref: str):
        name, version, alias = parse_ref(ref)
        return self.b.db.models.get_version(name, version=version, alias=alias)

    def show(self, ref: str) -> dict:
        return self.get(ref).to_dict()

    # -- word2vec vectors -----------------------------------------------------------------------
    def _model_dir(self, mv) -> Path:
        if mv.kind != "word2vec":
            raise InvalidParameter(f"{mv.ref} is a {mv.kind} model, not word2vec")
        uri = mv.artifacts.get("vectors")
        if uri is None:
            raise NotFound(f"{mv.ref} has no vectors artifact")
        return ArtifactStore.local_path(uri).parent

    def vectors(self, ref: str):
        """The version's ``Word2VecModel``, loaded through the normalised-vector cache."""
        import numpy as np  # noqa: PLC0415 - only the query commands need it

        from workers.word2vec.model import Word2VecModel  # noqa: PLC0415 - numpy + safetensors only

        mv = self.get(ref)
        cache = self.b.settings.kiln_home / "cache" / f"{mv.name}-{mv.version}"
        if (cache / "unit.npy").is_file() and (cache / "words.json").is_file():
            words = json.loads((cache / "words.json").read_text())
            unit = np.load(cache / "unit.npy", mmap_mode="r", allow_pickle=False)
            model = Word2VecModel(words, unit)
            model._unit = model.vectors  # already unit length
            return mv, model
        model = Word2VecModel.load(self._model_dir(mv))
        tmp = cache.with_name(cache.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.save(tmp / "unit.npy", model.unit_vectors, allow_pickle=False)
        (tmp / "words.json").write_text(json.dumps(model.words, ensure_ascii=False))
        shutil.rmtree(cache, ignore_errors=True)
        tmp.rename(cache)
        return mv, model

    def similar(self, ref: str, word: str, top: int = 10) -> list[tuple[str, float]]:
        _, model = self.vectors(ref)
        return model.most_similar(word, topn=top)

    def analogy(self, ref: str, a: str, b: str, c: str, top: int = 10) -> list[tuple[str, float]]:
        _, model = self.vectors(ref)
        return model.analogy(a, b, c, topn=top)

    def evaluate(self, ref: str, *, analogies: str | None = None, similarity: str | None = None,
                 record: bool = True) -> dict:
        """Evaluate a word2vec version; with ``record`` the results are logged as the version's metrics."""
        from workers.word2vec.evaluate import analogy_accuracy, similarity_spearman  # noqa: PLC0415

        if not analogies and not similarity:
            raise InvalidParameter("give --analogies FILE and/or --similarity FILE")
        for label, path in (("--analogies", analogies), ("--similarity", similarity)):
            if path and not Path(path).is_file():
                raise InvalidParameter(f"{label}: {path}: no such file")
        mv, model = self.vectors(ref)
        out: dict = {}
        metrics: dict[str, float] = {}
        if analogies:
            res = analogy_accuracy(model, analogies)
            out["analogies"] = res
            metrics["analogy_accuracy"] = float(res["accuracy"])
        if similarity:
            res = similarity_spearman(model, similarity)
            out["similarity"] = res
            metrics["similarity_spearman"] = float(res["spearman"])
        if record:
            self.b.db.models.log_metrics(mv.name, mv.version, metrics)
        return {"model": mv.ref, "metrics": metrics, **out}

    def export(self, ref: str, fmt: str, dest: str, *, force: bool = False) -> Path | str:
        """Write a version's vectors to ``dest`` in ``fmt`` (one of EXPORT_FORMATS); ``-`` is standard output.

        Nothing at ``dest`` is destroyed: devices, pipes, links and folders are refused, and an existing
        file is replaced only with ``force`` (services.export_target)."""
        from services.export_target import export_target  # noqa: PLC0415
        from workers.word2vec.model import Word2VecModel  # noqa: PLC0415

        if fmt not in EXPORT_FORMATS:
            raise InvalidParameter(f"--format: unknown format {fmt!r} (one of {', '.join(EXPORT_FORMATS)})")
        mv = self.get(ref)
        model = Word2VecModel.load(self._model_dir(mv))
        with export_target(dest, force=force) as tmp:
            if fmt == "word2vec-text":
                model.export_text(tmp)
            elif fmt == "word2vec-binary":
                model.export_binary(tmp)
            else:
                _export_safetensors(model, tmp)
        return dest if dest == "-" else Path(dest).expanduser()


def _export_safetensors(model, path: Path) -> None:
    """Vectors as a safetensors tensor, the words (in row order) as JSON in the header's metadata."""
    from safetensors.numpy import save_file  # noqa: PLC0415

    save_file({"vectors": model.vectors}, str(path),
              metadata={"format": "kiln.word2vec/1", "words": json.dumps(model.words, ensure_ascii=False)})
