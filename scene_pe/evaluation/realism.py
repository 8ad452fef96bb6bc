"""What a network can exploit in a room: statistics that set generated rooms beside real scans.

Every statistic is a function of one room's plain arrays (numpy and scipy; no
torch, no open3d: a caller that needs normals computes them, e.g. with
scene_pe.geometry.normals.vertex_normals), so the same code measures a
generated room and a real ScanNet scan (bench/realism.py prints them side by
side). Colours are uint8 RGB; coordinates are metres with +z up (ScanNet's raw
meshes are gravity-aligned, so no axis alignment is needed).

* ``color_class_accuracy``: how well colour alone tells an object's class: a
  k-nearest-neighbour classifier (k = 15) on each vertex's colour, fitted on a
  random half of the vertices and scored on the other half, beside the rate of
  always answering the fit half's most common class. Colour spaces: ``rgb``
  (0-1 per channel) and ``hsv`` as the cone (s cos 2 pi h, s sin 2 pi h, v), so
  hue is circular and greys sit together whatever their hue.
* ``edge_contrast``: the mean RGB distance (0-1 per channel, 0..sqrt 3) over
  the vertex pairs whose ends lie in one object, and over those whose ends lie
  in two: on rooms painted per object a colour edge is an object edge. Pairs:
  each vertex with its 6 nearest within 10 cm (``neighbour_pairs``), not mesh
  edges, since a generated room's objects share no mesh edge
  (``joined_objects``: the share of mesh edges between objects that join two).
* ``vertex_density``: vertices per m^2 at each vertex (3 over the area of the
  faces around it: a regular grid of spacing h gives 1 / h^2).
* ``plane_normal_noise``: the median angle (degrees) between the normals of a
  surface known to be flat (the floor) and their mean direction.
* ``boundary_per_area``: the length of the mesh's open border (edges of one
  face only) per m^2 of surface: holes and torn parts add border.
  ``empty_cell_share``: of the 10 cm cells of the floor plan inside the convex
  hull of the room's vertices, the share that no vertex falls in (seen from
  above: holes in the floor not under furniture; an L-shaped room counts its
  outside corner as empty too).
* ``object_stats``: objects per room, their vertex counts and extents;
  ``small_objects``: objects smaller than 0.5 m in every direction, on the
  floor (bottom within 0.15 m of it) or raised (tables, shelves).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull, Delaunay, cKDTree

K_NEIGHBOURS = 15
SMALL_EXTENT = 0.5  # m: an object smaller than this in every direction is clutter
ON_FLOOR = 0.15  # m: a small object whose bottom is this close to the floor stands on it
FLOOR_CELL = 0.10  # m: cells of the floor plan (empty_cell_share)
PAIR_NEIGHBOURS, PAIR_RADIUS = 6, 0.10  # neighbour_pairs: a vertex's 6 nearest within 10 cm


def _check(name: str, n: int, **arrays) -> None:
    for key, a in arrays.items():
        if a is not None and len(a) != n:
            raise ValueError(f"{name}: {key} has {len(a)} rows for {n} vertices")


def hsv_features(colors: np.ndarray) -> np.ndarray:
    """(N, 3) float: HSV (matplotlib.colors.rgb_to_hsv) as the cone (s cos 2 pi h, s sin 2 pi h, v)."""
    from matplotlib.colors import rgb_to_hsv

    hsv = rgb_to_hsv(np.asarray(colors, np.float64).reshape(-1, 3) / 255.0)
    angle = 2.0 * np.pi * hsv[:, 0]
    return np.stack([hsv[:, 1] * np.cos(angle), hsv[:, 1] * np.sin(angle), hsv[:, 2]], axis=1)


def color_features(colors: np.ndarray, space: str) -> np.ndarray:
    if space == "rgb":
        return np.asarray(colors, np.float64).reshape(-1, 3) / 255.0
    if space == "hsv":
        return hsv_features(colors)
    raise ValueError(f"colour space must be 'rgb' or 'hsv', not {space!r}")


@dataclass(frozen=True)
class ColorAccuracy:
    accuracy: float  # k-NN on colour, on the test half
    majority: float  # always the fit half's most common class, on the test half
    num_fit: int
    num_test: int
    num_classes: int  # classes present


def color_class_accuracy(colors: np.ndarray, classes: np.ndarray, space: str = "rgb", k: int = K_NEIGHBOURS,
                         seed: int = 0, objects: np.ndarray | None = None) -> ColorAccuracy:
    """k-NN class accuracy from colour alone (module doc); ``classes`` >= 0 per vertex (the caller
    keeps only the classes in question). Ties in the vote go to the smaller class id.
    ``objects`` (an object id per vertex): split by object instead, a random half of the objects
    to fit: whether colour tells the class of an object not seen (a vertex split mostly asks
    whether an object is one colour)."""
    classes = np.asarray(classes, np.int64).reshape(-1)
    _check("color_class_accuracy", len(classes), colors=colors, objects=objects)
    if len(classes) < 2 or classes.min() < 0:
        raise ValueError("color_class_accuracy needs >= 2 vertices with class ids >= 0")
    rng = np.random.default_rng(seed)
    if objects is None:
        order = rng.permutation(len(classes))
        fit, test = order[: len(order) // 2], order[len(order) // 2:]
    else:
        ids, which = np.unique(np.asarray(objects).reshape(-1), return_inverse=True)
        if len(ids) < 2:
            raise ValueError("color_class_accuracy: a split by object needs >= 2 objects")
        in_fit = np.zeros(len(ids), bool)
        in_fit[rng.permutation(len(ids))[: len(ids) // 2]] = True
        fit, test = np.flatnonzero(in_fit[which.reshape(-1)]), np.flatnonzero(~in_fit[which.reshape(-1)])
    feats = color_features(colors, space)
    k = min(k, len(fit))
    _, nearest = cKDTree(feats[fit]).query(feats[test], k=k)
    votes = classes[fit][np.asarray(nearest).reshape(len(test), k)]
    ids, compact = np.unique(classes, return_inverse=True)
    compact = compact.reshape(-1)
    counts = np.zeros((len(test), len(ids)), np.int64)
    np.add.at(counts, (np.repeat(np.arange(len(test)), k), np.searchsorted(ids, votes.reshape(-1))), 1)
    predicted = ids[counts.argmax(axis=1)]
    majority_class = ids[np.bincount(compact[fit], minlength=len(ids)).argmax()]
    truth = classes[test]
    return ColorAccuracy(float((predicted == truth).mean()), float((truth == majority_class).mean()),
                         len(fit), len(test), len(ids))


def mesh_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E, 2) undirected edges (smaller index first) of a triangle mesh and how many faces hold each."""
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    pairs = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    pairs.sort(axis=1)
    return np.unique(pairs, axis=0, return_counts=True)


