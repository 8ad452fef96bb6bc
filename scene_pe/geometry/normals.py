"""Normals of meshes and point clouds: the one home of every normal the package computes.

* ``vertex_normals``: area-weighted mesh normals, the input feature (ScanNet reader, predict);
* ``running_mean_normals``: ScanNet's Segmentator's own mesh normals, which its
  over-segmentation needs bit for bit (superpoints/segmentator.py);
* ``estimate_normals``: point-cloud normals from local planes (predict's input feature);
* ``segmentation_normals``: point-cloud normals for the over-segmentation, from the nearest points
  and shortened where the surface bends (superpoints/segmentator.py).
"""

from __future__ import annotations

import numba
import numpy as np
import open3d as o3d

CLOUD_RADIUS = 0.1   # metres: the neighbourhood of a point-cloud normal (ScanNet scale)
CLOUD_MAX_NN = 30
SEGMENT_KNN = 10     # points per plane and per crease measure of the segmentation normals


def vertex_normals(coords: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (open3d); vertices without faces get +z."""
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(coords.astype(np.float64)),
                                     o3d.utility.Vector3iVector(faces.astype(np.int32)))
    mesh.compute_vertex_normals()
    n = np.asarray(mesh.vertex_normals, dtype=np.float32)
    norm = np.linalg.norm(n, axis=1)
    bad = ~(np.isfinite(norm) & (norm > 0.5))  # isolated vertices / degenerate faces only
    n[bad] = (0.0, 0.0, 1.0)
    return n


def estimate_normals(xyz: np.ndarray, radius: float = CLOUD_RADIUS, max_nn: int = CLOUD_MAX_NN,
                     orient: bool = True) -> np.ndarray:
    """Unit normals of a point cloud (metres) from its local planes (open3d's hybrid search);
    oriented towards the bounding-box centre when ``orient`` (else open3d's arbitrary signs)."""
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz.astype(np.float64)))
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=radius, max_nn=max_nn))
    if orient:
        centre = (xyz.min(axis=0) + xyz.max(axis=0)) / 2.0
        pcd.orient_normals_towards_camera_location(centre.astype(np.float64))
    n = np.asarray(pcd.normals, dtype=np.float32)
    bad = ~np.isfinite(n).all(axis=1) | (np.linalg.norm(n, axis=1) < 0.5)  # isolated points
    n[bad] = (0.0, 0.0, 1.0)
    return n


def crease_shortened(xyz: np.ndarray, normals: np.ndarray, k: int = SEGMENT_KNN) -> np.ndarray:
    """``normals`` scaled by the length of the mean of the unit normals of each point's ``k`` nearest
    points (itself included), each turned to agree in sign with the point's own.

    1 on a plane, shorter where the neighbourhood bends (about 0.7 on a right-angled crease).
    ScanNet's mesh normals carry the same signal unasked (a running mean of face normals, not
    renormalised): 1 - n_a . n_b then weighs a crease even where the directions are smoothed.
    Sign alignment keeps a neighbour whose normal an orientation step flipped from cancelling
    a flat neighbourhood."""
    from scipy.spatial import cKDTree

    n = np.asarray(normals, np.float32)
    k = min(k, len(n))
    if k < 2:
        return n.copy()
    _, idx = cKDTree(np.asarray(xyz, np.float64)).query(xyz, k=k)
    nb = n[idx]                                                     # (N, k, 3)
    sign = np.where(np.einsum("nkc,nc->nk", nb, n) < 0, -1.0, 1.0).astype(np.float32)
    mean = np.einsum("nkc,nk->nc", nb, sign) / np.float32(k)
    return (n * np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)


def segmentation_normals(xyz: np.ndarray, k: int = SEGMENT_KNN) -> np.ndarray:
    """Normals for the point-cloud over-segmentation: planes of the ``k`` nearest points (not
    ``estimate_normals``' 10 cm ball: at ScanNet's 2-3 cm vertex spacing that smooths a crease
    over ~10 points on each side), oriented towards the centre, then ``crease_shortened``."""
    if len(xyz) == 0:
        return np.zeros((0, 3), np.float32)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(xyz, np.float64)))
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(k))
    centre = (np.min(xyz, axis=0) + np.max(xyz, axis=0)) / 2.0
    pcd.orient_normals_towards_camera_location(np.asarray(centre, np.float64))
    n = np.asarray(pcd.normals, dtype=np.float32)
    bad = ~np.isfinite(n).all(axis=1) | (np.linalg.norm(n, axis=1) < 0.5)
    n[bad] = (0.0, 0.0, 1.0)
    return crease_shortened(xyz, n, k)


@numba.njit(cache=True)
def _running_mean_normals(xyz: np.ndarray, faces: np.ndarray) -> np.ndarray:
    n = xyz.shape[0]
    normals = np.zeros((n, 3), dtype=np.float32)
    counts = np.zeros(n, dtype=np.float32)
    one = np.float32(1.0)
    for f in range(faces.shape[0]):
        i1, i2, i3 = faces[f, 0], faces[f, 1], faces[f, 2]
        ux, uy, uz = xyz[i2, 0] - xyz[i1, 0], xyz[i2, 1] - xyz[i1, 1], xyz[i2, 2] - xyz[i1, 2]
        vx, vy, vz = xyz[i3, 0] - xyz[i1, 0], xyz[i3, 1] - xyz[i1, 1], xyz[i3, 2] - xyz[i1, 2]
        cx, cy, cz = uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx
        norm = np.float32(np.sqrt(cx * cx + cy * cy + cz * cz))
        if not norm > 0:  # zero-area face: no direction to contribute
            continue
        cx, cy, cz = cx / norm, cy / norm, cz / norm
        for v in (i1, i2, i3):
            t = one / (counts[v] + one)
            s = one - t
            normals[v, 0] = t * cx + s * normals[v, 0]
            normals[v, 1] = t * cy + s * normals[v, 1]
            normals[v, 2] = t * cz + s * normals[v, 2]
            counts[v] += one
    return normals


def running_mean_normals(xyz: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N, 3) float32 vertex normals as ScanNet's Segmentator computes them: the running mean of the
    unit face normals, faces in file order, not renormalised; zero-area faces skipped."""
    return _running_mean_normals(np.ascontiguousarray(xyz, dtype=np.float32),
                                 np.ascontiguousarray(faces, dtype=np.int64))
