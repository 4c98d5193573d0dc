"""DeltaMerge: how groups of a job's workers that keep their own weights (different nodes, GPUs) merge.

For rows R: new = base + sum_g (group_g - base), sent back to every group; ``base`` keeps the merged
values. Summing the groups' updates (not averaging them) gives each word the step it would get if one
trainer had seen all the groups' text, as shared-memory Hogwild does; averaging divided every group's
update by the number of groups. Workers of one node do not merge: they share one set of weights.
"""
from __future__ import annotations

import numpy as np


class DeltaMerge:
    """Merges the weight groups whose representatives are ``ranks`` of ``workers`` (job._Workers)."""

    def __init__(self, workers, ranks: list[int]):
        self.workers, self.ranks = workers, ranks
        syn0, syn1neg = workers.get(workers.call(ranks[0], "get_rows", None))
        self.reset(syn0, syn1neg)

    def reset(self, syn0: np.ndarray, syn1neg: np.ndarray) -> None:
        """Start again from these weights (all groups hold them, e.g. after a restored checkpoint)."""
        self.base0, self.base1 = syn0.copy(), syn1neg.copy()

    def merge(self, rows: np.ndarray | None) -> None:
        """Merge rows ``rows`` (all when None) of every group and send the result back to each."""
        w = self.workers
        parts = w.each("get_rows", rows, ranks=self.ranks)
        sel = slice(None) if rows is None else rows
        b0, b1 = self.base0[sel], self.base1[sel]
        new0 = b0 + np.sum([x[0] - b0 for x in parts], axis=0, dtype=np.float32)
        new1 = b1 + np.sum([x[1] - b1 for x in parts], axis=0, dtype=np.float32)
        self.base0[sel], self.base1[sel] = new0, new1
        n0, n1 = w.put(new0), w.put(new1)
        w.each("set_rows", rows, n0, n1, ranks=self.ranks)
