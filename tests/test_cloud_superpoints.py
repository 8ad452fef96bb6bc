"""Point-cloud superpoints (scene_pe/superpoints/): purity against GT on generated ScanNet-profile rooms
given as bare clouds, at the vertex density and resampled; the purity measure on a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest

from scene_pe.geometry.normals import estimate_normals
from scene_pe.superpoints.purity import majority, num_segments, purity
from scene_pe.superpoints.segmentator import SegmentatorConfig, segment_cloud
from scene_pe.synthetic.scenes import generate_scene

NORMALS_ONLY = SegmentatorConfig(color_weight=0.0, color_veto=float("inf"))


def test_purity_on_a_hand_computed_case():
    seg = np.array([7, 7, 7, 7, 3, 3, 3, 9, 9, 9])
    gt = np.array([5, 5, 6, 0, 6, 6, 5, 0, 0, 8])
    # segment 7: annotated 5, 5, 6 -> majority 5: 2 of 3 pure; segment 3: 6, 6, 5 -> 6: 2 of 3;
    # segment 9: only 8 annotated -> 1 of 1. Annotated vertices: 7, pure 5
    assert purity(seg, gt) == pytest.approx(5 / 7)
    # strict: 0 counts as an id; segment 9 (0, 0, 8) -> majority 0: 2 of 3; 7 -> 5 (2 of 4): 2 + 2 + 2 of 10
    assert purity(seg, gt, annotated_only=False) == pytest.approx(6 / 10)
    s, best = majority(np.array([1, 1, 2, 2]), np.array([4, 3, 9, 9]))
    assert best[s].tolist() == [3, 3, 9, 9]  # a tie goes to the smaller id
    assert num_segments(seg) == 3


@pytest.fixture(scope="module")
def room():
    """A generated ScanNet-profile room (sensor noise, holes, clutter): vertices, colours, GT objects."""
    s = generate_scene("scene0000_00", 5, 200000, profile="scannet")  # ScanNet's vertex density
    gt = np.where(s.object_id >= 0, s.object_id + 1, 0)
    return s.vertices.astype(np.float32), s.colors[:, :3], gt, num_segments(s.segments)


@pytest.mark.parametrize("keep", [1.0, 0.5])
def test_colour_edges_keep_cloud_segments_inside_objects(room, keep):
    xyz, rgb, gt, mesh_segments = room
    idx = np.sort(np.random.default_rng(0).choice(len(xyz), int(len(xyz) * keep), replace=False))
    xyz, rgb, gt = xyz[idx], rgb[idx], gt[idx]
    seg = segment_cloud(xyz, None, SegmentatorConfig(), rgb)
    plain = segment_cloud(xyz, None, NORMALS_ONLY, rgb)
    print(f"keep {keep}: purity {purity(seg, gt):.4f} ({num_segments(seg)} segments; mesh {mesh_segments}), "
          f"normals only {purity(plain, gt):.4f} ({num_segments(plain)})")
    assert purity(seg, gt) >= 0.97
    assert num_segments(seg) <= 3 * mesh_segments
    assert purity(seg, gt) > purity(plain, gt)  # the colour vetoes are what keep them apart


def test_without_colours_or_weight_the_cloud_segmentation_is_the_normal_only_one(room):
    xyz, rgb, _, _ = room
    a = segment_cloud(xyz[:20000])
    b = segment_cloud(xyz[:20000], None, NORMALS_ONLY, rgb[:20000])
    assert np.array_equal(a, b)
    normals = estimate_normals(xyz[:20000])  # given normals (a file's own) go the same way
    assert np.array_equal(segment_cloud(xyz[:20000], normals),
                          segment_cloud(xyz[:20000], normals, NORMALS_ONLY, rgb[:20000]))
