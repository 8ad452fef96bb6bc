"""Normals of the inputs (data/scannet.py): a mesh's area-weighted vertex normals follow the faces'
winding; a point cloud's estimated normals are oriented towards its bounding-box centre. Checked
against closed forms on planes and spheres."""

import numpy as np
import open3d as o3d

from scene_pe.geometry.normals import estimate_normals, vertex_normals

CENTRE = np.array([1.0, 2.0, 3.0])
RADIUS = 0.5


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def fibonacci_sphere(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` near-uniform points on the sphere (CENTRE, RADIUS) and their outward unit normals."""
    i = np.arange(n) + 0.5
    polar, azimuth = np.arccos(1 - 2 * i / n), np.pi * (1 + 5 ** 0.5) * i
    d = np.c_[np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)]
    return (CENTRE + RADIUS * d).astype(np.float32), d


def tilted_grid_mesh(nx: int = 5, ny: int = 4, slope: float = 0.3):
    """The plane z = slope * x as a grid of triangles wound counter-clockwise seen from above."""
    xs, ys = np.meshgrid(np.arange(float(nx)), np.arange(float(ny)))
    xyz = np.c_[xs.ravel(), ys.ravel(), slope * xs.ravel()]
    faces = []
    for j in range(ny - 1):
        for i in range(nx - 1):
            a = j * nx + i
            faces += [[a, a + 1, a + nx + 1], [a, a + nx + 1, a + nx]]
    return xyz, np.array(faces), unit([-slope, 0.0, 1.0])


def test_mesh_normals_of_a_plane_are_its_normal_signed_by_the_winding():
    xyz, faces, normal = tilted_grid_mesh()
    lonely = np.r_[xyz, [[9.0, 9.0, 9.0]]]  # a vertex of no face
    n = vertex_normals(lonely, faces)
    assert n.dtype == np.float32 and n.shape == (len(lonely), 3)
    # float32 of the exact unit normal: a few ulps
    np.testing.assert_allclose(n[:-1], np.broadcast_to(normal, (len(xyz), 3)), atol=1e-6)
    np.testing.assert_array_equal(n[-1], [0.0, 0.0, 1.0])  # no face: +z
    np.testing.assert_allclose(vertex_normals(xyz, faces[:, ::-1].copy()), -np.broadcast_to(normal, xyz.shape),
                               atol=1e-6)


def test_mesh_normals_of_a_sphere_are_radial():
    mesh = o3d.geometry.TriangleMesh.create_icosahedron(1.0).subdivide_midpoint(3)  # 642 vertices
    d = unit(np.asarray(mesh.vertices))
    faces = np.asarray(mesh.triangles)
    n = vertex_normals(CENTRE + RADIUS * d, faces)
    # a vertex's area-weighted normal on a geodesic sphere deviates from the radius by the asymmetry of
    # its 5-6 faces: below 1 degree at 642 vertices (cos 1 deg = 0.99985)
    dots = (n * d).sum(1)
    assert dots.min() > np.cos(np.radians(1.0))
    assert (vertex_normals(CENTRE + RADIUS * d, faces[:, ::-1].copy()) * d).sum(1).max() < -np.cos(np.radians(1.0))


def test_estimated_normals_of_a_sphere_point_inwards():
    xyz, outward = fibonacci_sphere(4000)
    n = estimate_normals(xyz)
    assert n.dtype == np.float32 and n.shape == xyz.shape
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-6)
    # oriented towards the bounding-box centre, which is the sphere's: -radius direction. A plane fitted
    # to the 30 nearest points (a cap of ~9 degrees) tilts by the sampling's asymmetry only: < 2 degrees
    assert (n * -outward).sum(1).min() > np.cos(np.radians(2.0))


def test_estimated_normals_of_a_floor_point_into_the_room():
    g = np.stack(np.meshgrid(np.linspace(0, 1, 41), np.linspace(0, 1, 41)), -1).reshape(-1, 2)
    floor = np.c_[g, 0.2 * g[:, 0] + 0.1 * g[:, 1]]  # the plane z = 0.2 x + 0.1 y, 2.5 cm spacing
    lamp = np.array([[0.5, 0.5, 2.0]])  # far above: the bounding-box centre is above the floor
    xyz = np.r_[floor, lamp].astype(np.float32)
    n = estimate_normals(xyz)
    # exactly coplanar points: the fitted normal is the plane's up to float32 rounding
    np.testing.assert_allclose(n[:-1], np.broadcast_to(unit([-0.2, -0.1, 1.0]), floor.shape), atol=1e-5)
    centre = (xyz.min(0) + xyz.max(0)) / 2
    assert ((centre - xyz) * n).sum(1).min() >= 0  # every normal faces the centre, the lamp's too
    np.testing.assert_allclose(np.linalg.norm(n[-1]), 1.0, atol=1e-6)
    upside_down = estimate_normals(np.r_[floor, -lamp].astype(np.float32))  # the lamp below: normals down
    np.testing.assert_allclose(upside_down[:-1], -n[:-1], atol=1e-5)
