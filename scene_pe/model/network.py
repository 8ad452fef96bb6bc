"""Backbone + head: a VoxelBatch in, one typed head output out."""

from __future__ import annotations

import torch
import torch.nn as nn

from scene_pe.model.heads import HeadConfig, build_head
from scene_pe.model.outputs import HeadOutput
from scene_pe.model.precision import full_precision
from scene_pe.model.unet import BackboneConfig, Res16UNet
from scene_pe.sparse.voxelize import VoxelBatch


class InstanceSegmentationNet(nn.Module):
    def __init__(self, in_channels: int, backbone: BackboneConfig, head: HeadConfig,
                 instance_classes: torch.Tensor):
        super().__init__()
        self.backbone = Res16UNet(in_channels, backbone)
        self.head = build_head(self.backbone.out_channels, head, instance_classes)

    def forward(self, voxels: VoxelBatch) -> HeadOutput:
        device = next(self.parameters()).device
        with full_precision(device):  # ME's kernels: float32 / float64 only (model/precision.py)
            feats = self.backbone(voxels.sparse_tensor(device))
        # the heads under the caller's autocast, if any. ME keeps the input's row order for the output of a stride-1 UNet; the
        # heads work on plain tensors aligned with voxels.centres / voxels.batch.
        return self.head(feats.F, voxels.centres.to(device), voxels.batch.to(device))
