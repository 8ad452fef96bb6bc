"""One scene's predictions against its GT: the overlaps the instance AP is computed from.

The matching rules (void vertices, small regions, same-class pairs) are those of
ScanNet's evaluate_semantic_instance.py, listed in ``instance.py``'s docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scene_pe.labels.label_set import SCANNET20, LabelSet
from scene_pe.evaluation.masks import SparseMasks
from scene_pe.util.errors import SceneError

MIN_REGION_SIZE = 100  # vertices: smaller predictions are dropped, smaller GT is not scored


def gt_from_training_labels(semantic, instance, label_set: LabelSet = SCANNET20) -> np.ndarray:
    """Evaluator GT from a preprocessed scene's ``semantic`` / ``instance`` arrays.

    Instance vertices get ``class * 1000 + instance + 1``, the others their class
    id (0 when ignored). Scores as the GT txt for both metrics: any vertex outside
    the instance classes is void for AP, and ``semantic.gt_labels`` reads ids < 1000
    as labels (the stuff classes' ids are < 1000 in both label sets).
    """
    semantic = np.asarray(semantic, dtype=np.int64)
    instance = np.asarray(instance, dtype=np.int64)
    cls = np.where(semantic >= 0, label_set.train_to_id[np.clip(semantic, 0, label_set.num_classes - 1)], 0)
    if ((instance >= 0) & (label_set.instance_index(cls) < 0)).any():
        raise ValueError("instance vertices must have an instance-class semantic label")
    return np.where(instance >= 0, cls * 1000 + instance + 1, cls)


@dataclass(frozen=True)
class ScenePrediction:
    """Predicted instances of one scene.

    ``masks``: (K, N) bool (or int, non-zero = inside), or (N,) int: the
    instance index 0..K-1 of each vertex, -1 for none, or ``SparseMasks``
    (the vertex indices inside each mask, as the file readers give them). ``labels``: (K,)
    class ids of the label set (NYU40 ids for ScanNet v2). ``scores``: (K,) confidences.
    """

    masks: np.ndarray
    labels: np.ndarray
    scores: np.ndarray


@dataclass
class SceneMatches:
    """What the metric needs from one scene (small: no per-vertex arrays)."""

    pred_class: np.ndarray  # (P,) class index of the kept predictions, in input order
    pred_score: np.ndarray  # (P,) float64
    pred_size: np.ndarray  # (P,) vertices
    pred_ignore: np.ndarray  # (P,) vertices that are void or on small GT of its class
    gt_class: np.ndarray  # (G,) class index of the GT instances, by increasing id
    gt_size: np.ndarray  # (G,) vertices
    pair_pred: np.ndarray  # (M,) same-class (prediction, GT) pairs that intersect
    pair_gt: np.ndarray  # (M,)
    pair_inter: np.ndarray  # (M,) intersection in vertices
    gt_below_1000: np.ndarray | None = None  # (G,) GT values 1..999: never scored (None: all >= 1000)


def _unique(gt_ids: np.ndarray):
    """``np.unique(gt_ids, return_inverse=True, return_counts=True)``, by counting when the
    values are small (ScanNet v2 GT ``nyu40 * 1000 + id`` is below ~41000; ScanNet200's ids reach
    1191, so its larger values sort as before): a third of sorting's time."""
    top = int(gt_ids.max()) if gt_ids.size else 0
    if top > 4 * gt_ids.size + (1 << 16):
        return np.unique(gt_ids, return_inverse=True, return_counts=True)
    counts = np.bincount(gt_ids, minlength=top + 1)
    uniq = np.flatnonzero(counts)
    position = np.zeros(len(counts), dtype=np.intp)
    position[uniq] = np.arange(len(uniq))
    return uniq.astype(gt_ids.dtype), position[gt_ids], counts[uniq]


def _intersections(gt_ids: np.ndarray, masks, num_pred: int, scene: str):
    """(K, U) vertex counts of prediction k on GT value uniq[u]; and uniq, counts."""
    uniq, inv, counts = _unique(gt_ids)
    n_u = len(uniq)
    if isinstance(masks, SparseMasks):
        key = masks.rows() * n_u + inv[masks.indices]
    elif masks.ndim == 2:
        rows, cols = np.nonzero(masks)
        key = rows * n_u + inv[cols]
    else:  # per-vertex instance index
        if masks.size and masks.max() >= num_pred:
            raise SceneError(scene, "predictions",
                             f"instance index {masks.max()} >= {num_pred} labels")
        sel = masks >= 0
        key = masks[sel].astype(np.int64) * n_u + inv[sel]
    inter = np.bincount(key, minlength=num_pred * n_u).reshape(num_pred, n_u)
    return inter, uniq, counts


def match_scene(gt_ids, masks, labels, scores, *, scene: str = "scene",
                min_region_size: int = MIN_REGION_SIZE, label_set: LabelSet = SCANNET20) -> SceneMatches:
    """Overlaps of one scene's predictions with its GT (``class*1000+id`` per vertex)."""
    gt_ids = np.asarray(gt_ids).astype(np.int64, copy=False).ravel()
    if not isinstance(masks, SparseMasks):
        masks = np.asarray(masks)
    labels = np.asarray(labels, dtype=np.int64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n, k = len(gt_ids), len(labels)
    if len(scores) != k:
        raise SceneError(scene, "predictions", f"{k} labels but {len(scores)} scores")
    if k == 0 and not isinstance(masks, SparseMasks) and masks.size == 0:
        masks = np.zeros((0, n), dtype=bool)
    want = (k, n) if len(masks.shape) == 2 else (n,)
    if masks.shape != want:
        raise SceneError(scene, "predictions", f"masks of shape {masks.shape}, expected {want} "
                         f"({n} GT vertices, {k} instances)")
    if np.isnan(scores).any():
        raise SceneError(scene, "predictions", "NaN confidence")
    if (gt_ids < 0).any():
        raise SceneError(scene, "ground truth", "negative GT value")
    if isinstance(masks, SparseMasks):
        if len(masks.indices) and (masks.indices.min() < 0 or masks.indices.max() >= n):
            raise SceneError(scene, "predictions", f"mask vertex index outside 0..{n - 1}")
    elif masks.ndim == 2 and masks.dtype != bool:
        masks = masks != 0  # official: any non-zero value is inside

    inter, uniq, counts = _intersections(gt_ids, masks, k, scene)
    uniq_class = label_set.instance_index(uniq // 1000)  # 0 // 1000 = 0 -> -1 unless class id 0 has instances
    size = inter.sum(axis=1)
    void = inter[:, uniq_class < 0].sum(axis=1)
    pred_class = label_set.instance_index(labels)
    keep = (pred_class >= 0) & (size >= min_region_size)

    # Value 0 is no GT instance (the official get_instances skips it) but, when class id 0 has
    # instances (only possible for scannetpp), not void either; values 1..999 are GT instances
    # the official scripts never score (their filter instance_id >= 1000): as small ones.
    gt_cols = np.flatnonzero((uniq_class >= 0) & (uniq > 0))
    gt_class, gt_size = uniq_class[gt_cols], counts[gt_cols].astype(np.int64)
    below_1000 = uniq[gt_cols] < 1000
    # vertices of a prediction on unscored GT of its class count as ignored, twice for GT that is
    # both below 1000 and small as the official sum (class id 0 never has scored GT, so its AP is
    # NaN whatever is ignored: the rules for values below 1000 cannot change a score; value 0 not
    # being void can, for the other classes' predictions)
    ignore_weight = (gt_size < min_region_size).astype(np.int64) + below_1000
    pred_class, size, void = pred_class[keep], size[keep], void[keep]
    same = pred_class[:, None] == gt_class[None, :]
    inter = np.where(same, inter[keep][:, gt_cols], 0)
    pair_pred, pair_gt = np.nonzero(inter)
    pair_inter = inter[pair_pred, pair_gt].astype(np.int64)
    on_small = np.bincount(pair_pred, weights=pair_inter * ignore_weight[pair_gt], minlength=len(size))
    return SceneMatches(pred_class, scores[keep], size.astype(np.int64),
                        void.astype(np.int64) + on_small.astype(np.int64),
                        gt_class, gt_size, pair_pred, pair_gt, pair_inter, below_1000)
