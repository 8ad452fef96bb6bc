"""Losses of the learnable-margin baseline (Neven et al. 2019), own code.

Per instance k of a scene (labelled voxels only, see :mod:`losses`):
    C_k      = mean embedding of its voxels (``centre='embedding'``, default,
               with gradient) or mean voxel coordinate (``'coords'``).
    sigma_k  = mean predicted sigma of its voxels, per axis (D = 3) or scalar.
    phi_k(i) = exp(-sum_d (e_id - C_kd)^2 / (2 sigma_kd^2))

    L_lovasz = mean over instances of the Lovasz hinge on 2 phi_k - 1
               against the instance mask, over all labelled voxels of the scene.
    L_smooth = mean over instances of the mean over its voxels of
               mean_d (log sigma_i - log sigma_k)^2, sigma_k detached (the
               voxels are pulled to the instance value, not the reverse). Log
               space because sigmas are in metres (~0.01..1): squared metre
               differences would be tiny and scale-dependent.
    L_seed   = mean over labelled voxels of w (seed_i - target_i)^2, target =
               phi_k(i) (detached) inside instance k, 0 on background and stuff;
               w = ``seed_fg_weight`` inside instances, 1 elsewhere.
    L_sem    = cross entropy of the semantic logits, ignore label -100.
Scene values are averaged over scenes (the instance terms over scenes with
instances). Pairs are chunked over instances (``max_pairs``), optionally
checkpointed, as in :mod:`losses_probabilistic`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from scene_pe.method.losses import (
    LossResult,
    SceneTargets,
    chunk_size,
    mean_or_zero,
    split_scenes,
)
from scene_pe.method.lovasz import lovasz_hinge_rows
from scene_pe.model.outputs import MarginOutput, as_float32


@dataclass(frozen=True)
class MarginLossConfig:
    w_lovasz: float = 1.0
    w_smooth: float = 1.0
    w_seed: float = 1.0
    w_sem: float = 1.0
    seed_fg_weight: float = 1.0
    centre: Literal["embedding", "coords"] = "embedding"
    max_pairs: int = 1 << 22
    checkpoint: bool = True

    def __post_init__(self) -> None:
        if self.centre not in ("embedding", "coords"):
            raise ValueError(f"centre must be 'embedding' or 'coords', not {self.centre!r}")


def margin_phi(emb: torch.Tensor, centre: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """phi = exp(-sum_d (emb - centre)^2 / (2 sigma^2)), broadcast; sigma (..., 1|3)."""
    return torch.exp(-((emb - centre) ** 2 / (2.0 * sigma**2)).sum(-1))


def _lovasz_chunk(emb, centres, sig_k, inst, k0: int):
    """Sum over a chunk of instances of the Lovasz hinge on 2 phi - 1."""
    phi = margin_phi(emb[None, :, :], centres[:, None, :], sig_k[:, None, :])  # (kc, n)
    ks = torch.arange(k0, k0 + centres.shape[0], device=inst.device)
    labels = inst[None, :] == ks[:, None]
    return lovasz_hinge_rows(2.0 * phi - 1.0, labels).sum()


def _scene_terms(emb, coords, sigma, seed, t: SceneTargets, cfg: MarginLossConfig):
    """(lovasz, smooth) or None when the scene has no instance, and the seed loss."""
    n, k = t.inst.numel(), t.num_instances
    target = torch.zeros_like(seed)
    weight = torch.ones_like(seed)
    if k == 0:
        return None, (weight * (seed - target) ** 2).mean()
    m = torch.nonzero(t.inst >= 0).squeeze(1)
    idx = t.inst[m]
    counts = torch.bincount(idx, minlength=k).to(emb.dtype)
    src = emb if cfg.centre == "embedding" else coords
    centres = torch.zeros(k, 3, dtype=emb.dtype, device=emb.device).index_add(0, idx, src[m]) / counts[:, None]
    sig_k = torch.zeros(k, sigma.shape[1], dtype=sigma.dtype, device=sigma.device)
    sig_k = sig_k.index_add(0, idx, sigma[m]) / counts[:, None]

    step = chunk_size(n, cfg.max_pairs)
    use_ckpt = cfg.checkpoint and torch.is_grad_enabled()
    parts = []
    for k0 in range(0, k, step):
        args = (emb, centres[k0 : k0 + step], sig_k[k0 : k0 + step], t.inst, k0)
        parts.append(checkpoint(_lovasz_chunk, *args, use_reentrant=False) if use_ckpt else _lovasz_chunk(*args))
    lovasz = torch.stack(parts).sum() / k

    sq = ((torch.log(sigma[m]) - torch.log(sig_k[idx]).detach()) ** 2).mean(1)
    smooth = (torch.zeros(k, dtype=sq.dtype, device=sq.device).index_add(0, idx, sq) / counts).mean()

    own_phi = margin_phi(emb[m], centres[idx], sig_k[idx]).detach()
    target = target.index_put((m,), own_phi.to(seed.dtype))
    weight = weight.index_put((m,), torch.full_like(own_phi, cfg.seed_fg_weight, dtype=seed.dtype))
    return (lovasz, smooth), (weight * (seed - target) ** 2).mean()


def margin_loss(
    out: MarginOutput,
    semantic: torch.Tensor,
    instance: torch.Tensor,
    cfg: MarginLossConfig = MarginLossConfig(),
) -> LossResult:
    """Total learnable-margin loss for a collated batch of scenes."""
    out = as_float32(out)  # AMP outputs: the losses run in float32
    emb, sigma, seed, logits, coords = out.embedding, out.sigma, out.seed, out.logits, out.coords
    anchor = emb.sum() + sigma.sum() + seed.sum() + logits.sum()
    lov_l, smooth_l, seed_l, sem_l = [], [], [], []
    for t in split_scenes(out.batch, semantic, instance, out.instance_classes):
        if t.points.numel() == 0:
            continue
        p = t.points
        inst_terms, seed_loss = _scene_terms(emb[p], coords[p], sigma[p], seed[p], t, cfg)
        if inst_terms is not None:
            lov_l.append(inst_terms[0]), smooth_l.append(inst_terms[1])
        seed_l.append(seed_loss)
        if cfg.w_sem:
            sem_l.append(F.cross_entropy(logits[p], t.semantic))
    terms = {
        "lovasz": mean_or_zero(lov_l, anchor),
        "smooth": mean_or_zero(smooth_l, anchor),
        "seed": mean_or_zero(seed_l, anchor),
        "sem": mean_or_zero(sem_l, anchor),
    }
    total = (
        cfg.w_lovasz * terms["lovasz"] + cfg.w_smooth * terms["smooth"]
        + cfg.w_seed * terms["seed"] + cfg.w_sem * terms["sem"]
    )
    return LossResult(total, {name: v.detach() for name, v in terms.items()})
