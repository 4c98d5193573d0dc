"""Checks at submit, before anything is stored: the dataset (format, headers, counts, classes), the
architecture, the weights file; then every hyperparameter left unset gets its recipe value."""
from __future__ import annotations

from pathlib import Path

from shared.errors import InvalidParameter
from workers.cnn import recipes
from workers.cnn.datasets import DatasetInfo, scan
from workers.cnn.models import check_arch


def resolve_cnn_spec(spec):
    """(spec with every CnnParams field concrete, DatasetInfo); InvalidParameter with one line on bad input."""
    p = spec.params
    info = scan(p.dataset, p.format, image_size=p.image_size, test=p.test)
    arch = p.arch or recipes.default_arch(info.shape[2])
    check_arch(arch, p.depth)
    image_size = p.image_size
    if image_size is None and arch == "lenet5" and min(info.shape[:2]) < recipes.LENET_MIN_SIZE:
        image_size = recipes.LENET_MIN_SIZE
        info = scan(p.dataset, p.format, image_size=image_size, test=p.test)
    if arch not in ("softmax", "mlp") and min(info.shape[:2]) < 4:
        raise InvalidParameter(f"--image-size: {arch} needs images of at least 4x4 (got {info.shape[0]}x{info.shape[1]})")
    check_builds(arch, p.depth, p.width, info)
    if p.weights is not None:
        w = Path(p.weights).expanduser()
        if not w.is_file():
            raise InvalidParameter(f"--weights: {p.weights}: no such file")
        try:
            from safetensors import safe_open  # noqa: PLC0415

            with safe_open(str(w), "pt") as f:
                f.keys()
        except Exception as e:  # noqa: BLE001 - any unreadable file is one line
            raise InvalidParameter(f"--weights: {p.weights}: not a readable safetensors file ({e})") from None
        p = p.model_copy(update={"weights": str(w.absolute())})
    held_out = info.test.count if info.test else round(info.train.count * p.val_split)
    if info.test is None and (held_out < 1 or info.train.count - held_out < 2):
        raise InvalidParameter(f"--val-split {p.val_split} leaves no held-out or training images "
                               f"({info.train.count} images in all)")
    r = recipes.recipe(arch, info.shape[2])
    update = {k: (getattr(p, k) if getattr(p, k) is not None else v) for k, v in r.items()}
    update.update(arch=arch, image_size=image_size, format=info.format,
                  dataset=p.dataset if p.dataset == "digits" else str(Path(p.dataset).expanduser().absolute()),
                  test=None if p.test is None else str(Path(p.test).expanduser().absolute()))
    if arch != "resnet":
        update.pop("depth", None)
    return spec.model_copy(update={"params": p.model_copy(update=update)}), info


def check_builds(arch: str, depth: int | None, width: int | None, info: DatasetInfo) -> None:
    """Build the model and run one blank image through it, so an architecture that cannot take these
    images (too small for its poolings, say) is refused at submit rather than failing on the workers."""
    import torch  # noqa: PLC0415

    from workers.cnn.models import build_model  # noqa: PLC0415

    h, w, c = info.shape
    args = {"arch": arch, "in_channels": c, "num_classes": len(info.classes), "image_size": [h, w],
            "depth": depth, "width": width}
    try:
        with torch.no_grad():
            build_model(args).eval()(torch.zeros(1, c, h, w))
    except (RuntimeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise InvalidParameter(f"--arch {arch} cannot take {h}x{w}x{c} images ({first}); try --image-size") from None


def describe(info: DatasetInfo) -> str:
    return f"dataset: {info.description}"