@dataclass(frozen=True)
class EdgeContrast:
    within: float  # mean RGB distance over edges inside one object
    across: float  # over edges between two objects
    num_within: int
    num_across: int

    @property
    def ratio(self) -> float:
        return self.across / self.within if self.within > 0 else float("nan")


def neighbour_pairs(coords: np.ndarray, k: int = PAIR_NEIGHBOURS, radius: float = PAIR_RADIUS) -> np.ndarray:
    """(E, 2) pairs (smaller index first, each once) of every vertex with its ``k`` nearest others
    within ``radius``: the spatial edges of a scan, whether or not its mesh joins the two."""
    p = np.asarray(coords, np.float64).reshape(-1, 3)
    k = min(k, len(p) - 1)
    if k < 1:
        return np.zeros((0, 2), np.int64)
    dist, idx = cKDTree(p).query(p, k=k + 1, distance_upper_bound=radius)
    a = np.repeat(np.arange(len(p)), k)
    b, ok = idx[:, 1:].reshape(-1), np.isfinite(dist[:, 1:].reshape(-1))
    pairs = np.sort(np.stack([a[ok], b[ok]], axis=1), axis=1)
    return np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)


def edge_contrast(colors: np.ndarray, pairs: np.ndarray, ids: np.ndarray) -> EdgeContrast:
    """Colour contrast across object borders vs within objects, over vertex ``pairs`` (mesh edges or
    neighbour_pairs); ``ids`` < 0: in no object (pairs touching such a vertex are left out)."""
    ids = np.asarray(ids).reshape(-1)
    _check("edge_contrast", len(ids), colors=colors)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    a, b = pairs[:, 0], pairs[:, 1]
    keep = (ids[a] >= 0) & (ids[b] >= 0)
    a, b = a[keep], b[keep]
    rgb = np.asarray(colors, np.float64).reshape(-1, 3) / 255.0
    dist = np.linalg.norm(rgb[a] - rgb[b], axis=1)
    same = ids[a] == ids[b]
    mean = lambda d: float(d.mean()) if len(d) else float("nan")  # noqa: E731
    return EdgeContrast(mean(dist[same]), mean(dist[~same]), int(same.sum()), int((~same).sum()))


