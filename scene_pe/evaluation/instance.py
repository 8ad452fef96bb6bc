"""ScanNet v2 instance segmentation metrics: AP (IoU 0.50:0.05:0.90), AP50, AP25.

Gives the numbers of ScanNet's official
``BenchmarkScripts/3d_evaluation/evaluate_semantic_instance.py`` (re-derived
from its algorithm, vectorised). Its rules, as implemented here:

* GT instances are the distinct non-zero values ``v = class * 1000 + id`` of
  the GT array whose class ``v // 1000`` is one of the label set's instance
  classes (``class``: NYU40 id for ScanNet v2's 18, the tsv ``id`` for
  ScanNet200's 198). Vertices of any other class (0 unannotated, wall, floor,
  non-benchmark objects) are *void*.
* A prediction whose label is not one of the instance classes, or whose mask has
  fewer than 100 vertices, is dropped: neither TP nor FP.
* A GT instance under 100 vertices ("small") is not scored (no TP, no FN); nor is a
  GT value 1..999 (class id 0: the official ``instance_id >= 1000`` filter; only ScanNet++
  can have instances of class id 0). Value 0 is no instance (void unless class id 0 has
  instances, ScanNet++'s case).
* For IoU threshold ``t``, per class and scene, GT instances in increasing id
  order scan the predictions of their class in prediction order and take those
  with IoU > t (strictly) not already taken by an earlier GT: the first is a
  TP, each further one is a FP; the GT keeps the highest confidence, the FP
  gets the lower one. (A duplicate is never marked taken, so it can also match
  a later GT; for t >= 0.5 no prediction can exceed t with two GT instances.)
* A prediction with IoU <= t to every GT instance of its class (small ones
  included) is a FP, unless more than ``t`` of its vertices are void or lie on
  small GT instances of its class (then it is ignored; a GT below 1000 that is also small
  counts twice, as the official sum).
* Per class, the TP/FP entries of all scenes are ranked by confidence. At each
  distinct confidence ``c`` (ascending): precision and recall of the entries
  with confidence >= c, recall over the scored GT instances; then an artificial
  point (recall 0, precision 1). AP = sum_k p_k (r_{k-1} - r_{k+1}) / 2 with
  r_{-1} = r_0 and 0 past the artificial point (the official convolution).
* A class without scored GT is NaN; with GT but no prediction, 0. Per class AP
  is the mean over the 9 thresholds; means over classes ignore NaN.
* ScanNet++ is scored by its toolkit's copy of the script (``scannetpp.py``: the vertex mask);
  ScanNet200 is scored by the same script with its class list; its head /
  common / tail figures are the same NaN-ignoring means over the instance
  classes of each split.

Where the official script crashes or depends on dict order:

* Predictions of a scene are processed in the order given (submission line
  order); the official Python 2 script uses dict order. Matters only for
  t < 0.5 (AP25), where one prediction can exceed t with two GT instances.
* A class with scored GT and predictions but no ranked entry (no TP, every
  prediction ignored) crashes the official script (IndexError); here AP = 0.
* The official distance thresholds (inf, -inf) never filter anything and are
  left out; a mask file named twice is rejected by the file reader (io.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from scene_pe.labels.label_set import SCANNET20, LabelSet
from scene_pe.evaluation.matching import MIN_REGION_SIZE, SceneMatches, ScenePrediction, match_scene
from scene_pe.util.errors import SceneError

AP_THRESHOLDS = np.arange(0.5, 0.95, 0.05)  # 0.50 ... 0.90, exactly as the official script
AP25_THRESHOLD = 0.25


def _nanmean(a: np.ndarray, axis=None):
    """Mean ignoring NaN, NaN (without a warning) where everything is NaN."""
    a = np.asarray(a, dtype=np.float64)
    valid = ~np.isnan(a)
    total = np.where(valid, a, 0.0).sum(axis=axis)
    count = valid.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


@dataclass
class InstanceResult:
    """AP per instance class (label set order) and means; NaN: class without GT."""

    ap_per_threshold: np.ndarray  # (K, 9): AP at each of AP_THRESHOLDS, K instance classes
    ap25: np.ndarray  # (K,)
    num_gt: np.ndarray  # (K,) scored GT instances (>= min_region_size vertices)
    num_pred: np.ndarray  # (K,) predictions taking part (valid label, >= min_region_size)
    num_scenes: int
    label_set: LabelSet = SCANNET20
    thresholds: np.ndarray = field(default_factory=lambda: AP_THRESHOLDS.copy())

    @property
    def class_names(self) -> tuple:
        return self.label_set.instance_names

    @property
    def class_ids(self) -> tuple:
        return self.label_set.instance_ids

    def split_means(self) -> dict[str, dict[str, float]]:
        """Per split of the label set (ScanNet200: head / common / tail): mean AP, AP50, AP25."""
        out = {}
        for name, idx in self.label_set.split_of_instance_classes().items():
            out[name] = {"ap": float(_nanmean(self.ap_per_threshold[idx])),
                         "ap50": float(_nanmean(self.ap50[idx])), "ap25": float(_nanmean(self.ap25[idx]))}
        return out

    @property
    def ap(self) -> np.ndarray:
        return self.ap_per_threshold.mean(axis=1)

    @property
    def ap50(self) -> np.ndarray:
        return self.ap_per_threshold[:, 0]

    @property
    def mean_ap(self) -> float:
        return float(_nanmean(self.ap_per_threshold))  # official: nanmean over class x threshold

    @property
    def mean_ap50(self) -> float:
        return float(_nanmean(self.ap50))

    @property
    def mean_ap25(self) -> float:
        return float(_nanmean(self.ap25))

    def to_dict(self) -> dict:
        """JSON-ready (NaN -> None)."""
        def num(x):
            return None if np.isnan(x) else float(x)
        classes = {
            name: {"id": int(cid), "ap": num(a), "ap50": num(a50), "ap25": num(a25),
                   "num_gt": int(ng), "num_pred": int(npred)}
            for name, cid, a, a50, a25, ng, npred in zip(
                self.class_names, self.class_ids, self.ap, self.ap50, self.ap25,
                self.num_gt, self.num_pred)
        }
        return {"num_scenes": self.num_scenes, "label_set": self.label_set.name,
                "mean": {"ap": num(self.mean_ap), "ap50": num(self.mean_ap50),
                         "ap25": num(self.mean_ap25)},
                "splits": {s: {k: num(v) for k, v in m.items()} for s, m in self.split_means().items()},
                "classes": classes}

    def format_table(self) -> str:
        """Per-class table and means, as the official script prints them."""
        w = max(16, max(len(n) for n in self.class_names) + 2)
        head = f"{'class':<{w}}{'AP':>9}{'AP50':>9}{'AP25':>9}{'#GT':>7}"
        rows = [head, "-" * len(head)]
        for name, a, a50, a25, ng in zip(self.class_names, self.ap, self.ap50, self.ap25,
                                         self.num_gt):
            rows.append(f"{name:<{w}}{a:>9.3f}{a50:>9.3f}{a25:>9.3f}{ng:>7d}")
        rows.append("-" * len(head))
        for name, m in self.split_means().items():
            rows.append(f"{name:<{w}}{m['ap']:>9.3f}{m['ap50']:>9.3f}{m['ap25']:>9.3f}")
        rows.append(f"{'average':<{w}}{self.mean_ap:>9.3f}{self.mean_ap50:>9.3f}"
                    f"{self.mean_ap25:>9.3f}{int(self.num_gt.sum()):>7d}")
        return "\n".join(rows)


def average_precision(score: np.ndarray, true: np.ndarray, num_missed: int) -> float:
    """AP of ranked entries (confidence, is-TP) with ``num_missed`` GT never matched."""
    if len(score) == 0:
        return 0.0  # official: IndexError (see module docstring)
    order = np.argsort(score, kind="stable")
    score, true = score[order], true[order].astype(np.int64)
    first = np.flatnonzero(np.r_[True, score[1:] != score[:-1]])  # first entry of each confidence
    cum = np.concatenate(([0], np.cumsum(true)))
    true_below = cum[first]  # TPs ranked below this confidence
    tp = cum[-1] - true_below
    fp = len(score) - first - tp
    fn = true_below + num_missed
    precision = np.append(tp / (tp + fp), 1.0)
    recall = np.append(tp / (tp + fn), 0.0)
    padded = np.concatenate(([recall[0]], recall, [0.0]))
    return float(np.dot(precision, (padded[:-2] - padded[2:]) / 2))


@dataclass
class _Pooled:
    """All scenes' matches concatenated with global prediction / GT indices."""

    pred_class: np.ndarray
    pred_score: np.ndarray
    pred_size: np.ndarray
    pred_ignore: np.ndarray
    gt_class: np.ndarray
    gt_size: np.ndarray
    pair_pred: np.ndarray
    pair_gt: np.ndarray
    pair_iou: np.ndarray
    gt_below_1000: np.ndarray  # (G,) bool: values 1..999, scored as small GT (matching.py)

    def gt_scored(self, min_region_size: int) -> np.ndarray:
        return (self.gt_size >= min_region_size) & ~self.gt_below_1000

    @classmethod
    def of(cls, scenes: Sequence[SceneMatches]) -> "_Pooled":
        def cat(name, dtype):
            parts = [getattr(s, name) for s in scenes]
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
        p_off = np.cumsum([0] + [len(s.pred_class) for s in scenes])[:-1]
        g_off = np.cumsum([0] + [len(s.gt_class) for s in scenes])[:-1]
        empty = [np.zeros(0)]
        pair_pred = np.concatenate([s.pair_pred + o for s, o in zip(scenes, p_off)] or empty)
        pair_gt = np.concatenate([s.pair_gt + o for s, o in zip(scenes, g_off)] or empty)
        pair_pred, pair_gt = pair_pred.astype(np.int64), pair_gt.astype(np.int64)
        inter = cat("pair_inter", np.int64)
        pred_size, gt_size = cat("pred_size", np.int64), cat("gt_size", np.int64)
        iou = inter / (gt_size[pair_gt] + pred_size[pair_pred] - inter)
        # Greedy matching order: GT (scene, then id), then prediction order.
        order = np.lexsort((pair_pred, pair_gt))
        below = [s.gt_below_1000 if s.gt_below_1000 is not None else np.zeros(len(s.gt_class), bool)
                 for s in scenes]
        return cls(cat("pred_class", np.int64), cat("pred_score", np.float64), pred_size,
                   cat("pred_ignore", np.int64), cat("gt_class", np.int64), gt_size,
                   pair_pred[order], pair_gt[order], iou[order],
                   np.concatenate(below or [np.zeros(0, bool)]).astype(bool))


