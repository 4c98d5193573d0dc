"""Hyperparameters of a CNN image-classifier job (``kind: cnn``).

Fields left as None take the architecture's recipe (workers/cnn/recipes.py) when the job is validated at
submit, so the stored spec, and the registered model's params, always hold the values actually used.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

AUGMENTS = ("shift", "affine", "crop", "flip")
DATASET_FORMATS = ("auto", "idx", "cifar", "folder", "npz", "digits")


class CnnParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(min_length=1, description="IDX file or MNIST folder, CIFAR batches, image folder, .npz, or `digits`")
    format: Literal["auto", "idx", "cifar", "folder", "npz", "digits"] = "auto"
    test: str | None = Field(None, description="a separate test set (same format rules); else a held-out split")
    arch: str | None = Field(None, description="softmax, mlp, lenet5, resnet, or a torchvision model name")
    depth: int | None = Field(None, ge=8, le=1202, description="ResNet depth (6n+2)")
    width: int | None = Field(None, ge=1, le=4096, description="MLP hidden units / ResNet first-stage channels")
    epochs: int | None = Field(None, ge=1, le=10000, description="default: the architecture's recipe (lenet5: 50)")
    batch_size: int | None = Field(None, ge=1, le=65536, description="global batch (split over the workers)")
    lr: float | None = Field(None, gt=0.0, le=10.0, description="peak learning rate of the one-cycle schedule")
    optimizer: Literal["sgd", "adamw"] | None = Field(None, description="sgd (Nesterov momentum) or adamw")
    weight_decay: float | None = Field(None, ge=0.0, le=1.0, description="L2 (sgd) / decoupled (adamw) weight decay")
    label_smoothing: float | None = Field(None, ge=0.0, lt=1.0, description="cross-entropy label smoothing")
    augment: list[str] | None = Field(None, description="comma list of shift, affine (small rotations and scalings), crop, flip, or none (default: the recipe's)")
    image_size: int | None = Field(None, ge=1, le=4096, description="resize images to NxN (default: from the data)")
    val_split: float = Field(0.1, gt=0.0, lt=1.0, description="held-out fraction when no test set is given")
    weights: str | None = Field(None, description="a local safetensors file to start from")

    @field_validator("augment")
    @classmethod
    def _known_augments(cls, v):
        if v is not None:
            unknown = [a for a in v if a not in AUGMENTS]
            if unknown:
                raise ValueError(f"unknown augmentation {unknown[0]!r} (any of {', '.join(AUGMENTS)})")
            v = list(dict.fromkeys(v))
        return v

    @field_validator("arch")
    @classmethod
    def _arch_lower(cls, v):
        return v.strip().lower() if v is not None else v
