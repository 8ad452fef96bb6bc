"""Tests for scene_pe.viz: colours and PLYs that open3d / plyfile read back exactly."""

from __future__ import annotations

import io

import numpy as np
import open3d as o3d
import pytest
from plyfile import PlyData, PlyElement
from scipy.spatial.distance import pdist

from scene_pe.data.scannet_files import NYU40_PALETTE
from scene_pe.viz import (NONE_COLOR, VIRIDIS_ANCHORS, colormap, hsv_to_rgb, instance_colors,
                          semantic_colors, write_colored_ply, write_instance_ply, write_semantic_ply,
                          write_uncertainty_ply)


def grid_mesh(nx: int = 7, ny: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """A planar nx x ny grid: (N, 3) float32 vertices, (F, 3) int triangles."""
    ix, iy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    coords = np.c_[ix.ravel() * 0.1, iy.ravel() * 0.1, np.sin(ix.ravel())].astype(np.float32)
    v = (ix[:-1, :-1] * ny + iy[:-1, :-1]).ravel()
    faces = np.concatenate([np.c_[v, v + ny, v + 1], np.c_[v + 1, v + ny, v + ny + 1]])
    return coords, faces


def o3d_colors(colors: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(colors) * 255.0).astype(np.uint8)


def relative_luminance(rgb_u8: np.ndarray) -> np.ndarray:
    c = rgb_u8.astype(np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return lin @ np.array([0.2126, 0.7152, 0.0722])


# ------------------------------------------------------------------ colours
def test_hsv_to_rgb_primaries_and_grey():
    h = np.array([0.0, 1 / 3, 2 / 3, 1 / 6, 0.5, 0.25])
    expected = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [0.5, 1, 0]]
    np.testing.assert_allclose(hsv_to_rgb(h, 1.0, 1.0), expected, atol=1e-12)
    np.testing.assert_allclose(hsv_to_rgb(0.3, 0.0, 0.4), [0.4, 0.4, 0.4])  # no saturation: grey


def test_instance_colors_deterministic_distinct_and_grey_for_none():
    ids = np.arange(100)
    colors = instance_colors(ids)
    assert colors.dtype == np.uint8 and colors.shape == (100, 3)
    assert len(np.unique(colors, axis=0)) == 100  # all distinct
    dist = pdist(colors.astype(float))
    assert dist.min() > 15  # distinct, not just by one level
    assert pdist(colors[:10].astype(float)).min() > 60  # a typical scene's count: well separated
    # colour depends on the id only, not on the order or the other ids present
    shuffled = np.random.default_rng(0).permutation(np.repeat(ids, 3))
    np.testing.assert_array_equal(instance_colors(shuffled), colors[shuffled])
    out = instance_colors(np.array([-1, 4, -1, 4, -7]))
    np.testing.assert_array_equal(out[[0, 2, 4]], np.repeat(NONE_COLOR[None], 3, axis=0))
    np.testing.assert_array_equal(out[1], out[3])
    assert np.linalg.norm(colors.astype(float) - NONE_COLOR, axis=1).min() > 50  # never grey-like


def test_instance_colors_reject_floats():
    with pytest.raises(ValueError, match="integers"):
        instance_colors(np.array([0.0, 1.0]))


def test_semantic_colors_are_scannet_palette():
    ids = np.array([0, 1, 2, 5, 39, 40])
    np.testing.assert_array_equal(semantic_colors(ids), NYU40_PALETTE[ids])
    # spot values of ScanNet's palette: wall, floor, chair, otherfurniture
    np.testing.assert_array_equal(semantic_colors(np.array([1, 2, 5, 39])),
                                  [[174, 199, 232], [152, 223, 138], [188, 189, 34], [82, 84, 163]])
    with pytest.raises(ValueError, match="0..40"):
        semantic_colors(np.array([3, 41]))


def test_colormap_ends_monotone_and_clipped():
    t = np.linspace(0.0, 1.0, 100)
    colors = colormap(t, vmin=0.0, vmax=1.0)
    np.testing.assert_array_equal(colors[0], VIRIDIS_ANCHORS[0])
    np.testing.assert_array_equal(colors[-1], VIRIDIS_ANCHORS[-1])
    assert (np.diff(relative_luminance(colors)) > 0).all()  # lightness increases along the map
    # scaling: values v in [2, 4] give the colours of (v - 2) / 2
    np.testing.assert_array_equal(colormap(2.0 + 2.0 * t, vmin=2.0, vmax=4.0), colors)
    # clipping outside [vmin, vmax]
    out = colormap(np.array([-5.0, 0.0, 1.0, 9.0]), vmin=0.0, vmax=1.0)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[2], out[3])
    with pytest.raises(ValueError, match="vmax"):
        colormap(t, vmin=1.0, vmax=0.0)


