"""Pictures of jobs and models (matplotlib, Agg): `kiln plot` writes them, the web page shows them.

- a job's ``loss`` / ``throughput`` curve: the points its runner reported (StatusStore series), or, when
  Redis no longer has them, the per-epoch history of the model it registered;
- a model's ``loss`` curve (per-epoch history), its ``embeddings`` (PCA map of the most frequent words,
  word2vec), its ``confusion`` matrix and first-layer ``filters`` (CNN).

``render(backends, target, what)`` returns PNG bytes; nothing here writes a file.
"""
from __future__ import annotations

import io
import json
import re

from shared.errors import InvalidParameter, NotFound

WHAT = ("loss", "throughput", "embeddings", "confusion", "filters")
_JOB_ID = re.compile(r"job-[0-9a-f]{4,32}")


def is_job_id(target: str) -> bool:
    return bool(_JOB_ID.fullmatch(target))


def render(backends, target: str, what: str, *, words: int = 100) -> bytes:
    """PNG bytes of ``what`` for ``target`` (a job id or a model reference)."""
    if what not in WHAT:
        raise InvalidParameter(f"--what: unknown picture {what!r} (one of {', '.join(WHAT)})")
    if is_job_id(target):
        if what not in ("loss", "throughput"):
            raise InvalidParameter(f"--what {what}: a picture of a model; give the model (the job's is in "
                                   f"`kiln status {target}`)")
        xs, ys, xlabel = job_curve(backends, target, what)
        return _line_png(xs, ys, xlabel, what, f"{target} {what}")
    from services.models import ModelService  # noqa: PLC0415

    svc = ModelService(backends)
    mv = svc.get(target)
    if what in ("loss", "throughput"):
        xs, ys = _history(svc, mv, what)
        return _line_png(xs, ys, "epoch", what, f"{mv.ref} {what}")
    if what == "embeddings":
        from services.embedding_map import embedding_map  # noqa: PLC0415

        _, model = svc.vectors(target)
        return _map_png(embedding_map(model, words), f"{mv.ref}: the {words} most frequent words (PCA)")
    if mv.kind != "cnn":
        raise InvalidParameter(f"--what {what}: {mv.ref} is a {mv.kind} model; {what} is a picture of a CNN")
    if what == "confusion":
        matrix, classes = confusion_matrix(mv)
        return _confusion_png(matrix, classes, f"{mv.ref} confusion matrix")
    return _filters_png(first_layer_filters(mv), f"{mv.ref} first-layer filters")


# -- data ----------------------------------------------------------------------------------------------
def job_curve(backends, job_id: str, what: str) -> tuple[list[float], list[float], str]:
    """(x, y, x label) of a job's ``what`` over time (seconds since the first point), else per epoch."""
    rec = backends.db.jobs.get(job_id)  # NotFound for an unknown job
    client = backends.redis_or_none()
    points = [p for _, p in backends.status.read_series(job_id)] if client is not None else []
    points = [p for p in points if what in p]
    if points:
        t0 = points[0]["t"]
        return [p["t"] - t0 for p in points], [p[what] for p in points], "seconds"
    model = (rec.result or {}).get("model")
    if model:
        from services.models import ModelService  # noqa: PLC0415

        svc = ModelService(backends)
        xs, ys = _history(svc, svc.get(f"{model['name']}:{model['version']}"), what)
        return xs, ys, "epoch"
    raise NotFound(f"{job_id} has reported no {what} yet")


def _history(svc, mv, what: str) -> tuple[list[float], list[float]]:
    history = svc.b.db.models.history(mv.name, mv.version)
    keys = [what, f"{what}_words_per_s", "words_per_s", "images_per_s"] if what == "throughput" else [what]
    for key in keys:
        steps = history.get(key) or []
        if steps:
            return ([float(s.get("step", i + 1)) for i, s in enumerate(steps)], [float(s["value"]) for s in steps])
    raise NotFound(f"{mv.ref} has no per-epoch {what} recorded")