def joined_objects(faces: np.ndarray, ids: np.ndarray) -> float:
    """Share of the mesh edges between two vertices of objects (``ids`` >= 0) that join two objects:
    0 when every object is a mesh of its own (a mesh segmentator then cannot merge objects)."""
    edges, _ = mesh_edges(faces)
    ids = np.asarray(ids).reshape(-1)
    a, b = ids[edges[:, 0]], ids[edges[:, 1]]
    both = (a >= 0) & (b >= 0)
    return float((a[both] != b[both]).mean()) if both.any() else float("nan")


def face_areas(coords: np.ndarray, faces: np.ndarray) -> np.ndarray:
    p = np.asarray(coords, np.float64)[np.asarray(faces, np.int64).reshape(-1, 3)]
    return 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)


def vertex_density(coords: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N,) vertices per m^2 around each vertex (module doc); NaN for a vertex in no face of area > 0."""
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    area = np.bincount(f.reshape(-1), weights=np.repeat(face_areas(coords, f), 3), minlength=len(coords))
    with np.errstate(divide="ignore"):
        return np.where(area > 0, 3.0 / area, np.nan)


@dataclass(frozen=True)
class Spread:
    median: float
    p10: float
    p90: float

    @property
    def ratio(self) -> float:
        """p90 / p10: how uneven (1: the same everywhere)."""
        return self.p90 / self.p10 if self.p10 > 0 else float("nan")


def spread(values: np.ndarray) -> Spread:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return Spread(float("nan"), float("nan"), float("nan"))
    p10, med, p90 = np.percentile(v, [10, 50, 90])
    return Spread(float(med), float(p10), float(p90))


def plane_normal_noise(normals: np.ndarray) -> float:
    """Median angle (degrees) between the unit normals of a flat surface and their mean direction."""
    n = np.asarray(normals, np.float64).reshape(-1, 3)
    if not len(n):
        return float("nan")
    mean = n.sum(axis=0)
    norm = np.linalg.norm(mean)
    if norm == 0:
        raise ValueError("plane_normal_noise: the normals cancel out (not one flat surface)")
    cos = np.clip(n @ (mean / norm) / np.maximum(np.linalg.norm(n, axis=1), 1e-12), -1.0, 1.0)
    return float(np.degrees(np.median(np.arccos(cos))))


def boundary_per_area(coords: np.ndarray, faces: np.ndarray) -> float:
    """Metres of open mesh border (edges held by one face) per m^2 of surface."""
    edges, count = mesh_edges(faces)
    border = edges[count == 1]
    p = np.asarray(coords, np.float64)
    length = np.linalg.norm(p[border[:, 0]] - p[border[:, 1]], axis=1).sum()
    area = face_areas(coords, faces).sum()
    return float(length / area) if area > 0 else float("nan")


def empty_cell_share(coords: np.ndarray, cell: float = FLOOR_CELL) -> float:
    """Share of the floor plan's cells (inside the vertices' xy convex hull) that hold no vertex."""
    xy = np.asarray(coords, np.float64).reshape(-1, 3)[:, :2]
    lo = np.floor(xy.min(axis=0) / cell) * cell  # cells on multiples of ``cell``
    key = np.floor((xy - lo) / cell).astype(np.int64)
    shape = key.max(axis=0) + 1
    occupied = np.zeros(shape, bool)
    occupied[key[:, 0], key[:, 1]] = True
    gx, gy = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    centres = lo + (np.stack([gx.ravel(), gy.ravel()], axis=1) + 0.5) * cell
    inside = Delaunay(xy[ConvexHull(xy).vertices]).find_simplex(centres) >= 0
    return float((~occupied.ravel()[inside]).mean()) if inside.any() else float("nan")


@dataclass(frozen=True)
class ObjectStats:
    count: int
    vertices: Spread  # per object
    extent: Spread  # m, the longest side of each object's axis-aligned box
    classes: dict[int, int]  # class id -> objects


def _per_object(coords: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(object ids, vertex counts, box minima (K, 3), box maxima (K, 3)) of the ids >= 0."""
    ids = np.asarray(ids).reshape(-1)
    keep = ids >= 0
    uniq, inv, counts = np.unique(ids[keep], return_inverse=True, return_counts=True)
    p = np.asarray(coords, np.float64)[keep]
    lo = np.full((len(uniq), 3), np.inf)
    hi = np.full((len(uniq), 3), -np.inf)
    np.minimum.at(lo, inv.reshape(-1), p)
    np.maximum.at(hi, inv.reshape(-1), p)
    return uniq, counts, lo, hi


