"""Kernels against numerical integrals and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from scene_pe.method.kernels import (
    instance_centres,
    log_bhattacharyya,
    log_kappa_sigma,
    log_kappa_to_instances,
    log_kappa_to_point,
    log_rbf,
    logvar_from_sigma,
)

D64 = torch.float64
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def kernel(mu_a, s_a, mu_b, s_b) -> float:
    t = lambda v: torch.as_tensor(np.atleast_1d(v), dtype=D64)  # noqa: E731
    return float(torch.exp(log_kappa_sigma(t(mu_a), t(s_a), t(mu_b), t(s_b))))


def quad_1d(m1, s1, m2, s2) -> float:
    """Integral of sqrt(p q) over the line, by adaptive quadrature.

    The line is cut at m +- k s for both Gaussians so that a very narrow peak
    is never missed by the adaptive rule.
    """
    f = lambda x: math.exp(0.5 * (stats.norm.logpdf(x, m1, s1) + stats.norm.logpdf(x, m2, s2)))  # noqa: E731
    cuts = sorted({m + k * s for m, s in ((m1, s1), (m2, s2)) for k in (-16, -6, -3, -1, 0, 1, 3, 6, 16)})
    total = 0.0
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        total += integrate.quad(f, lo, hi, limit=200, epsabs=1e-14, epsrel=1e-12)[0]
    return total


def log_quad_1d(m1, s1, m2, s2) -> float:
    """log of the integral of sqrt(p q), by adaptive quadrature in log space.

    The integrand is scaled by its value at its peak (the precision-weighted mean of the two
    means: sqrt(p q) is a Gaussian of precision (1/s1^2 + 1/s2^2)/2 there), so that a far
    pair, whose integral is 1e-13 or underflows, is integrated to full relative accuracy.
    Uses the densities only, not the kernel's closed form.
    """
    def lf(x):  # 0.5 (log p + log q), the normal log-densities written out (scipy's are slow here)
        return -0.25 * (((x - m1) / s1) ** 2 + ((x - m2) / s2) ** 2) - 0.5 * math.log(s1 * s2) - LOG_SQRT_2PI

    peak = (m1 / s1**2 + m2 / s2**2) / (1 / s1**2 + 1 / s2**2)
    width = (0.5 / s1**2 + 0.5 / s2**2) ** -0.5
    top = lf(peak)
    f = lambda x: math.exp(lf(x) - top)  # noqa: E731
    cuts = sorted({m + k * s for m, s in ((m1, s1), (m2, s2), (peak, width))
                   for k in (-16, -6, -3, -1, 0, 1, 3, 6, 16)})
    total = sum(integrate.quad(f, lo, hi, limit=200, epsabs=0.0, epsrel=1e-12)[0] for lo, hi in zip(cuts[:-1], cuts[1:]))
    return top + math.log(total)


def log_kernel(mu_a, s_a, mu_b, s_b) -> float:
    t = lambda v: torch.as_tensor(np.atleast_1d(v), dtype=D64)  # noqa: E731
    return float(log_kappa_sigma(t(mu_a), t(s_a), t(mu_b), t(s_b)))


def random_pairs_1d(rng, n):
    pairs = [(rng.normal(0, 2), math.exp(rng.uniform(-2, 2)), rng.normal(0, 2), math.exp(rng.uniform(-2, 2)))
             for _ in range(n)]
    # Very unequal sigmas (ratios up to 1e4) and near / far means.
    pairs += [(0.0, 1e-2, 0.3, 10.0), (1.0, 50.0, -2.0, 0.05), (0.0, 1e-3, 0.001, 5.0), (0.0, 0.2, 3.0, 0.2)]
    return pairs


# Far pairs: kappa 6e-13, 1e-136 and 0 in float64 (log kappa -800), where an absolute
# comparison of kappa sees nothing; their logs are compared.
FAR_PAIRS = [(0.0, 0.2, 3.0, 0.2), (0.0, 0.1, 5.0, 0.1), (0.0, 0.1, 8.0, 0.1), (2.0, 0.05, -1.0, 0.3)]


def test_1d_matches_quadrature():
    rng = np.random.default_rng(0)
    for m1, s1, m2, s2 in random_pairs_1d(rng, 20):
        assert kernel(m1, s1, m2, s2) == pytest.approx(quad_1d(m1, s1, m2, s2), abs=1e-5, rel=1e-6)


def test_1d_log_kernel_matches_quadrature_near_and_far():
    """log kappa against the log of the integral: a relative error of 1e-9 on kappa, however small."""
    rng = np.random.default_rng(0)
    pairs = random_pairs_1d(rng, 20) + FAR_PAIRS
    logs = [log_quad_1d(*p) for p in pairs]
    assert min(logs) < -700 and sum(v < -25 for v in logs) >= 4  # the far cases are far
    for p, ref in zip(pairs, logs):
        assert log_kernel(*p) == pytest.approx(ref, abs=1e-9, rel=1e-12), p


def test_3d_anisotropic_matches_product_of_1d_quadratures():
    rng = np.random.default_rng(1)
    for _ in range(6):
        m1, m2 = rng.normal(0, 1, 3), rng.normal(0, 1, 3)
        s1, s2 = np.exp(rng.uniform(-3, 2, 3)), np.exp(rng.uniform(-3, 2, 3))
        ref = np.prod([quad_1d(m1[d], s1[d], m2[d], s2[d]) for d in range(3)])
        assert kernel(m1, s1, m2, s2) == pytest.approx(ref, abs=1e-5, rel=1e-6)
        log_ref = sum(log_quad_1d(m1[d], s1[d], m2[d], s2[d]) for d in range(3))
        assert log_kernel(m1, s1, m2, s2) == pytest.approx(log_ref, abs=1e-9, rel=1e-12)
    # a far anisotropic pair: kappa ~ 1e-40, one axis far and two near
    m1, s1, m2, s2 = np.array([0.0, 0.1, -0.2]), np.array([0.1, 1.0, 0.3]), np.array([2.7, 0.0, 0.1]), \
        np.array([0.1, 0.5, 2.0])
    log_ref = sum(log_quad_1d(m1[d], s1[d], m2[d], s2[d]) for d in range(3))
    assert log_ref < -80
    assert log_kernel(m1, s1, m2, s2) == pytest.approx(log_ref, abs=1e-9, rel=1e-12)


def test_3d_matches_grid_integral_of_joint_densities():
    """Independent of the factorisation: Riemann sum of sqrt(p q) with 3D densities."""
    rng = np.random.default_rng(2)
    for _ in range(2):
        m1, m2 = rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3)
        s1, s2 = rng.uniform(0.6, 1.5, 3), rng.uniform(0.6, 1.5, 3)
        h = 0.2
        axes = [np.arange(min(m1[d], m2[d]) - 10 * 1.5, max(m1[d], m2[d]) + 10 * 1.5, h) for d in range(3)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        lp = stats.multivariate_normal(m1, np.diag(s1**2)).logpdf(grid)
        lq = stats.multivariate_normal(m2, np.diag(s2**2)).logpdf(grid)
        ref = np.exp(0.5 * (lp + lq)).sum() * h**3
        assert kernel(m1, s1, m2, s2) == pytest.approx(ref, abs=1e-5)


def test_symmetric_bounded_and_one_for_identical():
    g = torch.Generator().manual_seed(3)
    mu_a, mu_b = torch.randn(500, 3, generator=g, dtype=D64), torch.randn(500, 3, generator=g, dtype=D64)
    lv_a, lv_b = torch.randn(500, 3, generator=g, dtype=D64) * 3, torch.randn(500, 3, generator=g, dtype=D64) * 3
    ab, ba = log_bhattacharyya(mu_a, lv_a, mu_b, lv_b), log_bhattacharyya(mu_b, lv_b, mu_a, lv_a)
    assert torch.equal(ab, ba)
    assert bool((ab < 0).all())
    for dt in (torch.float32, D64):
        same = log_bhattacharyya(mu_a.to(dt), lv_a.to(dt), mu_a.to(dt), lv_a.to(dt))
        assert bool((torch.exp(same) == 1.0).all())


def test_isotropic_closed_form_eq3_and_broadcast():
    rng = np.random.default_rng(4)
    mu_a, mu_b = rng.normal(0, 1, (50, 3)), rng.normal(0, 1, (50, 3))
    s_a, s_b = np.exp(rng.uniform(-3, 1, (50, 1))), np.exp(rng.uniform(-3, 1, (50, 1)))
    beta = ((s_a / s_b + s_b / s_a) / 2) ** -1.5
    alpha = 4 * (s_a**2 + s_b**2)
    ref = beta[:, 0] * np.exp(-((mu_a - mu_b) ** 2).sum(1) / alpha[:, 0])
    t = lambda v: torch.as_tensor(v, dtype=D64)  # noqa: E731
    got = torch.exp(log_kappa_sigma(t(mu_a), t(s_a), t(mu_b), t(s_b))).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    # (N, 1) equals the same sigma repeated on 3 axes; one side iso, other aniso.
    rep = log_kappa_sigma(t(mu_a), t(s_a).expand(-1, 3), t(mu_b), t(s_b).expand(-1, 3))
    mixed = log_kappa_sigma(t(mu_a), t(s_a), t(mu_b), t(s_b).expand(-1, 3))
    np.testing.assert_allclose(np.exp(rep.numpy()), ref, rtol=1e-12)
    np.testing.assert_allclose(np.exp(mixed.numpy()), ref, rtol=1e-12)


def test_extreme_sigmas_finite_in_float32():
    sig = torch.tensor([1e-4, 1e-2, 1.0, 1e3], dtype=D64)
    s_a, s_b = torch.meshgrid(sig, sig, indexing="ij")
    s_a, s_b = s_a.reshape(-1, 1).expand(-1, 3), s_b.reshape(-1, 1).expand(-1, 3)
    mu_a, mu_b = torch.zeros(16, 3), torch.full((16, 3), 5.0)
    mu_a, mu_b = mu_a.double(), mu_b.double()
    got = log_kappa_sigma(mu_a.float(), s_a.float(), mu_b.float(), s_b.float())
    ref = log_kappa_sigma(mu_a, s_a, mu_b, s_b)
    assert bool(torch.isfinite(got).all())
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5)
    # kappa between s=1e-4 and 1e3 is tiny but its log is finite: -3/2*... exact value
    expected = -1.5 * math.log((1e-4 / 1e3 + 1e3 / 1e-4) / 2) - 75.0 / (4 * (1e-8 + 1e6))
    assert float(ref[3]) == pytest.approx(expected, rel=1e-12)


def test_point_to_instance_and_point_rows():
    g = torch.Generator().manual_seed(5)
    mu, lv = torch.randn(7, 3, generator=g, dtype=D64), torch.randn(7, 3, generator=g, dtype=D64)
    c_mu, c_lv = torch.randn(4, 3, generator=g, dtype=D64), torch.randn(4, 1, generator=g, dtype=D64)
    table = log_kappa_to_instances(mu, lv, c_mu, c_lv)
    assert table.shape == (7, 4)
    for i in range(7):
        for k in range(4):
            assert float(table[i, k]) == pytest.approx(float(log_bhattacharyya(mu[i], lv[i], c_mu[k], c_lv[k])))
    # Mixed iso / aniso and the fast form agree with the exact elementwise kernel.
    assert torch.allclose(log_kappa_to_instances(mu, lv[:, :1], c_mu, c_lv),
                          log_bhattacharyya(mu[:, None], lv[:, None, :1], c_mu[None], c_lv[None]), rtol=1e-12)
    assert torch.allclose(log_kappa_to_instances(mu, lv[:, :1], c_mu, c_lv.expand(-1, 3)),
                          log_bhattacharyya(mu[:, None], lv[:, None, :1], c_mu[None], c_lv[None]), rtol=1e-12)
    row = log_kappa_to_point(mu, lv, 2)
    assert torch.allclose(row, torch.stack([log_bhattacharyya(mu[i], lv[i], mu[2], lv[2]) for i in range(7)]))


def test_instance_centres_mean_mu_and_mean_variance():
    g = torch.Generator().manual_seed(6)
    mu = torch.randn(30, 3, generator=g, dtype=D64)
    sigma = torch.exp(torch.randn(30, 3, generator=g, dtype=D64) * 3)
    sigma[0] = 1e-4
    sigma[1] = 1e3
    idx = torch.randint(0, 4, (30,), generator=g)
    idx[:4] = torch.arange(4)
    c_mu, c_lv, counts = instance_centres(mu, logvar_from_sigma(sigma), idx, 4)
    for k in range(4):
        m = idx == k
        assert int(counts[k]) == int(m.sum())
        assert torch.allclose(c_mu[k], mu[m].mean(0))
        assert torch.allclose(torch.exp(c_lv[k]), (sigma[m] ** 2).mean(0), rtol=1e-12)
    # Float32 with sigma down to 1e-30 (variance 1e-60 underflows): log-variance finite.
    lv32 = torch.full((3, 1), 2 * math.log(1e-30))
    _, c_lv32, _ = instance_centres(torch.zeros(3, 3), lv32, torch.zeros(3, dtype=torch.long), 1)
    assert float(c_lv32) == pytest.approx(2 * math.log(1e-30), rel=1e-6)


def test_rbf_is_equal_sigma_bhattacharyya():
    g = torch.Generator().manual_seed(7)
    a, b = torch.randn(20, 3, generator=g, dtype=D64), torch.randn(20, 3, generator=g, dtype=D64)
    s = 0.1
    ref = -((a - b) ** 2).sum(1) / (8 * s * s)
    assert torch.allclose(log_rbf(a, b, s), ref)
    lv = torch.full((20, 1), 2 * math.log(s), dtype=D64)
    assert torch.allclose(log_bhattacharyya(a, lv, b, lv), ref)
