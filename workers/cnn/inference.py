"""Using a trained classifier: ``Classifier.load(model_dir)`` -> ``.predict(paths, top=K)``.

Images are preprocessed exactly as in training: converted to the card's channels (L or RGB), resized
bilinearly to its input size, scaled to [0, 1] and normalised with the training split's mean and std.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from shared.errors import InvalidParameter
from shared.image_files import image_files  # noqa: F401 - the listing `kiln predict` uses (re-exported)
from workers.cnn.card import WEIGHTS, read_card
from workers.cnn.folder import decode
from workers.cnn.models import build_model


class Classifier:
    """A trained CNN in eval mode on the CPU, with its card (classes, input shape, normalisation)."""

    def __init__(self, module: torch.nn.Module, card: dict):
        self.module = module.eval()
        self.card = card
        self.classes: list[str] = card["classes"]
        inp = card["input"]
        self.shape = (inp["height"], inp["width"], inp["channels"])
        c = self.shape[2]
        self.mean = torch.tensor(card["normalisation"]["mean"], dtype=torch.float32).view(1, c, 1, 1)
        self.std = torch.tensor(card["normalisation"]["std"], dtype=torch.float32).view(1, c, 1, 1)

    @classmethod
    def load(cls, model_dir: str | Path) -> "Classifier":
        """From a folder holding ``card.json`` and ``model.safetensors``."""
        from safetensors.torch import load_file  # noqa: PLC0415

        card = read_card(Path(model_dir))
        module = build_model(card["model_args"])
        module.load_state_dict(load_file(str(Path(model_dir) / WEIGHTS)))
        return cls(module, card)

    def preprocess(self, images) -> torch.Tensor:
        """Float (N, C, H, W) model input from image paths, or from uint8 arrays already (H, W, C) at the
        card's size."""
        arrays = []
        for im in images:
            if isinstance(im, np.ndarray):
                a = im
            else:
                try:
                    a = decode(str(im), self.shape[:2], self.shape[2])
                except (OSError, SyntaxError, ValueError):
                    raise InvalidParameter(f"{im}: not a readable image") from None
            arrays.append(a.reshape(self.shape))
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        return torch.cat([torch.softmax(self.module(x[i:i + batch_size]), dim=1) for i in range(0, len(x), batch_size)])

    def predict(self, paths: list[str], top: int = 1, batch_size: int = 512) -> list[dict]:
        """One {"path", "label", "score", "top": [{"label", "score"}...]} per image, in order, batched
        (``path`` None for an image given as an array)."""
        top = max(1, min(top, len(self.classes)))
        out = []
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            probs = self.probabilities(self.preprocess(chunk))
            scores, idx = probs.topk(top, dim=1)
            for path, s, i in zip(chunk, scores.tolist(), idx.tolist()):
                ranked = [{"label": self.classes[j], "score": round(float(v), 6)} for v, j in zip(s, i)]
                where = None if isinstance(path, np.ndarray) else str(path)  # an array's str() costs ms
                out.append({"path": where, "label": ranked[0]["label"], "score": ranked[0]["score"], "top": ranked})
        return out