def _greedy(lg: np.ndarray, lp: np.ndarray, score: np.ndarray, num_gt: int):
    """Official greedy assignment over candidate (GT, prediction) pairs in order.

    Only needed when a prediction is a candidate of two GT instances (t < 0.5).
    Returns per-GT matched flag and score, and the GT indices / scores of duplicate FPs.
    """
    matched = np.zeros(num_gt, dtype=bool)
    gt_score = np.full(num_gt, -np.inf)
    taken = np.zeros(len(score), dtype=bool)
    dup_gt, dup_score = [], []
    for g, p in zip(lg.tolist(), lp.tolist()):
        if taken[p]:
            continue
        if matched[g]:  # lower of the two confidences becomes a FP; p stays untaken
            dup_gt.append(g)
            dup_score.append(min(gt_score[g], score[p]))
            gt_score[g] = max(gt_score[g], score[p])
        else:
            matched[g], gt_score[g], taken[p] = True, score[p], True
    return matched, gt_score, np.asarray(dup_gt, np.int64), np.asarray(dup_score, np.float64)


def _threshold_aps(pool: _Pooled, t: float, min_region_size: int, num_classes: int) -> np.ndarray:
    """(K,) AP of every instance class at IoU threshold ``t``."""
    n_pred, n_gt = len(pool.pred_class), len(pool.gt_class)
    gt_scored = pool.gt_scored(min_region_size)
    cand = pool.pair_iou > t
    has_candidate = np.zeros(n_pred, dtype=bool)
    has_candidate[pool.pair_pred[cand]] = True  # small GT included: such a prediction is no FP
    sel = cand & gt_scored[pool.pair_gt]
    lg, lp = pool.pair_gt[sel], pool.pair_pred[sel]
    score = pool.pred_score

    if len(lp) == 0 or np.bincount(lp).max() <= 1:
        # Each prediction is a candidate of at most one GT: the greedy result does not
        # depend on order. Each GT with candidates is a TP at their highest confidence;
        # the other candidates are FPs at their own confidence.
        by_gt = np.lexsort((-score[lp], lg))
        lg_s, sc_s = lg[by_gt], score[lp][by_gt]
        first = np.ones(len(lg_s), dtype=bool)  # first (most confident) candidate of its GT
        first[1:] = lg_s[1:] != lg_s[:-1]
        matched = np.zeros(n_gt, dtype=bool)
        matched[lg_s[first]] = True
        gt_score = np.full(n_gt, -np.inf)
        gt_score[lg_s[first]] = sc_s[first]
        dup_gt, dup_score = lg_s[~first], sc_s[~first]
    else:
        matched, gt_score, dup_gt, dup_score = _greedy(lg, lp, score, n_gt)

    with np.errstate(invalid="ignore", divide="ignore"):
        counted = ~has_candidate & (pool.pred_ignore / pool.pred_size <= t)
    entry_class = np.concatenate([pool.gt_class[matched], pool.gt_class[dup_gt],
                                  pool.pred_class[counted]])
    entry_score = np.concatenate([gt_score[matched], dup_score, score[counted]])
    entry_true = np.concatenate([np.ones(matched.sum(), bool), np.zeros(len(dup_gt), bool),
                                 np.zeros(counted.sum(), bool)])
    missed = np.bincount(pool.gt_class[gt_scored & ~matched], minlength=num_classes)
    has_gt = np.bincount(pool.gt_class[gt_scored], minlength=num_classes) > 0
    has_pred = np.bincount(pool.pred_class, minlength=num_classes) > 0

    order = np.argsort(entry_class, kind="stable")
    bounds = np.searchsorted(entry_class[order], np.arange(num_classes + 1))
    aps = np.full(num_classes, np.nan)
    for c in np.flatnonzero(has_gt).tolist():  # classes with GT; the others stay NaN
        if has_pred[c]:
            idx = order[bounds[c]:bounds[c + 1]]
            aps[c] = average_precision(entry_score[idx], entry_true[idx], int(missed[c]))
        else:
            aps[c] = 0.0
    return aps


