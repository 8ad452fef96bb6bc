"""Whether two predictions of the same scan give the same objects (the scan as a mesh and as a bare point cloud).

The instances of the two predictions are matched one to one by vertex IoU,
the pairing that maximises the summed IoU (scipy's assignment solver); an
instance of the first agrees when its partner's IoU is at least ``iou``.
Unassigned vertices (-1) belong to no instance. Semantics are not compared:
the question is whether the objects are the same vertex sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Agreement:
    agreeing: int          # instances of the first prediction with a partner at IoU >= the threshold
    first: int             # instances in the first prediction
    second: int            # instances in the second
    ious: np.ndarray       # (first,) IoU of each first instance with its partner (0: none)

    @property
    def fraction(self) -> float:
        return self.agreeing / self.first if self.first else float("nan")


def _compact(ids: np.ndarray) -> tuple[np.ndarray, int]:
    ids = np.asarray(ids, dtype=np.int64).ravel()
    uniq, inv = np.unique(ids[ids >= 0], return_inverse=True)
    out = np.full(ids.shape, -1, dtype=np.int64)
    out[ids >= 0] = inv.ravel()
    return out, uniq.size


def instance_agreement(first, second, iou: float = 0.9) -> Agreement:
    """The agreement of two per-vertex instance-id arrays of one scan (module doc)."""
    from scipy.optimize import linear_sum_assignment

    a, ka = _compact(first)
    b, kb = _compact(second)
    if a.shape != b.shape:
        raise ValueError(f"{a.size} and {b.size} vertices: not the same scan")
    if ka == 0 or kb == 0:
        return Agreement(0, ka, kb, np.zeros(ka))
    both = (a >= 0) & (b >= 0)
    inter = np.bincount(a[both] * kb + b[both], minlength=ka * kb).reshape(ka, kb).astype(np.float64)
    size_a, size_b = np.bincount(a[a >= 0], minlength=ka), np.bincount(b[b >= 0], minlength=kb)
    union = size_a[:, None] + size_b[None, :] - inter
    ious = inter / union
    rows, cols = linear_sum_assignment(-ious)
    best = np.zeros(ka)
    best[rows] = ious[rows, cols]
    return Agreement(int((best >= iou).sum()), ka, kb, best)


__all__ = ["Agreement", "instance_agreement"]
