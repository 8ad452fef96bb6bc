"""Normals of meshes (area-weighted, from the faces) and of point clouds (local planes).

The one implementation that the ScanNet reader, the superpoint segmentator and
prediction on arbitrary scans all use.
"""

from __future__ import annotations

import numpy as np
import open3d as o3d

CLOUD_RADIUS = 0.1   # metres: the neighbourhood of a point-cloud normal (ScanNet scale)
CLOUD_MAX_NN = 30


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
