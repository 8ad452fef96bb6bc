"""Greedy clustering at inference, for both heads (paper §3.4, METHOD_NOTES §5, §6).

Both run per scene and share one loop: among the candidate voxels still
unassigned, take the anchor with the highest score (ties: lowest voxel index);
stop when its score is below the threshold; otherwise evaluate the kernel
between the anchor and the remaining voxels, give every one above the
similarity threshold a new instance, and remove them. Clusters smaller than
``min_size`` voxels are dropped and their voxels stay removed (id -1), so they
cannot seed again.

Two bounds, counted apart (an untrained or poor network on a full ScanNet scene
can make thousands of anchors whose clusters are too small): ``max_steps``
bounds the anchors tried, kept or dropped (the work: one kernel row each;
every step removes at least its anchor, so the scene's candidate count bounds
it too), ``max_clusters`` the clusters kept. A loop stopped by either is no
longer silent: ``Clusters.limit`` says which bound, with the kept and dropped
counts and the candidate voxels left unassigned, and the inference path logs
it once per scene (inference/vertices.py).

Speed (one kernel row per step, but only where members can be): voxels are
sorted along the embedding's x axis once, and a step only evaluates the slab
|e_x - e_x(anchor)| <= R that provably contains every member:
- probabilistic: every term of -log kappa is >= 0, so a member has
  dx^2 / (4 (v_x + v_x(anchor))) <= -log tau, R = sqrt(4 (max v_x + v_x(anchor)) ln(1/tau));
  this holds for the 6-D deterministic embedding too (the extra dims only add
  non-negative terms), so the slab on the first dim stays a necessary condition;
- margin: phi >= t needs dx^2 / (2 s_x(anchor)^2) <= -ln t.
The result is the same as evaluating the full row (tested against a plain
full-row implementation on torch's ``kernels.log_bhattacharyya``). The row
itself is numpy float64 in the form of ``kernels.log_kappa_to_instances``.

Probabilistic head: score = max over the instance classes of P (softmax; the
label set's, carried by the head output as ``instance_classes``);
anchor class l0 = that argmax; members: kappa(e_i, e_i0) >= tau. Class and
confidence (``class_from``): "anchor" (the paper): class l0, confidence =
P[i0, l0] * mean over members of P[i, l0] (anchor certainty times how much the
members agree with its class); "members" (default): class = argmax over the
instance classes of the members' mean scores, confidence = that mean score. A
misclassified anchor (e.g. a toilet voxel scored cabinet) then no longer
mislabels a well-clustered instance.
Learnable margin: score = seed; members: phi >= phi_threshold (0.5) with the
anchor's embedding as centre and the anchor's sigma; class = argmax over
instance classes of the members' mean scores; confidence = seed[i0] * mean
over members of P[i, class].

``exclude_stuff`` (default True, a ScanNet choice; the paper clusters every
point): voxels whose argmax over all classes is a stuff class (wall, floor) are never
anchors nor members, so instances do not swallow adjacent wall/floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import torch

from scene_pe.method.error_model import check_coefficients
from scene_pe.method.uncertainty import Uncertainty
from scene_pe.model.outputs import MarginOutput, ProbabilisticOutput

_SLACK = 1.001  # widen the slab bounds: float rounding must never cut a member


@dataclass(frozen=True)
class ClusteringConfig:
    tau: float = 0.35  # kappa threshold (paper, fitted on validation)
    score_threshold: float = 0.2  # stop when the best anchor score is below
    min_size: int = 50  # voxels; smaller clusters are dropped
    max_steps: int = 50000  # anchors tried (kept or dropped clusters); see the module docstring
    max_clusters: int = 1000  # clusters kept (ScanNet scenes have up to ~100 objects)
    exclude_stuff: bool = True
    rbf_sigma: float = 0.1  # deterministic embedding only; same as the loss
    # class of an instance: the anchor's argmax class (paper) or the argmax of
    # the members' mean scores (robust to a misclassified anchor; default)
    class_from: Literal["anchor", "members"] = "members"
    # per-voxel uncertainty of the prediction (method/uncertainty.py): "sigma" is the
    # paper's; "membership" flags wrong assignments (AUROC in docs/method.md); "blend" adds
    # the chance that a voxel is a missed object (1 - its largest instance-class probability):
    # better among object vertices, but its all-vertex AUROC moved 0.65-0.85 between seeds, so
    # membership stays the default (docs/results.md, "Uncertainty populations")
    # (its config value; a checkpoint fitted at the end of training switches to "calibrated", with
    # the coefficients below: scene_pe/method/error_model.py)
    uncertainty: Uncertainty = "membership"
    blend_weight: float = 0.5  # "blend": weight of membership; 1 - it: of 1 - max instance-class probability
    calibration: list[float] = field(default_factory=list)  # "calibrated": the fitted model's coefficients

    def __post_init__(self):
        if self.uncertainty == "calibrated":
            try:
                check_coefficients(self.calibration)
            except ValueError as e:
                raise ValueError(f"uncertainty 'calibrated': {e} in 'calibration' (a fitted checkpoint carries "
                                 "them: train.fit at the end of training, or tools/tune_inference.py --write RUN)"
                                 ) from None


@dataclass(frozen=True)
class MarginClusteringConfig:
    seed_threshold: float = 0.5
    phi_threshold: float = 0.5
    min_size: int = 50
    max_steps: int = 50000  # anchors tried (kept or dropped clusters)
    max_clusters: int = 1000  # clusters kept
    exclude_stuff: bool = True


@dataclass
class Clusters:
    """Result for one scene (CPU tensors).

    instance:   (N,) long, instance index per voxel in [0, M), -1 for none.
    classes:    (M,) long training ids (instance classes only).
    confidence: (M,) float in [0, 1].
    anchors:    (M,) long voxel index of each instance's anchor.
    limit:      "" when the loop ran to its end (no candidate left, or the best score below the
                threshold); else which bound stopped it, with the counts (module docstring).
    """

    instance: torch.Tensor
    classes: torch.Tensor
    confidence: torch.Tensor
    anchors: torch.Tensor
    limit: str = ""

    @property
    def num_instances(self) -> int:
        return int(self.classes.numel())


def _next_alive(visit: np.ndarray, alive: np.ndarray, pos: int, block: int = 1024) -> int:
    """First position >= pos in ``visit`` whose voxel is alive (visit.size if none), by blocks."""
    while pos < visit.size:
        hit = alive[visit[pos : pos + block]]
        if hit.any():
            return pos + int(hit.argmax())
        pos += block
    return visit.size


def _greedy(
    score: np.ndarray,
    candidate: np.ndarray,
    x: np.ndarray,
    radius_of: Callable[[int], float],
    members_of: Callable[[np.ndarray, int], np.ndarray],
    threshold: float,
    min_size: int,
    max_steps: int,
    max_clusters: int,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Shared loop; members_of(voxel_idx, anchor) -> bool mask over voxel_idx.

    Anchors are visited in one precomputed order (score descending, index
    ascending), skipping voxels already taken. Returns per-voxel instance ids,
    the anchors of the kept clusters and the ``Clusters.limit`` message.
    """
    n = score.shape[0]
    instance = np.full(n, -1, dtype=np.int64)
    alive = candidate.copy()
    cand = np.flatnonzero(candidate)
    visit = cand[np.lexsort((cand, -score[cand]))]
    by_x = np.argsort(x, kind="stable")
    x_sorted = x[by_x]
    anchors: list[int] = []
    pos, steps, bound = 0, 0, ""
    while True:
        pos = _next_alive(visit, alive, pos)
        if pos == visit.size or score[visit[pos]] < threshold:
            break
        if steps == max_steps or len(anchors) == max_clusters:
            bound = f"max_steps={max_steps}" if steps == max_steps else f"max_clusters={max_clusters}"
            break
        steps += 1
        a = int(visit[pos])
        r = radius_of(a)
        lo = np.searchsorted(x_sorted, x[a] - r, side="left")
        hi = np.searchsorted(x_sorted, x[a] + r, side="right")
        near = by_x[lo:hi]
        near = near[alive[near]]
        idx = near[members_of(near, a)]
        alive[idx] = False
        alive[a] = False  # the anchor always belongs to its cluster
        if not (idx == a).any():
            idx = np.append(idx, a)
        if idx.size >= min_size:
            instance[idx] = len(anchors)
            anchors.append(a)
    limit = ""
    if bound:
        left = int((alive[visit] & (score[visit] >= threshold)).sum())
        limit = (f"greedy clustering stopped at {bound}: {len(anchors)} clusters kept, {steps - len(anchors)} "
                 f"dropped (< min_size={min_size}), {left} candidate voxels with score >= {threshold:g} "
                 "left unassigned")
    return instance, np.asarray(anchors, dtype=np.int64), limit


