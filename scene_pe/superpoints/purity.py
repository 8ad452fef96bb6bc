"""How well an over-segmentation respects the objects of a GT labelling.

Purity: the share of the annotated vertices (GT id > 0) that lie in a segment
whose most common annotated GT id is their own. Unannotated vertices (0) are
left out on both sides: in ScanNet (and the generated rooms) they are whole
mesh segments the annotators skipped, often inside a wall, so the boundary
between a wall and its unannotated patch is not an object boundary a
segmentator could see. ``purity(..., annotated_only=False)`` counts 0 as one
more id (the strict figure, also reported).
"""

from __future__ import annotations

import numpy as np


def majority(segment: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(segment index per vertex 0..S-1, the most common GT id of each segment; ties: the smaller id)."""
    _, s = np.unique(np.asarray(segment), return_inverse=True)
    ids, g = np.unique(np.asarray(gt), return_inverse=True)
    s, g = s.reshape(-1).astype(np.int64), g.reshape(-1).astype(np.int64)
    pair, count = np.unique(s * len(ids) + g, return_counts=True)
    ps, pg = pair // len(ids), pair % len(ids)
    order = np.lexsort((pg, -count, ps))  # per segment: most vertices first, then the smaller id
    ps, pg = ps[order], pg[order]
    first = np.r_[True, ps[1:] != ps[:-1]]
    best = np.empty(int(s.max(initial=-1)) + 1, np.int64)
    best[ps[first]] = pg[first]
    return s, ids[best]


def purity(segment: np.ndarray, gt: np.ndarray, annotated_only: bool = True) -> float:
    """Share of the (annotated) vertices whose segment's majority GT id is their own (module doc)."""
    segment, gt = np.asarray(segment).reshape(-1), np.asarray(gt).reshape(-1)
    if annotated_only:
        keep = gt > 0
        segment, gt = segment[keep], gt[keep]
    if not len(gt):
        return float("nan")
    s, best = majority(segment, gt)
    return float((best[s] == gt).mean())


def num_segments(segment: np.ndarray) -> int:
    return int(len(np.unique(segment)))
