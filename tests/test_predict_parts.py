"""The parts of tools/predict.py without a model: readers, frames, blocks and their merge, the picture."""

import numpy as np
import open3d as o3d
import pytest
import trimesh
from plyfile import PlyData, PlyElement

from scene_pe.inference.vertices import VertexPrediction
from scene_pe.predict.blocks import merge_blocks, plan_blocks
from scene_pe.predict.frame import (apply, floor_alignment, homogeneous, model_frame, rotation_between,
                                    rotation_z, up_rotation, wall_angle)
from scene_pe.predict.render import render_png
from scene_pe.predict.scan import expand_inputs, output_names, read_scan
from scene_pe.util.errors import SceneError
from scene_pe.viz import instance_colors

RNG = np.random.default_rng(0)
XYZ = RNG.random((60, 3)) * 3
RGB = RNG.integers(0, 256, (60, 3)).astype(np.uint8)
FACES = RNG.integers(0, 60, (50, 3)).astype(np.int32)


# ------------------------------------------------------------------ readers
@pytest.mark.parametrize("ext", ["obj", "glb", "ply"])
def test_meshes_keep_vertex_order_colours_and_faces(tmp_path, ext):
    trimesh.Trimesh(XYZ, FACES, vertex_colors=RGB, process=False).export(tmp_path / f"m.{ext}")
    scan = read_scan(tmp_path / f"m.{ext}")
    np.testing.assert_allclose(scan.coords, XYZ, atol=1e-5)
    np.testing.assert_array_equal(scan.colors, RGB)
    np.testing.assert_array_equal(scan.faces, FACES)


@pytest.mark.parametrize("ext", ["off", "stl"])
def test_colourless_mesh_formats_are_read(tmp_path, ext):
    trimesh.Trimesh(XYZ, FACES, process=False).export(tmp_path / f"m.{ext}")
    scan = read_scan(tmp_path / f"m.{ext}")
    assert scan.is_mesh and len(scan.faces) == len(FACES)
    # STL stores every triangle's corners apart: 3 vertices per face, at the mesh's positions
    want = XYZ if ext == "off" else XYZ[FACES.ravel()]
    np.testing.assert_allclose(scan.coords, want, atol=1e-5)


def test_ascii_ply_point_cloud_with_float_colours_and_normals(tmp_path):
    normals = RNG.normal(size=(60, 3)).astype(np.float32)
    v = np.empty(60, dtype=[(c, "f4") for c in ("x", "y", "z", "r", "g", "b", "nx", "ny", "nz")])
    for k, c in enumerate("xyz"):
        v[c], v[f"n{c}"] = XYZ[:, k], normals[:, k]
    for k, c in enumerate("rgb"):
        v[c] = RGB[:, k] / 255.0
    PlyData([PlyElement.describe(v, "vertex")], text=True).write(str(tmp_path / "c.ply"))
    scan = read_scan(tmp_path / "c.ply")
    assert not scan.is_mesh
    np.testing.assert_allclose(scan.coords, XYZ, atol=1e-5)
    np.testing.assert_array_equal(scan.colors, RGB)
    np.testing.assert_allclose(scan.normals, normals, atol=1e-6)


@pytest.mark.parametrize("ext", ["pcd", "xyzrgb", "pts"])
def test_open3d_point_clouds(tmp_path, ext):
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(XYZ))
    pcd.colors = o3d.utility.Vector3dVector(RGB / 255.0)
    assert o3d.io.write_point_cloud(str(tmp_path / f"c.{ext}"), pcd)
    scan = read_scan(tmp_path / f"c.{ext}")
    np.testing.assert_allclose(scan.coords, XYZ, atol=1e-4)
    assert np.abs(scan.colors.astype(int) - RGB).max() <= 1


def test_tables_csv_txt_npy_npz(tmp_path):
    np.savetxt(tmp_path / "a.csv", np.c_[XYZ, RGB / 255.0], delimiter=",", header="x,y,z,r,g,b")
    np.savetxt(tmp_path / "b.txt", np.c_[XYZ, RGB])
    np.save(tmp_path / "c.npy", XYZ)
    np.savez(tmp_path / "d.npz", vertices=XYZ, colors=RGB, faces=FACES)
    for name in ("a.csv", "b.txt", "d.npz"):
        scan = read_scan(tmp_path / name)
        np.testing.assert_allclose(scan.coords, XYZ, atol=1e-6)
        np.testing.assert_array_equal(scan.colors, RGB)
    assert read_scan(tmp_path / "c.npy").colors is None
    np.testing.assert_array_equal(read_scan(tmp_path / "d.npz").faces, FACES)


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\n1\n", "cannot read"),
    (np.zeros((0, 3)), "empty"),
    (np.array([[0.0, 0.0, np.inf], [1, 1, 1]]), "NaN/inf"),
    (np.zeros((4, 4)), "3, 6 or 9 columns"),
])
def test_bad_files_raise_scene_errors_naming_them(tmp_path, content, message):
    path = tmp_path / ("bad.npy" if isinstance(content, np.ndarray) else "bad.ply")
    if isinstance(content, np.ndarray):
        np.save(path, content)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(SceneError, match=message) as e:
        read_scan(path)
    assert str(path) in str(e.value)


