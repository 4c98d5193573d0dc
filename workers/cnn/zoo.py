"""torchvision classification models by name.

The torchvision wheel on PyPI is built against CUDA torch; with the CPU torch its C++ ops library cannot
load, and importing torchvision then fails while it registers fake kernels for two detection ops
(nms, qnms). Classification models need none of its ops, so when the library is missing we define those
two op schemas first (they stay unimplemented: calling them raises) and import torchvision normally.
"""
from __future__ import annotations

import functools

import torch

from shared.errors import InvalidParameter

_SHIM = []  # keeps the Library object alive (its definitions vanish when it is collected)


def _import_torchvision():
    try:
        import torchvision  # noqa: PLC0415
        return torchvision
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        if not hasattr(torch.ops.torchvision, op) or not torch._C._dispatch_has_kernel_for_dispatch_key(
                f"torchvision::{op}", "CPU"):
            try:
                lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            except RuntimeError:
                pass  # already defined
    _SHIM.append(lib)
    import sys  # noqa: PLC0415

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # the failed, half-done import
    import torchvision  # noqa: PLC0415
    return torchvision


@functools.lru_cache(maxsize=1)
def torchvision_models() -> tuple[str, ...]:
    """Names of torchvision's classification models (empty if torchvision is not installed)."""
    try:
        tv = _import_torchvision()
    except ImportError:
        return ()
    return tuple(tv.models.list_models(module=tv.models))


def torchvision_model(name: str, num_classes: int) -> torch.nn.Module:
    """A randomly initialised torchvision classifier with ``num_classes`` outputs."""
    if name not in torchvision_models():
        raise InvalidParameter(f"--arch: unknown architecture {name!r}")
    tv = _import_torchvision()
    return tv.models.get_model(name, weights=None, num_classes=num_classes)
