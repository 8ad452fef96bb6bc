"""Tests for scene_pe.data.transforms: real geometric/colour behaviour on small clouds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from scipy.spatial.distance import pdist

from scene_pe.data import transforms as T


def make_sample(n: int = 200, seed: int = 0) -> dict:
    r = np.random.default_rng(seed)
    normals = r.standard_normal((n, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return {
        "scene": "scene0000_00",
        "coords": (r.uniform(0, 1, (n, 3)) * [4.0, 3.0, 2.5] + [1.0, -2.0, 0.3]).astype(np.float32),
        "colors": r.uniform(0, 1, (n, 3)).astype(np.float32),
        "normals": normals.astype(np.float32),
        "semantic": r.choice([-100, 0, 1, 4, 19], n).astype(np.int64),
        "instance": r.integers(-1, 6, n).astype(np.int64),
    }


def plane_sample(n: int = 100, seed: int = 0) -> dict:
    """Points on a tilted plane whose normals are the plane normal."""
    r = np.random.default_rng(seed)
    n0 = np.array([1.0, 2.0, 2.0]) / 3.0
    t1 = np.array([2.0, -1.0, 0.0]) / math.sqrt(5.0)
    t2 = np.cross(n0, t1)
    uv = r.uniform(-1, 1, (n, 2))
    s = make_sample(n, seed)
    s["coords"] = (np.array([0.5, 1.0, 1.5]) + uv[:, :1] * t1 + uv[:, 1:] * t2).astype(np.float32)
    s["normals"] = np.tile(n0, (n, 1)).astype(np.float32)
    return s


def assert_normals_fit_plane(out: dict) -> None:
    """Each normal is unit and perpendicular to every in-plane difference vector."""
    n = out["normals"].astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
    diffs = out["coords"][1:].astype(np.float64) - out["coords"][0]
    np.testing.assert_allclose(diffs @ n[0], 0.0, atol=1e-5)
    np.testing.assert_allclose(n, np.broadcast_to(n[0], n.shape), atol=1e-6)


def bbox_centre(c: np.ndarray) -> np.ndarray:
    c = c.astype(np.float64)
    return (c.min(0) + c.max(0)) / 2


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ------------------------------------------------------------------ rotations
def test_rotate_z_matches_expected_matrix_from_rng():
    s = make_sample()
    out = T.RandomRotateZ()(s, rng(7))
    angle = rng(7).uniform(-math.pi, math.pi)
    c, sn = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -sn, 0], [sn, c, 0], [0, 0, 1]])
    centre = bbox_centre(s["coords"])
    expected = (s["coords"].astype(np.float64) - centre) @ rot.T + centre
    np.testing.assert_allclose(out["coords"], expected, atol=1e-5)
    np.testing.assert_allclose(out["normals"], s["normals"] @ rot.T, atol=1e-6)
    np.testing.assert_allclose(out["coords"][:, 2], s["coords"][:, 2], atol=1e-6)


def test_rotate_z_preserves_distances_and_normal_surface_relation():
    s = plane_sample()
    out = T.RandomRotateZ()(s, rng(3))
    np.testing.assert_allclose(pdist(out["coords"]), pdist(s["coords"]), atol=1e-5)
    assert not np.allclose(out["coords"], s["coords"], atol=1e-3)
    assert_normals_fit_plane(out)


def test_rotate_z_angle_distribution_within_bounds():
    s = make_sample(5)
    s["normals"] = np.tile(np.array([1.0, 0.0, 0.0], np.float32), (5, 1))
    t, g = T.RandomRotateZ(max_angle=0.3), rng(11)
    angles = np.array([math.atan2(*t(s, g)["normals"][0, [1, 0]]) for _ in range(300)])
    assert np.all(np.abs(angles) <= 0.3 + 1e-6)
    assert angles.min() < -0.25 and angles.max() > 0.25  # spans the range
    assert abs(angles.mean()) < 0.05  # symmetric


def test_tilt_matches_rng_and_stays_small():
    s = plane_sample()
    s["normals"][:] = [0.0, 0.0, 1.0]  # only for angle recovery
    g, ref = rng(5), rng(5)
    for _ in range(50):
        out = T.RandomTilt(max_angle=0.05)(s, g)
        a, b = ref.uniform(-0.05, 0.05, size=2)
        nx, ny, nz = out["normals"][0].astype(np.float64)
        np.testing.assert_allclose([-math.asin(ny), math.atan2(nx, nz)], [a, b], atol=1e-6)
        assert abs(a) <= 0.05 and abs(b) <= 0.05
    np.testing.assert_allclose(pdist(out["coords"]), pdist(s["coords"]), atol=1e-5)


def test_tilt_keeps_normals_on_surface():
    assert_normals_fit_plane(T.RandomTilt(max_angle=0.5)(plane_sample(), rng(2)))


# ------------------------------------------------------------------ scale / flip
def test_scale_scales_distances_by_drawn_factor():
    s = make_sample(50)
    out = T.RandomScale(0.9, 1.1)(s, rng(4))
    factor = rng(4).uniform(0.9, 1.1, size=1)[0]
    assert 0.9 <= factor <= 1.1
    np.testing.assert_allclose(pdist(out["coords"]), factor * pdist(s["coords"]), rtol=1e-5)
    np.testing.assert_allclose(bbox_centre(out["coords"]), bbox_centre(s["coords"]), atol=1e-5)
    np.testing.assert_allclose(out["normals"], s["normals"], atol=1e-6)


def test_anisotropic_scale_keeps_normals_perpendicular():
    s = plane_sample()
    out = T.RandomScale(0.5, 2.0, anisotropic=True)(s, rng(1))
    factors = rng(1).uniform(0.5, 2.0, size=3)
    d_in = s["coords"].astype(np.float64) - s["coords"][0]
    d_out = out["coords"].astype(np.float64) - out["coords"][0]
    np.testing.assert_allclose(d_out, d_in * factors, atol=1e-5)
    assert_normals_fit_plane(out)


def test_flip_x_mirrors_about_centre_and_flips_normals():
    s = make_sample()
    out = T.RandomFlip(axes=("x",), p=1.0)(s, rng(0))
    cx = bbox_centre(s["coords"])[0]
    np.testing.assert_allclose(out["coords"][:, 0], 2 * cx - s["coords"][:, 0], atol=1e-5)
    np.testing.assert_array_equal(out["coords"][:, 1:], s["coords"][:, 1:])
    np.testing.assert_allclose(out["normals"][:, 0], -s["normals"][:, 0], atol=1e-6)
    np.testing.assert_allclose(out["normals"][:, 1:], s["normals"][:, 1:], atol=1e-6)
    assert_normals_fit_plane(T.RandomFlip(axes=("x", "y"), p=1.0)(plane_sample(), rng(0)))


def test_flip_probability():
    s = make_sample(4)
    t, g = T.RandomFlip(axes=["x", "y"], p=0.3), rng(9)
    flips = np.array([np.sign(t(s, g)["normals"][0, :2]) != np.sign(s["normals"][0, :2])
                      for _ in range(1000)])
    assert np.all(np.abs(flips.mean(axis=0) - 0.3) < 0.05)
    out = T.RandomFlip(p=0.0)(s, g)
    np.testing.assert_array_equal(out["coords"], s["coords"])


# ------------------------------------------------------------------ elastic / jitter
def test_elastic_bounded_preserves_n_and_labels():
    s = make_sample(2000)
    t = T.ElasticDistortion()
    for seed in range(5):
        out = t(s, rng(seed))
        disp = out["coords"].astype(np.float64) - s["coords"]
        assert out["coords"].shape == s["coords"].shape and out["coords"].dtype == np.float32
        assert np.abs(disp).max() <= t.max_displacement + 1e-5
        assert np.abs(disp).max() > 0.01  # it does move points
        np.testing.assert_array_equal(out["semantic"], s["semantic"])
        np.testing.assert_array_equal(out["instance"], s["instance"])


def test_elastic_clip_bound_is_hard():
    s = make_sample(2000)
    t = T.ElasticDistortion(params=[[0.2, 0.4]], clip_sigma=0.5)  # clipping active
    disp = t(s, rng(0))["coords"].astype(np.float64) - s["coords"]
    bound = 0.5 * t.field_std * 0.4
    assert np.abs(disp).max() <= bound + 1e-6
    assert np.abs(disp).max() > 0.8 * bound


def test_elastic_std_matches_magnitude_convention():
    s = make_sample(4000)
    t = T.ElasticDistortion(params=[[0.2, 0.4]])
    assert 0.105 < t.field_std < 0.12  # ~ the twice-applied 3-box blur's 0.113
    disp = t(s, rng(1))["coords"].astype(np.float64) - s["coords"]
    assert 0.6 * 0.4 * t.field_std < disp.std() < 1.1 * 0.4 * t.field_std


def test_elastic_is_smooth():
    r = np.random.default_rng(0)
    base = r.uniform(0, 1, (500, 3)) * [4.0, 3.0, 2.5]
    offsets = r.standard_normal((500, 3))
    near = base + 0.01 * offsets / np.linalg.norm(offsets, axis=1, keepdims=True)
    s = make_sample(1000)
    s["coords"] = np.concatenate([base, near]).astype(np.float32)
    t = T.ElasticDistortion()
    disp = t(s, rng(2))["coords"].astype(np.float64) - s["coords"]
    diff_near = np.linalg.norm(disp[:500] - disp[500:], axis=1)
    diff_far = np.linalg.norm(disp[:500] - disp[np.roll(np.arange(500), 1)], axis=1)
    typical = np.linalg.norm(disp, axis=1).mean()
    assert diff_near.max() < 0.1 * typical  # 1 cm apart: nearly the same displacement
    assert diff_far.mean() > 0.5 * typical  # unrelated points: independent displacements


def test_jitter_bounded_by_clip_and_std():
    s = make_sample(3000)
    disp = T.RandomJitter(sigma=0.01, clip=0.015)(s, rng(0))["coords"].astype(np.float64) - s["coords"]
    assert np.abs(disp).max() <= 0.015 + 1e-6
    assert np.abs(disp).max() > 0.0149  # clipping reached
    free = T.RandomJitter(sigma=0.005, clip=1.0)(s, rng(1))["coords"].astype(np.float64) - s["coords"]
    assert abs(free.std() - 0.005) < 0.0005


# ------------------------------------------------------------------ colour
@pytest.mark.parametrize("t", [T.ChromaticJitter(p=1.0, std=0.5), T.ChromaticTranslation(p=1.0, ratio=0.8),
                               T.ChromaticAutoContrast(p=1.0)])
def test_colour_outputs_in_unit_range(t):
    s = make_sample(500)
    out = t(s, rng(0))
    assert out["colors"].dtype == np.float32
    assert out["colors"].min() >= 0.0 and out["colors"].max() <= 1.0
    assert not np.array_equal(out["colors"], s["colors"])
    np.testing.assert_array_equal(out["coords"], s["coords"])


def test_chromatic_translation_is_one_offset_per_channel():
    s = make_sample(300)
    s["colors"] = (0.25 + 0.5 * s["colors"]).astype(np.float32)  # no clipping at ratio 0.2
    out = T.ChromaticTranslation(p=1.0, ratio=0.2)(s, rng(3))
    g = rng(3)
    g.random()
    expected = g.uniform(-0.2, 0.2, size=3)
    np.testing.assert_allclose(out["colors"] - s["colors"], np.broadcast_to(expected, (300, 3)), atol=1e-6)


def test_auto_contrast_stretches_channels():
    s = make_sample(300)
    s["colors"] = (0.3 + 0.2 * s["colors"]).astype(np.float32)
    out = T.ChromaticAutoContrast(p=1.0, blend_factor=1.0)(s, rng(0))
    np.testing.assert_allclose(out["colors"].min(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(out["colors"].max(0), 1.0, atol=1e-6)
    same = T.ChromaticAutoContrast(p=0.0)(s, rng(0))
    np.testing.assert_array_equal(same["colors"], s["colors"])


# ------------------------------------------------------------------ centre / crop
def test_center_shift():
    s = make_sample()
    out = T.CenterShift()(s, rng(0))
    c = out["coords"]
    np.testing.assert_allclose(bbox_centre(c)[:2], 0.0, atol=1e-6)
    assert abs(c[:, 2].min()) < 1e-6
    np.testing.assert_allclose(pdist(c), pdist(s["coords"]), atol=1e-5)
    keep_z = T.CenterShift(apply_z=False)(s, rng(0))
    np.testing.assert_array_equal(keep_z["coords"][:, 2], s["coords"][:, 2])


def test_max_points_crop_keeps_xy_disc_and_renumbers_instances():
    s = make_sample(400)
    s["segment"] = np.arange(400, dtype=np.int32)
    out = T.MaxPoints(n=100)(s, rng(6))
    keep = out["segment"]  # rows kept, in original order
    assert len(keep) == 100 and np.all(np.diff(keep) > 0)
    for key in ("coords", "colors", "normals", "semantic"):
        np.testing.assert_array_equal(out[key], s[key][keep])
    seed_xy = s["coords"][rng(6).integers(400), :2]
    d = np.linalg.norm(s["coords"][:, :2] - seed_xy, axis=1)
    dropped = np.setdiff1d(np.arange(400), keep)
    assert d[keep].max() <= d[dropped].min()  # a contiguous x/y disc
    old, new = s["instance"][keep], out["instance"]
    np.testing.assert_array_equal(new < 0, old < 0)
    k = len(np.unique(old[old >= 0]))
    np.testing.assert_array_equal(np.unique(new[new >= 0]), np.arange(k))
    pairs = np.unique(np.stack([old[old >= 0], new[new >= 0]]), axis=1)
    assert pairs.shape[1] == k  # one-to-one renumbering
    assert out["scene"] == s["scene"]


def test_max_points_random_and_noop():
    s = make_sample(300)
    out = T.MaxPoints(n=120, mode="random")(s, rng(0))
    assert len(out["coords"]) == 120
    rows = {tuple(r) for r in s["coords"].tolist()}
    assert all(tuple(r) in rows for r in out["coords"].tolist())
    same = T.MaxPoints(n=300)(s, rng(0))
    np.testing.assert_array_equal(same["coords"], s["coords"])
    np.testing.assert_array_equal(same["instance"], s["instance"])


# ------------------------------------------------------------------ composition, invariants
def test_compose_applies_in_order():
    s = make_sample()
    shift, scale = T.CenterShift(), T.RandomScale(2.0, 2.0)
    a = T.Compose([shift, scale])(s, rng(0))
    b = T.Compose([scale, shift])(s, rng(0))
    height = np.ptp(s["coords"][:, 2])
    # Shift first: z in [0, h], then doubled about its centre h/2 -> z min = -h/2.
    np.testing.assert_allclose(a["coords"][:, 2].min(), -height / 2, atol=1e-5)
    np.testing.assert_allclose(b["coords"][:, 2].min(), 0.0, atol=1e-6)  # scale, then shift
    # Order matters with a non-commuting pair: rotation then flip vs flip then rotation.
    rot, flip = T.RandomRotateZ(), T.RandomFlip(axes=("x",), p=1.0)
    ab = T.Compose([rot, flip])(s, rng(1))
    g = rng(1)
    manual = flip(rot(s, g), g)
    np.testing.assert_array_equal(ab["coords"], manual["coords"])
    ba = T.Compose([flip, rot])(s, rng(1))
    assert not np.allclose(ab["coords"], ba["coords"], atol=1e-3)


def test_same_seed_same_output_different_seed_different():
    pipeline = T.build_transforms(T.SCANNET_TRAIN_SPECS)
    s = make_sample(500)
    a, b, c = pipeline(s, rng(3)), pipeline(s, rng(3)), pipeline(s, rng(4))
    for key in ("coords", "colors", "normals"):
        np.testing.assert_array_equal(a[key], b[key])
        assert not np.array_equal(a[key], c[key])
        assert a[key].dtype == np.float32


ALL = [T.RandomRotateZ(), T.RandomTilt(), T.RandomScale(anisotropic=True), T.RandomFlip(p=1.0),
       T.ElasticDistortion(), T.RandomJitter(), T.CenterShift(), T.ChromaticAutoContrast(p=1.0),
       T.ChromaticTranslation(p=1.0), T.ChromaticJitter(p=1.0), T.MaxPoints(n=50),
       T.build_transforms(T.SCANNET_TRAIN_SPECS)]


@pytest.mark.parametrize("t", ALL, ids=lambda t: type(t).__name__)
def test_caller_arrays_not_mutated(t):
    s = make_sample()
    before = {k: v.copy() for k, v in s.items() if isinstance(v, np.ndarray)}
    keys = set(s)
    t(s, rng(0))
    assert set(s) == keys
    for k, v in before.items():
        np.testing.assert_array_equal(s[k], v)


@pytest.mark.parametrize("t", ALL[:-2] + ALL[-1:], ids=lambda t: type(t).__name__)
def test_labels_never_altered(t):
    s = make_sample()
    out = t(s, rng(0))
    np.testing.assert_array_equal(out["semantic"], s["semantic"])
    np.testing.assert_array_equal(out["instance"], s["instance"])
    assert out["semantic"].dtype == np.int64 and out["scene"] == s["scene"]


@pytest.mark.parametrize("t", ALL, ids=lambda t: type(t).__name__)
def test_empty_scene(t):
    s = make_sample(0)
    out = t(s, rng(0))
    assert out["coords"].shape == (0, 3) and out["colors"].shape == (0, 3)


# ------------------------------------------------------------------ config
def test_docstring_pipeline_equals_constant_and_builds():
    block = T.__doc__.split("in metres)::")[1].split("Validation/test")[0]
    assert yaml.safe_load(block) == T.SCANNET_TRAIN_SPECS
    pipeline = T.build_transforms(T.SCANNET_TRAIN_SPECS)
    assert [type(t).__name__ for t in pipeline.transforms] == [s["name"] for s in T.SCANNET_TRAIN_SPECS]
    assert pipeline.transforms[5].params == ((0.2, 0.4), (0.8, 1.6))  # YAML lists accepted
    assert len(T.build_transforms(None)) == 0


def test_build_unknown_name_lists_valid():
    with pytest.raises(ValueError, match=r"unknown transform 'RandomRotate'.*RandomRotateZ"):
        T.build_transforms([{"name": "RandomRotate"}])
    with pytest.raises(ValueError, match="'name'"):
        T.build_transforms([{"max_angle": 1.0}])


def test_build_unknown_key_names_transform_and_key():
    with pytest.raises(ValueError, match=r"RandomScale: unknown argument 'hi'.*low, high, anisotropic"):
        T.build_transforms([{"name": "RandomScale", "hi": 1.2}])


@pytest.mark.parametrize("spec, key", [
    ({"name": "RandomScale", "low": -1.0}, "low"),
    ({"name": "RandomScale", "low": 1.2, "high": 1.1}, "high"),
    ({"name": "RandomJitter", "sigma": "big"}, "sigma"),
    ({"name": "RandomFlip", "axes": ["w"]}, "axes"),
    ({"name": "ChromaticJitter", "p": 1.5}, "p"),
    ({"name": "ElasticDistortion", "params": [[0.2]]}, "params"),
    ({"name": "MaxPoints", "n": 0}, "n"),
    ({"name": "MaxPoints"}, "n"),
    ({"name": "CenterShift", "apply_z": "yes"}, "apply_z"),
])
def test_build_bad_value_names_transform_and_key(spec, key):
    with pytest.raises(ValueError, match=rf"{spec['name']}.*'{key}'"):
        T.build_transforms([spec])
