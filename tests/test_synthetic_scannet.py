"""The ScanNet-like generator profile: room shapes, the simulated scan, class mix, splits, resume."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from scene_pe.labels.label_set import SCANNET20
from scene_pe.synthetic.catalog import RAW_TO_NYU40
from scene_pe.synthetic.layout import floor_item, room_corners
from scene_pe.synthetic.layout_scannet import INSTANCES, class_weights, count_instances, make_scannet_layout
from scene_pe.synthetic.mesh import Mesh, SurfaceArrays, build_mesh, rect
from scene_pe.synthetic.scanning import _inside_polygon, visible_from
from scene_pe.synthetic.scenes import generate_dataset, generate_scene


def _signed_area(c: np.ndarray) -> float:
    x, y = c[:, 0], c[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


@pytest.mark.parametrize("sx,sy", [(1, 1), (1, -1), (-1, 1), (-1, -1)])
def test_l_shaped_room_polygon_and_floor(sx, sy):
    w, d, a, b = 6.0, 5.0, 2.0, 1.5
    c = room_corners(w, d, (a, b, sx, sy))
    assert len(c) == 6
    assert _signed_area(c) == pytest.approx(w * d - a * b)  # counter-clockwise, notch removed
    notch_centre = np.array([[sx * (w / 2 - a / 2), sy * (d / 2 - b / 2)]])
    assert not _inside_polygon(notch_centre, c)[0]
    assert _inside_polygon(np.array([[0.0, 0.0], [-sx * 2.5, -sy * 2.0]]), c).all()
    floor = floor_item(w, d, (a, b, sx, sy))
    area = sum(np.linalg.norm(np.cross(s.frame[:, 0], s.frame[:, 1])) for s in floor.surfaces)
    assert area == pytest.approx(w * d - a * b)
    # The floor pieces lie inside the polygon: their centres are inside.
    centres = np.array([s.origin[:2] + (s.frame[:2, 0] + s.frame[:2, 1]) / 2 for s in floor.surfaces])
    assert _inside_polygon(centres, c).all()


def test_mesh_subset_keeps_faces_with_all_vertices():
    m = Mesh(np.arange(12.0).reshape(4, 3), np.zeros((4, 3)), np.array([[0, 1, 2], [1, 2, 3], [0, 2, 3]]),
             np.array([5, 6, 7, 8]))
    s = m.subset(np.array([True, False, True, True]))
    assert s.faces.tolist() == [[0, 1, 2]]  # only (0, 2, 3), renumbered
    assert s.surface.tolist() == [5, 7, 8]
    np.testing.assert_array_equal(s.vertices, m.vertices[[0, 2, 3]])


def test_visibility_shadow_of_a_plate_is_the_closed_form():
    """Camera at (0, 0, 1.5) above a 1 x 1 m plate at z = 0.5 over a floor: the plate hides the
    floor points whose ray to the camera crosses it, i.e. max(|x|, |y|) < 0.75 (similar triangles)."""
    floor = rect((-1.5, -1.5, 0.0), (3, 0, 0), (0, 3, 0))
    top = rect((-0.5, -0.5, 0.5), (1, 0, 0), (0, 1, 0))
    bottom = rect((-0.5, -0.5, 0.5), (0, 1, 0), (1, 0, 0))  # faces down
    sa = SurfaceArrays.stack([floor, top, bottom], [0, 1, 1])
    mesh = build_mesh(sa, 0.05)
    seen = visible_from(mesh, np.array([[0.0, 0.0, 1.5]]))
    on_floor = mesh.surface == 0
    r = np.abs(mesh.vertices[:, :2]).max(axis=1)
    assert not seen[on_floor & (r < 0.73)].any()
    assert seen[on_floor & (r > 0.77)].all()
    assert seen[mesh.surface == 1].all()  # the plate's top faces the camera
    assert not seen[mesh.surface == 2].any()  # its underside faces away


def test_visibility_range_limit():
    floor = rect((-6.0, -0.5, 0.0), (12, 0, 0), (0, 1, 0))
    mesh = build_mesh(SurfaceArrays.stack([floor], [0]), 0.1)
    seen = visible_from(mesh, np.array([[0.0, 0.0, 1.0]]))
    dist = np.linalg.norm(mesh.vertices - [0.0, 0.0, 1.0], axis=1)
    assert seen[dist < 3.9].all() and not seen[dist > 4.0].any()


def test_class_weights_follow_scannet_counts():
    w = class_weights()
    assert set(w) == set(SCANNET20.instance_ids)
    assert max(w, key=w.get) == RAW_TO_NYU40["chair"]
    assert all(v > 0 for v in w.values())


def test_layouts_hold_many_instances_chairs_most():
    counts, classes = [], Counter()
    for seed in range(12):
        layout = make_scannet_layout(np.random.default_rng(seed))
        counts.append(count_instances(layout.items))
        classes.update(RAW_TO_NYU40[it.category] for it in layout.items
                       if it.annotated and RAW_TO_NYU40.get(it.category) in SCANNET20.instance_ids)
    assert all(INSTANCES[0] <= c <= INSTANCES[1] + 8 for c in counts)  # a group may overshoot the target
    assert classes.most_common(1)[0][0] == RAW_TO_NYU40["chair"]
    assert len(classes) >= 14  # most of the 18 classes appear in a dozen rooms


def test_scanned_scene_is_deterministic_and_loses_what_no_camera_sees():
    a = generate_scene("scene0000_00", 11, 60000, profile="scannet")
    b = generate_scene("scene0000_00", 11, 60000, profile="scannet")
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.segments, b.segments)
    assert a.seg_groups == b.seg_groups
    # Every annotated object keeps vertices (objects a scan lost entirely are not annotated).
    present = set(np.unique(a.object_id[a.object_id >= 0]).tolist())
    assert present == {g["objectId"] for g in a.seg_groups}
    # Faces only reference kept vertices and every vertex index is valid.
    assert a.faces.min() >= 0 and a.faces.max() < a.num_vertices


def test_dataset_split_counts_range_and_resume(tmp_path: Path):
    lo, hi = 30000, 60000
    splits = generate_dataset(tmp_path, 2, 1, 1, seed=3, num_vertices=(lo, hi), profile="scannet")
    assert [len(splits[k]) for k in ("train", "val", "test")] == [2, 1, 1]
    for name in splits["train"] + splits["val"]:
        ply = tmp_path / "scans" / name / f"{name}_vh_clean_2.ply"
        header = ply.read_bytes()[:400].decode("ascii", "replace")
        n = int(header.split("element vertex ")[1].split()[0])
        assert lo <= n <= hi
        agg = json.loads((tmp_path / "scans" / name / f"{name}.aggregation.json").read_text())
        assert len(agg["segGroups"]) >= 10
    assert not (tmp_path / "scans_test" / splits["test"][0] / f"{splits['test'][0]}.aggregation.json").exists()
    # Resume: written scenes are kept as they are; a leftover temporary folder is replaced.
    first = tmp_path / "scans" / splits["train"][0]
    stamp = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    (tmp_path / "scans" / f".{splits['val'][0]}.tmp").mkdir()
    (tmp_path / "scans" / splits["val"][0]).rename(tmp_path / "moved")
    assert generate_dataset(tmp_path, 2, 1, 1, seed=3, num_vertices=(lo, hi), profile="scannet") == splits
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == stamp
    again, before = tmp_path / "scans" / splits["val"][0], tmp_path / "moved"
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in before.iterdir())
    for p in before.iterdir():
        assert (again / p.name).read_bytes() == p.read_bytes()
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "scans").iterdir())


def test_unknown_profile_is_an_error():
    with pytest.raises(ValueError, match="unknown generator profile"):
        generate_scene("scene0000_00", 1, 1000, profile="nope")
