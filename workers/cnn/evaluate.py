"""Classification metrics: accuracy, per-class accuracy and the confusion matrix."""
from __future__ import annotations

import numpy as np


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """{"accuracy", "count", "per_class": {name: accuracy or None when the class has no example},
    "confusion": rows = true class, columns = predicted class, "classes"}."""
    k = len(classes)
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    support = confusion.sum(1)
    per_class = {c: (float(confusion[i, i] / support[i]) if support[i] else None) for i, c in enumerate(classes)}
    return {"accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0, "count": int(len(y_true)),
            "per_class": per_class, "confusion": confusion.tolist(), "classes": list(classes)}


def report_metrics(report: dict, prefix: str = "test") -> dict[str, float]:
    """Registry metrics (finite floats only): ``test_accuracy`` and ``test_accuracy.<class>``."""
    out = {f"{prefix}_accuracy": report["accuracy"]}
    for c, acc in report["per_class"].items():
        if acc is not None:
            out[f"{prefix}_accuracy.{c}"] = acc
    return out
