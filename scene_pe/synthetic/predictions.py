"""A prediction made from a scene's GT with one error of each kind, known by construction.

For the viewer's tests and benchmark (scene_pe/viewer, bench/bench_viewer.py):
every GT instance becomes one predicted instance of its class, except that

  split    the largest object is cut in two at its median x (the smaller half:
           a prediction of its own),
  merged   the third largest object's vertices go to the second largest's prediction,
  missed   the fourth largest object is left out,
  false positive   the floor within 0.5 m of a floor vertex becomes an instance.

The scene needs at least four GT instances and some floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scene_pe.labels.label_set import SCANNET20, LabelSet
from scene_pe.inference.vertices import VertexPrediction

FLOOR_NAME = "floor"


@dataclass(frozen=True)
class MadeErrors:
    pred: VertexPrediction
    split: int        # GT instance ids (the training ``instance`` values) of the objects changed
    merged: int
    merged_into: int
    missed: int
    false_positive: np.ndarray  # (N,) bool: the floor patch made an instance


def prediction_with_errors(scene: str, xyz: np.ndarray, semantic: np.ndarray, instance: np.ndarray,
                           label_set: LabelSet = SCANNET20, seed: int = 0) -> MadeErrors:
    """``semantic`` / ``instance``: training labels per vertex (scene_pe.data, -100 / -1 none)."""
    rng = np.random.default_rng(seed)
    semantic, instance = np.asarray(semantic, np.int64), np.asarray(instance, np.int64)
    ids, sizes = np.unique(instance[instance >= 0], return_counts=True)
    if len(ids) < 4:
        raise ValueError(f"{scene}: {len(ids)} GT instances; the made errors need 4")
    big = ids[np.argsort(-sizes, kind="stable")]
    split, merged_into, merged, missed = (int(v) for v in big[:4])
    dense = np.full(int(ids.max()) + 1, -1, np.int64)
    dense[ids] = np.arange(len(ids))
    inst = np.where(instance >= 0, dense[np.maximum(instance, 0)], -1)
    cls_of = np.zeros(len(ids), np.int64)  # benchmark class id of each GT instance
    cls_of[inst[instance >= 0]] = label_set.train_to_id[semantic[instance >= 0]]
    labels = list(cls_of)
    on = instance == split
    half = on & (xyz[:, 0] > np.median(xyz[on, 0]))
    inst[half] = len(labels)
    labels.append(cls_of[dense[split]])
    inst[instance == merged] = dense[merged_into]
    inst[instance == missed] = -1
    floor = semantic == label_set.names.index(FLOOR_NAME)
    centre = xyz[np.flatnonzero(floor)[rng.integers(floor.sum())]]
    patch = floor & (np.linalg.norm(xyz[:, :2] - centre[:2], axis=1) < 0.5)
    inst[patch] = len(labels)
    labels.append(label_set.instance_ids[0])
    used, inst[inst >= 0] = np.unique(inst[inst >= 0], return_inverse=True)  # no empty predictions
    labels = np.asarray(labels, np.int64)[used]
    sem = np.where(semantic >= 0, label_set.train_to_id[np.maximum(semantic, 0)], label_set.ids[0])
    sem = np.where(inst >= 0, labels[np.maximum(inst, 0)], sem)
    wrong = half | (instance == merged) | (instance == missed) | patch
    uncertainty = np.clip(rng.normal(0.2, 0.05, len(xyz)) + 0.5 * wrong, 0.0, 1.0).astype(np.float32)
    pred = VertexPrediction(scene, inst, labels, rng.uniform(0.5, 1.0, len(labels)), sem, uncertainty)
    return MadeErrors(pred, split, merged, merged_into, missed, patch)