def test_folders_globs_and_unique_names(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        np.save(tmp_path / sub / "room.npy", XYZ)
    (tmp_path / "a" / "room.ply").write_bytes(b"")
    (tmp_path / "a" / "notes.md").write_text("not a scan")
    paths = expand_inputs([str(tmp_path / "a"), str(tmp_path / "b" / "*.npy")])
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["a/room.npy", "a/room.ply", "b/room.npy"]
    assert output_names(paths) == ["room_npy", "room_ply", "room_npy_2"]


# ------------------------------------------------------------------ frames
@pytest.mark.parametrize("up", ["z", "-z", "y", "-y", "x", "-x"])
def test_up_rotations_are_proper_and_take_up_to_z(up):
    r = up_rotation(up)
    axis = np.zeros(3)
    axis["xyz".index(up[-1])] = -1.0 if up.startswith("-") else 1.0
    np.testing.assert_allclose(r @ axis, [0, 0, 1])
    np.testing.assert_allclose(r @ r.T, np.eye(3))
    assert np.isclose(np.linalg.det(r), 1.0)


def test_rotation_between_handles_opposite_vectors():
    for a in ([0, 0, -1.0], [0.3, -0.2, 0.9], [1.0, 0, 0]):
        a = np.asarray(a) / np.linalg.norm(a)
        r = rotation_between(a, np.array([0, 0, 1.0]))
        np.testing.assert_allclose(r @ a, [0, 0, 1], atol=1e-12)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


def box_room(rng, size=(5.0, 4.0, 2.5), n=40000):
    """Points on the floor and four walls of an axis-aligned box room (no ceiling), plus a table."""
    sx, sy, sz = size
    faces = rng.integers(0, 5, n)
    u, v = rng.random(n), rng.random(n)
    pts = np.select([faces[:, None] == k for k in range(5)], [
        np.stack([u * sx, v * sy, 0 * u], 1), np.stack([0 * u, v * sy, u * sz], 1),
        np.stack([0 * u + sx, v * sy, u * sz], 1), np.stack([u * sx, 0 * u, v * sz], 1),
        np.stack([u * sx, 0 * u + sy, v * sz], 1)])
    table = np.stack([1 + rng.random(3000), 1 + rng.random(3000), np.full(3000, 0.75)], 1)
    return np.concatenate([pts, table]) + rng.normal(0, 0.002, (n + 3000, 3))


def test_floor_alignment_undoes_a_tilt_a_turn_and_a_shift():
    room = box_room(np.random.default_rng(1))
    tilt = rotation_between(np.array([0.0, 0.0, 1.0]), np.array([0.03, -0.02, 1.0]))
    m = homogeneous(rotation_z(np.radians(-28.0)) @ tilt, (2.0, 7.0, -1.3))
    info = model_frame(apply(m, room), align="floor")
    total = info.model_from_input @ m
    np.testing.assert_allclose(total[2, :3], [0, 0, 1], atol=2e-4)     # up is up again
    assert abs(total[2, 3]) < 0.005                                        # the floor at z = 0
    yaw = np.degrees(np.arctan2(total[1, 0], total[0, 0]))
    assert min(abs(yaw - k) for k in (-180, -90, 0, 90, 180)) < 0.05      # walls on the axes


def test_wall_angle_reads_directions_modulo_90_degrees():
    theta = np.radians(np.r_[np.full(50, 20.0), np.full(50, 110.0), np.full(30, -70.0)])
    normals = np.stack([np.cos(theta), np.sin(theta), np.zeros_like(theta)], 1)
    assert np.isclose(np.degrees(wall_angle(normals)), 20.0, atol=0.01)


def test_floor_alignment_without_a_floor_says_so():
    wall = np.stack([np.zeros(5000), *np.random.default_rng(0).random((2, 5000))], 1)
    with pytest.raises(ValueError, match="no floor"):
        floor_alignment(wall)


# ------------------------------------------------------------------ blocks
def test_block_cores_partition_the_vertices_and_blocks_fit_the_budget():
    xyz = np.random.default_rng(0).random((20000, 3)) * [12.0, 6.0, 2.5]
    blocks = plan_blocks(xyz, 0.05, max_voxels=40000, overlap=1.0)
    core_count = np.zeros(len(xyz), int)
    for b in blocks:
        np.add.at(core_count, b.members[b.core], 1)
        g = np.floor(xyz[b.members] / 0.05).astype(np.int64)
        assert len(np.unique(g, axis=0)) <= 40000
    assert (core_count == 1).all()
    assert len(plan_blocks(xyz, 0.05, max_voxels=10**9, overlap=1.0)) == 1


def fake_block_prediction(instance: np.ndarray, labels, confidence) -> VertexPrediction:
    n = len(instance)
    return VertexPrediction("s", instance, np.asarray(labels), np.asarray(confidence, float),
                            np.full(n, 5), np.zeros(n))


def test_merge_links_an_object_across_a_border_and_keeps_neighbours_apart():
    """Two blocks of a row of 10 vertices sharing vertices 4..6; object A = 2..6 crosses the border."""
    from scene_pe.predict.blocks import Block

    left = Block(np.arange(0, 7), np.arange(0, 7) < 5)
    right = Block(np.arange(4, 10), np.arange(4, 10) >= 5)
    # left sees A (2..6) and B (0..1); right sees A (4..6) and C (7..9)
    p_left = fake_block_prediction(np.array([1, 1, 0, 0, 0, 0, 0]), [5, 7], [0.9, 0.5])
    p_right = fake_block_prediction(np.array([0, 0, 0, 1, 1, 1]), [5, 3], [0.7, 0.8])
    merged = merge_blocks([left, right], [p_left, p_right], 10, "s")
    inst = merged.instance
    assert len(set(inst[2:7])) == 1                       # A is one instance across the border
    assert len({inst[0], inst[2], inst[7]}) == 3           # B, A and C stay three
    a = inst[2]
    assert merged.labels[a] == 5
    # A's confidence: core-vertex-weighted mean of its parts (3 core vertices left at 0.9, 2 right at 0.7)
    assert np.isclose(merged.confidence[a], (3 * 0.9 + 2 * 0.7) / 5)
    assert len(merged.labels) == 3


def test_merge_does_not_link_low_overlap():
    from scene_pe.predict.blocks import Block

    left = Block(np.arange(0, 6), np.arange(0, 6) < 3)
    right = Block(np.arange(0, 6), np.arange(0, 6) >= 3)
    p_left = fake_block_prediction(np.array([0, 0, 0, 0, 0, 0]), [5], [0.9])
    p_right = fake_block_prediction(np.array([-1, -1, -1, -1, 0, 0]), [5], [0.9])
    merged = merge_blocks([left, right], [p_left, p_right], 6, "s", link_iou=0.5)  # IoU 2/6
    assert len(set(merged.instance[:3])) == 1 and merged.instance[0] != merged.instance[4]


# ------------------------------------------------------------------ picture
def test_png_is_not_blank_and_shows_the_instance_colours(tmp_path):
    import matplotlib.image

    room = box_room(np.random.default_rng(2), n=30000)
    instance = np.full(len(room), -1)
    boxes = [((0.5, 0.5), (1.5, 1.5)), ((3.0, 2.0), (4.5, 3.5)), ((0.5, 2.5), (1.5, 3.5))]
    for k, (lo, hi) in enumerate(boxes):
        inside = np.all((room[:, :2] > lo) & (room[:, :2] < hi), axis=1) & (room[:, 2] < 0.1)
        instance[inside] = k
    normals = np.tile([0.0, 0.0, 1.0], (len(room), 1))
    semantic = np.where(instance >= 0, 5, 2)
    used = render_png(tmp_path / "p.png", room, normals, instance, np.array([5, 5, 5]), semantic, "test",
                      renderer="matplotlib")
    assert used == "matplotlib"
    img = (matplotlib.image.imread(tmp_path / "p.png")[..., :3] * 255).round().astype(np.uint8)
    assert (img != 255).any(axis=2).mean() > 0.1           # not blank
    pixels = img.reshape(-1, 3)
    for colour in instance_colors(np.arange(3)):
        assert (pixels == colour).all(axis=1).sum() >= 100, colour
