"""The PyTorch training step (GPU when a job asks for GPUs; also runs on CPU, which the tests use).

Same model as ``kernel.py`` — skip-gram or CBOW with negative sampling, subsampling, dynamic window,
linearly decaying learning rate — laid out for a GPU: a chunk of word ids becomes a batch of windows
``(centres[B], contexts[B, 2*window])`` (-1 pads the short ones), each centre draws ``negative`` negatives
shared by all its contexts (HogBatch), and one minibatch of B centres is three batched matrix products:

    scores  = contexts_in @ [centre, negs]_out^T           (B, 2w, k+1)
    grad_in = g @ out,  grad_out = g^T @ contexts_in       (the SGD step, applied with index_add_)

Gradients are written by hand (no autograd): it is plain SGD on the rows touched, as in the C tool.
All centres of a minibatch read the same weights and their updates are summed (Hogwild within a batch).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def make_windows(ids: np.ndarray, start: int, end: int, *, keep: np.ndarray, sample: bool, window: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Windows of ``ids[start:end]`` (encoded with -1 sentence ends), after subsampling.

    Returns (centres int64[B], contexts int64[B, 2*window] with -1 padding, positions int64[B] of the
    centres relative to ``start``, words read). Centres with no context are left out."""
    seg = np.asarray(ids[start:end])
    valid = seg >= 0
    words = int(valid.sum())
    sentence = np.cumsum(~valid)  # sentence number of every position
    mask = valid.copy()
    if sample:
        draw = rng.integers(0, 2**32, size=len(seg), dtype=np.int64)
        mask &= keep[np.where(valid, seg, 0)] >= draw
    where = np.flatnonzero(mask)
    w = seg[where].astype(np.int64)
    sid = sentence[where]
    n = len(w)
    reach = window - rng.integers(0, window, size=n)  # the dynamic window of each centre
    cols = []
    for off in [o for o in range(-window, window + 1) if o != 0]:
        j = np.arange(n) + off
        ok = (j >= 0) & (j < n) & (abs(off) <= reach)
        jc = np.clip(j, 0, max(n - 1, 0))
        ok &= sid[jc] == sid
        cols.append(np.where(ok, w[jc], -1))
    contexts = np.stack(cols, axis=1) if n else np.empty((0, 2 * window), np.int64)
    has = (contexts >= 0).any(axis=1)
    return w[has], contexts[has], where[has].astype(np.int64), words


