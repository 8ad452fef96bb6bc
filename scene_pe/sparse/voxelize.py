"""Scenes (per-vertex arrays) -> one batched sparse voxel tensor, and back.

Quantisation and batching come from MinkowskiEngine
(``ME.utils.sparse_quantize``, ``ME.utils.batched_coordinates``). Every
vertex maps to exactly one voxel (``point_to_voxel``), so per-voxel outputs go
back to every vertex of the mesh with one gather (``devoxelize``).

Voxel labels: the most frequent label among the voxel's vertices (ties: the
smaller label), computed for the semantic and the instance label
independently; with 2 cm voxels on ScanNet meshes mixed voxels are rare
(only at contacts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import MinkowskiEngine as ME
import numpy as np
import torch

from scene_pe.labels.label_set import IGNORE_LABEL

Feature = Literal["colors", "normals", "coords"]
FEATURE_DIMS = {"colors": 3, "normals": 3, "coords": 3}


@dataclass(frozen=True)
class VoxelizeConfig:
    voxel_size: float = 0.02  # metres (2 cm: the paper's and all peers' choice)
    features: tuple[Feature, ...] = ("colors",)

    def validate(self) -> None:
        if not self.voxel_size > 0:
            raise ValueError(f"voxel_size must be > 0, got {self.voxel_size}")
        if not self.features:
            raise ValueError("features must name at least one of colors, normals, coords")

    @property
    def in_channels(self) -> int:
        return sum(FEATURE_DIMS[f] for f in self.features)


@dataclass
class VoxelBatch:
    """A batch of scenes as voxels, with the maps back to their vertices.

    coordinates:    (M, 4) int32 [scene index, i, j, k] voxel indices (ME layout)
    features:       (M, F) float32 voxel features (mean over the voxel's vertices)
    centres:        (M, 3) float32 voxel centres in metres ((ijk + 0.5) * voxel_size)
    batch:          (M,) int64 scene index of each voxel
    semantic:       (M,) int64 training id or IGNORE_LABEL (None without labels)
    instance:       (M,) int64 instance id unique across the batch, -1 none
    point_to_voxel: per scene, (N_s,) int64 row of each vertex's voxel in this batch
    scenes:         scene names, in batch order
    segments:       per scene, (N_s,) superpoint id of each vertex, or None (no superpoints)
    """

    coordinates: torch.Tensor
    features: torch.Tensor
    centres: torch.Tensor
    batch: torch.Tensor
    semantic: torch.Tensor | None
    instance: torch.Tensor | None
    point_to_voxel: list[torch.Tensor]
    scenes: list[str]
    voxel_size: float
    segments: list[np.ndarray | None] | None = None

    def sparse_tensor(self, device: torch.device | str = "cpu") -> ME.SparseTensor:
        return ME.SparseTensor(self.features.to(device), self.coordinates.to(device))

    def to(self, device: torch.device | str) -> "VoxelBatch":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return VoxelBatch(self.coordinates.to(device), move(self.features), move(self.centres),
                          move(self.batch), move(self.semantic), move(self.instance),
                          [p.to(device) for p in self.point_to_voxel], self.scenes, self.voxel_size,
                          self.segments)


def majority_label(labels: np.ndarray, groups: np.ndarray, num_groups: int) -> np.ndarray:
    """Most frequent value of ``labels`` within each group (ties -> smallest value).

    Almost every group (voxel) holds one label: those are read off with one
    scatter and one comparison; only the vertices of mixed groups are sorted.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    out = np.empty(num_groups, dtype=labels.dtype)
    out[groups] = labels  # one of each group's labels (whichever write lands)
    in_mixed = labels != out[groups]
    if not in_mixed.any():
        return out
    mixed = np.zeros(num_groups, dtype=bool)
    mixed[groups[in_mixed]] = True
    sel = mixed[groups]
    pairs, counts = np.unique(np.stack([groups[sel], labels[sel]]), axis=1, return_counts=True)
    # sort by group, then count descending, then label ascending; first of each group wins
    order = np.lexsort((pairs[1], -counts, pairs[0]))
    g, lab = pairs[0][order], pairs[1][order]
    first = np.r_[True, g[1:] != g[:-1]]
    out[g[first]] = lab[first]
    return out


def voxel_features(sample: dict, features: Sequence[str]) -> np.ndarray:
    """Per-vertex input features: colours centred on 0, unit normals, coordinates."""
    parts = []
    for name in features:
        if name == "colors":
            parts.append(sample["colors"].astype(np.float32) - 0.5)
        elif name == "normals":
            parts.append(sample["normals"].astype(np.float32))
        elif name == "coords":
            c = sample["coords"].astype(np.float32)
            parts.append(c - c.mean(axis=0, keepdims=True))
        else:
            raise ValueError(f"unknown voxel feature {name!r}; valid: {sorted(FEATURE_DIMS)}")
    return np.concatenate(parts, axis=1)


def voxelize(samples: Sequence[dict], cfg: VoxelizeConfig) -> VoxelBatch:
    """Quantise each scene at ``cfg.voxel_size`` and collate them into one batch."""
    coords_list, feats, centres, semantic, instance, p2v = [], [], [], [], [], []
    has_labels = all("semantic" in s and "instance" in s for s in samples)
    offset = 0
    instance_offset = 0
    for sample in samples:
        xyz = np.ascontiguousarray(sample["coords"], dtype=np.float32)
        grid = np.floor(xyz / cfg.voxel_size).astype(np.int32)
        unique_idx, inverse = ME.utils.sparse_quantize(grid, return_index=True, return_inverse=True,
                                                       return_maps_only=True)
        unique_idx, inverse = np.asarray(unique_idx), np.asarray(inverse)
        m = len(unique_idx)
        vox = grid[unique_idx]
        coords_list.append(torch.from_numpy(vox))
        centres.append((vox.astype(np.float32) + 0.5) * cfg.voxel_size)
        f = voxel_features(sample, cfg.features)
        counts = np.bincount(inverse, minlength=m).astype(np.float32)
        summed = np.stack([np.bincount(inverse, weights=col, minlength=m) for col in f.T], axis=1)
        feats.append((summed / counts[:, None]).astype(np.float32))
        p2v.append(torch.from_numpy(inverse.astype(np.int64) + offset))
        if has_labels:
            semantic.append(majority_label(sample["semantic"].astype(np.int64), inverse, m))
            inst = majority_label(sample["instance"].astype(np.int64), inverse, m)
            # instance ids unique across the batch: instances never span scenes
            inst = np.where(inst >= 0, inst + instance_offset, -1)
            instance_offset += int(sample["instance"].max(initial=-1)) + 1
            instance.append(inst)
        offset += m
    batched = ME.utils.batched_coordinates(coords_list, dtype=torch.int32)
    return VoxelBatch(
        coordinates=batched,
        features=torch.from_numpy(np.concatenate(feats)),
        centres=torch.from_numpy(np.concatenate(centres)),
        batch=batched[:, 0].long(),
        semantic=torch.from_numpy(np.concatenate(semantic)) if has_labels else None,
        instance=torch.from_numpy(np.concatenate(instance)) if has_labels else None,
        point_to_voxel=p2v,
        scenes=[s.get("scene", f"scene{i}") for i, s in enumerate(samples)],
        voxel_size=cfg.voxel_size,
        segments=[scene_segments(s) for s in samples],
    )


def scene_segments(sample: dict) -> np.ndarray | None:
    """A sample's per-vertex superpoint ids, or None when it has none (a -1 anywhere: no segs file)."""
    seg = sample.get("segment")
    if seg is None or len(seg) == 0 or (np.asarray(seg) < 0).any():
        return None
    return np.asarray(seg, dtype=np.int64)


def devoxelize(voxel_values: torch.Tensor, batch: VoxelBatch) -> list[torch.Tensor]:
    """Per-voxel values (M, ...) -> per scene, the value of each vertex's voxel (N_s, ...)."""
    return [voxel_values[p] for p in batch.point_to_voxel]


__all__ = ["VoxelizeConfig", "VoxelBatch", "voxelize", "devoxelize", "majority_label", "IGNORE_LABEL"]
