"""Large scans in overlapping blocks under a voxel budget, merged back into one prediction.

Plan (``plan_blocks``): the floor plan (x, y in the model frame) is cut into
an n x n grid of equal tiles, n the smallest that keeps every block under
``max_voxels`` voxels. A tile is a block's *core*; the block is its core grown
by ``overlap`` metres on every side. Every vertex lies in exactly one core.

Merge rule (``merge_blocks``), so that no instance is duplicated and none is
split at a border:
  * each vertex takes its instance, semantic class and uncertainty from the
    block whose core holds it: a core vertex is at least ``overlap`` from its
    block's edge, so the network saw its context;
  * an instance of block A and one of block B are the same object when, on
    the vertices the two blocks share, their IoU is >= ``link_iou``; objects
    are the connected components of that link graph (scipy), so an object
    crossing any number of borders becomes one instance;
  * an object's class is that of its part with the most core vertices, its
    confidence the core-vertex-weighted mean of its parts'; objects with
    fewer than ``min_vertices`` core vertices are dropped, as in inference.
An object wider than ``overlap`` may be cut where neither block sees it
whole; the default overlap (2 m) exceeds nearly every indoor object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
from scipy.sparse.csgraph import connected_components

from scene_pe.inference.vertices import VertexPrediction, small_instance_remap


@dataclass
class Block:
    members: np.ndarray  # (n_b,) vertex indices of the block, ascending
    core: np.ndarray     # (n_b,) bool: the member lies in this block's core tile


def _voxel_keys(xyz: np.ndarray, voxel_size: float) -> np.ndarray:
    g = np.floor(xyz / voxel_size).astype(np.int64)
    g -= g.min(axis=0)
    span = g.max(axis=0) + 1
    return (g[:, 0] * span[1] + g[:, 1]) * span[2] + g[:, 2]


def plan_blocks(xyz: np.ndarray, voxel_size: float, max_voxels: int, overlap: float,
                tiles: int | None = None, max_tiles: int = 64) -> list[Block]:
    """Blocks covering every vertex of ``xyz`` (model frame); one block when the scan fits.

    ``tiles`` forces an n x n grid (tests, benchmarks); otherwise n grows from 1
    until every block holds at most ``max_voxels`` voxels.
    """
    keys = _voxel_keys(xyz, voxel_size)
    lo, hi = xyz[:, :2].min(axis=0), xyz[:, :2].max(axis=0)
    for n in ([tiles] if tiles else range(1, max_tiles + 1)):
        size = np.maximum(hi - lo, 1e-9) / n
        cell = np.minimum(((xyz[:, :2] - lo) / size).astype(np.int64), n - 1)
        blocks = []
        for i in range(n):  # loops over tiles, not points
            for j in range(n):
                t_lo, t_hi = lo + size * (i, j), lo + size * (i + 1, j + 1)
                inside = np.all((xyz[:, :2] >= t_lo - overlap) & (xyz[:, :2] <= t_hi + overlap), axis=1)
                members = np.flatnonzero(inside)
                core = (cell[members, 0] == i) & (cell[members, 1] == j)
                if core.any():
                    blocks.append(Block(members, core))
        if tiles or max(len(np.unique(keys[b.members])) for b in blocks) <= max_voxels:
            return blocks
    raise ValueError(f"cannot fit blocks under {max_voxels} voxels with {max_tiles}x{max_tiles} tiles and "
                     f"{overlap} m overlap; raise --block-voxels or lower --block-overlap")


def _links(blocks: list[Block], preds: list[VertexPrediction], offsets: np.ndarray, link_iou: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """(node_a, node_b) pairs of block instances that are the same object."""
    a_all, b_all = [], []
    for i in range(len(blocks)):
        for j in range(i + 1, len(blocks)):
            shared, ia, ib = np.intersect1d(blocks[i].members, blocks[j].members, assume_unique=True,
                                            return_indices=True)
            if not shared.size:
                continue
            na, nb = preds[i].instance[ia], preds[j].instance[ib]
            ok = (na >= 0) & (nb >= 0)
            if not ok.any():
                continue
            ua, ca = np.unique(na[na >= 0], return_counts=True)
            ub, cb = np.unique(nb[nb >= 0], return_counts=True)
            pairs, inter = np.unique(np.stack([na[ok], nb[ok]]), axis=1, return_counts=True)
            size_a = ca[np.searchsorted(ua, pairs[0])]
            size_b = cb[np.searchsorted(ub, pairs[1])]
            iou = inter / (size_a + size_b - inter)
            keep = iou >= link_iou
            a_all.append(pairs[0][keep] + offsets[i])
            b_all.append(pairs[1][keep] + offsets[j])
    if not a_all:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(a_all), np.concatenate(b_all)


def merge_blocks(blocks: list[Block], preds: list[VertexPrediction], num_vertices: int, scene: str,
                 link_iou: float = 0.5, min_vertices: int = 0) -> VertexPrediction:
    """One prediction for all vertices from per-block predictions (module docstring's rule)."""
    if len(blocks) == 1 and blocks[0].core.all():
        p = preds[0]
        return VertexPrediction(scene, p.instance, p.labels, p.confidence, p.semantic, p.uncertainty)
    sizes = np.array([len(p.labels) for p in preds], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    a, b = _links(blocks, preds, offsets, link_iou)
    total = int(offsets[-1])
    graph = scipy.sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=(total, total))
    _, component = connected_components(graph, directed=False)

    node = np.full(num_vertices, -1, dtype=np.int64)
    semantic = np.zeros(num_vertices, dtype=np.int64)
    uncertainty = np.zeros(num_vertices, dtype=np.float64)
    for k, (blk, p) in enumerate(zip(blocks, preds)):
        v = blk.members[blk.core]
        inst = p.instance[blk.core]
        node[v] = np.where(inst >= 0, inst + offsets[k], -1)
        semantic[v] = p.semantic[blk.core]
        uncertainty[v] = p.uncertainty[blk.core]
    labels_all = np.concatenate([p.labels for p in preds]) if total else np.zeros(0, np.int64)
    conf_all = np.concatenate([p.confidence for p in preds]) if total else np.zeros(0)

    assigned = node >= 0
    core_count = np.bincount(node[assigned], minlength=total)  # core vertices of each part
    comp = component[node[assigned]]
    ids, comp_of_vertex = np.unique(comp, return_inverse=True)
    # per object: the part with most core vertices gives the class; confidence weighted by core vertices
    parts = np.flatnonzero(core_count)
    part_comp = np.searchsorted(ids, component[parts])
    order = np.lexsort((-core_count[parts], part_comp))
    first = np.r_[True, part_comp[order][1:] != part_comp[order][:-1]]
    labels = np.zeros(len(ids), dtype=np.int64)
    labels[part_comp[order][first]] = labels_all[parts[order][first]]
    weight = np.bincount(part_comp, weights=core_count[parts], minlength=len(ids))
    confidence = np.bincount(part_comp, weights=core_count[parts] * conf_all[parts], minlength=len(ids)) / weight

    remap, keep = small_instance_remap(comp_of_vertex, min_vertices, len(ids))
    instance = np.full(num_vertices, -1, dtype=np.int64)
    instance[assigned] = remap[comp_of_vertex]
    return VertexPrediction(scene, instance, labels[keep], confidence[keep], semantic, uncertainty)
