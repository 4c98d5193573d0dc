"""The model service: the registry's operations for the CLI, scripts and notebooks.

Every model is named by a reference: ``NAME`` (the latest version), ``NAME:VERSION`` or ``NAME@ALIAS``.

    from services.models import load_model, model_service
    kv = load_model("news@production")             # word2vec: most_similar, analogy, similarity
    kv.most_similar("king", topn=5)
    svc = model_service()                          # KILN_DB_URL / KILN_HOME from the settings
    svc.list(svc.query(filters=["metric.analogy_accuracy>=0.4"], order_by="metric.analogy_accuracy",
                       descending=True, limit=10))
    svc.set_alias("news:3", "production"); svc.compare(["news:2", "news:3"])

Neither torch nor Ray is imported here; word2vec queries need numpy, CNNs torch (loaded on demand).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from services.backends import Backends
from services.model_files import Removal, collect, remove_artifacts, size_of
from services.model_loading import drop_caches, load, load_word2vec, word2vec_files
from services.registry.entities import ModelVersion
from services.registry.models import parse_ref
from services.registry.search import VersionQuery, parse_filter, parse_order
from shared.errors import InvalidParameter, NotFound

EXPORT_FORMATS = ("word2vec-text", "word2vec-binary", "safetensors")


class ModelService:
    """Registry operations over one set of backends (the SQL registry, the artifact store, KILN_HOME)."""

    def __init__(self, backends: Backends):
        self.b = backends

    @property
    def _registry(self):
        return self.b.db.models

    # -- finding versions ---------------------------------------------------------------------------
    def get(self, ref: str) -> ModelVersion:
        """The version ``ref`` names (NotFound if none)."""
        name, version, alias = parse_ref(ref)
        return self._registry.get_version(name, version=version, alias=alias)

    @staticmethod
    def query(*, kind: str | None = None, name: str | None = None, filters: Iterable[str] = (),
              order_by: str | None = None, descending: bool = False, limit: int | None = None,
              all_versions: bool = False) -> VersionQuery:
        """A VersionQuery from user text: filters like ``"metric.accuracy>=0.9"``, order like ``"created_at"``."""
        return VersionQuery(kind=kind, name_glob=name, filters=tuple(parse_filter(f) for f in filters),
                            order=None if order_by is None else parse_order(order_by), descending=descending,
                            limit=limit, all_versions=all_versions)

    def list(self, query: VersionQuery | None = None) -> list[dict]:
        """Versions ``query`` selects (default: the latest of each model), as
        ``{"name","version","kind","created_at","params","metrics","tags","aliases","job_id"}``."""
        return [mv.summary() for mv in self._registry.search(query)]

    def show(self, ref: str) -> dict:
        """Everything about one version: ``to_dict()`` plus ``artifact_sizes`` (bytes, null when the file is
        gone) and ``history`` (per-epoch metrics)."""
        mv = self.get(ref)
        d = mv.to_dict()
        d["artifact_sizes"] = {name: size_of(uri) for name, uri in mv.artifacts.items()}
        d["history"] = self._registry.history(mv.name, mv.version)
        return d

    def lineage(self, ref: str) -> dict:
        """Where a version came from: its job (id, attempt, user, state, spec), its input data (paths and
        fingerprint), the kiln version / git commit, and the version it was trained from."""
        mv = self.get(ref)
        job = None
        spec: dict[str, Any] = {}
        if mv.job_id:
            try:
                rec = self.b.db.jobs.get(mv.job_id)
            except NotFound:
                rec = None  # job rows may be pruned; the version keeps its own record
            if rec is not None:
                spec = rec.spec
                job = {"id": rec.id, "attempt": rec.attempt, "user": rec.user, "state": rec.state.value,
                       "submitted_at": rec.submitted_at.isoformat(),
                       "finished_at": rec.finished_at.isoformat() if rec.finished_at else None, "spec": spec}
        params = spec.get("params") or mv.params
        if params.get("corpus") is not None:  # word2vec: files, folders, globs
            paths = params["corpus"]
            if isinstance(paths, str):  # kiln 0.1 stored the list as JSON text
                try:
                    paths = json.loads(paths) if paths.startswith("[") else [paths]
                except ValueError:
                    paths = [paths]
        else:  # cnn: the dataset and its separate test set, if any
            paths = [p for p in (params.get("dataset"), params.get("test")) if isinstance(p, str)] or None
        parent = None
        if mv.lineage.trained_from:
            p = parse_ref(mv.lineage.trained_from)
            parent = {"name": p.name, "version": p.version}
        return {"model": {"name": mv.name, "version": mv.version}, "job_id": mv.job_id, "job": job,
                "data": {"paths": paths if isinstance(paths, list) else None,
                         "fingerprint": mv.lineage.dataset_fingerprint},
                "kiln_version": mv.lineage.kiln_version, "git_commit": mv.lineage.git_commit,
                "trained_from": parent}

    def compare(self, refs: list[str]) -> dict:
        """Params, metrics and tags of several versions side by side.

        ``{"models": [{"name","version"}...], "params": {key: {"values": [...], "differ": bool}}, "metrics":
        {...}, "tags": {...}}``; a version without a key has null there.
        """
        if len(refs) < 2:
            raise InvalidParameter("compare needs at least two model references")
        versions = [self.get(ref) for ref in refs]
        out: dict[str, Any] = {"models": [{"name": v.name, "version": v.version} for v in versions]}
        for section in ("params", "metrics", "tags"):
            table = {}
            for key in sorted({k for v in versions for k in getattr(v, section)}):
                values = [getattr(v, section).get(key) for v in versions]
                table[key] = {"values": values, "differ": any(x != values[0] for x in values[1:])}
            out[section] = table
        return out

    # -- changing versions --------------------------------------------------------------------------
    def set_alias(self, ref: str, alias: str) -> ModelVersion:
        """Point ``NAME@alias`` at the version ``ref`` names (moving it if it pointed elsewhere)."""
        mv = self.get(ref)
        return self._registry.set_alias(mv.name, alias, mv.version)

    def delete_alias(self, name: str, alias: str) -> int:
        """Remove ``name@alias``; return the version it pointed at."""
        return self._registry.delete_alias(parse_ref(name).name, alias)

    def _target(self, ref: str) -> tuple[str, int | None]:
        """(name, version) for tags and descriptions: a bare NAME means the model itself."""
        name, version, alias = parse_ref(ref)
        if version is None and alias is None:
            self._registry.get_model(name)  # NotFound if there is none
            return name, None
        return name, self.get(ref).version

    def set_tags(self, ref: str, tags: dict[str, str]) -> None:
        """Set tags on a version (NAME:VERSION, NAME@ALIAS) or on the model (bare NAME: every version shows them)."""
        name, version = self._target(ref)
        with self.b.db.session() as s:  # all or none
            for key, value in tags.items():
                self._registry.set_tag(name, key, value, version=version, session=s)

    def delete_tags(self, ref: str, keys: list[str]) -> None:
        name, version = self._target(ref)
        with self.b.db.session() as s:
            for key in keys:
                self._registry.delete_tag(name, key, version=version, session=s)

    def describe(self, ref: str, text: str) -> None:
        """Set the description of a version, or of the model for a bare NAME."""
        name, version = self._target(ref)
        self._registry.describe(name, text, version=version)

    def deletable(self, ref: str) -> ModelVersion:
        """The version a delete of ``ref`` would remove; a bare NAME is refused (name the version)."""
        name, version, alias = parse_ref(ref)
        if version is None and alias is None:
            raise InvalidParameter(f"name the version to delete: {name}:VERSION or {name}@ALIAS")
        return self.get(ref)

    def delete(self, ref: str, *, force: bool = False) -> dict:
        """Delete one version (refused while aliased unless ``force``) and then its files and caches.

        Returns ``{"model": {"name","version"}, "removed": [paths], "freed_bytes": n, "kept": [uris]}``.
        """
        mv = self.deletable(ref)
        gone = self._registry.delete_version(mv.name, mv.version, force=force)
        removal = remove_artifacts(list(gone.artifacts.values()), self.b.artifacts.root,
                                   still_used=self._registry.artifact_uris())
        drop_caches(self.b.settings.kiln_home, uid=gone.uid)
        return {"model": {"name": gone.name, "version": gone.version}, **removal.to_dict()}

    def gc(self, *, dry_run: bool = False) -> dict:
        """Remove model files that no version references (jobs still running are left alone) and query
        caches of versions that no longer exist. ``{"removed": [...], "freed_bytes": n, "caches": n}``."""
        active = {rec.id for rec in self.b.db.jobs.non_terminal()}
        removal: Removal = collect(self.b.artifacts.root, self._registry.artifact_uris(), active, dry_run=dry_run)
        caches = 0
        if not dry_run:
            caches = drop_caches(self.b.settings.kiln_home, keep_uids=self._registry.uids())
        return {**removal.to_dict(), "caches": caches, "dry_run": dry_run}

    # -- using models -------------------------------------------------------------------------------
    def load(self, ref: str):
        """The ready object for a version: word2vec vectors (``most_similar``, ``analogy``), or for a CNN
        an eval-mode torch module with its preprocessing."""
        return load(self.get(ref), self.b.settings.kiln_home)

    def vectors(self, ref: str):
        """(version, its ``Word2VecModel``) through the normalised-vector cache."""
        mv = self.get(ref)
        return mv, load_word2vec(mv, self.b.settings.kiln_home)

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
            self._registry.log_metrics(mv.name, mv.version, metrics)
        return {"model": mv.ref, "metrics": metrics, **out}

    def export(self, ref: str, fmt: str, dest: str, *, force: bool = False) -> Path | str:
        """Write a version to ``dest`` in ``fmt`` (word2vec: one of EXPORT_FORMATS; a cnn version:
        services/vision.py); ``-`` is standard output.

        Nothing at ``dest`` is destroyed: devices, pipes, links and folders are refused, and an existing
        file is replaced only with ``force`` (services.export_target)."""
        from services.export_target import export_target  # noqa: PLC0415

        mv = self.get(ref)
        if mv.kind == "cnn":
            from services import vision  # noqa: PLC0415

            return vision.export(self, mv.ref, fmt, dest, force=force)
        if fmt not in EXPORT_FORMATS:
            raise InvalidParameter(f"--format: unknown format {fmt!r} (one of {', '.join(EXPORT_FORMATS)})")
        model = word2vec_files(mv)
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


# -- for scripts and notebooks ------------------------------------------------------------------------
def model_service(settings=None) -> ModelService:
    """A ModelService for ``settings`` (default: the resolved KILN_* settings)."""
    if settings is None:
        from shared.config import get_settings  # noqa: PLC0415

        settings = get_settings()
    return ModelService(Backends(settings))


def load_model(ref: str, settings=None):
    """``load_model("news@production")``: word2vec vectors with ``most_similar`` / ``analogy``, or for a CNN
    an eval-mode ``torch.nn.Module`` with its preprocessing."""
    return model_service(settings).load(ref)
