"""Losses of the probabilistic-embedding head (paper §3.3-3.5, eq. 4-17).

    L = w_ins (L_InsCE + L_Dice) + w_score L_Score + w_reg L_Reg + w_sem L_Sem

Decisions (config values, see :class:`ProbabilisticLossConfig`):
- Instance centres c_k: mean of mu and mean of the variances of the
  instance's labelled voxels (eq. 4b, 4c), with gradient.
- L_InsCE (eq. 5): BCE over all (labelled voxel, instance) pairs of a scene,
  kappa as probability, divided by N K of the scene. -log(1 - kappa) is
  computed from log kappa (never from 1 - kappa, which rounds to 0): exact up
  to kappa = 1 - kappa_eps, and beyond it continued along its tangent, so
  coinciding embeddings give a large finite loss, not inf, and a negative pair
  deep in the degenerate state (kappa -> 1, eq. 7) keeps the gradient
  (1 - kappa_eps) / kappa_eps per unit of log kappa that pushes it apart (a
  clamp would make it exactly zero there). Member pairs are evaluated
  elementwise (each voxel has one instance), the (N, K) table only for
  -log(1 - kappa) and the Dice denominators.
- Dice (eq. 6): ``dice='per_instance'`` (default) averages -log Dice_k over
  the instances so small objects weigh as much as large ones (ScanNet sizes
  span 3 orders of magnitude); ``'global'`` is eq. 6 literally (sums over k
  inside the log). Computed from logsumexp, finite when kappa underflows.
- L_Reg (eq. 8): Gaussian entropy per voxel; ``reg_reduction='mean'`` (default)
  averages over a scene's voxels. Summed over ~1e5 voxels it would dominate.
  Per-voxel gradient ratio reg : instance terms is w_reg with 'mean'; the
  paper's (sum over 1e4 PartNet points, weight 1e-3) corresponds to
  w_reg = 10 with 'mean'. Deterministic embeddings have no L_Reg.
- L_Score (eq. 11, 12): target Q (detached) on the label set's C classes:
  Q[i, class(k)] = kappa(e_i, c_k) for the voxel's own instance k; voxels of
  wall/floor get ``stuff_target='onehot'`` (Q[i, y_i] = 1, the cross entropy
  of eq. 9 restricted to stuff) or ``'none'`` (no target). Mean over the
  scene's labelled voxels and the L = C classes (the paper's 1/(N L)).
  ``score_loss='centre_aware'`` (default) is eq. 12, -Q log P;
  ``'mse'`` is the seed loss of Neven et al. that the paper's Table 4 "Loss"
  row puts in its place: (P - Q)^2 with the same Q, i.e. each class channel
  of P regressed to the kernel value on its instances' voxels and to 0 on
  every other voxel (background, other classes), same 1/(N L) mean. P stays
  the softmax (head and clustering unchanged: only the loss differs).
- L_Sem: optional plain cross entropy over all labelled voxels (eq. 9 times L),
  ``w_sem = 0`` by default as in the paper (it would erase the centre-awareness
  of P). Ignore label -100 is skipped.
- Deterministic embedding (``sigma is None``): the RBF kernel of
  :mod:`kernels`, i.e. every voxel gets the fixed sigma ``rbf_sigma``, in as
  many dims as mu has (3, or 6 for the ExtDim embedding).
- Memory: the (N, K) pairs are processed in chunks of instances holding at most
  ``max_pairs`` pairs; with ``checkpoint`` each chunk is recomputed in the
  backward pass, so only one chunk's (N, k, 3) intermediates live at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from scene_pe.method.kernels import (
    instance_centres,
    log_bhattacharyya,
    log_kappa_to_instances,
    logvar_from_sigma,
    rbf_logvar,
)
from scene_pe.method.losses import (
    LossResult,
    SceneTargets,
    chunk_size,
    mean_or_zero,
    split_scenes,
)
from scene_pe.model.outputs import ProbabilisticOutput, as_float32

LOG2 = math.log(2.0)
GAUSS_ENTROPY_CONST = 1.5 * math.log(2.0 * math.pi * math.e)  # 3/2 ln(2 pi e)


@dataclass(frozen=True)
class ProbabilisticLossConfig:
    w_ins: float = 1.0
    w_score: float = 1.0
    w_reg: float = 0.001
    w_sem: float = 0.0
    reg_reduction: Literal["mean", "sum"] = "mean"  # over a scene's voxels
    dice: Literal["per_instance", "global"] = "per_instance"  # 'global': eq. 6 literally
    stuff_target: Literal["onehot", "none"] = "onehot"
    score_loss: Literal["centre_aware", "mse"] = "centre_aware"  # 'mse': Neven et al.'s seed loss
    rbf_sigma: float = 0.1  # metres; deterministic embedding only (kernels.py)
    kappa_eps: float = 1e-6  # BCE negatives: exact up to kappa = 1 - kappa_eps, linear in log kappa beyond
    max_pairs: int = 1 << 22  # (voxel, instance) pairs per chunk
    checkpoint: bool = True  # recompute chunks in backward (bounded memory)

    def __post_init__(self) -> None:
        if self.reg_reduction not in ("mean", "sum"):
            raise ValueError(f"reg_reduction must be 'mean' or 'sum', not {self.reg_reduction!r}")
        if self.dice not in ("per_instance", "global"):
            raise ValueError(f"dice must be 'per_instance' or 'global', not {self.dice!r}")
        if self.stuff_target not in ("onehot", "none"):
            raise ValueError(f"stuff_target must be 'onehot' or 'none', not {self.stuff_target!r}")
        if self.score_loss not in ("centre_aware", "mse"):
            raise ValueError(f"score_loss must be 'centre_aware' or 'mse', not {self.score_loss!r}")


def log_one_minus_kappa(x: torch.Tensor, kappa_eps: float) -> torch.Tensor:
    """log(1 - kappa) from x = log kappa: exact for kappa <= 1 - kappa_eps, tangent beyond.

    log(-expm1(x)) has absolute error below one float ulp where kappa is tiny and
    no cancellation near kappa = 1 (x is small, not 1 - kappa). Past x0 =
    log(1 - kappa_eps) it continues along its tangent, slope -(1 - kappa_eps) /
    kappa_eps: finite at kappa = 1, and the gradient that separates a negative
    pair stays at its largest value instead of vanishing.
    """
    x0 = math.log1p(-kappa_eps)
    xc = x.clamp(max=x0)
    return torch.log(-torch.expm1(xc)) - (x - xc) * ((1.0 - kappa_eps) / kappa_eps)


def _pair_chunk(mu, logvar, c_mu, c_logvar, inst, k0: int, kappa_eps: float):
    """One chunk of instances: sum of -log(1 - kappa) over non-member pairs, sum of kappa per instance."""
    x = log_kappa_to_instances(mu, logvar, c_mu, c_logvar)  # (n, kc)
    ks = torch.arange(k0, k0 + c_mu.shape[0], device=inst.device)
    neg = log_one_minus_kappa(x, kappa_eps)
    neg_sum = -neg.masked_fill(inst[:, None] == ks[None, :], 0.0).sum()
    return neg_sum, x.exp().sum(0)


def _group_logsumexp(x: torch.Tensor, index: torch.Tensor, num: int) -> torch.Tensor:
    """logsumexp of x within groups (index in [0, num), every group non-empty)."""
    gmax = torch.full((num,), -torch.inf, dtype=x.dtype, device=x.device)
    gmax = gmax.scatter_reduce(0, index, x.detach(), reduce="amax")
    ssum = torch.zeros(num, dtype=x.dtype, device=x.device).index_add(0, index, torch.exp(x - gmax[index]))
    return torch.log(ssum) + gmax


def _instance_terms(mu, logvar, t: SceneTargets, cfg: ProbabilisticLossConfig):
    """L_InsCE, -log Dice of one scene, and its member kappa (for Q)."""
    n, k = t.inst.numel(), t.num_instances
    m = t.inst >= 0
    idx = t.inst[m]
    c_mu, c_lv, counts = instance_centres(mu[m], logvar[m], idx, k)
    # Member pairs: elementwise (one instance per voxel), exact kernel form.
    own = log_bhattacharyya(mu[m], logvar[m], c_mu[idx], c_lv[idx])
    step = chunk_size(n, cfg.max_pairs)
    use_ckpt = cfg.checkpoint and torch.is_grad_enabled()
    neg, skap = [], []
    for k0 in range(0, k, step):
        args = (mu, logvar, c_mu[k0 : k0 + step], c_lv[k0 : k0 + step], t.inst, k0, cfg.kappa_eps)
        r = checkpoint(_pair_chunk, *args, use_reentrant=False) if use_ckpt else _pair_chunk(*args)
        neg.append(r[0]), skap.append(r[1])
    sum_kappa = torch.cat(skap)
    ce = (torch.stack(neg).sum() - own.sum()) / (n * k)
    lse_pos = _group_logsumexp(own, idx, k)  # log sum of member kappa per instance
    if cfg.dice == "per_instance":
        dice = -(LOG2 + lse_pos - torch.log(sum_kappa + counts)).mean()
    else:
        dice = -(LOG2 + torch.logsumexp(lse_pos, 0) - torch.log(sum_kappa.sum() + counts.sum()))
    return ce, dice, own.exp()


def _score_target(t: SceneTargets, own_kappa: torch.Tensor | None, cfg, like: torch.Tensor,
                  instance_classes: torch.Tensor) -> torch.Tensor:
    """Q (n, C), eq. 11: a voxel belongs to one instance, so the max is its own kappa."""
    q = torch.zeros(t.inst.numel(), instance_classes.numel(), dtype=like.dtype, device=like.device)
    if own_kappa is not None:
        m = torch.nonzero(t.inst >= 0).squeeze(1)
        q[m, t.inst_cls[t.inst[m]]] = own_kappa.detach().to(like.dtype)
    if cfg.stuff_target == "onehot":
        stuff = torch.nonzero(~instance_classes.to(like.device)[t.semantic]).squeeze(1)
        q[stuff, t.semantic[stuff]] = 1.0
    return q


def score_loss(logits: torch.Tensor, q: torch.Tensor, kind: str) -> torch.Tensor:
    """L_Score of one scene, mean over its n voxels and the L classes (Q detached).

    centre_aware (eq. 12): -Q log P.  mse (Neven et al.): (P - Q)^2.
    """
    if kind == "mse":
        return ((logits.softmax(dim=-1) - q) ** 2).sum() / q.numel()
    return -(q * F.log_softmax(logits, dim=-1)).sum() / q.numel()


def entropy_reg(logvar: torch.Tensor, batch: torch.Tensor, reduction: str) -> torch.Tensor:
    """Eq. 8 per voxel, reduced per scene ('mean'|'sum'), averaged over scenes."""
    reps = 3 if logvar.shape[1] == 1 else 1
    ent = GAUSS_ENTROPY_CONST + 0.5 * reps * logvar.sum(1)
    num = int(batch.max()) + 1
    per_scene = torch.zeros(num, dtype=ent.dtype, device=ent.device).index_add(0, batch, ent)
    counts = torch.bincount(batch, minlength=num)
    present = counts > 0
    if reduction == "mean":
        per_scene = per_scene / counts.clamp(min=1).to(ent.dtype)
    return per_scene[present].mean()


def probabilistic_loss(
    out: ProbabilisticOutput,
    semantic: torch.Tensor,
    instance: torch.Tensor,
    cfg: ProbabilisticLossConfig = ProbabilisticLossConfig(),
) -> LossResult:
    """Total loss of eq. 17 (+ optional L_Sem) for a collated batch of scenes."""
    out = as_float32(out)  # AMP: variances ~1e-3 and log-kappa sums need float32
    mu, sigma, logits = out.mu, out.sigma, out.logits
    anchor = mu.sum() + logits.sum() + (sigma.sum() if sigma is not None else 0.0)
    if sigma is None:
        logvar = rbf_logvar(mu.shape[0], cfg.rbf_sigma, mu)
    else:
        logvar = logvar_from_sigma(sigma)
    scenes = split_scenes(out.batch, semantic, instance, out.instance_classes)
    ce_l, dice_l, score_l, sem_l = [], [], [], []
    for t in scenes:
        if t.points.numel() == 0:
            continue
        own = None
        if t.num_instances > 0:
            ce, dice, own = _instance_terms(mu[t.points], logvar[t.points], t, cfg)
            ce_l.append(ce), dice_l.append(dice)
        lg = logits[t.points]
        q = _score_target(t, own, cfg, lg, out.instance_classes)
        score_l.append(score_loss(lg, q, cfg.score_loss))
        if cfg.w_sem:
            sem_l.append(F.cross_entropy(lg, t.semantic))
    terms = {
        "ins_ce": mean_or_zero(ce_l, anchor),
        "ins_dice": mean_or_zero(dice_l, anchor),
        "score": mean_or_zero(score_l, anchor),
        "sem": mean_or_zero(sem_l, anchor),
    }
    terms["ins"] = terms["ins_ce"] + terms["ins_dice"]
    if sigma is not None and mu.shape[0] > 0:
        terms["reg"] = entropy_reg(logvar, out.batch, cfg.reg_reduction)
    else:
        terms["reg"] = anchor * 0.0
    total = (
        cfg.w_ins * terms["ins"] + cfg.w_score * terms["score"]
        + cfg.w_reg * terms["reg"] + cfg.w_sem * terms["sem"]
    )
    return LossResult(total, {name: v.detach() for name, v in terms.items()})