def object_stats(coords: np.ndarray, ids: np.ndarray, classes: np.ndarray) -> ObjectStats:
    """Objects (``ids`` >= 0) with the class of each vertex (an object's class: its first vertex's)."""
    ids, classes = np.asarray(ids).reshape(-1), np.asarray(classes).reshape(-1)
    _check("object_stats", len(ids), coords=coords, classes=classes)
    uniq, counts, lo, hi = _per_object(coords, ids)
    keep = np.flatnonzero(ids >= 0)
    first = keep[np.unique(ids[keep], return_index=True)[1]]
    cls, per_class = np.unique(classes[first], return_counts=True)
    return ObjectStats(len(uniq), spread(counts), spread((hi - lo).max(axis=1) if len(uniq) else []),
                       {int(c): int(n) for c, n in zip(cls, per_class)})


@dataclass(frozen=True)
class SmallObjects:
    on_floor: int
    raised: int  # on tables, shelves, counters


def small_objects(coords: np.ndarray, ids: np.ndarray, floor_z: float, extent: float = SMALL_EXTENT,
                  on_floor: float = ON_FLOOR) -> SmallObjects:
    """Objects (``ids`` >= 0) under ``extent`` in every direction, by where their bottom is."""
    _check("small_objects", len(np.asarray(ids).reshape(-1)), coords=coords)
    _, _, lo, hi = _per_object(coords, ids)
    small = (hi - lo).max(axis=1) < extent
    low = lo[:, 2] - floor_z < on_floor
    return SmallObjects(int((small & low).sum()), int((small & ~low).sum()))


def label_shares(labels: np.ndarray, groups: dict[str, np.ndarray | list[int]]) -> dict[str, float]:
    """Share of all vertices whose label is in each group of label ids."""
    labels = np.asarray(labels).reshape(-1)
    return {name: float(np.isin(labels, ids).mean()) if len(labels) else float("nan")
            for name, ids in groups.items()}
