"""The vision half of the model service: submit-time checks of CNN jobs, predictions, evaluation on a
dataset and export (ONNX, safetensors, TorchScript) of registered CNN classifiers.

torch is imported only by the calls that need a model (predict, eval, export).
"""
from __future__ import annotations

import json
from pathlib import Path

from services.export_target import export_target
from shared.errors import InvalidParameter

EXPORT_FORMATS = ("onnx", "safetensors", "torchscript")


def validate_cnn(data: dict, *, user: str, flags: bool = True):
    """(the checked JobSpec with every hyperparameter concrete, "dataset: what was found") for a cnn job
    built from ``data``; InvalidParameter (one line) on bad input. Stores nothing."""
    from services.jobs import validate_offline  # noqa: PLC0415
    from workers.cnn.precheck import resolve_cnn_spec  # noqa: PLC0415

    spec = validate_offline(data, user=user, flags=flags)
    _, info = resolve_cnn_spec(spec)  # cheap again: headers and labels only
    return spec, f"dataset: {info.description}"


def _classifier(models, ref: str, what: str):
    mv = models.get(ref)
    if mv.kind != "cnn":
        raise InvalidParameter(f"{mv.ref} is a {mv.kind} model; {what} needs a cnn (image classifier) model")
    from services.model_loading import load_cnn  # noqa: PLC0415

    return mv, load_cnn(mv)


def predict(models, ref: str, inputs: list[str], *, top: int = 1) -> list[dict]:
    """One {"path", "label", "score", "top": [{"label", "score"}, ...]} per image file named (directories
    give their image files). ``models`` is a services.models.ModelService."""
    from workers.cnn.inference import image_files  # noqa: PLC0415

    files = image_files(inputs)
    _, clf = _classifier(models, ref, "kiln predict")
    return clf.predict(files, top=top)


def evaluate(models, ref: str, dataset: str, *, fmt: str = "auto") -> dict:
    """Accuracy, per-class accuracy and confusion matrix of a CNN version on ``dataset`` (its test split
    when it has one, else all of it). Classes are matched by name."""
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from workers.cnn.datasets import read_split, scan  # noqa: PLC0415
    from workers.cnn.evaluate import classification_report  # noqa: PLC0415
    from workers.cnn.folder import decode  # noqa: PLC0415

    mv, clf = _classifier(models, ref, "kiln eval DATASET")
    h, w, c = clf.shape
    info = scan(dataset, fmt, image_size=h if h == w else None)
    split = info.test or info.train
    missing = [name for name in info.classes if name not in clf.classes]
    if missing:
        raise InvalidParameter(f"dataset: class {missing[0]!r} is not one of {mv.ref}'s classes "
                               f"({', '.join(clf.classes[:10])}{'...' if len(clf.classes) > 10 else ''})")
    to_model = np.array([clf.classes.index(name) for name in info.classes], dtype=np.int64)
    if split.kind == "folder":
        x = np.stack([decode(f, (h, w), c) for f in split.files])
        y = np.asarray(split.labels, dtype=np.int64)
    else:
        x, y = read_split(split, (h, w, c))
    preds = []
    with torch.no_grad():
        for start in range(0, len(x), 1024):
            preds.append(clf.probabilities(clf.preprocess(list(x[start:start + 1024]))).argmax(1).numpy())
    report = classification_report(to_model[y], np.concatenate(preds), clf.classes)
    return {"model": mv.ref, "dataset": info.description, "split": "test" if info.test else "all", **report}


def export(models, ref: str, fmt: str, dest: str, *, force: bool = False) -> Path:
    """Write a CNN version to ``dest``: ``onnx`` (input "image" float N x C x H x W, normalised as the card
    says; output "logits"), ``safetensors`` (the weights, the card as JSON metadata) or ``torchscript``."""
    import torch  # noqa: PLC0415

    if fmt not in EXPORT_FORMATS:
        raise InvalidParameter(f"--format: a cnn model exports as {', '.join(EXPORT_FORMATS)} (not {fmt})")
    mv, clf = _classifier(models, ref, "this export")
    h, w, c = clf.shape
    sample = torch.zeros(2, c, h, w)
    with export_target(dest, force=force) as tmp:
        if fmt == "onnx":
            import warnings  # noqa: PLC0415

            warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript-based exporter: no onnxscript needed
            torch.onnx.export(clf.module, (sample,), str(tmp), dynamo=False, input_names=["image"],
                              output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
        elif fmt == "torchscript":
            with torch.no_grad():
                torch.jit.save(torch.jit.trace(clf.module, sample), str(tmp))
        else:
            from safetensors.torch import save_file  # noqa: PLC0415
            from workers.cnn.checkpoint import model_tensors  # noqa: PLC0415

            save_file(model_tensors(clf.module), str(tmp), metadata={"format": "kiln.cnn/1",
                                                                      "card": json.dumps(clf.card)})
    return Path(dest)
