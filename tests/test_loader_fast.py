"""The loader's fast paths give exactly what the implementations they replaced gave.

The references below are those implementations (scipy's RegularGridInterpolator
in the elastic distortion, np.unique over (group, label) pairs in the voxel
majority label), kept here to compare outputs bit for bit for fixed seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import RegularGridInterpolator
from scipy.ndimage import gaussian_filter

from scene_pe.data import transforms as T
from scene_pe.data.grid_interp import _interval, interp_trilinear
from scene_pe.sparse.voxelize import majority_label
from test_transforms import make_sample


def elastic_reference(t: T.ElasticDistortion, sample: dict, rng: np.random.Generator) -> np.ndarray:
    """ElasticDistortion's coordinates as computed before (scipy interpolator)."""
    coords = sample["coords"].astype(np.float64)
    lo = coords.min(axis=0)
    extent = coords.max(axis=0) - lo
    bound = t.clip_sigma * t.field_std
    pad = int(4.0 * t.smooth_sigma + 0.5)
    displaced = coords.copy()
    for granularity, magnitude in t.params:
        dims = (extent // granularity).astype(int) + 3
        noise = rng.standard_normal((*(dims + 2 * pad), 3))
        field = gaussian_filter(noise, sigma=(t.smooth_sigma,) * 3 + (0,))
        field = np.clip(field[pad:-pad, pad:-pad, pad:-pad], -bound, bound)
        axes = [lo[d] - granularity + granularity * np.arange(dims[d]) for d in range(3)]
        interp = RegularGridInterpolator(axes, field, bounds_error=False, fill_value=None)
        displaced += magnitude * interp(coords)
    return displaced.astype(np.float32)


def majority_reference(labels, groups, num_groups):
    pairs, counts = np.unique(np.stack([groups, labels]), axis=1, return_counts=True)
    order = np.lexsort((pairs[1], -counts, pairs[0]))
    g, lab = pairs[0][order], pairs[1][order]
    first = np.r_[True, g[1:] != g[:-1]]
    out = np.zeros(num_groups, dtype=labels.dtype)
    out[g[first]] = lab[first]
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("params", [((0.2, 0.4), (0.8, 1.6)), ((0.05, 0.1),), ((1.5, 2.0),)])
def test_elastic_distortion_same_as_before_for_the_same_seed(seed, params):
    s = make_sample(3000, seed)
    s["coords"][:7] = s["coords"][0]  # repeated points and points on grid nodes' planes
    t = T.ElasticDistortion(params=params)
    got = t(s, np.random.default_rng(seed))["coords"]
    want = elastic_reference(t, s, np.random.default_rng(seed))
    assert got.dtype == want.dtype and np.array_equal(got.view(np.int32), want.view(np.int32))


def test_trilinear_equals_scipy_bit_for_bit_inside_outside_and_on_nodes():
    rng = np.random.default_rng(0)
    for _ in range(10):
        sizes = rng.integers(2, 12, 3)
        axes = [np.sort(rng.normal(size=1)) + rng.uniform(0.1, 1) * np.arange(n) for n in sizes]
        values = rng.standard_normal((*sizes, 3))
        pts = np.stack([rng.uniform(a[0] - 1, a[-1] + 1, 500) for a in axes], axis=1)
        pts[:len(axes[0]), 0] = axes[0]  # exactly on nodes, the last one included
        want = RegularGridInterpolator(axes, values, bounds_error=False, fill_value=None)(pts)
        got = interp_trilinear(axes, values, pts)
        assert np.array_equal(got.view(np.int64), want.view(np.int64))


def test_interval_equals_clipped_searchsorted():
    rng = np.random.default_rng(1)
    for n in (2, 3, 17):
        a = rng.normal() + 0.3 * np.arange(n)
        x = np.concatenate([rng.uniform(a[0] - 2, a[-1] + 2, 300), a,
                            np.nextafter(a, -np.inf), np.nextafter(a, np.inf)])
        np.testing.assert_array_equal(_interval(a, x),
                                      np.clip(np.searchsorted(a, x, side="right") - 1, 0, n - 2))


@pytest.mark.parametrize("seed", range(5))
def test_majority_label_same_as_before(seed):
    rng = np.random.default_rng(seed)
    n, m = 5000, 900
    groups = rng.integers(0, m, n)
    groups[:m] = np.arange(m)  # every group used
    pure = rng.random(m) < 0.7  # most groups hold one label, the others are mixed with ties
    labels = np.where(pure[groups], groups % 7 - 1, rng.integers(-1, 4, n)).astype(np.int64)
    np.testing.assert_array_equal(majority_label(labels, groups, m),
                                  majority_reference(labels, groups, m))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bounds_equal_row_reductions(dtype):
    pts = np.random.default_rng(2).normal(size=(1001, 3)).astype(dtype) * 5
    lo, hi = T._bounds(pts)
    np.testing.assert_array_equal(lo, pts.astype(np.float64).min(axis=0))
    np.testing.assert_array_equal(hi, pts.astype(np.float64).max(axis=0))
    assert lo.dtype == hi.dtype == np.float64


def test_scannet_pipeline_same_as_before_for_the_same_seed():
    """The whole training list, with the replaced elastic interpolation as reference."""
    s = make_sample(4000, 5)
    pipeline = T.build_transforms(T.SCANNET_TRAIN_SPECS)
    got = pipeline(s, np.random.default_rng(11))
    rng, want = np.random.default_rng(11), dict(s)
    for t in pipeline.transforms:
        if isinstance(t, T.ElasticDistortion):
            want = {**want, "coords": elastic_reference(t, want, rng)}
        else:
            want = t(want, rng)
    for key in ("coords", "colors", "normals"):
        assert np.array_equal(got[key], want[key]), key
