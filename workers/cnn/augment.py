"""Data augmentation done on whole batches of tensors (on the training device): random shifts, small
random rotations and scalings ("affine"), random crops (reflect-padded shifts) and horizontal flips. One
random generator per call keeps runs seeded."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

AUGMENTS = ("shift", "affine", "crop", "flip")
AFFINE_DEGREES = 10.0
"""``affine``: each image rotated by a random angle in [-10, 10] degrees ..."""
AFFINE_SCALE = 0.1
"""... and scaled by a random factor in [0.9, 1.1] (with ``shift``, moved as well, in the same warp)."""


def random_translate(x: torch.Tensor, max_px: int, gen: torch.Generator, mode: str = "constant") -> torch.Tensor:
    """Shift each image of ``x`` (N, C, H, W) by its own random offset in [-max_px, max_px] on both axes,
    filling with zeros ("constant": a shift) or the mirrored border ("reflect": a random crop of a padded image)."""
    if max_px <= 0:
        return x
    n, _, h, w = x.shape
    dy = torch.randint(0, 2 * max_px + 1, (n,), generator=gen).to(x.device)
    dx = torch.randint(0, 2 * max_px + 1, (n,), generator=gen).to(x.device)
    # every (H, W) window of the padded images as a view (N, C, 2p+1, 2p+1, H, W), no copy; one indexing
    # copy takes each image's own window (2.5x less CPU than gathering every pixel by row and column indices,
    # which was ~6% of a LeNet-5 step on 28x28 digits; same values)
    windows = F.pad(x, (max_px,) * 4, mode=mode).unfold(2, h, 1).unfold(3, w, 1)
    return windows[torch.arange(n, device=x.device), :, dy, dx]


def random_affine(x: torch.Tensor, max_px: int, gen: torch.Generator, degrees: float = AFFINE_DEGREES,
                  scale: float = AFFINE_SCALE) -> torch.Tensor:
    """Rotate, scale and shift each image of ``x`` (N, C, H, W) by its own random amounts (up to ``degrees``,
    ``scale`` and ``max_px`` whole pixels) in one bilinear warp about the centre. Pixels that come in from
    outside take each image's darkest value (the background of digit-like data)."""
    n, _, h, w = x.shape
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(degrees)
    factor = 1 + (torch.rand(n, generator=gen) * 2 - 1) * scale
    tx = torch.randint(-max_px, max_px + 1, (n,), generator=gen).float() * 2 / w
    ty = torch.randint(-max_px, max_px + 1, (n,), generator=gen).float() * 2 / h
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    background = x.amin(dim=(1, 2, 3), keepdim=True)
    return F.grid_sample(x - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + background


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the images left-right."""
    mask = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(mask, x.flip(3), x)


def apply(x: torch.Tensor, augment: tuple[str, ...], *, shift_px: int, gen: torch.Generator) -> torch.Tensor:
    """The augmentations named in ``augment`` applied to a normalised float batch (N, C, H, W)."""
    if "affine" in augment:  # the shift, if asked for, is part of the same warp
        x = random_affine(x, shift_px if "shift" in augment else 0, gen)
    elif "shift" in augment:
        x = random_translate(x, shift_px, gen, "constant")
    if "crop" in augment:
        x = random_translate(x, max(1, x.shape[-1] // 8), gen, "reflect")
    if "flip" in augment:
        x = random_flip(x, gen)
    return x
