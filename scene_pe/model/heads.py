"""Heads: backbone features per voxel -> typed outputs (scene_pe.model.outputs).

Both heads take the same (M, C) backbone features, the voxel centres x (M, 3,
metres) and the scene index of each voxel. Adding a head means adding a class
here and a name in ``HEADS``; the backbone is untouched.

Probabilistic head (paper Table 2):
    mu = x + scale * tanh(o),  sigma = exp(s),  P = softmax(logits)
The centre offset is bounded by ``centre_scale`` metres: ScanNet objects are up
to ~2-4 m long (beds, sofas, counters), so a point may sit up to ~2 m from its
instance centre; 2.0 m is the default (METHOD_NOTES §4 leaves it open).
Gaussian variants: sigma has 3 components (anisotropic) or 1 (isotropic), per
voxel (heteroscedastic) or shared by all voxels of a scene (homoscedastic: the
scene mean of the predicted log-sigma). ``deterministic`` predicts no sigma
(RBF kernel on mu).

``deterministic_6d`` (Table 4's "ExtDim" row): no sigma, a 6-D embedding.
The first 3 dims are the spatial centre as above; the 3 extra dims are
free, e = scale * tanh(o'), bounded like the centre offset but not offset from
x: they have no spatial meaning, and the same bound keeps them on the scale
of the spatial dims so that the one RBF bandwidth ``rbf_sigma`` suits all 6.
The paper's point is that a 6-D deterministic embedding has as many outputs
as the probabilistic one (3 centre + 3 sigma) and still does worse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn

from scene_pe.model.outputs import MarginOutput, ProbabilisticOutput

Embedding = Literal[
    "anisotropic_heteroscedastic",
    "anisotropic_homoscedastic",
    "isotropic_heteroscedastic",
    "isotropic_homoscedastic",
    "deterministic",
    "deterministic_6d",
]
DETERMINISTIC = ("deterministic", "deterministic_6d")  # no sigma: the RBF kernel
EXTRA_DIMS = {"deterministic_6d": 3}  # free embedding dims beyond the 3 spatial ones


@dataclass(frozen=True)
class HeadConfig:
    type: Literal["probabilistic", "margin"] = "probabilistic"
    embedding: Embedding = "anisotropic_heteroscedastic"  # probabilistic head only
    margin_anisotropic: bool = True  # margin head: one bandwidth per axis (else one)
    centre_scale: float = 2.0        # metres; bound of |mu - x| per axis
    sigma_init: float = 0.2          # metres; initial sigma (bias of the log-sigma branch)
    hidden: int = 96                 # width of each branch's hidden layer
    num_classes: int = 0  # 0: the label set's class count (data.label_set); else must equal it

    def validate(self) -> None:
        if self.centre_scale <= 0 or self.sigma_init <= 0:
            raise ValueError("centre_scale and sigma_init must be > 0")


def branch(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, cout))


def scene_mean(values: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (M, D) over the voxels of each scene, broadcast back to (M, D)."""
    num = int(batch.max()) + 1 if batch.numel() else 0
    sums = values.new_zeros(num, values.shape[1]).index_add_(0, batch, values)
    counts = torch.bincount(batch, minlength=num).clamp_min(1).to(values.dtype)
    return (sums / counts[:, None])[batch]


class _Head(nn.Module):
    """A head knows which of its class columns have instances (the label set's stuff mask)."""

    def __init__(self, cfg: HeadConfig, instance_classes: torch.Tensor):
        super().__init__()
        if cfg.num_classes != instance_classes.numel():
            raise ValueError(f"head has {cfg.num_classes} classes but the label set {instance_classes.numel()}")
        self.cfg = cfg
        # not in the state dict: it comes from the config's label set, not from training
        self.register_buffer("instance_classes", instance_classes.to(torch.bool).clone(), persistent=False)


class ProbabilisticHead(_Head):
    def __init__(self, in_channels: int, cfg: HeadConfig, instance_classes: torch.Tensor):
        super().__init__(cfg, instance_classes)
        self.extra_dims = EXTRA_DIMS.get(cfg.embedding, 0)
        self.offset = branch(in_channels, cfg.hidden, 3 + self.extra_dims)
        self.logits = branch(in_channels, cfg.hidden, cfg.num_classes)
        self.sigma_dims = 0 if cfg.embedding in DETERMINISTIC else (
            3 if cfg.embedding.startswith("anisotropic") else 1)
        self.log_sigma = branch(in_channels, cfg.hidden, self.sigma_dims) if self.sigma_dims else None
        if self.log_sigma is not None:
            nn.init.constant_(self.log_sigma[-1].bias, math.log(cfg.sigma_init))

    def forward(self, feats: torch.Tensor, coords: torch.Tensor, batch: torch.Tensor) -> ProbabilisticOutput:
        bounded = self.cfg.centre_scale * torch.tanh(self.offset(feats))
        mu = coords + bounded if not self.extra_dims else torch.cat(
            [coords + bounded[:, :3], bounded[:, 3:]], dim=1)  # extra dims: not offset from x
        sigma = None
        if self.log_sigma is not None:
            s = self.log_sigma(feats)
            if self.cfg.embedding.endswith("homoscedastic"):
                s = scene_mean(s, batch)
            sigma = torch.exp(s)
        return ProbabilisticOutput(mu=mu, sigma=sigma, logits=self.logits(feats), coords=coords, batch=batch,
                                   instance_classes=self.instance_classes)


class MarginHead(_Head):
    """Learnable margin (Neven et al. 2019): embedding, bandwidth, seediness, semantics."""

    def __init__(self, in_channels: int, cfg: HeadConfig, instance_classes: torch.Tensor):
        super().__init__(cfg, instance_classes)
        self.offset = branch(in_channels, cfg.hidden, 3)
        self.log_sigma = branch(in_channels, cfg.hidden, 3 if cfg.margin_anisotropic else 1)
        nn.init.constant_(self.log_sigma[-1].bias, math.log(cfg.sigma_init))
        self.seed = branch(in_channels, cfg.hidden, 1)
        self.logits = branch(in_channels, cfg.hidden, cfg.num_classes)

    def forward(self, feats: torch.Tensor, coords: torch.Tensor, batch: torch.Tensor) -> MarginOutput:
        return MarginOutput(
            embedding=coords + self.cfg.centre_scale * torch.tanh(self.offset(feats)),
            sigma=torch.exp(self.log_sigma(feats)),
            seed=torch.sigmoid(self.seed(feats)).squeeze(-1),
            logits=self.logits(feats),
            coords=coords,
            batch=batch,
            instance_classes=self.instance_classes,
        )


HEADS = {"probabilistic": ProbabilisticHead, "margin": MarginHead}


def build_head(in_channels: int, cfg: HeadConfig, instance_classes: torch.Tensor) -> nn.Module:
    """``instance_classes``: (C,) bool of the label set (``model.build.instance_classes``)."""
    return HEADS[cfg.type](in_channels, cfg, instance_classes)
