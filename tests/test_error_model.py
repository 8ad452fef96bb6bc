"""The calibrated uncertainty (method/error_model.py): its features, its logistic fit and its wiring."""

import math

import numpy as np
import pytest
import torch

from scene_pe.config import load_config
from scene_pe.labels.label_set import SCANNET20
from scene_pe.method.error_model import (FEATURES, NUM_COEFFICIENTS, NUM_TERMS, check_coefficients, error_probability,
                                         fit_error_model, fit_logistic, vertex_features)
from scene_pe.method.uncertainty import calibrated_uncertainty, calibration_features, probabilistic_uncertainty
from scene_pe.util.typed_config import ConfigError

IS_INST = torch.as_tensor(SCANNET20.train_is_instance)


def sigmoid(t):
    return 1.0 / (1.0 + np.exp(-t))


def test_the_logistic_fit_recovers_the_model_the_labels_were_drawn_from():
    rng = np.random.default_rng(0)
    n = 200_000
    x = np.c_[rng.normal(3.0, 2.0, n), rng.normal(-1.0, 0.5, n), rng.uniform(0.0, 10.0, n)]
    w, b = np.array([0.8, -1.5, 0.2]), -1.0
    y = rng.uniform(size=n) < sigmoid(x @ w + b)
    theta = fit_logistic(x, y)
    # maximum likelihood at n = 200k: standard errors ~0.01-0.02; the ridge (1e-4) shrinks by ~1 %
    np.testing.assert_allclose(theta[:3], w, atol=0.05)
    assert abs(theta[3] - b) < 0.15


def test_each_group_s_mean_probability_is_its_error_rate():
    """At the optimum the bias's gradient, mean(P - y), is 0 (the ridge spares the bias): the fitted
    model is calibrated on average in each group."""
    rng = np.random.default_rng(1)
    n = 5000
    x = rng.normal(size=(n, len(FEATURES)))
    assigned = rng.uniform(size=n) < 0.4
    wrong = rng.uniform(size=n) < np.where(assigned, sigmoid(x[:, 0]), sigmoid(-2.0 + x[:, 1]))
    c = fit_error_model(x, assigned, wrong)
    p = error_probability(x, assigned, c).astype(np.float64)
    for group in (assigned, ~assigned):
        assert p[group].mean() == pytest.approx(wrong[group].mean(), abs=1e-4)
    # a group of one class: zero weights, the smoothed rate (0 + 1/2) / (9 + 1)
    theta = fit_logistic(x[:9], np.zeros(9, bool))
    assert (theta[:-1] == 0).all() and sigmoid(theta[-1]) == pytest.approx(0.05)


def test_error_probability_is_the_sigmoid_of_each_group_s_quadratic_score():
    rng = np.random.default_rng(2)
    f = len(FEATURES)
    x = rng.normal(size=(7, f))
    assigned = np.array([1, 0, 1, 1, 0, 0, 1], bool)
    c = rng.normal(size=NUM_COEFFICIENTS) * 0.1
    t = NUM_TERMS
    assert t == 2 * f + f * (f - 1) // 2

    def score(v, w):  # the module doc's layout, written out
        terms = list(v) + [a * a for a in v] + [v[i] * v[j] for i in range(f) for j in range(i + 1, f)]
        return sigmoid(np.dot(terms, w[:t]) + w[t])

    want = [score(x[i], c[:t + 1] if a else c[t + 1:]) for i, a in enumerate(assigned)]
    np.testing.assert_allclose(error_probability(x, assigned, c), want, rtol=1e-6)
    with pytest.raises(ValueError, match=f"{NUM_COEFFICIENTS} finite coefficients"):
        check_coefficients(c[:-1])
    with pytest.raises(ValueError, match="finite"):
        check_coefficients(np.r_[c[:-1], np.nan])


