"""What is wrong with one scene's instances, vertex by vertex and instance by instance (the HTML viewer).

Error kind per vertex, on the population and the "own GT instance" of
scene_pe.evaluation.uncertainty (the vertices of the label set's classes; wall
and floor have no own instance):

  void            outside the population (unannotated, other classes): not scored
  right           ``wrong_assignments`` calls it right and it is no split
  missed          it has an own GT instance but no prediction
  false positive  a prediction took it but it has no own GT instance (wall, floor)
  merged          a prediction took it whose majority is another GT instance
                  (its object was merged into another object's prediction)
  split           right by ``wrong_assignments`` (its prediction's majority is its
                  own GT instance) but not in the largest such prediction of that
                  instance: its object was split into several predictions

missed, false positive and merged are exactly ``wrong_assignments``'s wrong
vertices, so the error layer and the uncertainty AUROC count the same errors;
split is the over-segmentation that rule leaves right.

Instance matches: each prediction's best GT instance of its own class by IoU,
and each GT instance's best prediction, from ``match_scene`` (the benchmark's
overlaps: a prediction of another class never matches, as for AP).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scene_pe.labels.label_set import SCANNET20, LabelSet
from scene_pe.evaluation.matching import match_scene
from scene_pe.evaluation.uncertainty import NO_INSTANCE, own_instances, wrong_assignments

VOID, RIGHT, MISSED, FALSE_POSITIVE, MERGED, SPLIT = -1, 0, 1, 2, 3, 4
ERROR_KINDS = ("right", "missed", "false positive", "merged", "split")  # names of 0..4


def error_kinds(gt, instance, label_set: LabelSet = SCANNET20) -> np.ndarray:
    """(N,) int8 error kind per vertex (VOID, RIGHT, MISSED, FALSE_POSITIVE, MERGED, SPLIT)."""
    population, wrong = wrong_assignments(gt, instance, label_set)
    own = own_instances(gt, label_set)[1]
    inst = np.asarray(instance, dtype=np.int64).ravel()
    assigned, has_own = inst >= 0, own != NO_INSTANCE
    kind = np.full(inst.shape, VOID, np.int8)
    kind[population] = RIGHT
    kind[wrong & ~assigned] = MISSED
    kind[wrong & assigned & ~has_own] = FALSE_POSITIVE
    kind[wrong & assigned & has_own] = MERGED
    right = np.flatnonzero(population & assigned & has_own & ~wrong)
    if right.size:
        # (own GT instance, prediction) pairs of the right vertices; per GT instance the pair with
        # the most vertices (ties: the smaller prediction id) is its main prediction, the rest split
        base = int(inst.max()) + 1
        pairs, inv, counts = np.unique(own[right] * base + inst[right], return_inverse=True, return_counts=True)
        pair_own = pairs // base
        order = np.lexsort((pairs, -counts, pair_own))
        first = np.ones(len(order), bool)
        first[1:] = pair_own[order][1:] != pair_own[order][:-1]
        main = np.zeros(len(pairs), bool)
        main[order[first]] = True
        kind[right[~main[inv.ravel()]]] = SPLIT
    return kind


@dataclass(frozen=True)
class InstanceMatches:
    """Best same-class overlaps between a scene's predictions (K) and GT instances (G)."""

    gt_values: np.ndarray  # (G,) GT value (class * 1000 + id) of each GT instance, ascending
    gt_size: np.ndarray    # (G,) vertices
    pred_gt: np.ndarray    # (K,) index into gt_values of the prediction's best GT instance, -1 none
    pred_iou: np.ndarray   # (K,) its IoU (0 without one)
    gt_pred: np.ndarray    # (G,) the GT instance's best prediction, -1 none
    gt_iou: np.ndarray     # (G,)

    @property
    def gt_class(self) -> np.ndarray:
        return self.gt_values // 1000


def _best(owner: np.ndarray, other: np.ndarray, iou: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per owner 0..size-1 the ``other`` of highest IoU (ties: the smaller), -1 / 0 where none."""
    best, best_iou = np.full(size, -1, np.int64), np.zeros(size)
    order = np.lexsort((other, -iou, owner))
    first = np.ones(len(order), bool)
    first[1:] = owner[order][1:] != owner[order][:-1]
    best[owner[order[first]]] = other[order[first]]
    best_iou[owner[order[first]]] = iou[order[first]]
    return best, best_iou


def match_instances(gt, instance, labels, scores, label_set: LabelSet = SCANNET20) -> InstanceMatches:
    """Each prediction's best GT instance and each GT instance's best prediction (IoU, same class)."""
    gt = np.asarray(gt, dtype=np.int64).ravel()
    labels = np.asarray(labels, dtype=np.int64).ravel()
    # min_region_size 0 keeps every prediction of an instance class, in order, and every GT instance
    m = match_scene(gt, np.asarray(instance, dtype=np.int64).ravel(), labels, scores, min_region_size=0,
                    label_set=label_set)
    kept = np.flatnonzero(label_set.instance_index(labels) >= 0)
    values = np.unique(gt)
    values = values[label_set.instance_index(values // 1000) >= 0]  # the GT columns of match_scene, in order
    if len(values) != len(m.gt_size) or len(kept) != len(m.pred_size):
        raise AssertionError("match_scene's GT or prediction order changed")
    iou = m.pair_inter / (m.pred_size[m.pair_pred] + m.gt_size[m.pair_gt] - m.pair_inter)
    pred_best, pred_iou = _best(m.pair_pred, m.pair_gt, iou, len(kept))
    gt_best, gt_iou = _best(m.pair_gt, m.pair_pred, iou, len(values))
    pred_gt, pred_iou_all = np.full(len(labels), -1, np.int64), np.zeros(len(labels))
    pred_gt[kept], pred_iou_all[kept] = pred_best, pred_iou
    gt_pred = np.where(gt_best >= 0, kept[np.maximum(gt_best, 0)] if len(kept) else -1, -1)
    return InstanceMatches(values, m.gt_size, pred_gt, pred_iou_all, gt_pred, gt_iou)


__all__ = ["ERROR_KINDS", "VOID", "RIGHT", "MISSED", "FALSE_POSITIVE", "MERGED", "SPLIT", "error_kinds",
           "InstanceMatches", "match_instances"]