def compute_ap(scenes: Sequence[SceneMatches], *, min_region_size: int = MIN_REGION_SIZE,
               label_set: LabelSet = SCANNET20) -> InstanceResult:
    """AP per class and threshold from the matches of all scenes."""
    pool = _Pooled.of(scenes)
    k = len(label_set.instance_ids)
    per_t = np.stack([_threshold_aps(pool, t, min_region_size, k) for t in AP_THRESHOLDS], axis=1)
    ap25 = _threshold_aps(pool, AP25_THRESHOLD, min_region_size, k)
    num_gt = np.bincount(pool.gt_class[pool.gt_scored(min_region_size)], minlength=k)
    num_pred = np.bincount(pool.pred_class, minlength=k)
    return InstanceResult(per_t, ap25, num_gt, num_pred, len(scenes), label_set)


class InstanceEvaluator:
    """Accumulates scenes one at a time (keeps only small per-scene summaries)."""

    def __init__(self, min_region_size: int = MIN_REGION_SIZE, label_set: LabelSet = SCANNET20):
        self.min_region_size = min_region_size
        self.label_set = label_set
        self._scenes: dict[str, SceneMatches] = {}

    def add(self, scene: str, gt_ids, masks, labels, scores) -> None:
        """Add one scene: GT per vertex and its predictions (see ``ScenePrediction``)."""
        if scene in self._scenes:
            raise SceneError(scene, "predictions", "scene added twice")
        self._scenes[scene] = match_scene(gt_ids, masks, labels, scores, scene=scene,
                                          min_region_size=self.min_region_size, label_set=self.label_set)

    @property
    def num_scenes(self) -> int:
        return len(self._scenes)

    def merge(self, other: "InstanceEvaluator") -> None:
        """Add the scenes another evaluator saw (e.g. another DDP rank's)."""
        if other.label_set != self.label_set:
            raise ValueError(f"cannot merge {other.label_set.name} scores into {self.label_set.name}")
        for scene, matches in other._scenes.items():
            if scene in self._scenes:
                raise SceneError(scene, "predictions", "scene added twice")
            self._scenes[scene] = matches

    def result(self) -> InstanceResult:
        # scenes by name, not in the order they were added (a resumed run adds its saved scenes
        # first, DDP ranks merge in rank order): the pooled predictions are then the same arrays
        return compute_ap([self._scenes[s] for s in sorted(self._scenes)], min_region_size=self.min_region_size,
                          label_set=self.label_set)


