"""Preprocessed scenes (tools/preprocess.py output) -> training / inference samples.

A sample is the in-memory dict of scene_pe.data.transforms (coords, colors in
[0, 1], normals, semantic, instance, scene). Augmentations draw from a
generator seeded by (seed, epoch, index), so a sample does not depend on which
worker loads it, and a resumed run sees exactly the samples it would have seen.
Voxelization runs in the loader workers (``VoxelCollate``).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.utils.data
from torch.utils.data import DistributedSampler

from scene_pe.labels.label_set import LEGACY_LABEL_SET
from scene_pe.data.transforms import Compose
from scene_pe.sparse.voxelize import VoxelBatch, VoxelizeConfig, voxelize
from scene_pe.util.errors import SceneError
from scene_pe.util.io import read_lines

NPZ_KEYS = ("coords", "colors", "normals", "semantic", "instance", "has_labels", "num_vertices")


def preprocessed_split(root: Path, split: str) -> list[str]:
    """Scene names of a split: ``<root>/splits/<split>.txt`` (written by preprocessing)."""
    path = Path(root) / "splits" / f"{split}.txt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no split list; run tools/preprocess.py for split '{split}' first")
    return read_lines(path)


def load_scene(root: Path, scene: str, label_set: str | None = None) -> dict:
    """Read one preprocessed scene file into a sample dict (vertex order kept).

    ``label_set``: the label set the labels must be in (a scene preprocessed with
    another one is a SceneError: its class ids would be silently wrong).
    """
    path = Path(root) / "scenes" / f"{scene}.npz"
    try:
        with np.load(path) as z:
            missing = [k for k in NPZ_KEYS if k not in z.files]
            if missing:
                raise SceneError(scene, path, f"missing arrays {missing}; re-run tools/preprocess.py")
            stored = str(z["label_set"]) if "label_set" in z.files else LEGACY_LABEL_SET.name
            if label_set is not None and stored != label_set:
                raise SceneError(scene, path, f"preprocessed with label set {stored}, but the config's "
                                              f"data.label_set is {label_set}")
            return {
                "scene": scene,
                "coords": z["coords"].astype(np.float32),
                "colors": z["colors"].astype(np.float32) / 255.0,
                "normals": z["normals"].astype(np.float32),
                "semantic": z["semantic"].astype(np.int64),
                "instance": z["instance"].astype(np.int64),
                "has_labels": bool(z["has_labels"]),
                # superpoints (ScanNet's segs.json or the built-in segmentator); -1: none
                "segment": z["segment"].astype(np.int64) if "segment" in z.files
                else np.full(len(z["coords"]), -1, np.int64),
            }
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # a truncated .npz: BadZipFile
        if isinstance(e, SceneError):
            raise
        raise SceneError(scene, path, f"cannot read preprocessed scene: {e}") from e


class SceneDataset(torch.utils.data.Dataset):
    def __init__(self, root: str | Path, scenes: Sequence[str], transforms: Compose,
                 seed: int = 0, repeat: int = 1, label_set: str | None = None):
        self.root = Path(root)
        self.label_set = label_set
        self.scenes = list(scenes)
        if not self.scenes:
            raise ValueError(f"{self.root}: no scenes to load")
        self.transforms = transforms
        self.seed = seed
        self.repeat = repeat
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.scenes) * self.repeat

    def __getitem__(self, index: int) -> dict:
        sample = load_scene(self.root, self.scenes[index % len(self.scenes)], self.label_set)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return self.transforms(sample, rng)


def worker_init(_worker_id: int) -> None:
    """One intra-op thread per loader worker: the workers and the training
    process share the cores, and oversubscribed OpenMP threads spin-wait."""
    torch.set_num_threads(1)


class VoxelCollate:
    """collate_fn: a list of samples -> (VoxelBatch, samples); runs in the workers."""

    def __init__(self, cfg: VoxelizeConfig):
        self.cfg = cfg

    def __call__(self, samples: list[dict]) -> tuple[VoxelBatch, list[dict]]:
        return voxelize(samples, self.cfg), samples


class ResumableSampler(DistributedSampler):
    """DistributedSampler (shuffled by seed + epoch) that can start mid-epoch."""

    def __init__(self, dataset, num_replicas, rank, seed, batch_size):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.batch_size = batch_size
        self.start_batch = 0

    def __iter__(self):
        return iter(list(super().__iter__())[self.start_batch * self.batch_size:])

    def __len__(self):
        return super().__len__() - self.start_batch * self.batch_size
