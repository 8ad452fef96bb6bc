"""The point-cloud segmentator's own logic (scene_pe/superpoints/segmentator.py, geometry/normals.py):
colour vetoes, the order of the small-segment pass, crease-shortened normals and the per-kind
defaults, on hand-made cases with exact partitions and closed forms."""

import numpy as np
import pytest

from scene_pe.geometry.normals import crease_shortened, segmentation_normals
from scene_pe.superpoints.segmentator import (CLOUD_MIN_VERTICES, MIN_VERTICES, SegmentatorConfig,
                                              segment_cloud, segment_graph)

from test_superpoints import grid, same_partition

UP = np.array([0.0, 0.0, 1.0], np.float32)


def coplanar_halves(right_rgb):
    """A 24 x 12 grid in z = 0 (5 cm step), all normals +z; the left 12 columns black, the right ``right_rgb``."""
    xyz, _ = grid(24, 12)
    right = xyz[:, 0] > 11.5 * 0.05
    rgb = np.zeros((len(xyz), 3), np.uint8)
    rgb[right] = right_rgb
    return xyz, np.tile(UP, (len(xyz), 1)), rgb, right


def test_a_colour_veto_splits_a_plane_the_normals_cannot():
    xyz, normals, rgb, right = coplanar_halves((60, 60, 60))  # RGB distance 0.41 > 0.10
    seg = segment_cloud(xyz, normals, SegmentatorConfig(knn=6), rgb)
    assert same_partition(seg, right.astype(int))
    # without the veto every edge weighs 0: one segment
    no_veto = segment_cloud(xyz, normals, SegmentatorConfig(knn=6, color_veto=float("inf")), rgb)
    assert len(np.unique(no_veto)) == 1
    # a difference under the veto (10 per channel: 0.068) is no border either
    close = segment_cloud(xyz, normals, SegmentatorConfig(knn=6), coplanar_halves((10, 10, 10))[2])
    assert len(np.unique(close)) == 1


def test_vetoed_edges_still_join_segments_below_min_vertices():
    xyz, _ = grid(12, 12)
    rgb = np.zeros((len(xyz), 3), np.uint8)
    patch = (np.abs(xyz[:, 0] - 0.275) < 0.03) & (np.abs(xyz[:, 1] - 0.275) < 0.03)  # 2 x 2 vertices
    assert patch.sum() == 4
    rgb[patch] = 200
    seg = segment_cloud(xyz, np.tile(UP, (len(xyz), 1)), SegmentatorConfig(knn=6), rgb)
    assert len(np.unique(seg)) == 1  # 4 < 10 vertices: absorbed across its vetoed edges


def test_small_segments_take_allowed_edges_before_lighter_vetoed_ones():
    # A = 0-1-2 and B = 3-4-5 (weight-0 chains), vertex 6 touches A by a vetoed edge of weight 0 and
    # B by an allowed edge of weight 0.5 (above k, so not joined by the Felzenszwalb pass)
    edges = np.array([[0, 1], [1, 2], [3, 4], [4, 5], [6, 0], [6, 3]])
    weights = np.array([0, 0, 0, 0, 0.0, 0.5], np.float32)
    vetoed = np.array([0, 0, 0, 0, 1, 0], bool)
    seg = segment_graph(7, edges, weights, SegmentatorConfig(min_vertices=3), vetoed, cloud=True)
    assert same_partition(seg, np.array([0, 0, 0, 1, 1, 1, 1]))
    # the same edges unvetoed: 6 joins A in the Felzenszwalb pass (weight 0 <= both thresholds)
    seg = segment_graph(7, edges, weights, SegmentatorConfig(min_vertices=3), cloud=True)
    assert same_partition(seg, np.array([0, 0, 0, 1, 1, 1, 0]))


def test_crease_shortened_on_a_hand_computed_case():
    # points on a line at x = 0, 1, 3, 6; with k = 2 each point's neighbourhood is itself and
    # {1, 0, 1, 2}[i]: the mean of its own normal and that one's, sign-aligned
    xyz = np.array([[0, 0, 0], [1, 0, 0], [3, 0, 0], [6, 0, 0]], np.float32)
    n = np.array([[0, 0, 1], [0, 0, 1], [1, 0, 0], [-1, 0, 0]], np.float32)
    out = crease_shortened(xyz, n, k=2)
    # 0, 1: two equal normals -> 1; 2: (x + z) / 2 -> length 1/sqrt(2), its own direction kept;
    # 3: -x and x turned to -x -> 1 (without the sign turn they would cancel: 0)
    np.testing.assert_allclose(out, [[0, 0, 1], [0, 0, 1], [np.sqrt(0.5), 0, 0], [-1, 0, 0]], atol=1e-6)


def test_segmentation_normals_are_unit_on_a_plane_and_shorter_only_at_a_fold():
    flat, _ = grid(10, 10)
    n = segmentation_normals(flat)
    np.testing.assert_allclose(np.abs(n[:, 2]), 1.0, atol=1e-5)
    wall, _ = grid(10, 10, origin=(0.0, 0.0, 0.05), axes=((1, 0, 0), (0, 0, 1)))  # rises from y = 0
    both = np.concatenate([flat, wall])
    length = np.linalg.norm(segmentation_normals(both), axis=1)
    dist = np.hypot(both[:, 1], both[:, 2])  # to the fold line (y = z = 0)
    assert (length[dist > 0.25] > 0.999).all()  # 10 neighbours reach 2 steps (0.1): planar beyond 2 x 2 steps
    assert length[dist < 0.01].max() < 0.95   # the fold line itself


@pytest.mark.parametrize("cloud, expected", [(False, MIN_VERTICES), (True, CLOUD_MIN_VERTICES)])
def test_min_vertices_default_depends_on_the_input_kind(cloud, expected):
    assert (MIN_VERTICES, CLOUD_MIN_VERTICES) == (20, 10)
    assert SegmentatorConfig().min_vertices_for(cloud) == expected
    assert SegmentatorConfig().params(cloud=cloud)["segMinVerts"] == expected
    assert SegmentatorConfig(min_vertices=7).min_vertices_for(cloud) == 7