class TorchHogBatch:
    """Holds ``syn0``/``syn1neg`` as tensors on ``device`` and trains chunks of word ids on them.

    ``device``: "cpu", "cuda", "cuda:1", ... ; ``batch_centres``: centres per minibatch (one SGD step).
    """

    def __init__(self, syn0: np.ndarray, syn1neg: np.ndarray, *, cum: np.ndarray, keep: np.ndarray,
                 sample: bool, sg: bool, window: int, negative: int, cbow_mean: bool = True,
                 device: str | torch.device = "cpu", batch_centres: int = 1024):
        self.device = torch.device(device)
        self.syn0 = torch.from_numpy(np.ascontiguousarray(syn0, dtype=np.float32)).to(self.device)
        self.syn1neg = torch.from_numpy(np.ascontiguousarray(syn1neg, dtype=np.float32)).to(self.device)
        self.cum = torch.from_numpy(np.asarray(cum, dtype=np.int64)).to(self.device)
        self.domain = int(cum[-1])
        self.keep = np.asarray(keep, dtype=np.int64)
        self.sample, self.sg, self.window, self.negative = sample, sg, window, negative
        self.cbow_mean = cbow_mean
        self.batch_centres = batch_centres

    def train_chunk(self, ids: np.ndarray, start: int, end: int, lr_start: float, lr_end: float,
                    seed: int) -> tuple[int, float, int]:
        """Train on ``ids[start:end]``; returns (words read, loss sum, pairs or centres trained)."""
        rng = np.random.default_rng(seed)
        centres, contexts, positions, words = make_windows(
            ids, start, end, keep=self.keep, sample=self.sample, window=self.window, rng=rng)
        if len(centres) == 0:
            return words, 0.0, 0
        span = max(end - start, 1)
        alphas = lr_start + (lr_end - lr_start) * (positions / span)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)
        dev = self.device
        c_all = torch.from_numpy(centres).to(dev)
        x_all = torch.from_numpy(contexts).to(dev)
        a_all = torch.from_numpy(alphas.astype(np.float32)).to(dev)
        loss = torch.zeros((), dtype=torch.float64, device=dev)
        trained = torch.zeros((), dtype=torch.int64, device=dev)
        for lo in range(0, len(centres), self.batch_centres):
            hi = lo + self.batch_centres
            step = self._step_sg if self.sg else self._step_cbow
            batch_loss, batch_n = step(c_all[lo:hi], x_all[lo:hi], a_all[lo:hi], gen)
            loss += batch_loss
            trained += batch_n
        return words, float(loss), int(trained)

    def _targets(self, centres: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(targets [B, k+1]: centre then negatives, sign [B, k+1]: +1 / -1, weight [B, k+1]: 0 where a
        negative drew the centre itself)."""
        b = centres.shape[0]
        r = torch.randint(0, self.domain, (b, self.negative), generator=gen, device=self.device)
        negs = torch.searchsorted(self.cum, r, right=True).clamp_(max=self.syn0.shape[0] - 1)
        targets = torch.cat([centres[:, None], negs], dim=1)
        sign = torch.full(targets.shape, -1.0, device=self.device)
        sign[:, 0] = 1.0
        weight = torch.ones(targets.shape, device=self.device)
        weight[:, 1:] = (negs != centres[:, None]).float()
        return targets, sign, weight

    def _step_sg(self, centres, contexts, alphas, gen):
        targets, sign, weight = self._targets(centres, gen)
        cmask = (contexts >= 0).float()                     # (B, 2w)
        ctx = contexts.clamp(min=0)
        inp = self.syn0[ctx]                                # (B, 2w, D)
        out = self.syn1neg[targets]                         # (B, k+1, D)
        z = torch.bmm(inp, out.transpose(1, 2)) * sign[:, None, :]   # score of the right answer
        pair_w = cmask[:, :, None] * weight[:, None, :]     # (B, 2w, k+1)
        loss = (F.softplus(-z) * pair_w).sum(dtype=torch.float64)
        g = torch.sigmoid(-z) * sign[:, None, :] * pair_w * alphas[:, None, None]
        self.syn0.index_add_(0, ctx.reshape(-1), torch.bmm(g, out).reshape(-1, inp.shape[-1]))
        self.syn1neg.index_add_(0, targets.reshape(-1), torch.bmm(g.transpose(1, 2), inp).reshape(-1, inp.shape[-1]))
        return loss, cmask.sum().long()

    def _step_cbow(self, centres, contexts, alphas, gen):
        targets, sign, weight = self._targets(centres, gen)
        cmask = (contexts >= 0).float()
        ctx = contexts.clamp(min=0)
        inp = self.syn0[ctx] * cmask[:, :, None]
        h = inp.sum(dim=1)                                  # (B, D)
        if self.cbow_mean:
            h = h / cmask.sum(dim=1, keepdim=True)
        out = self.syn1neg[targets]                         # (B, k+1, D)
        z = torch.bmm(out, h[:, :, None]).squeeze(2) * sign  # (B, k+1)
        loss = (F.softplus(-z) * weight).sum(dtype=torch.float64)
        g = torch.sigmoid(-z) * sign * weight * alphas[:, None]
        grad_h = torch.bmm(g[:, None, :], out).squeeze(1)   # (B, D), applied to every context word as in gensim
        grad_in = grad_h[:, None, :] * cmask[:, :, None]
        self.syn0.index_add_(0, ctx.reshape(-1), grad_in.reshape(-1, h.shape[-1]))
        self.syn1neg.index_add_(0, targets.reshape(-1), (g[:, :, None] * h[:, None, :]).reshape(-1, h.shape[-1]))
        return loss, torch.tensor(centres.shape[0], device=self.device)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of (syn0, syn1neg) as float32 numpy arrays on the host."""
        return self.syn0.detach().cpu().numpy().copy(), self.syn1neg.detach().cpu().numpy().copy()

    def get_rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i = torch.from_numpy(np.asarray(idx, dtype=np.int64)).to(self.device)
        return self.syn0[i].cpu().numpy(), self.syn1neg[i].cpu().numpy()

    def set_rows(self, idx: np.ndarray, syn0_rows: np.ndarray, syn1_rows: np.ndarray) -> None:
        i = torch.from_numpy(np.asarray(idx, dtype=np.int64)).to(self.device)
        self.syn0[i] = torch.from_numpy(np.asarray(syn0_rows, dtype=np.float32)).to(self.device)
        self.syn1neg[i] = torch.from_numpy(np.asarray(syn1_rows, dtype=np.float32)).to(self.device)

    def nonfinite(self) -> list[str]:
        """Names of the weight tensors holding NaN or inf (checked on the device, one sync)."""
        flags = torch.stack([torch.isfinite(self.syn0).all(), torch.isfinite(self.syn1neg).all()]).tolist()
        return [name for name, ok in zip(("syn0", "syn1neg"), flags) if not ok]
