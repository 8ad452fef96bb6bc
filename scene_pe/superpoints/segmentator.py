"""Superpoints: the graph-based over-segmentation ScanNet ran to make ``*.segs.json``.

Felzenszwalb and Huttenlocher's algorithm (IJCV 2004) on a surface graph, with
the choices of ScanNet's Segmentator (facts read from its public source; the
code here is written from the paper):

* vertex normals: the running mean of the unit face normals (geometry/normals.py), faces in file
  order, in float32, not renormalised (a vertex between opposite faces keeps
  a short normal). Faces of zero area have no normal and are skipped (the
  Segmentator would give their vertices NaN normals);
* edges: three directed edges per triangle, (a, b), (a, c), (c, b), none
  removed when shared by two triangles;
* weight of edge (a, b): w = 1 - n_a . n_b, squared when the surface is
  convex there as seen from b (n_b . (p_b - p_a) > 0): creases of convex
  objects weigh less than the concave contact with what they stand on;
* edges in non-decreasing weight (a stable sort; ties do not change the
  partition); an edge joins two components when its weight is <= both
  thresholds, a component's threshold being the weight of the edge that last
  grew it plus ``k / size`` (``k`` = 0.01, the "0.010000" of the file name);
* then one pass over the sorted edges joins every component with fewer than
  ``min_vertices`` (20) vertices to its neighbour.
Segment ids are the component's root vertex, as in ScanNet's files (only the
partition is meaningful).

Point clouds (no faces): the same on the k-nearest-neighbour graph (k = 10,
edges i -> j to each neighbour), ``k`` still 0.01, with three changes measured
on two real ScanNet scans and generated rooms (docs/results.md, "Point-cloud
superpoints"):

* normals, unless given, from the planes of the 10 nearest points and
  shortened where the neighbourhood bends (geometry/normals.py,
  ``segmentation_normals``), as the mesh's unnormalised running means are: the
  10 cm-ball normals smoothed every crease (normals only, on scene0000_00's
  kNN graph: purity 0.86 with them, 0.975 with the mesh's own normals);
* colour as a veto, not a weight: an edge whose ends differ by more than
  ``color_veto`` (0.10, RGB distance, channels 0-1) never joins two segments
  in the Felzenszwalb pass. A real sensor's colour noise added to every
  weight (the former ``color_weight`` 0.5 x RGB distance) lifted each
  component's threshold until objects leaked into each other, and left
  ``k`` without effect (the segments were made by the small-segment pass);
* segments below 10 vertices (not 20) join a neighbour, vetoed edges last:
  the cloud's finer segments stay within 3x the mesh's segment count.
``color_weight`` (default 0) still adds the RGB distance to every weight.
Meshes keep ScanNet's normal-only weights and parameters.

The union-find pass is sequential, so it runs compiled with numba (a Python
loop over ~450k edges would take seconds); everything else is numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from scene_pe.geometry.normals import crease_shortened, running_mean_normals, segmentation_normals

K_THRESH = 0.01
MIN_VERTICES = 20        # meshes (ScanNet's)
CLOUD_MIN_VERTICES = 10  # point clouds (module doc)
KNN = 10
COLOR_WEIGHT = 0.0
COLOR_VETO = 0.10


@dataclass(frozen=True)
class SegmentatorConfig:
    k_thresh: float = K_THRESH
    min_vertices: int | None = None  # None: MIN_VERTICES for meshes, CLOUD_MIN_VERTICES for clouds
    knn: int = KNN  # point clouds only
    color_weight: float = COLOR_WEIGHT  # point clouds with colours only (module doc)
    color_veto: float = COLOR_VETO      # the same; inf: no veto

    def min_vertices_for(self, cloud: bool) -> int:
        if self.min_vertices is not None:
            return int(self.min_vertices)
        return CLOUD_MIN_VERTICES if cloud else MIN_VERTICES

    def params(self, cloud: bool = False) -> dict:
        """The ``params`` record of a segs.json."""
        return {"kThresh": self.k_thresh, "segMinVerts": self.min_vertices_for(cloud)}


def mesh_edges(faces: np.ndarray) -> np.ndarray:
    """(3F, 2) directed edges (a, b), (a, c), (c, b) of every triangle (a, b, c), in face order."""
    f = np.asarray(faces, dtype=np.int64)
    return np.stack([f[:, [0, 1]], f[:, [0, 2]], f[:, [2, 1]]], axis=1).reshape(-1, 2)


def edge_weights(xyz: np.ndarray, normals: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """float32 weights: 1 - n_a . n_b, squared where convex as seen from b."""
    p = np.asarray(xyz, dtype=np.float32)
    a, b = edges[:, 0], edges[:, 1]
    na, nb = normals[a], normals[b]
    d = p[b] - p[a]
    with np.errstate(invalid="ignore", divide="ignore"):  # repeated vertices: zero-length edges
        d = d / np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2])[:, None]
        convex = (nb[:, 0] * d[:, 0] + nb[:, 1] * d[:, 1] + nb[:, 2] * d[:, 2]) > 0
    w = np.float32(1.0) - (na[:, 0] * nb[:, 0] + na[:, 1] * nb[:, 1] + na[:, 2] * nb[:, 2])
    return np.where(convex, w * w, w).astype(np.float32)


@numba.njit(cache=True)
def _find(parent: np.ndarray, x: int) -> int:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression
        parent[x], x = root, parent[x]
    return root


@numba.njit(cache=True)
def _join(parent: np.ndarray, rank: np.ndarray, size: np.ndarray, x: int, y: int) -> int:
    """Union by rank of roots x and y; returns the new root."""
    if rank[x] > rank[y]:
        parent[y] = x
        size[x] += size[y]
        return x
    parent[x] = y
    size[y] += size[x]
    if rank[x] == rank[y]:
        rank[y] += 1
    return y


@numba.njit(cache=True)
def _segment(num_vertices: int, a: np.ndarray, b: np.ndarray, w: np.ndarray, k: float,
             min_vertices: int, num_allowed: int) -> np.ndarray:
    parent = np.arange(num_vertices)
    rank = np.zeros(num_vertices, dtype=np.int64)
    size = np.ones(num_vertices, dtype=np.int64)
    threshold = np.full(num_vertices, np.float32(k), dtype=np.float32)
    kk = np.float32(k)
    for e in range(num_allowed):  # edges sorted by weight, vetoed ones after these
        ra, rb = _find(parent, a[e]), _find(parent, b[e])
        if ra != rb and w[e] <= threshold[ra] and w[e] <= threshold[rb]:
            root = _join(parent, rank, size, ra, rb)
            threshold[root] = w[e] + kk / np.float32(size[root])
    for e in range(a.shape[0]):  # small components join a neighbour
        ra, rb = _find(parent, a[e]), _find(parent, b[e])
        if ra != rb and (size[ra] < min_vertices or size[rb] < min_vertices):
            _join(parent, rank, size, ra, rb)
    out = np.empty(num_vertices, dtype=np.int64)
    for v in range(num_vertices):
        out[v] = _find(parent, v)
    return out


def segment_graph(num_vertices: int, edges: np.ndarray, weights: np.ndarray,
                  cfg: SegmentatorConfig = SegmentatorConfig(), vetoed: np.ndarray | None = None,
                  cloud: bool = False) -> np.ndarray:
    """(N,) segment id (a root vertex) per vertex of the weighted graph. ``vetoed`` edges never join
    in the Felzenszwalb pass; the small-segment pass takes them after all others, by weight."""
    weights = np.asarray(weights, np.float32)
    vetoed = np.zeros(len(weights), bool) if vetoed is None else np.asarray(vetoed, bool)
    order = np.lexsort((weights, vetoed))  # allowed edges first; each group by weight (stable)
    e = np.ascontiguousarray(edges[order], dtype=np.int64)
    w = np.ascontiguousarray(weights[order], dtype=np.float32)
    if num_vertices == 0:
        return np.zeros(0, np.int64)
    return _segment(int(num_vertices), e[:, 0].copy(), e[:, 1].copy(), w, float(cfg.k_thresh),
                    cfg.min_vertices_for(cloud), int(len(w) - vetoed.sum()))


def segment_mesh(xyz: np.ndarray, faces: np.ndarray, cfg: SegmentatorConfig = SegmentatorConfig()
                 ) -> np.ndarray:
    """ScanNet's over-segmentation of a triangle mesh: (N,) segment id per vertex."""
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    normals = running_mean_normals(xyz, faces)
    edges = mesh_edges(faces)
    return segment_graph(len(xyz), edges, edge_weights(xyz, normals, edges), cfg)