def _candidates(scores: np.ndarray, exclude_stuff: bool, instance_classes: np.ndarray) -> np.ndarray:
    if not exclude_stuff:
        return np.ones(scores.shape[0], dtype=bool)
    return instance_classes[scores.argmax(1)]


def _as_mask(instance_classes, num_columns: int) -> np.ndarray:
    """(C,) bool numpy mask of the instance classes; C must match the score columns."""
    m = instance_classes.detach().cpu().numpy() if isinstance(instance_classes, torch.Tensor) \
        else np.asarray(instance_classes)
    if m.dtype != bool or m.shape != (num_columns,):
        raise ValueError(f"instance_classes must be ({num_columns},) bool, got {m.shape} {m.dtype}")
    return m


def _member_mean(scores: np.ndarray, instance: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Per instance k: mean over its voxels of scores[:, classes[k]] (vectorised)."""
    m = instance >= 0
    k = instance[m]
    sums = np.bincount(k, weights=scores[np.flatnonzero(m), classes[k]], minlength=classes.size)
    return sums / np.maximum(np.bincount(k, minlength=classes.size), 1)


def _member_means(scores: np.ndarray, instance: np.ndarray, k: int) -> np.ndarray:
    """(k, C): mean over each instance's voxels of every column of ``scores``."""
    m = instance >= 0
    counts = np.maximum(np.bincount(instance[m], minlength=k), 1)
    return np.stack([np.bincount(instance[m], weights=col[m], minlength=k) for col in scores.T], 1) \
        / counts[:, None]


def _result(instance, classes, confidence, anchors, limit: str) -> Clusters:
    return Clusters(torch.as_tensor(instance), torch.as_tensor(classes, dtype=torch.long),
                    torch.as_tensor(confidence), torch.as_tensor(anchors, dtype=torch.long), limit)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def cluster_probabilistic_scene(
    mu: torch.Tensor, sigma: torch.Tensor | None, scores: torch.Tensor, cfg: ClusteringConfig = ClusteringConfig(),
    *, instance_classes,
) -> Clusters:
    """One scene: mu (N, E) (E = 3, or 6: ExtDim), sigma (N, D) or None (RBF), scores P (N, C);
    ``instance_classes`` (C,) bool: the classes with instances (a head output's)."""
    # float64: the row is cheap, and tiny variances neither underflow nor round.
    mu_n, p = _np(mu).astype(np.float64), _np(scores)
    is_inst = _as_mask(instance_classes, p.shape[1])
    inst_ids = np.flatnonzero(is_inst)
    if sigma is None:
        log_var = np.full((mu_n.shape[0], 1), 2.0 * math.log(cfg.rbf_sigma))
    else:
        log_var = 2.0 * np.log(_np(sigma).astype(np.float64))
    var = np.exp(log_var)
    reps = mu_n.shape[1] if var.shape[1] == 1 else 1  # isotropic: the term counts on every axis
    half_lv = 0.25 * reps * log_var.sum(1)  # per-voxel term of log kappa (kernels.py)
    neg_log_tau = -math.log(cfg.tau)
    inst_scores = p[:, inst_ids]
    best, best_cls = inst_scores.max(1), inst_ids[inst_scores.argmax(1)]
    cand = _candidates(p, cfg.exclude_stuff, is_inst)
    vmax_x = float(var[cand, 0].max()) if cand.any() else 0.0

    def radius_of(a: int) -> float:
        return math.sqrt(4.0 * (vmax_x + float(var[a, 0])) * neg_log_tau) * _SLACK

    def members_of(idx: np.ndarray, a: int) -> np.ndarray:
        vs = var[idx] + var[a]
        quad = ((mu_n[idx] - mu_n[a]) ** 2 / vs).sum(1)
        logk = -0.25 * quad - 0.5 * reps * np.log(vs).sum(1) + half_lv[idx] + half_lv[a] \
            + 0.5 * reps * var.shape[1] * math.log(2.0)
        return logk >= -neg_log_tau

    instance, anchors, limit = _greedy(best, cand, mu_n[:, 0], radius_of, members_of,
                                       cfg.score_threshold, cfg.min_size, cfg.max_steps, cfg.max_clusters)
    if cfg.class_from == "anchor":
        classes = best_cls[anchors]
        conf = best[anchors] * _member_mean(p, instance, classes)
    else:
        means = _member_means(p[:, inst_ids], instance, anchors.size)  # (K, instance classes)
        classes = inst_ids[means.argmax(1)] if anchors.size else anchors
        conf = means.max(1) if anchors.size else np.zeros(0)
    return _result(instance, classes, conf.astype(p.dtype), anchors, limit)


def cluster_margin_scene(
    embedding: torch.Tensor, sigma: torch.Tensor, seed: torch.Tensor, scores: torch.Tensor,
    cfg: MarginClusteringConfig = MarginClusteringConfig(), *, instance_classes,
) -> Clusters:
    """One scene: embedding (N, 3), sigma (N, D), seed (N,), scores P (N, C), instance_classes (C,) bool."""
    emb, sig = _np(embedding).astype(np.float64), _np(sigma).astype(np.float64)
    sd, p = _np(seed), _np(scores)
    is_inst = _as_mask(instance_classes, p.shape[1])
    inst_ids = np.flatnonzero(is_inst)
    neg_log_t = -math.log(cfg.phi_threshold)

    def radius_of(a: int) -> float:
        return math.sqrt(2.0 * neg_log_t) * float(sig[a, 0]) * _SLACK

    def members_of(idx: np.ndarray, a: int) -> np.ndarray:
        return ((emb[idx] - emb[a]) ** 2 / (2.0 * sig[a] ** 2)).sum(1) <= neg_log_t

    instance, anchors, limit = _greedy(sd, _candidates(p, cfg.exclude_stuff, is_inst), emb[:, 0], radius_of,
                                       members_of, cfg.seed_threshold, cfg.min_size, cfg.max_steps,
                                       cfg.max_clusters)
    m = instance >= 0
    k = instance[m]
    sums = np.zeros((anchors.size, inst_ids.size))
    np.add.at(sums, k, p[m][:, inst_ids])
    mean_scores = sums / np.maximum(np.bincount(k, minlength=anchors.size), 1)[:, None]
    cls_col = mean_scores.argmax(1) if anchors.size else np.zeros(0, dtype=np.int64)
    classes = inst_ids[cls_col]
    conf = sd[anchors] * mean_scores[np.arange(anchors.size), cls_col]
    return _result(instance, classes, conf.astype(p.dtype), anchors, limit)


def cluster_probabilistic(out: ProbabilisticOutput, cfg: ClusteringConfig = ClusteringConfig()) -> list[Clusters]:
    """Every scene of a batch, in scene-index order (instance ids per scene's voxels)."""
    res = []
    for s in torch.unique_consecutive(out.batch).tolist():  # scenes are contiguous
        m = out.batch == s
        sig = out.sigma[m] if out.sigma is not None else None
        res.append(cluster_probabilistic_scene(out.mu[m], sig, out.scores[m], cfg,
                                               instance_classes=out.instance_classes))
    return res


def cluster_margin(out: MarginOutput, cfg: MarginClusteringConfig = MarginClusteringConfig()) -> list[Clusters]:
    """Every scene of a batch, in scene-index order (instance ids per scene's voxels)."""
    res = []
    for s in torch.unique_consecutive(out.batch).tolist():  # scenes are contiguous
        m = out.batch == s
        res.append(cluster_margin_scene(out.embedding[m], out.sigma[m], out.seed[m], out.scores[m], cfg,
                                        instance_classes=out.instance_classes))
    return res
