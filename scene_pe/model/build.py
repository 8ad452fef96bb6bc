"""The network a config describes: backbone and head, its classes from the config's label set."""

from __future__ import annotations

import dataclasses

import torch

from scene_pe.labels.label_set import LabelSet
from scene_pe.model.network import InstanceSegmentationNet
from scene_pe.util.typed_config import ConfigError


def instance_classes(labels: LabelSet) -> torch.Tensor:
    """(C,) bool per training class: whether it has instances (what the heads put in their outputs)."""
    return torch.as_tensor(labels.train_is_instance)


def build_model(cfg) -> InstanceSegmentationNet:
    """The network for ``cfg`` (a ``scene_pe.config.Config``, which builds on this package, so it
    is not imported here); its class count and stuff classes come from ``data.label_set``."""
    labels = cfg.data.labels
    head = cfg.model.head
    if head.num_classes == 0:
        head = dataclasses.replace(head, num_classes=labels.num_classes)
    elif head.num_classes != labels.num_classes:
        raise ConfigError(f"model.head.num_classes={head.num_classes} but data.label_set={labels.name} "
                          f"has {labels.num_classes} classes (leave num_classes at 0)")
    return InstanceSegmentationNet(cfg.data.voxel.in_channels, cfg.model.backbone, head,
                                   instance_classes(labels))