def knn_edges(xyz: np.ndarray, k: int) -> np.ndarray:
    """(N k, 2) directed edges from every point to its k nearest other points."""
    from scipy.spatial import cKDTree

    k = min(k, len(xyz) - 1)
    if k < 1:
        return np.zeros((0, 2), np.int64)
    _, idx = cKDTree(xyz).query(xyz, k=k + 1)
    src = np.repeat(np.arange(len(xyz)), k)
    return np.stack([src, idx[:, 1:].reshape(-1)], axis=1).astype(np.int64)


def color_distance(colors: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """float32 RGB distance of each edge's ends, colours as uint8 0-255 (or floats 0-1)."""
    c = np.asarray(colors)
    c = c.astype(np.float32) / (255.0 if c.dtype == np.uint8 or c.max(initial=0) > 1.0 else 1.0)
    d = c[edges[:, 0]] - c[edges[:, 1]]
    return np.sqrt((d * d).sum(axis=1)).astype(np.float32)


def segment_cloud(xyz: np.ndarray, normals: np.ndarray | None = None,
                  cfg: SegmentatorConfig = SegmentatorConfig(), colors: np.ndarray | None = None) -> np.ndarray:
    """The same over-segmentation on a point cloud's k-nearest-neighbour graph (module doc). Normals,
    when given (a file's own), are shortened at creases like the estimated ones; colours, where
    given, veto edges (``cfg.color_veto``) and add ``cfg.color_weight`` x their distance."""
    xyz = np.asarray(xyz, dtype=np.float32)
    if normals is None:
        normals = segmentation_normals(xyz)
    else:
        normals = crease_shortened(xyz, normals)
    edges = knn_edges(xyz.astype(np.float64), cfg.knn)
    w = edge_weights(xyz, np.asarray(normals, np.float32), edges)
    vetoed = None
    if colors is not None and len(edges) and (cfg.color_weight > 0 or np.isfinite(cfg.color_veto)):
        dist = color_distance(colors, edges)
        w = w + np.float32(cfg.color_weight) * dist
        vetoed = dist > cfg.color_veto
    return segment_graph(len(xyz), edges, w, cfg, vetoed, cloud=True)


def segment_scan(xyz: np.ndarray, faces: np.ndarray | None, normals: np.ndarray | None = None,
                 cfg: SegmentatorConfig = SegmentatorConfig(), colors: np.ndarray | None = None) -> np.ndarray:
    """Mesh segmentation when there are faces, else the point-cloud variant."""
    if faces is not None and len(faces):
        return segment_mesh(xyz, faces, cfg)
    return segment_cloud(xyz, normals, cfg, colors)
