"""The training loss of a config's head (method/losses_*.py), with the superpoint term when on."""

from __future__ import annotations

from scene_pe.config import Config
from scene_pe.method.losses import LossResult
from scene_pe.method.losses_margin import margin_loss
from scene_pe.method.losses_probabilistic import probabilistic_loss
from scene_pe.method.superpoint_pooling import consistency_loss
from scene_pe.model.outputs import HeadOutput, ProbabilisticOutput
from scene_pe.sparse.voxelize import VoxelBatch


def compute_loss(out: HeadOutput, voxels: VoxelBatch, cfg: Config):
    """The head's loss; the losses cast AMP outputs to float32 themselves."""
    semantic = voxels.semantic.to(out.logits.device)
    instance = voxels.instance.to(out.logits.device)
    if isinstance(out, ProbabilisticOutput):
        loss = probabilistic_loss(out, semantic, instance, cfg.loss.probabilistic)
    else:
        loss = margin_loss(out, semantic, instance, cfg.loss.margin)
    if cfg.loss.superpoint_weight > 0:  # the superpoint-consistency switch (method/superpoint_pooling.py)
        embedding = out.mu if isinstance(out, ProbabilisticOutput) else out.embedding
        sp = consistency_loss(embedding, voxels.point_to_voxel, voxels.segments or [])
        loss = LossResult(loss.total + cfg.loss.superpoint_weight * sp, {**loss.terms, "superpoint": sp.detach()})
    return loss
