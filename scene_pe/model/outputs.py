"""Typed outputs of the heads: what the losses and the clustering consume.

All tensors are per voxel of a batch of scenes collated into one sparse
tensor: row i is voxel i, ``batch[i]`` the index of its scene in the batch.
Coordinates, centres and sigmas are in metres.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


@dataclass
class ProbabilisticOutput:
    """Each voxel is a Gaussian N(mu_i, diag(sigma_i^2)) plus class scores.

    mu:      (N, E) centres, mu = x + scale * tanh(o); E = 3, or 6 for the
             6-D deterministic embedding (columns 3..5 are free dims,
             scale * tanh(o'), not offset from x).
    sigma:   (N, D) standard deviations, D = 3 (anisotropic) or 1 (isotropic,
             broadcast over the 3 axes). Homoscedastic variants give every
             voxel of a scene the same value. ``None`` for the deterministic
             embedding (RBF kernel).
    logits:  (N, C) class logits over the label set's C semantic classes; the
             scores P of the paper are ``logits.softmax(-1)``.
    coords:  (N, 3) voxel centres x in metres (what mu is offset from).
    batch:   (N,) long, scene index of each voxel.
    instance_classes: (C,) bool, per class (not per voxel): whether the class has
             instances (the label set's; stuff classes such as wall and floor do not).
    """

    mu: torch.Tensor
    sigma: torch.Tensor | None
    logits: torch.Tensor
    coords: torch.Tensor
    batch: torch.Tensor
    instance_classes: torch.Tensor

    @property
    def scores(self) -> torch.Tensor:
        return self.logits.softmax(dim=-1)


@dataclass
class MarginOutput:
    """Learnable-margin head (Neven et al. 2019).

    embedding: (N, 3) e = x + scale * tanh(o), metres.
    sigma:     (N, D) predicted bandwidths (D = 3 or 1), > 0.
    seed:      (N,) seediness in (0, 1) (sigmoid).
    logits:    (N, C) semantic class logits.
    coords:    (N, 3) voxel centres x in metres.
    batch:     (N,) long, scene index of each voxel.
    instance_classes: (C,) bool per class, as in ProbabilisticOutput.
    """

    embedding: torch.Tensor
    sigma: torch.Tensor
    seed: torch.Tensor
    logits: torch.Tensor
    coords: torch.Tensor
    batch: torch.Tensor
    instance_classes: torch.Tensor

    @property
    def scores(self) -> torch.Tensor:
        return self.logits.softmax(dim=-1)


HeadOutput = ProbabilisticOutput | MarginOutput
PER_CLASS_FIELDS = ("instance_classes",)  # not per voxel: kept whole when rows are selected


def select_rows(out: HeadOutput, rows) -> HeadOutput:
    """The output restricted to some voxels (``rows``: a slice or an index tensor)."""
    return type(out)(**{f.name: v if v is None or f.name in PER_CLASS_FIELDS else v[rows]
                        for f in dataclasses.fields(out) for v in (getattr(out, f.name),)})


def as_float32(out: HeadOutput) -> HeadOutput:
    """The same output with half-precision tensors (from an AMP forward) in float32.

    The kernel, losses and clustering need float32: variances of sigma ~ 1e-3
    and sums of log kappa underflow or lose all digits in float16. Float64
    (gradchecks) stays float64.
    """
    values = {}
    for f in dataclasses.fields(out):
        v = getattr(out, f.name)
        half = v is not None and v.dtype in (torch.float16, torch.bfloat16)
        values[f.name] = v.float() if half else v
    return type(out)(**values)
