"""Per-voxel uncertainty of the probabilistic head's prediction (``inference.probabilistic.uncertainty``).

What it should answer: how likely is this voxel's final assignment (to a
predicted instance, or to none) wrong? Measured by the AUROC of
scene_pe/evaluation/uncertainty.py; figures in docs/method.md.

- ``sigma``: the paper's (Fig. 7): the geometric mean of the voxel's predicted
  sigma, metres. It does not answer the question: the entropy regulariser pulls
  sigma down wherever no instance loss acts (stuff), and on instances sigma
  grows with the instance's size, not with the voxel's chance of error.
- ``membership``: the loss trains kappa(e_i, c_k) as the probability that voxel
  i belongs to instance k (L_InsCE is a BCE with kappa as the probability,
  eq. 5), and P as the class probability. With centres c_k of the *final*
  clusters (eq. 4b, 4c over each cluster's voxels) and p_stuff = P(wall) +
  P(floor), the probability that the assignment is right is
      assigned to k:  (1 - p_stuff) * kappa(e_i, c_k)      (an instance voxel, and k's)
      unassigned:     p_stuff * (1 - max_k kappa(e_i, c_k)) (stuff, and no instance's)
  and the uncertainty is 1 minus it, in [0, 1].
- ``blend``: w * membership + (1 - w) * (1 - max_l P[i, l] over the instance
  classes), w = ``blend_weight`` (0.5). ``membership`` reads a voxel the network
  calls wall or floor, and that no instance claims, as certain: right if the
  class is right. Most wrong instance vertices are exactly that (a missed
  object called wall / floor), so among object vertices it ranks poorly. The
  second term is high wherever no instance class is likely, which flags those
  misses; it also lifts every wall / floor voxel, so the all-vertex ranking
  depends on how the two scales meet: not the default (figures:
  docs/results.md, "Uncertainty populations").
- ``calibrated``: the probability that the assignment is wrong, from a logistic
  model of the kernels to the own and the nearest other centre, the class
  probabilities, sigma and the instance's size, fitted on held-out val scenes at the end of training
  (scene_pe/method/error_model.py; coefficients ``calibration``). Among object
  vertices it ranks far better than ``membership`` without losing the
  all-vertex figure (docs/results.md, "Uncertainty populations"), so a fitted
  checkpoint uses it; without coefficients there is nothing to apply.
- ``margin``: as ``membership``, with the kernel margin
  max(kappa(e_i, c_k) - max_{j != k} kappa(e_i, c_j), 0) in place of the own
  kernel for assigned voxels: a voxel that is as close to a second instance
  centre as to its own is ambiguous.

Cost: the own-centre kernel per voxel, plus the kernels to other centres for
the pairs close enough to reach ``KAPPA_EPS`` (pruned by one N x K distance
matrix, chunked by ``max_pairs``): a fraction of the clustering's time.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from scene_pe.method.error_model import error_probability, vertex_features
from scene_pe.method.kernels import instance_centres, log_bhattacharyya, logvar_from_sigma, rbf_logvar

Uncertainty = Literal["sigma", "membership", "margin", "blend", "calibrated"]
UNCERTAINTIES = ("sigma", "membership", "margin", "blend", "calibrated")
# Kernels to other centres below this count as 0: under float32's resolution of
# values near 1 (6e-8), so the float32 uncertainty barely changes, and it lets the
# kernel skip every (voxel, centre) pair that is far apart.
KAPPA_EPS = 1e-7
_SLACK = 1.001
_GAP_SLACK = 1e-3  # m^2; float32 rounds |mu - mean|^2 <= ~50 m^2 (a room) to ~3e-6


def centre_kernels(mu: torch.Tensor, logvar: torch.Tensor, instance: torch.Tensor,
                   rows_needed: torch.Tensor | None = None, max_pairs: int = 1 << 22, eps: float = KAPPA_EPS
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Kernels between every voxel and the centres of the clusters (instance >= 0).

    Returns, per voxel: kappa to its own cluster's centre (0 when unassigned),
    the largest kappa to any other cluster's centre, and the largest over all
    clusters (0 without clusters). Kernels below ``eps`` count as 0. With
    ``rows_needed`` (bool mask), the kernels to other centres are computed for
    those voxels only (other = 0 and best = own elsewhere).

    Only (voxel, centre) pairs that can reach ``eps`` are evaluated: beta <= 1 and
    each axis term is >= d^2 / (4 (max_d v_i + max_d v_k)), so kappa >= eps needs
    ||mu_i - c_k||^2 <= 4 (max v_i + max v_k) ln(1/eps). The squared distances of
    all pairs are one matrix product (cheap); the kernel itself is computed for the
    few pairs that pass, typically a handful of centres per voxel.
    """
    n = mu.shape[0]
    a = instance >= 0
    num = int(instance.max()) + 1 if bool(a.any()) else 0
    own = torch.zeros(n, dtype=mu.dtype, device=mu.device)
    other = torch.zeros(n, dtype=mu.dtype, device=mu.device)
    if num == 0:
        return own, other, other.clone()
    c_mu, c_lv, _ = instance_centres(mu[a], logvar[a], instance[a], num)
    own[a] = log_bhattacharyya(mu[a], logvar[a], c_mu[instance[a]], c_lv[instance[a]]).exp()
    # ||mu_i - c_k||^2 - reach_i - reach_k <= 0, reach = 4 max(v) ln(1/eps) widened by
    # _SLACK, as one fused product per chunk: a_i + b_k - 2 mu_i . c_k. In float32 (half
    # the memory traffic of this, the costly step) on coordinates centred on the scene,
    # so |mu|^2 is small and _GAP_SLACK m^2 covers the rounding of the expanded square.
    reach = 4.0 * (-math.log(eps)) * _SLACK
    origin = mu.mean(0)
    sub = torch.arange(n, device=mu.device) if rows_needed is None else torch.nonzero(rows_needed).squeeze(1)
    m32, c32 = (mu[sub] - origin).float(), (c_mu - origin).float()
    a_i = (m32 * m32).sum(1) - reach * logvar[sub].max(1).values.exp().float()
    b_k = (c32 * c32).sum(1) - reach * c_lv.max(1).values.exp().float()
    step = max(1, max_pairs // max(sub.numel(), 1))
    for k0 in range(0, num, step):
        k1 = min(num, k0 + step)
        gap = torch.addmm(b_k[None, k0:k1], m32, c32[k0:k1].T, alpha=-2.0)  # (n, kc) b_k - 2 mu.c
        rows, cols = torch.nonzero(gap <= _GAP_SLACK - a_i[:, None], as_tuple=True)
        rows, cols = sub[rows], cols + k0
        keep = instance[rows] != cols  # own centre out
        rows, cols = rows[keep], cols[keep]
        kap = log_bhattacharyya(mu[rows], logvar[rows], c_mu[cols], c_lv[cols]).exp()
        kap = torch.where(kap >= eps, kap, torch.zeros_like(kap))
        other = other.scatter_reduce(0, rows, kap, reduce="amax")
    return own, other, torch.maximum(own, other)


def probabilistic_uncertainty(mu: torch.Tensor, sigma: torch.Tensor | None, scores: torch.Tensor,
                              instance: np.ndarray | torch.Tensor, kind: Uncertainty,
                              rbf_sigma: float = 0.1, *, instance_classes: torch.Tensor,
                              blend_weight: float = 0.5) -> np.ndarray:
    """(N,) float32 uncertainty of one scene's voxels under ``kind`` (module docstring).

    mu (N, E), sigma (N, D) or None (deterministic: RBF kernel with ``rbf_sigma``),
    scores P (N, C) softmax, instance (N,) final cluster per voxel (-1 none),
    instance_classes (C,) bool (stuff classes: False). Not the ``calibrated`` kind, which is
    per vertex (``calibrated_uncertainty``).
    """
    if kind == "sigma":
        if sigma is None:  # deterministic embedding: no sigma, no uncertainty
            return np.zeros(mu.shape[0], dtype=np.float32)
        return sigma.detach().float().log().mean(dim=1).exp().cpu().numpy()
    if kind not in UNCERTAINTIES:
        raise ValueError(f"unknown uncertainty {kind!r}; one of {UNCERTAINTIES}")
    if kind == "calibrated":  # per vertex, not per voxel: calibrated_uncertainty
        raise ValueError("the calibrated uncertainty is per vertex: calibrated_uncertainty")
    inst = torch.as_tensor(np.asarray(instance), device=mu.device).long()
    # membership needs the other centres only where nothing is assigned (the max over all)
    own, other, best = _kernels(mu, sigma, inst, rbf_sigma, all_rows=kind == "margin")
    inst_cols = torch.as_tensor(instance_classes, dtype=torch.bool).to(scores.device)
    p = scores.detach().double()
    p_stuff = p[:, ~inst_cols].sum(1).clamp(0.0, 1.0)
    member = (own - other).clamp_min(0.0) if kind == "margin" else own
    right = torch.where(inst >= 0, (1.0 - p_stuff) * member, p_stuff * (1.0 - best))
    if kind == "blend":
        missed = 1.0 - p[:, inst_cols].max(1).values  # high where no instance class is likely
        return (blend_weight * (1.0 - right) + (1.0 - blend_weight) * missed).float().cpu().numpy()
    return (1.0 - right).float().cpu().numpy()


def _kernels(mu: torch.Tensor, sigma: torch.Tensor | None, inst: torch.Tensor, rbf_sigma: float, all_rows: bool
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``centre_kernels`` of a head's outputs, in float64 (kernels near 1 and tiny variances keep
    their digits, the clustering's choice too); ``all_rows`` False: the kernels to other centres
    only where nothing is assigned."""
    mu64 = mu.detach().double()
    logvar = rbf_logvar(mu.shape[0], rbf_sigma, mu64) if sigma is None else logvar_from_sigma(sigma.detach().double())
    return centre_kernels(mu64, logvar, inst, rows_needed=None if all_rows else inst < 0)


def calibration_features(mu: torch.Tensor, sigma: torch.Tensor | None, scores: torch.Tensor, voxel_instance,
                         vertex_instance, local, rbf_sigma: float = 0.1, *, instance_classes: torch.Tensor
                         ) -> tuple[np.ndarray, np.ndarray]:
    """((V, F) features, (V,) assigned) of one scene's vertices, what the ``calibrated`` kind's model is
    fitted on and applied to (method/error_model.py). Voxel arguments as ``probabilistic_uncertainty``'s;
    vertex_instance (V,) each vertex's final instance, local (V,) its voxel."""
    inst = torch.as_tensor(np.asarray(voxel_instance), device=mu.device).long()
    own, other, best = _kernels(mu, sigma, inst, rbf_sigma, all_rows=True)
    return vertex_features(scores, instance_classes, own, other, best, sigma, voxel_instance, vertex_instance, local)


def calibrated_uncertainty(mu: torch.Tensor, sigma: torch.Tensor | None, scores: torch.Tensor, voxel_instance,
                           vertex_instance, local, calibration, rbf_sigma: float = 0.1, *,
                           instance_classes: torch.Tensor) -> np.ndarray:
    """The ``calibrated`` kind, per vertex: (V,) float32 P(wrong) under the fitted ``calibration``
    (arguments as ``calibration_features``')."""
    x, assigned = calibration_features(mu, sigma, scores, voxel_instance, vertex_instance, local, rbf_sigma,
                                       instance_classes=instance_classes)
    return error_probability(x, assigned, calibration)


__all__ = ["Uncertainty", "UNCERTAINTIES", "centre_kernels", "probabilistic_uncertainty", "calibration_features",
           "calibrated_uncertainty"]
