"""Shared pieces of both heads' losses: targets per scene, the result type.

Targets (per voxel of the collated batch):
    semantic: (N,) long training ids 0..19, IGNORE_LABEL (-100) for unlabelled.
    instance: (N,) long, -1 for none; ids unique across the whole batch.

Conventions used by both heads (documented decisions):
- Unlabelled voxels (semantic == -100) get no instance, score, seed or
  semantic loss: they are unknown, not background. Only regularisers that
  need no label (the entropy term) see them.
- An instance is the set of labelled voxels sharing an id >= 0 whose class
  (majority of their training ids) is one of the label set's instance classes; voxels
  with an id on a stuff class are treated as having no instance.
- Every term is computed per scene (pairs only within a scene), then averaged
  over the scenes where it is defined (the instance terms over scenes with at
  least one instance). A batch without any defined term gives 0 that is still
  connected to the graph.

Implementations: :mod:`losses_probabilistic` and :mod:`losses_margin`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from scene_pe.labels.label_set import IGNORE_LABEL


@dataclass
class LossResult:
    """total: the scalar to backpropagate; terms: unweighted parts, detached."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class SceneTargets:
    """Labelled voxels and instances of one scene (indices into the batch).

    points:    (n,) long, batch indices of the scene's labelled voxels.
    inst:      (n,) long, local instance index in [0, K) or -1.
    inst_cls:  (K,) long, training id of each instance.
    semantic:  (n,) long, training ids of the labelled voxels.
    """

    scene: int
    points: torch.Tensor
    inst: torch.Tensor
    inst_cls: torch.Tensor
    semantic: torch.Tensor

    @property
    def num_instances(self) -> int:
        return int(self.inst_cls.numel())


def check_targets(n: int, semantic: torch.Tensor, instance: torch.Tensor, num_classes: int) -> None:
    """Shapes and value ranges of the targets; raises ValueError."""
    if semantic.shape != (n,) or instance.shape != (n,):
        raise ValueError(
            f"targets must have shape ({n},): semantic {tuple(semantic.shape)}, "
            f"instance {tuple(instance.shape)}"
        )
    bad = (semantic != IGNORE_LABEL) & ((semantic < 0) | (semantic >= num_classes))
    if bool(bad.any()):
        raise ValueError(f"semantic ids outside 0..{num_classes - 1} and {IGNORE_LABEL}")
    if bool((instance < -1).any()):
        raise ValueError("instance ids must be >= -1")


def split_scenes(batch: torch.Tensor, semantic: torch.Tensor, instance: torch.Tensor,
                 instance_classes: torch.Tensor) -> list[SceneTargets]:
    """Per-scene targets for every scene index present in ``batch`` (vectorised remap).

    ``instance_classes``: (C,) bool, the classes with instances (a head output's).
    """
    num_classes = instance_classes.numel()
    check_targets(batch.shape[0], semantic, instance, num_classes)
    dev = semantic.device
    labelled = semantic != IGNORE_LABEL
    is_inst_cls = instance_classes.to(dev)
    valid = labelled & (instance >= 0)
    sem_safe = semantic.clamp(min=0)
    # Global instance index over the batch, class by majority vote of its voxels.
    uniq, ginv = torch.unique(instance[valid], return_inverse=True)
    num_g = uniq.numel()
    votes = torch.bincount(ginv * num_classes + sem_safe[valid], minlength=num_g * num_classes)
    g_cls = votes.view(num_g, num_classes).argmax(1)
    g_batch = batch[valid]
    g_scene_min = torch.full((num_g,), torch.iinfo(torch.long).max, device=dev).scatter_reduce(
        0, ginv, g_batch, reduce="amin"
    )
    g_scene_max = torch.full((num_g,), -1, device=dev).scatter_reduce(0, ginv, g_batch, reduce="amax")
    if bool((g_scene_min != g_scene_max).any()):
        raise ValueError("an instance id spans several scenes of the batch")
    g_keep = is_inst_cls[g_cls]
    # Per voxel: global instance index or -1 (stuff-class instances dropped).
    gidx = torch.full_like(instance, -1)
    gidx[valid] = torch.where(g_keep[ginv], ginv, torch.full_like(ginv, -1))

    scenes = []
    for s in torch.unique(batch).tolist():
        pts = torch.nonzero((batch == s) & labelled).squeeze(1)
        g_here = torch.nonzero(g_keep & (g_scene_min == s)).squeeze(1)
        local = torch.full((num_g,), -1, dtype=torch.long, device=dev)
        local[g_here] = torch.arange(g_here.numel(), device=dev)
        gi = gidx[pts]
        inst = torch.where(gi >= 0, local[gi.clamp(min=0)], gi)
        scenes.append(SceneTargets(s, pts, inst, g_cls[g_here], semantic[pts]))
    return scenes


def mean_or_zero(values: list[torch.Tensor], anchor: torch.Tensor) -> torch.Tensor:
    """Mean of scalar tensors; 0 connected to ``anchor``'s graph when empty."""
    if not values:
        return anchor.sum() * 0.0
    return torch.stack(values).mean()


def chunk_size(n: int, max_pairs: int) -> int:
    """Instances per chunk so that one chunk holds at most ~max_pairs pairs."""
    return max(1, max_pairs // max(n, 1))