def confusion_matrix(mv) -> tuple[list[list[float]], list[str]]:
    """The confusion matrix of a CNN version: its ``evaluation`` artifact (evaluation.json: "confusion",
    "classes"), a ``confusion`` artifact (.json or .npy), or a ``confusion_matrix`` param."""
    import numpy as np  # noqa: PLC0415

    from shared.artifacts import ArtifactStore  # noqa: PLC0415

    classes = [str(c) for c in (mv.params.get("classes") or [])]
    uri = mv.artifacts.get("evaluation") or mv.artifacts.get("confusion")  # the CNN job writes evaluation.json
    if uri is not None:
        path = ArtifactStore.local_path(uri)
        if path.suffix == ".npy":
            matrix = np.load(path, allow_pickle=False).tolist()
        else:
            data = json.loads(path.read_text())
            matrix = (data.get("confusion") or data.get("matrix")) if isinstance(data, dict) else data
            classes = [str(c) for c in (data.get("classes") if isinstance(data, dict) else None) or classes]
    elif isinstance(mv.params.get("confusion_matrix"), list):
        matrix = mv.params["confusion_matrix"]
    else:
        raise NotFound(f"{mv.ref} has no confusion matrix recorded")
    return matrix, classes or [str(i) for i in range(len(matrix))]


def first_layer_filters(mv):
    """The first 4-D weight (out, in, h, w) of a CNN version's safetensors weights, as a numpy array."""
    from safetensors.numpy import load_file  # noqa: PLC0415

    from shared.artifacts import ArtifactStore  # noqa: PLC0415

    uri = mv.artifacts.get("weights") or next((u for u in mv.artifacts.values() if u.endswith(".safetensors")), None)
    if uri is None:
        raise NotFound(f"{mv.ref} has no safetensors weights")
    tensors = load_file(str(ArtifactStore.local_path(uri)))
    for name in tensors:  # safetensors keeps the module order of the state dict
        if tensors[name].ndim == 4:
            return tensors[name]
    raise NotFound(f"{mv.ref} has no convolution layer (no 4-D weight)")


# -- pictures ------------------------------------------------------------------------------------------
def _figure(w: float = 7.0, h: float = 4.2):
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")  # no display: files only
    from matplotlib.figure import Figure  # noqa: PLC0415

    return Figure(figsize=(w, h), dpi=100)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _line_png(xs, ys, xlabel: str, ylabel: str, title: str) -> bytes:
    fig = _figure()
    ax = fig.subplots()
    ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, color="#c62828" if ylabel == "loss" else "#1565c0")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    return _png(fig)


def _map_png(m: dict, title: str) -> bytes:
    fig = _figure(9, 7)
    ax = fig.subplots()
    ax.scatter(m["x"], m["y"], s=6, color="#ff8f00")
    for w, x, y in zip(m["words"], m["x"], m["y"]):
        ax.annotate(w, (x, y), fontsize=7, xytext=(2, 2), textcoords="offset points")
    ax.set(title=title, xlabel=f"PC1 ({m['explained'][0]:.0%})", ylabel=f"PC2 ({m['explained'][1]:.0%})")
    return _png(fig)


def _confusion_png(matrix, classes: list[str], title: str) -> bytes:
    import numpy as np  # noqa: PLC0415

    a = np.asarray(matrix, dtype=float)
    fig = _figure(6, 5.5)
    ax = fig.subplots()
    im = ax.imshow(a, cmap="Blues")
    fig.colorbar(im, ax=ax)
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xlabel="predicted", ylabel="true", title=title)
    ax.set_xticklabels(classes, rotation=90, fontsize=7)
    ax.set_yticklabels(classes, fontsize=7)
    if len(classes) <= 20:
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                ax.text(j, i, f"{a[i, j]:g}", ha="center", va="center", fontsize=6,
                        color="white" if a[i, j] > a.max() / 2 else "black")
    return _png(fig)


def _filters_png(w, title: str) -> bytes:
    import numpy as np  # noqa: PLC0415

    w = np.asarray(w, dtype=np.float32)[:64]
    n = w.shape[0]
    cols = min(8, n)
    rows = (n + cols - 1) // cols
    fig = _figure(cols * 1.0, rows * 1.0 + 0.4)
    fig.suptitle(title, fontsize=9)
    for k in range(n):
        ax = fig.add_subplot(rows, cols, k + 1)
        f = w[k].transpose(1, 2, 0) if w.shape[1] == 3 else w[k].mean(axis=0)
        f = (f - f.min()) / (f.max() - f.min() + 1e-8)  # each filter on its own scale
        ax.imshow(f, cmap=None if f.ndim == 3 else "gray", interpolation="nearest")
        ax.axis("off")
    return _png(fig)
