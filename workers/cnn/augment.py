"""Data augmentation done on whole batches of tensors (on the training device): random shifts, random
crops (reflect-padded shifts) and horizontal flips. One random generator per call keeps runs seeded."""
from __future__ import annotations

import torch
import torch.nn.functional as F

AUGMENTS = ("shift", "crop", "flip")


def random_translate(x: torch.Tensor, max_px: int, gen: torch.Generator, mode: str = "constant") -> torch.Tensor:
    """Shift each image of ``x`` (N, C, H, W) by its own random offset in [-max_px, max_px] on both axes,
    filling with zeros ("constant": a shift) or the mirrored border ("reflect": a random crop of a padded image)."""
    if max_px <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_px,) * 4, mode=mode)
    dy = torch.randint(0, 2 * max_px + 1, (n,), generator=gen).to(x.device)
    dx = torch.randint(0, 2 * max_px + 1, (n,), generator=gen).to(x.device)
    rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None])[:, None, :, None]  # N,1,H,1
    cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None])[:, None, None, :]  # N,1,1,W
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the images left-right."""
    mask = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(mask, x.flip(3), x)


def apply(x: torch.Tensor, augment: tuple[str, ...], *, shift_px: int, gen: torch.Generator) -> torch.Tensor:
    """The augmentations named in ``augment`` applied to a normalised float batch (N, C, H, W)."""
    if "shift" in augment:
        x = random_translate(x, shift_px, gen, "constant")
    if "crop" in augment:
        x = random_translate(x, max(1, x.shape[-1] // 8), gen, "reflect")
    if "flip" in augment:
        x = random_flip(x, gen)
    return x
