"""scene_pe/evaluation/realism.py: each statistic on hand-made rooms with a closed-form answer."""

import numpy as np
import pytest

from scene_pe.evaluation import realism as R


def grid_mesh(nx: int, ny: int, h: float, z: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A flat (nx x ny)-vertex grid of spacing h, two triangles per square."""
    gx, gy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    coords = np.stack([gx.ravel() * h, gy.ravel() * h, np.full(gx.size, z)], axis=1)
    v = np.arange(nx * ny).reshape(nx, ny)
    a, b, c, d = v[:-1, :-1].ravel(), v[1:, :-1].ravel(), v[1:, 1:].ravel(), v[:-1, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return coords, faces


def test_hsv_features_are_the_cone_and_hue_is_circular():
    f = R.hsv_features(np.array([[255, 0, 0], [0, 255, 0], [128, 128, 128], [255, 0, 3], [255, 3, 0]]))
    np.testing.assert_allclose(f[0], [1, 0, 1], atol=1e-12)
    np.testing.assert_allclose(f[1], [np.cos(2 * np.pi / 3), np.sin(2 * np.pi / 3), 1], atol=1e-12)
    np.testing.assert_allclose(f[2], [0, 0, 128 / 255], atol=1e-12)  # grey: no hue
    half = R.hsv_features(np.array([[255, 128, 128], [128, 255, 128]]))  # saturation 127 / 255, hue 0 and 1/3
    sat = 127 / 255
    np.testing.assert_allclose(half, [[sat, 0, 1], [sat * np.cos(2 * np.pi / 3), sat * np.sin(2 * np.pi / 3), 1]],
                               atol=1e-12)
    assert np.linalg.norm(f[3] - f[4]) < 0.03  # hue 0.998 and 0.002 are neighbours
    with pytest.raises(ValueError, match="colour space"):
        R.color_features(f, "lab")


@pytest.mark.parametrize("space", ["rgb", "hsv"])
def test_color_accuracy_is_one_when_colour_names_the_class_and_chance_when_it_does_not(space):
    rng = np.random.default_rng(1)
    classes = rng.integers(0, 3, 3000)
    palette = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200]])
    colors = np.clip(palette[classes] + rng.integers(-10, 11, (3000, 3)), 0, 255)
    r = R.color_class_accuracy(colors, classes, space)
    assert r.accuracy == 1.0 and r.num_fit == r.num_test == 1500 and r.num_classes == 3
    assert r.majority == pytest.approx(1 / 3, abs=0.03)
    noise = rng.integers(0, 256, (3000, 3))  # colour unrelated to the class
    assert R.color_class_accuracy(noise, classes, space).accuracy == pytest.approx(1 / 3, abs=0.04)


def test_split_by_object_asks_whether_colour_tells_the_class_of_an_unseen_object():
    rng = np.random.default_rng(2)
    objects = np.repeat(np.arange(200), 60)  # ~30 of each object in a vertex split's fit half: k = 15 of its own
    classes = objects % 2
    own = rng.integers(0, 256, (200, 3))[objects]  # every object its own colour, whatever its class
    assert R.color_class_accuracy(own, classes).accuracy == 1.0  # a vertex split sees the same objects
    r = R.color_class_accuracy(own, classes, objects=objects)
    assert r.accuracy == pytest.approx(0.5, abs=0.1) and r.num_fit == r.num_test == 6000  # whole objects
    tinted = np.clip(own // 4 + np.where(classes[:, None] == 1, [0, 0, 180], [180, 0, 0]), 0, 255)  # class tints
    assert R.color_class_accuracy(tinted, classes, objects=objects).accuracy == 1.0
    with pytest.raises(ValueError, match=">= 2 objects"):
        R.color_class_accuracy(own, classes, objects=np.zeros(12000))


def test_majority_rate_is_the_fit_halfs_most_common_class_on_the_test_half():
    classes = np.array([5] * 50 + [7] * 50)
    colors = np.zeros((100, 3))
    r = R.color_class_accuracy(colors, classes, "rgb", seed=3)
    order = np.random.default_rng(3).permutation(100)
    fit, test = classes[order[:50]], classes[order[50:]]
    top = 5 if (fit == 5).sum() > (fit == 7).sum() else 7
    assert (fit == top).sum() > 25  # the halves disagree on the majority: the fit half's counts
    assert r.majority == (test == top).mean() < 0.5
    with pytest.raises(ValueError, match="rows for 100 vertices"):
        R.color_class_accuracy(colors[:99], classes)


def test_edge_contrast_within_and_across_objects():
    # a square of two triangles (0 1 2), (0 2 3): edges 01 12 02 23 03; object 0 = {0, 1, 2}, object 1 = {3}
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    edges, count = R.mesh_edges(faces)
    assert edges.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [2, 3]] and count.tolist() == [1, 2, 1, 1, 1]
    colors = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 255], [255, 0, 0]])
    r = R.edge_contrast(colors, edges, np.array([0, 0, 0, 1]))
    assert (r.num_within, r.num_across) == (3, 2)
    assert r.within == pytest.approx(2 / 3)  # 01: 0, 12: 1, 02: 1
    assert r.across == pytest.approx((np.sqrt(2) + 1) / 2)  # 23: sqrt(2), 03: 1
    assert r.ratio == pytest.approx(r.across / r.within)
    r = R.edge_contrast(colors, edges, np.array([0, 0, -1, 1]))  # vertex 2 in no object: its edges left out
    assert (r.num_within, r.num_across) == (1, 1)


def test_neighbour_pairs_are_the_k_nearest_within_the_radius_once_each():
    coords = np.array([[0, 0, 0], [0.01, 0, 0], [0.03, 0, 0], [1, 0, 0]], float)
    assert R.neighbour_pairs(coords, k=1, radius=0.05).tolist() == [[0, 1], [1, 2]]
    assert R.neighbour_pairs(coords, k=3, radius=0.05).tolist() == [[0, 1], [0, 2], [1, 2]]
    assert R.neighbour_pairs(coords, k=3, radius=2.0).tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]


def test_joined_objects_is_the_share_of_mesh_edges_between_two_objects():
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    assert R.joined_objects(faces, np.array([0, 0, 0, 1])) == pytest.approx(2 / 5)
    assert R.joined_objects(faces, np.array([0, 0, -1, 1])) == pytest.approx(1 / 2)  # 01 within, 03 across
    assert R.joined_objects(np.array([[0, 1, 2], [3, 4, 5]]), np.array([0, 0, 0, 1, 1, 1])) == 0.0


def test_density_of_a_regular_grid_is_one_over_h_squared():
    coords, faces = grid_mesh(11, 11, 0.02)
    d = R.vertex_density(coords, faces).reshape(11, 11)
    np.testing.assert_allclose(d[1:-1, 1:-1], 1 / 0.02 ** 2)
    assert d[0, 0] == pytest.approx(3 / 0.02 ** 2)  # a corner in two triangles
    assert d[-1, 0] == pytest.approx(3 / (0.02 ** 2 / 2))  # a corner in one
    s = R.spread(d[1:-1, 1:-1])
    assert s.median == pytest.approx(2500) and s.ratio == pytest.approx(1.0)
    d = R.vertex_density(np.vstack([coords, [[5, 5, 5]]]), faces)  # a vertex in no face
    assert np.isnan(d[-1])


def test_spread_is_the_median_and_the_p90_over_p10_of_the_finite_values():
    s = R.spread(np.r_[np.arange(1.0, 102.0), np.nan, np.inf])  # 1..101: p10 11, median 51, p90 91
    assert (s.p10, s.median, s.p90) == (11.0, 51.0, 91.0) and s.ratio == pytest.approx(91 / 11)
    assert np.isnan(R.spread([np.nan]).median)


def test_plane_normal_noise_is_the_tilt_about_the_mean():
    assert R.plane_normal_noise(np.tile([0, 0, 1.0], (10, 1))) == 0.0
    t = np.radians(7.0)
    n = np.array([[0, np.sin(t), np.cos(t)], [0, -np.sin(t), np.cos(t)]] * 5)
    assert R.plane_normal_noise(n) == pytest.approx(7.0)
    assert R.plane_normal_noise(2 * n) == pytest.approx(7.0)  # lengths do not matter
    with pytest.raises(ValueError, match="cancel"):
        R.plane_normal_noise(np.array([[0, 0, 1.0], [0, 0, -1.0]]))


def test_boundary_per_area_of_a_square_and_of_a_square_with_a_hole():
    coords, faces = grid_mesh(11, 11, 0.1)  # 1 m x 1 m: border 4 m, area 1 m^2
    assert R.boundary_per_area(coords, faces) == pytest.approx(4.0)
    # cut the two triangles of one inner square: +0.4 m of border, -0.01 m^2
    v = np.arange(121).reshape(11, 11)
    inner = {v[4, 4], v[5, 4], v[5, 5], v[4, 5]}
    holed = np.array([f for f in faces if not set(f) <= inner])
    assert len(holed) == len(faces) - 2
    assert R.boundary_per_area(coords, holed) == pytest.approx(4.4 / 0.99)


def test_empty_cell_share_counts_the_cells_of_a_hole():
    g = (np.arange(50) + 0.5) * 0.02  # 1 m x 1 m, 2 cm apart, off the cell borders
    x, y = np.meshgrid(g, g, indexing="ij")
    pts = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], 1)
    assert R.empty_cell_share(pts) == 0.0
    hole = (pts[:, 0] > 0.4) & (pts[:, 0] < 0.6) & (pts[:, 1] > 0.4) & (pts[:, 1] < 0.6)
    assert R.empty_cell_share(pts[~hole]) == pytest.approx(4 / 100)  # 2 x 2 of the 10 x 10 cells
    triangle = pts[pts[:, 0] + pts[:, 1] < 1.0]  # cells outside the convex hull do not count
    assert R.empty_cell_share(triangle) == 0.0


def test_object_stats_counts_sizes_and_classes():
    coords = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 2, 0], [0, 0, 3], [9, 9, 9]], float)
    ids = np.array([0, 0, 4, 4, 4, -1])
    classes = np.array([3, 3, 5, 5, 5, 1])
    s = R.object_stats(coords, ids, classes)
    assert s.count == 2 and s.classes == {3: 1, 5: 1}
    assert s.vertices.median == 2.5 and s.extent.median == pytest.approx(2.0)  # extents 1 and 3


def test_small_objects_on_the_floor_and_raised():
    coords = np.array([[0, 0, 0.05], [0.3, 0.3, 0.4],  # 0: small, on the floor
                       [0, 0, 0.75], [0.2, 0.1, 0.9],  # 1: small, on a table
                       [0, 0, 0.0], [1.2, 0.5, 0.8],  # 2: big
                       [0, 0, 2.0]])  # in no object
    ids = np.array([0, 0, 1, 1, 2, 2, -1])
    assert R.small_objects(coords, ids, floor_z=0.0) == R.SmallObjects(on_floor=1, raised=1)
    assert R.small_objects(coords, ids, floor_z=0.0, extent=2.0) == R.SmallObjects(on_floor=2, raised=1)


def test_label_shares():
    labels = np.array([1, 1, 2, 0, 5, 40, 40, 40])
    assert R.label_shares(labels, {"wall": [1], "floor": [2], "other": [40]}) == \
        {"wall": 0.25, "floor": 0.125, "other": 0.375}