def test_features_by_hand():
    p = torch.zeros(3, 20, dtype=torch.float64)
    p[0, 0], p[0, 4], p[0, 5] = 0.1, 0.6, 0.3    # wall 0.1, chair 0.6, sofa 0.3
    p[1, 0], p[1, 1], p[1, 4] = 0.5, 0.25, 0.25  # wall, floor, chair
    p[2, 4] = 1.0
    own = torch.tensor([0.8, 0.0, 0.5], dtype=torch.float64)
    other = torch.tensor([0.2, 0.3, 0.0], dtype=torch.float64)
    best = torch.tensor([0.8, 0.3, 0.5], dtype=torch.float64)
    sigma = torch.tensor([[0.1, 0.2, 0.4], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5]], dtype=torch.float64)
    voxel_instance = np.array([0, -1, 0])
    # vertices: two in voxel 0 (instance 0), one in voxel 1 (none), one in voxel 1 but assigned to
    # instance 0 (a superpoint's border: its voxel's majority is unassigned), one in voxel 2
    local = np.array([0, 0, 1, 1, 2])
    vertex_instance = np.array([0, 0, -1, 0, 0])
    x, assigned = vertex_features(p, IS_INST, own, other, best, sigma, voxel_instance, vertex_instance, local)
    assert assigned.tolist() == [True, True, False, True, True]
    logit = lambda q: math.log(q / (1 - q))  # noqa: E731
    ent0 = -(0.1 * math.log(0.1) + 0.6 * math.log(0.6) + 0.3 * math.log(0.3))
    ent1 = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    voxel0 = [logit(0.1), logit(0.6), ent0, (math.log(0.1) + math.log(0.2) + math.log(0.4)) / 3]
    voxel1 = [logit(0.75), logit(0.25), ent1, 0.0]
    size = math.log(4)  # instance 0 has 4 vertices
    floor = math.log(1e-9)
    np.testing.assert_allclose(x[0], [math.log(0.8), math.log(0.2), *voxel0, size])
    np.testing.assert_allclose(x[2], [math.log(0.3), floor, *voxel1, 0.0])      # unassigned: the nearest centre
    np.testing.assert_allclose(x[3], [floor, math.log(0.3), *voxel1, size])     # the border vertex: no own kernel
    assert x[4, 1] == floor                                                     # no other centre reaches it
    # a certain voxel: the probabilities are clipped at 1e-6 before the logit
    np.testing.assert_allclose(x[4, 2:5], [logit(1e-6), logit(1 - 1e-6), 0.0], rtol=1e-9, atol=1e-12)


def test_the_calibrated_kind_applies_the_model_to_the_features_it_was_fitted_on():
    rng = np.random.default_rng(3)
    n = 40
    mu = torch.as_tensor(rng.normal(size=(n, 3)))
    sigma = torch.as_tensor(rng.uniform(0.05, 0.5, size=(n, 3)))
    scores = torch.as_tensor(rng.dirichlet(np.ones(20), size=n))
    inst = np.where(np.arange(n) < 30, np.arange(n) % 3, -1)
    local = rng.integers(0, n, 100)
    c = rng.normal(size=NUM_COEFFICIENTS) * 0.01
    u = calibrated_uncertainty(mu, sigma, scores, inst, inst[local], local, c, instance_classes=IS_INST)
    x, assigned = calibration_features(mu, sigma, scores, inst, inst[local], local, instance_classes=IS_INST)
    np.testing.assert_array_equal(u, error_probability(x, assigned, c))
    assert assigned.tolist() == (inst[local] >= 0).tolist() and ((u > 0) & (u < 1)).all()
    # the kernel column: log kappa to the own centre where assigned (the membership definition's own)
    member = probabilistic_uncertainty(mu, sigma, scores, inst, "membership", instance_classes=IS_INST)[local]
    p_stuff = scores[:, ~IS_INST].sum(1).numpy()[local]
    own = np.exp(x[assigned, 0])
    np.testing.assert_allclose(1.0 - (1.0 - p_stuff[assigned]) * own, member[assigned], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="per vertex"):
        probabilistic_uncertainty(mu, sigma, scores, inst, "calibrated", instance_classes=IS_INST)


def test_a_config_asking_for_calibrated_without_coefficients_says_where_they_come_from():
    with pytest.raises(ConfigError, match="calibration.*tune_inference.py --write"):
        load_config(None, ["inference.probabilistic.uncertainty=calibrated"])
    c = [0.5] * NUM_COEFFICIENTS
    cfg = load_config(None, ["inference.probabilistic.uncertainty=calibrated",
                             f"inference.probabilistic.calibration={c}"])
    assert cfg.inference.probabilistic.calibration == c
