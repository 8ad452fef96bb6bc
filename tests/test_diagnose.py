"""Embedding diagnostics: kernels to GT centres against closed forms."""

from __future__ import annotations

import math

import numpy as np
import torch

from scene_pe.labels.label_set import SCANNET20
from scene_pe.config import load_config
from scene_pe.experiments.diagnose import _scene_kernels
from scene_pe.model.outputs import MarginOutput, ProbabilisticOutput
from scene_pe.model.build import instance_classes

INST_CLASSES = instance_classes(SCANNET20)  # what a head output carries


def _prob(mu, sigma):
    n = len(mu)
    return ProbabilisticOutput(mu=torch.tensor(mu, dtype=torch.float64),
                               sigma=None if sigma is None else torch.tensor(sigma, dtype=torch.float64),
                               logits=torch.zeros(n, 20, dtype=torch.float64),
                               coords=torch.zeros(n, 3, dtype=torch.float64), batch=torch.zeros(n, dtype=torch.long),
                               instance_classes=INST_CLASSES)


def test_probabilistic_own_and_other_kernels_closed_form():
    s = 0.1
    mu = [[0.0, 0, 0], [0.2, 0, 0], [1.0, 0, 0], [1.0, 0.4, 0]]
    inst = torch.tensor([0, 0, 1, 1])
    own, other, sig, *_ = _scene_kernels(_prob(mu, [[s] * 3] * 4), inst, load_config())
    # Instance 0: centre (0.1, 0, 0), variance s^2 (mean of equal variances): beta = 1,
    # kappa = exp(-d^2 / (4 * 2 s^2)) with d = 0.1.
    assert own[0] == own[1] == np.float64(math.exp(-0.01 / (8 * s * s)))
    assert own[2] == own[3] == np.float64(math.exp(-0.04 / (8 * s * s)))
    # Voxel 1 (x = 0.2) to instance 1's centre (1.0, 0.2, 0): d^2 = 0.64 + 0.04.
    np.testing.assert_allclose(other[1], math.exp(-0.68 / (8 * s * s)), rtol=1e-12)
    np.testing.assert_allclose(sig, s, rtol=1e-12)


def test_margin_phi_uses_instance_mean_sigma():
    emb = torch.tensor([[0.0, 0, 0], [0.2, 0, 0], [3.0, 0, 0]], dtype=torch.float64)
    sig = torch.tensor([[0.1] * 3, [0.3] * 3, [0.2] * 3], dtype=torch.float64)
    out = MarginOutput(embedding=emb, sigma=sig, seed=torch.zeros(3), logits=torch.zeros(3, 20),
                       coords=torch.zeros(3, 3), batch=torch.zeros(3, dtype=torch.long), instance_classes=INST_CLASSES)
    own, other, *_ = _scene_kernels(out, torch.tensor([0, 0, 1]), load_config())
    sk = 0.2  # mean of 0.1 and 0.3
    np.testing.assert_allclose(own[:2], math.exp(-0.01 / (2 * sk * sk)), rtol=1e-12)
    assert own[2] == 1.0
    np.testing.assert_allclose(other[2], math.exp(-(2.9 ** 2) / (2 * sk * sk)), rtol=1e-12)


def test_deterministic_uses_rbf_sigma_and_separability():
    cfg = load_config(overrides=["loss.probabilistic.rbf_sigma=0.2", "inference.probabilistic.rbf_sigma=0.2"])
    mu = [[0.0, 0, 0], [0.0, 0, 0], [0.1, 0, 0]]
    own, other, *_ = _scene_kernels(_prob(mu, None), torch.tensor([0, 0, 1]), cfg)
    assert own.tolist() == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(other, math.exp(-0.01 / (8 * 0.04)), rtol=1e-12)
    assert np.mean(own > other) == 1.0


def test_negative_pairs_above_threshold_counted_exactly():
    """Three instances on a line; kappa between a voxel and another instance's centre by the closed form
    exp(-d^2 / (8 s^2)) (equal sigma): which of the 4 x 2 negative pairs exceed 0.9 is known."""
    from scene_pe.experiments.diagnose import NEG_KAPPA, _log_sigma

    s = 0.1
    # centres: instance 0 at 0 (voxels 0, 0), instance 1 at 0.05 (one voxel), instance 2 at 5 (one voxel)
    mu = [[0.0, 0, 0], [0.0, 0, 0], [0.05, 0, 0], [5.0, 0, 0]]
    own, other, sig, high, pairs = _scene_kernels(_prob(mu, [[s] * 3] * 4), torch.tensor([0, 0, 1, 2]),
                                                  load_config())
    assert pairs == 4 * 2
    near = math.exp(-0.05 ** 2 / (8 * s * s))  # 0.969: voxels 0, 1 to instance 1, voxel 2 to instance 0
    assert near > NEG_KAPPA and high == 3
    np.testing.assert_allclose(other[:3], near, rtol=1e-12)
    sem = torch.tensor([4, 4, -100, 4])
    out = _prob(mu, [[s, 2 * s, 4 * s]] * 4)
    np.testing.assert_allclose(_log_sigma(out, sem), np.full(3, math.log(s) + math.log(8) / 3), rtol=1e-12)
