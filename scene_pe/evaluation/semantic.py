"""ScanNet v2 semantic segmentation metric: per-class IoU and mIoU over the 20 classes.

Follows ScanNet's ``BenchmarkScripts/3d_evaluation/evaluate_semantic_label.py``:

* Only vertices whose GT NYU40 id is one of the 20 benchmark classes count;
  all others (0 unannotated, non-benchmark classes) are ignored.
* A prediction that is not one of the 20 ids counts as an extra "unknown"
  class: it is a false negative of the GT class and a false positive of none.
* IoU_c = TP / (TP + FP + FN) with FP counted over GT rows of the 20 classes;
  NaN where the denominator is 0. mIoU (the benchmark's number; the script
  itself prints only the class IoUs) is the mean over classes, ignoring NaN.

GT may be given as NYU40 ids or in the instance GT format ``nyu40*1000+id``:
values >= 1000 are divided by 1000 (a NYU40 id is at most 40, so the two
cannot be confused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from scene_pe.data.labels import (NUM_SEMANTIC, SEMANTIC_NAMES, SEMANTIC_NYU40_IDS, index_table,
                                  map_nyu40)
from scene_pe.util.errors import SceneError

UNKNOWN = NUM_SEMANTIC  # column of predictions outside the 20 classes

_NYU40_TO_SEM = index_table(SEMANTIC_NYU40_IDS, -1)


def semantic_index(nyu40) -> np.ndarray:
    """Index 0..19 into ``SEMANTIC_NYU40_IDS`` per NYU40 id, -1 for any other value."""
    return map_nyu40(_NYU40_TO_SEM, nyu40, -1)


def gt_labels(gt) -> np.ndarray:
    """NYU40 id per vertex from NYU40 ids or instance-format GT (``nyu40*1000+id``)."""
    gt = np.asarray(gt, dtype=np.int64)
    return np.where(gt >= 1000, gt // 1000, gt)


def semantic_confusion(gt, pred) -> np.ndarray:
    """(20, 21) int64 counts: rows GT class, columns predicted class (last: unknown)."""
    gt_idx = semantic_index(gt_labels(gt)).ravel()
    pred_idx = semantic_index(pred).ravel()
    if gt_idx.shape != pred_idx.shape:
        raise ValueError(f"{pred_idx.size} predictions for {gt_idx.size} GT vertices")
    pred_idx[pred_idx < 0] = UNKNOWN
    sel = gt_idx >= 0
    flat = gt_idx[sel] * (NUM_SEMANTIC + 1) + pred_idx[sel]
    return np.bincount(flat, minlength=NUM_SEMANTIC * (NUM_SEMANTIC + 1)).reshape(
        NUM_SEMANTIC, NUM_SEMANTIC + 1)


def iou_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """(20,) IoU per class, NaN where the class has neither GT nor predictions."""
    conf = np.asarray(confusion, dtype=np.int64)
    tp = np.diag(conf[:, :NUM_SEMANTIC])
    fn = conf.sum(axis=1) - tp  # includes predictions outside the classes
    fp = conf[:, :NUM_SEMANTIC].sum(axis=0) - tp
    denom = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / denom, np.nan)


@dataclass
class SemanticResult:
    """Confusion matrix, IoU per class (order of ``SEMANTIC_NYU40_IDS``) and mIoU."""

    confusion: np.ndarray  # (20, 21)
    num_scenes: int
    class_names: tuple = SEMANTIC_NAMES
    class_ids: tuple = SEMANTIC_NYU40_IDS

    @property
    def iou(self) -> np.ndarray:
        return iou_from_confusion(self.confusion)

    @property
    def miou(self) -> float:
        iou = self.iou
        return float(np.nanmean(iou)) if (~np.isnan(iou)).any() else float("nan")

    @property
    def accuracy(self) -> float:
        """Overall vertex accuracy over the counted vertices."""
        total = self.confusion.sum()
        return float(np.trace(self.confusion[:, :NUM_SEMANTIC]) / total) if total else float("nan")

    def to_dict(self) -> dict:
        def num(x):
            return None if np.isnan(x) else float(x)
        return {"num_scenes": self.num_scenes, "miou": num(self.miou),
                "accuracy": num(self.accuracy),
                "classes": {n: {"nyu40_id": int(c), "iou": num(i)}
                            for n, c, i in zip(self.class_names, self.class_ids, self.iou)},
                "confusion": self.confusion.tolist()}

    def format_table(self) -> str:
        rows = [f"{'class':<16}{'IoU':>9}", "-" * 25]
        rows += [f"{n:<16}{i:>9.3f}" for n, i in zip(self.class_names, self.iou)]
        rows += ["-" * 25, f"{'mean':<16}{self.miou:>9.3f}"]
        return "\n".join(rows)


class SemanticEvaluator:
    """Accumulates the confusion matrix scene by scene."""

    def __init__(self):
        self.confusion = np.zeros((NUM_SEMANTIC, NUM_SEMANTIC + 1), dtype=np.int64)
        self._scenes: set[str] = set()

    def add(self, scene: str, gt, pred) -> None:
        """``gt``: NYU40 ids or instance-format GT; ``pred``: NYU40 id per vertex."""
        if scene in self._scenes:
            raise SceneError(scene, "predictions", "scene added twice")
        gt, pred = np.asarray(gt), np.asarray(pred)
        if gt.shape != pred.shape:
            raise SceneError(scene, "predictions",
                             f"{pred.size} predicted labels for {gt.size} GT vertices")
        self.confusion += semantic_confusion(gt, pred)
        self._scenes.add(scene)

    def merge(self, other: "SemanticEvaluator") -> None:
        """Add the scenes another evaluator saw (e.g. another DDP rank's)."""
        overlap = self._scenes & other._scenes
        if overlap:
            raise SceneError(sorted(overlap)[0], "predictions", "scene added twice")
        self.confusion += other.confusion
        self._scenes |= other._scenes

    def result(self) -> SemanticResult:
        return SemanticResult(self.confusion.copy(), len(self._scenes))


def evaluate_semantic(preds: Mapping[str, np.ndarray], gts: Mapping[str, np.ndarray]
                      ) -> SemanticResult:
    """mIoU of ``preds`` (scene -> NYU40 id per vertex) against ``gts`` (scene -> GT)."""
    ev = SemanticEvaluator()
    for scene, pred in preds.items():
        if scene not in gts:
            raise SceneError(scene, "ground truth", "no ground truth for this scene")
        ev.add(scene, gts[scene], pred)
    return ev.result()