def evaluate_instances(preds: Mapping[str, ScenePrediction | tuple],
                       gts: Mapping[str, np.ndarray], *,
                       min_region_size: int = MIN_REGION_SIZE, label_set: LabelSet = SCANNET20) -> InstanceResult:
    """Benchmark AP of ``preds`` (scene -> ScenePrediction or (masks, labels, scores)).

    Scenes are those of ``preds`` (as the official script: GT scenes without
    predictions are not scored); each needs GT in ``gts`` (``class*1000+id``).
    """
    ev = InstanceEvaluator(min_region_size, label_set)
    for scene, pred in preds.items():
        if scene not in gts:
            raise SceneError(scene, "ground truth", "no ground truth for this scene")
        if isinstance(pred, ScenePrediction):
            pred = (pred.masks, pred.labels, pred.scores)
        ev.add(scene, gts[scene], *pred)
    return ev.result()


def class_agnostic(gt_ids, labels, label_set: LabelSet = SCANNET20) -> tuple[np.ndarray, np.ndarray]:
    """(GT ids, predicted labels) with every instance class merged into the first one, for
    AP of the grouping alone: the evaluator then scores one class (the others have no GT: NaN,
    left out of the means), so a mask counts whatever class it was given."""
    gt_ids = np.asarray(gt_ids, np.int64)
    one = label_set.instance_ids[0]
    is_instance = np.isin(gt_ids // 1000, label_set.instance_ids) & (gt_ids >= 1000)
    merged = np.where(is_instance, one * 1000 + gt_ids % 1000, gt_ids)
    return merged, np.full(np.shape(labels), one, np.int64)
