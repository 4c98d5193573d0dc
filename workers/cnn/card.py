"""The model card: a JSON file beside ``model.safetensors`` that says everything needed to use the weights
(architecture and its arguments, class names, input shape, normalisation, metrics). Never pickle."""
from __future__ import annotations

import json
from pathlib import Path

CARD = "card.json"
WEIGHTS = "model.safetensors"
FORMAT = "kiln.cnn/1"


def write_card(folder: Path, *, model_args: dict, classes: list[str], shape: list[int], mean: list[float],
               std: list[float], metrics: dict, params: dict, dataset: dict) -> Path:
    """Write ``card.json`` into ``folder`` (beside the weights); returns its path."""
    card = {"format": FORMAT, "model_args": model_args, "classes": classes,
            "input": {"height": shape[0], "width": shape[1], "channels": shape[2], "pixels": "uint8 0..255, then "
                      "x/255 normalised per channel", "resize": "bilinear"},
            "normalisation": {"mean": mean, "std": std}, "metrics": metrics, "params": params, "dataset": dataset}
    path = Path(folder) / CARD
    path.write_text(json.dumps(card, indent=2))
    return path


def read_card(folder: Path) -> dict:
    card = json.loads((Path(folder) / CARD).read_text())
    if card.get("format") != FORMAT:
        raise ValueError(f"{folder}: not a kiln CNN model card (format {card.get('format')!r})")
    return card
