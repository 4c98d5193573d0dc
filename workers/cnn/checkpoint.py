"""The one checkpoint format of CNN jobs: ``model.safetensors`` + ``optimizer.safetensors`` + ``meta.json``
(epochs done, optimizer steps, history, model arguments, the optimizer's non-tensor state). No pickle."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from workers.contract import Checkpoint
from workers.cnn.loop import LoopState

FORMAT = "kiln.cnn.checkpoint/1"


def _plain(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)  # unwrap DistributedDataParallel


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as contiguous CPU tensors (channels-last weights are not contiguous)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in _plain(model).state_dict().items()}


def save(folder: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, state: LoopState, meta: dict) -> Checkpoint:
    """Write a whole checkpoint into ``folder`` (meta.json last)."""
    folder = Path(folder)
    save_file(model_tensors(model), str(folder / "model.safetensors"))
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for i, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{i}.{k}"] = v.detach().to("cpu").contiguous()
            else:
                scalars[f"{i}.{k}"] = v
    save_file(tensors, str(folder / "optimizer.safetensors"))
    Checkpoint.write_meta(folder, {"format": FORMAT, "epoch": state.epoch, "step": state.step,
                                   "history": state.history, "param_groups": sd["param_groups"],
                                   "optimizer_scalars": scalars, **meta})
    return Checkpoint(folder)


def load(ckpt: Checkpoint, model: torch.nn.Module, opt: torch.optim.Optimizer | None) -> LoopState:
    """Restore ``model`` (and ``opt``) from ``ckpt``; returns the loop state to continue from."""
    meta = ckpt.meta()
    device = next(_plain(model).parameters()).device
    _plain(model).load_state_dict({k: v.to(device) for k, v in load_file(str(Path(ckpt.path) / "model.safetensors")).items()})
    if opt is not None:
        state: dict[int, dict] = {}
        for key, v in load_file(str(Path(ckpt.path) / "optimizer.safetensors")).items():
            i, k = key.split(".", 1)
            state.setdefault(int(i), {})[k] = v if k == "step" else v.to(device)
        for key, v in meta.get("optimizer_scalars", {}).items():
            i, k = key.split(".", 1)
            state.setdefault(int(i), {})[k] = v
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return LoopState(epoch=meta["epoch"], step=meta["step"], history=list(meta.get("history", [])))