def test_colormap_default_range_is_robust_percentiles():
    values = np.r_[np.linspace(0.0, 1.0, 1000), 1e6, -1e6]  # two outliers
    lo, hi = np.percentile(values, [2, 98])
    np.testing.assert_array_equal(colormap(values), colormap(values, vmin=lo, vmax=hi))
    out = colormap(values)
    np.testing.assert_array_equal(out[-2], VIRIDIS_ANCHORS[-1])  # outliers clipped to the ends
    np.testing.assert_array_equal(out[-1], VIRIDIS_ANCHORS[0])
    # constant input: one colour; NaN: grey
    np.testing.assert_array_equal(colormap(np.full(4, 3.0)), np.repeat(VIRIDIS_ANCHORS[:1], 4, axis=0))
    np.testing.assert_array_equal(colormap(np.array([np.nan, 0.0, 1.0]))[0], NONE_COLOR)


# ------------------------------------------------------------------ PLY files
def test_instance_ply_round_trip_open3d_mesh(tmp_path):
    coords, faces = grid_mesh()
    instance = np.arange(len(coords)) % 5 - 1  # -1..3
    path = tmp_path / "inst.ply"
    write_instance_ply(path, coords, faces, instance)
    mesh = o3d.io.read_triangle_mesh(str(path))
    assert len(mesh.vertices) == len(coords) and len(mesh.triangles) == len(faces)
    np.testing.assert_allclose(np.asarray(mesh.vertices), coords, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(mesh.triangles), faces)
    got = o3d_colors(mesh.vertex_colors)
    np.testing.assert_array_equal(got, instance_colors(instance))
    np.testing.assert_array_equal(got[instance == -1], np.repeat(NONE_COLOR[None], (instance == -1).sum(), 0))
    assert [p.name for p in (tmp_path.iterdir())] == ["inst.ply"]  # no temporary left behind


def test_uncertainty_and_semantic_point_clouds_open3d(tmp_path):
    coords, _ = grid_mesh()
    values = np.linspace(-1.0, 3.0, len(coords))
    write_uncertainty_ply(tmp_path / "u.ply", coords, None, values, vmin=0.0, vmax=2.0)
    pcd = o3d.io.read_point_cloud(str(tmp_path / "u.ply"))
    assert len(pcd.points) == len(coords)
    np.testing.assert_array_equal(o3d_colors(pcd.colors), colormap(values, 0.0, 2.0))
    nyu40 = np.arange(len(coords)) % 41
    write_semantic_ply(tmp_path / "s.ply", coords, None, nyu40)
    pcd = o3d.io.read_point_cloud(str(tmp_path / "s.ply"))
    np.testing.assert_array_equal(o3d_colors(pcd.colors), NYU40_PALETTE[nyu40])


def test_ply_bytes_equal_plyfile_and_format(tmp_path):
    coords, faces = grid_mesh(4, 3)
    colors = instance_colors(np.arange(len(coords)))
    path = tmp_path / "m.ply"
    write_colored_ply(path, coords, colors, faces)
    vertex = np.empty(len(coords), [("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                    ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for k, name in enumerate(("x", "y", "z")):
        vertex[name] = coords[:, k]
    for k, name in enumerate(("red", "green", "blue")):
        vertex[name] = colors[:, k]
    face = np.empty(len(faces), [("vertex_indices", "i4", (3,))])
    face["vertex_indices"] = faces
    ref = io.BytesIO()
    PlyData([PlyElement.describe(vertex, "vertex"),
             PlyElement.describe(face, "face", len_types={"vertex_indices": "u1"},
                                 val_types={"vertex_indices": "i4"})],
            text=False, byte_order="<").write(ref)
    assert path.read_bytes() == ref.getvalue()
    ply = PlyData.read(str(path))
    assert ply.header.startswith("ply\nformat binary_little_endian 1.0")
    assert "property list uchar int vertex_indices" in ply.header


def test_writers_reject_bad_shapes(tmp_path):
    coords, faces = grid_mesh()
    path = tmp_path / "bad.ply"
    with pytest.raises(ValueError, match="instance must be"):
        write_instance_ply(path, coords, faces, np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="face indices"):
        write_instance_ply(path, coords, faces + len(coords), np.zeros(len(coords), dtype=int))
    with pytest.raises(ValueError, match=r"coords must be \(N, 3\)"):
        write_uncertainty_ply(path, coords[:, :2], None, np.zeros(len(coords)))
    assert not path.exists() and not list(tmp_path.iterdir())


def test_write_prediction_plys(tmp_path):
    from scene_pe.inference.vertices import VertexPrediction
    from scene_pe.viz import write_prediction_plys
    coords, faces = grid_mesh()
    n = len(coords)
    pred = VertexPrediction("scene0000_00", np.arange(n) % 3 - 1, np.array([5, 7]), np.array([0.9, 0.5]),
                            np.full(n, 5), np.linspace(0.0, 1.0, n))
    paths = write_prediction_plys(tmp_path, coords, faces, pred)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "scene0000_00_instances.ply", "scene0000_00_semantic.ply", "scene0000_00_uncertainty.ply"]
    mesh = o3d.io.read_triangle_mesh(str(paths["semantic"]))
    np.testing.assert_array_equal(o3d_colors(mesh.vertex_colors), np.repeat(NYU40_PALETTE[5][None], n, 0))
    mesh = o3d.io.read_triangle_mesh(str(paths["uncertainty"]))
    np.testing.assert_array_equal(o3d_colors(mesh.vertex_colors), colormap(pred.uncertainty))
