"""ScanNet semantic segmentation metric: per-class IoU and mIoU over a label set's classes.

Follows ScanNet's ``BenchmarkScripts/3d_evaluation/evaluate_semantic_label.py``
(ScanNet200: the same with its 200 classes):

* Only vertices whose GT class id is one of the label set's classes count;
  all others (0 unannotated, non-benchmark classes) are ignored.
* A prediction that is not one of the ids counts as an extra "unknown"
  class: it is a false negative of the GT class and a false positive of none.
* IoU_c = TP / (TP + FP + FN) with FP counted over GT rows of the classes;
  NaN where the denominator is 0. mIoU (the benchmark's number; the script
  itself prints only the class IoUs) is the mean over classes, ignoring NaN.

GT comes in one of two formats (``gt_format``): ``instance`` (default), the
instance GT format ``class*1000+id`` that tools/preprocess.py writes (values
>= 1000 are divided by 1000, smaller ones are class ids), or ``semantic``, one
class id per vertex as the official semantic GT files. For ScanNet v2 (NYU40
ids <= 40) ``instance`` reads both; ScanNet200's ids reach 1191, so its plain
semantic GT files need ``gt_format="semantic"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

import numpy as np

from scene_pe.labels.label_set import SCANNET20, LabelSet
from scene_pe.util.errors import SceneError


GtFormat = Literal["instance", "semantic"]
GT_FORMATS = ("instance", "semantic")


def gt_labels(gt, gt_format: GtFormat = "instance") -> np.ndarray:
    """Class id per vertex from instance-format GT (``class*1000+id``) or plain class ids."""
    gt = np.asarray(gt, dtype=np.int64)
    if gt_format == "semantic":
        return gt
    if gt_format != "instance":
        raise ValueError(f"gt_format must be one of {GT_FORMATS}, not {gt_format!r}")
    return np.where(gt >= 1000, gt // 1000, gt)


def semantic_confusion(gt, pred, label_set: LabelSet = SCANNET20, gt_format: GtFormat = "instance") -> np.ndarray:
    """(C, C+1) int64 counts: rows GT class, columns predicted class (last: unknown)."""
    c = label_set.num_classes
    gt_idx = label_set.semantic_index(gt_labels(gt, gt_format)).ravel()
    pred_idx = label_set.semantic_index(pred).ravel()
    if gt_idx.shape != pred_idx.shape:
        raise ValueError(f"{pred_idx.size} predictions for {gt_idx.size} GT vertices")
    pred_idx[pred_idx < 0] = c  # the "unknown" column
    sel = gt_idx >= 0
    flat = gt_idx[sel] * (c + 1) + pred_idx[sel]
    return np.bincount(flat, minlength=c * (c + 1)).reshape(c, c + 1)


def iou_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """(C,) IoU per class, NaN where the class has neither GT nor predictions."""
    conf = np.asarray(confusion, dtype=np.int64)
    c = conf.shape[0]
    tp = np.diag(conf[:, :c])
    fn = conf.sum(axis=1) - tp  # includes predictions outside the classes
    fp = conf[:, :c].sum(axis=0) - tp
    denom = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / denom, np.nan)


@dataclass
class SemanticResult:
    """Confusion matrix, IoU per class (the label set's order) and mIoU."""

    confusion: np.ndarray  # (C, C+1)
    num_scenes: int
    label_set: LabelSet = SCANNET20

    @property
    def class_names(self) -> tuple:
        return self.label_set.names

    @property
    def class_ids(self) -> tuple:
        return self.label_set.ids

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
        return float(np.trace(self.confusion[:, :-1]) / total) if total else float("nan")

    def to_dict(self) -> dict:
        def num(x):
            return None if np.isnan(x) else float(x)
        return {"num_scenes": self.num_scenes, "label_set": self.label_set.name, "miou": num(self.miou),
                "accuracy": num(self.accuracy),
                "classes": {n: {"id": int(c), "iou": num(i)}
                            for n, c, i in zip(self.class_names, self.class_ids, self.iou)},
                "confusion": self.confusion.tolist()}

    def format_table(self) -> str:
        w = max(16, max(len(n) for n in self.class_names) + 2)
        rows = [f"{'class':<{w}}{'IoU':>9}", "-" * (w + 9)]
        rows += [f"{n:<{w}}{i:>9.3f}" for n, i in zip(self.class_names, self.iou)]
        rows += ["-" * (w + 9), f"{'mean':<{w}}{self.miou:>9.3f}"]
        return "\n".join(rows)


class SemanticEvaluator:
    """Accumulates the confusion matrix scene by scene."""

    def __init__(self, label_set: LabelSet = SCANNET20, gt_format: GtFormat = "instance"):
        gt_labels(np.zeros(0, np.int64), gt_format)  # an unknown format fails here
        self.label_set, self.gt_format = label_set, gt_format
        self.confusion = np.zeros((label_set.num_classes, label_set.num_classes + 1), dtype=np.int64)
        self._scenes: set[str] = set()

    def add(self, scene: str, gt, pred) -> None:
        """``gt``: class ids or instance-format GT; ``pred``: class id per vertex."""
        if scene in self._scenes:
            raise SceneError(scene, "predictions", "scene added twice")
        gt, pred = np.asarray(gt), np.asarray(pred)
        if gt.shape != pred.shape:
            raise SceneError(scene, "predictions",
                             f"{pred.size} predicted labels for {gt.size} GT vertices")
        self.confusion += semantic_confusion(gt, pred, self.label_set, self.gt_format)
        self._scenes.add(scene)

    def merge(self, other: "SemanticEvaluator") -> None:
        """Add the scenes another evaluator saw (e.g. another DDP rank's)."""
        if other.label_set != self.label_set:
            raise ValueError(f"cannot merge {other.label_set.name} scores into {self.label_set.name}")
        overlap = self._scenes & other._scenes
        if overlap:
            raise SceneError(sorted(overlap)[0], "predictions", "scene added twice")
        self.confusion += other.confusion
        self._scenes |= other._scenes

    def result(self) -> SemanticResult:
        return SemanticResult(self.confusion.copy(), len(self._scenes), self.label_set)


def evaluate_semantic(preds: Mapping[str, np.ndarray], gts: Mapping[str, np.ndarray],
                      label_set: LabelSet = SCANNET20, gt_format: GtFormat = "instance") -> SemanticResult:
    """mIoU of ``preds`` (scene -> class id per vertex) against ``gts`` (scene -> GT)."""
    ev = SemanticEvaluator(label_set, gt_format)
    for scene, pred in preds.items():
        if scene not in gts:
            raise SceneError(scene, "ground truth", "no ground truth for this scene")
        ev.add(scene, gts[scene], pred)
    return ev.result()
