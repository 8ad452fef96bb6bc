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
of a wrong vertex), and a logistic model per group of vertices (assigned to an
instance / not) maps a handful of per-vertex values, their squares and their
pairwise products (``design``) to the probability of being wrong. The model's
coefficients are plain numbers in the checkpoint's fitted record
(``inference.probabilistic.calibration``).

Features (``FEATURES``), all from the head's outputs and the final clusters,
none from the scene's geometry or superpoints, so any input kind and
superpoint mode gets them:
- ``log_kernel``: log kappa to the voxel's own cluster centre (assigned) or
  to the nearest centre (unassigned; log 1e-9 when no centre reaches it);
- ``log_other_kernel``: log kappa to the nearest centre of another cluster
  (assigned: a vertex as close to a second object is ambiguous; log 1e-9
  unassigned or when none reaches it);
- ``logit_stuff``, ``logit_max_instance``: logits of P(wall or floor) and of
  the largest instance-class probability;
- ``entropy``: of the class probabilities;
- ``log_sigma``: mean log sigma (0 for the deterministic embedding);
- ``log_instance_vertices``: log of the vertex count of its instance (0 unassigned).

Per vertex: a vertex takes its voxel's values, but its group, kernel and
instance are its own (``vertex_features``).

Layout of the coefficients: per group (assigned, then unassigned) one weight
per column of ``design(x)`` (the F features, their F squares, their
F (F - 1) / 2 pairwise products in (i, j > i) order) then the bias, on the raw
values: P(wrong) = sigmoid(w . design(x) + b). Why quadratic: on the 120 / 40
ScanNet-like rooms the linear model reached 0.81-0.84 among GT instance
vertices, the quadratic one 0.88-0.91 (docs/results.md, "Uncertainty
populations"); with 400k fitting vertices per run 35 weights a group do not
overfit (select and report halves agree).
"""

from __future__ import annotations

import math

import numpy as np
import torch

FEATURES = ("log_kernel", "log_other_kernel", "logit_stuff", "logit_max_instance", "entropy", "log_sigma",
            "log_instance_vertices")
GROUPS = ("assigned", "unassigned")
_PAIRS = [(i, j) for i in range(len(FEATURES)) for j in range(i + 1, len(FEATURES))]
NUM_TERMS = 2 * len(FEATURES) + len(_PAIRS)  # columns of design()
NUM_COEFFICIENTS = len(GROUPS) * (NUM_TERMS + 1)
_CHUNK = 1 << 16  # rows per design() block: the expanded columns of a large scan never exist at once
_LOG_FLOOR = math.log(1e-9)  # log kappa of a voxel no centre reaches
_P_CLIP = 1e-6  # probabilities clipped before the logit (float32 softmax saturates)
L2 = 1e-4  # ridge on the standardised weights (not the bias): keeps a near-separable group finite


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(_P_CLIP, 1.0 - _P_CLIP)
    return torch.log(p) - torch.log1p(-p)


def vertex_features(scores: torch.Tensor, instance_classes: torch.Tensor, own: torch.Tensor, other: torch.Tensor,
                    best: torch.Tensor, sigma: torch.Tensor | None, voxel_instance, vertex_instance, local
                    ) -> tuple[np.ndarray, np.ndarray]:
    """((V, F) float64 features in ``FEATURES`` order, (V,) bool assigned) of one scene's vertices.

    Per voxel (N): scores (N, C) class probabilities, own / other / best kernel to the voxel's
    own cluster centre / the largest to another / to any (method/uncertainty.py's ``centre_kernels``),
    sigma (N, D) or None, voxel_instance (N,) its final cluster (-1 none); instance_classes (C,)
    bool. Per vertex (V): vertex_instance its final instance (-1 none), local its voxel.
    A vertex is grouped by its own assignment: with superpoints a vertex may be assigned where its
    voxel's majority is not (a superpoint's border); it then gets no kernel (the floor), which
    marks exactly those border vertices.
    """
    p = scores.detach().double()
    cols = torch.as_tensor(instance_classes, dtype=torch.bool, device=p.device)
    per_voxel = torch.stack([_logit(p[:, ~cols].sum(1)), _logit(p[:, cols].max(1).values),
                             -(p * p.clamp_min(1e-300).log()).sum(1),
                             torch.zeros(p.shape[0], dtype=p.dtype, device=p.device) if sigma is None
                             else sigma.detach().double().log().mean(1)], 1).cpu().numpy()
    local = np.asarray(local, dtype=np.int64)
    inst = np.asarray(vertex_instance, dtype=np.int64)
    assigned = inst >= 0
    own_v, best_v = own.detach().double().cpu().numpy()[local], best.detach().double().cpu().numpy()[local]
    same = np.asarray(voxel_instance, dtype=np.int64)[local] == inst
    kernel = np.where(assigned, np.where(same, own_v, 0.0), best_v)
    second = np.where(assigned, other.detach().double().cpu().numpy()[local], 0.0)
    with np.errstate(divide="ignore"):
        log_kernel = np.maximum(np.log(kernel), _LOG_FLOOR)
        log_second = np.maximum(np.log(second), _LOG_FLOOR)
    sizes = np.bincount(inst[assigned], minlength=1)
    log_size = np.where(assigned, np.log(np.maximum(sizes[np.maximum(inst, 0)], 1)), 0.0)
    x = np.column_stack([log_kernel, log_second, per_voxel[local], log_size])
    return x, assigned


def design(x: np.ndarray) -> np.ndarray:
    """(V, NUM_TERMS) the model's columns: the features, their squares, their pairwise products."""
    i, j = np.array(_PAIRS).T
    return np.concatenate([x, x * x, x[:, i] * x[:, j]], axis=1)


def error_probability(x: np.ndarray, assigned: np.ndarray, coefficients) -> np.ndarray:
    """(V,) float32 P(wrong) of vertices with features ``x`` under a fitted model (module doc)."""
    c = check_coefficients(coefficients)
    t = NUM_TERMS
    out = np.empty(len(x), dtype=np.float64)
    group = np.where(np.asarray(assigned, bool), 0, 1)
    w = c.reshape(len(GROUPS), t + 1)
    for a in range(0, len(x), _CHUNK):
        rows = slice(a, a + _CHUNK)
        wg = w[group[rows]]
        out[rows] = (design(x[rows]) * wg[:, :t]).sum(1) + wg[:, t]
    return (0.5 * (1.0 + np.tanh(0.5 * out))).astype(np.float32)  # sigmoid without overflow


def check_coefficients(coefficients) -> np.ndarray:
    c = np.asarray(coefficients, dtype=np.float64).ravel()
    if c.size != NUM_COEFFICIENTS or not np.isfinite(c).all():
        raise ValueError(f"the calibrated uncertainty needs {NUM_COEFFICIENTS} finite coefficients "
                         f"({len(GROUPS)} groups x ({NUM_TERMS} terms of {len(FEATURES)} features + bias)), "
                         f"got {c.size}" + (f", {int((~np.isfinite(c)).sum())} of them not finite"
                                            if c.size == NUM_COEFFICIENTS else ""))
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
    return [float(v) for rows in (assigned, ~assigned) for v in fit_logistic(design(x[rows]), wrong[rows])]


__all__ = ["FEATURES", "GROUPS", "NUM_TERMS", "NUM_COEFFICIENTS", "design", "vertex_features", "error_probability",
           "check_coefficients", "fit_logistic", "fit_error_model"]
