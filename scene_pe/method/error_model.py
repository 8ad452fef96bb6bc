"""The ``calibrated`` uncertainty: the probability that a voxel's final assignment is wrong, learned on held-out scenes.

Why: ``membership`` (scene_pe/method/uncertainty.py) reads the network's own
probabilities as if they were right. On an object the network calls wall, no
instance claims the voxel and P(stuff) is high, so membership calls it
certain: among the vertices of GT instances it flags errors poorly (AUROC
0.67-0.69 on the ScanNet-like rooms; docs/results.md, "Uncertainty
populations"). How wrong the network's probabilities are is a property of the
trained model, so it is measured, not assumed: at the end of training
(scene_pe/inference/fitting.py) the clustered predictions on half of the val
scenes are compared with their GT (scene_pe/evaluation/uncertainty.py's rule
of a wrong vertex), and a logistic model per group of voxels (assigned to an
instance / not) maps a handful of per-voxel values to the probability of
being wrong. The model's coefficients are plain numbers in the checkpoint's
fitted record (``inference.probabilistic.calibration``).

Features (``FEATURES``), all from the head's outputs and the final clusters,
none from the scene's geometry or superpoints, so any input kind and
superpoint mode gets them:
- ``log_kernel``: log kappa to the voxel's own cluster centre (assigned) or
  to the nearest centre (unassigned; log 1e-9 when no centre reaches it);
- ``logit_stuff``, ``logit_max_instance``: logits of P(wall or floor) and of
  the largest instance-class probability;
- ``entropy``: of the class probabilities;
- ``log_sigma``: mean log sigma (0 for the deterministic embedding);
- ``log_instance_voxels``: log of the voxel count of its cluster (0 unassigned).

Layout of the coefficients: per group (assigned, then unassigned) one weight
per feature then the bias, on the raw features: P(wrong) = sigmoid(w . x + b).
"""

from __future__ import annotations

import math

import numpy as np
import torch

FEATURES = ("log_kernel", "logit_stuff", "logit_max_instance", "entropy", "log_sigma", "log_instance_voxels")
GROUPS = ("assigned", "unassigned")
NUM_COEFFICIENTS = len(GROUPS) * (len(FEATURES) + 1)
_LOG_FLOOR = math.log(1e-9)  # log kappa of a voxel no centre reaches
_P_CLIP = 1e-6  # probabilities clipped before the logit (float32 softmax saturates)
L2 = 1e-4  # ridge on the standardised weights (not the bias): keeps a near-separable group finite


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(_P_CLIP, 1.0 - _P_CLIP)
    return torch.log(p) - torch.log1p(-p)


def voxel_features(scores: torch.Tensor, instance_classes: torch.Tensor, own: torch.Tensor, best: torch.Tensor,
                   sigma: torch.Tensor | None, instance: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """((N, F) float64 features in ``FEATURES`` order, (N,) bool assigned) of one scene's voxels.

    scores (N, C) class probabilities, instance_classes (C,) bool, own / best (N,) kernel to the
    own centre / the largest to any centre (method/uncertainty.py's ``centre_kernels``), sigma
    (N, D) or None, instance (N,) final cluster per voxel (-1 none).
    """
    p = scores.detach().double()
    cols = torch.as_tensor(instance_classes, dtype=torch.bool, device=p.device)
    inst = torch.as_tensor(instance, device=p.device).long()
    assigned = inst >= 0
    kernel = torch.where(assigned, own.double(), best.double())
    log_kernel = torch.where(kernel > 0, kernel.clamp_min(1e-300).log(), torch.full_like(kernel, _LOG_FLOOR))
    entropy = -(p * p.clamp_min(1e-300).log()).sum(1)
    log_sigma = torch.zeros_like(entropy) if sigma is None else sigma.detach().double().log().mean(1)
    sizes = torch.bincount(inst[assigned], minlength=1).double() if bool(assigned.any()) else torch.ones(1, dtype=p.dtype)
    log_size = torch.where(assigned, sizes[inst.clamp_min(0)].clamp_min(1.0).log(), torch.zeros_like(entropy))
    x = torch.stack([log_kernel.clamp_min(_LOG_FLOOR), _logit(p[:, ~cols].sum(1)), _logit(p[:, cols].max(1).values),
                     entropy, log_sigma, log_size], 1)
    return x.cpu().numpy(), assigned.cpu().numpy()


def error_probability(x: np.ndarray, assigned: np.ndarray, coefficients) -> np.ndarray:
    """(N,) float32 P(wrong) of voxels with features ``x`` under a fitted model (module doc)."""
    c = check_coefficients(coefficients)
    f = len(FEATURES)
    out = np.empty(len(x), dtype=np.float64)
    for g, rows in enumerate((assigned, ~assigned)):
        w, b = c[g * (f + 1): g * (f + 1) + f], c[g * (f + 1) + f]
        out[rows] = x[rows] @ w + b
    return (0.5 * (1.0 + np.tanh(0.5 * out))).astype(np.float32)  # sigmoid without overflow


def check_coefficients(coefficients) -> np.ndarray:
    c = np.asarray(coefficients, dtype=np.float64).ravel()
    if c.size != NUM_COEFFICIENTS or not np.isfinite(c).all():
        raise ValueError(f"the calibrated uncertainty needs {NUM_COEFFICIENTS} finite coefficients "
                         f"({len(GROUPS)} groups x ({len(FEATURES)} features + bias)), got {c.size}")
    return c


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2) -> np.ndarray:
    """(F + 1,) weights and bias on the raw features maximising the mean log-likelihood of ``y``
    (bool) under sigmoid(w . x + b), with ``l2`` on the standardised weights. A group with one
    class only (or none) gets zero weights and the smoothed log-odds of its rate as the bias."""
    from scipy.optimize import minimize

    y = np.asarray(y, dtype=np.float64)
    f = x.shape[1]
    pos = y.sum()
    if pos == 0 or pos == y.size:
        rate = (pos + 0.5) / (y.size + 1.0)
        return np.r_[np.zeros(f), math.log(rate / (1.0 - rate))]
    mean, std = x.mean(0), x.std(0)
    std = np.where(std > 1e-12, std, 1.0)  # a constant feature keeps weight 0 (its l2 pulls it there)
    z = (x - mean) / std

    def loss(theta):
        t = z @ theta[:f] + theta[f]
        q = 0.5 * (1.0 + np.tanh(0.5 * t))
        value = np.mean(np.logaddexp(0.0, t) - y * t) + l2 * theta[:f] @ theta[:f]
        grad = np.r_[z.T @ (q - y) / y.size + 2.0 * l2 * theta[:f], np.mean(q - y)]
        return value, grad

    theta = minimize(loss, np.zeros(f + 1), jac=True, method="L-BFGS-B").x
    w = theta[:f] / std
    return np.r_[w, theta[f] - w @ mean]


def fit_error_model(x: np.ndarray, assigned: np.ndarray, wrong: np.ndarray) -> list[float]:
    """The coefficients (``NUM_COEFFICIENTS`` floats) of one logistic model per group."""
    x, assigned, wrong = np.asarray(x, np.float64), np.asarray(assigned, bool), np.asarray(wrong, bool)
    return [float(v) for rows in (assigned, ~assigned) for v in fit_logistic(x[rows], wrong[rows])]


__all__ = ["FEATURES", "GROUPS", "NUM_COEFFICIENTS", "voxel_features", "error_probability", "check_coefficients",
           "fit_logistic", "fit_error_model"]
