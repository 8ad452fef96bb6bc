"""How well a per-vertex uncertainty flags wrong instance assignments.

Population: the vertices whose GT class is one of the label set's classes
(the 20 of ScanNet v2, the 200 of ScanNet200: the vertices both benchmark
metrics score). Unannotated vertices and
objects of other classes are left out: the benchmark has no right answer for
them (void for AP, ignored for mIoU), so neither "assigned" nor "unassigned"
is wrong there.

Own GT instance: the GT value (``class * 1000 + id``) of a vertex of the label
set's instance classes; wall and floor vertices have none (they are never part of a
benchmark instance, whatever id the GT file gives them).

Wrong (per population vertex, prediction = instance id per vertex, -1 none):
- left unassigned: wrong iff it has an own GT instance (a missed instance
  vertex); wall / floor correctly left out is right;
- assigned to predicted instance k: the majority label of k is the most
  frequent "own GT instance" (none counting as a label of its own) among k's
  population vertices, ties to the smallest value, i.e. to none first. The
  vertex is wrong iff it has no own GT instance (wall / floor swallowed by an
  instance) or its own GT instance is not k's majority. A prediction that is
  mostly wall therefore has every vertex wrong: it matches no GT instance.
  Over-segmentation is not an error here (two predictions may share one GT
  majority): the rule identifies each prediction with one GT instance, as the
  issue defines it.

Scores: the uncertainty ranks vertices; AUROC is the probability that a wrong
vertex is more uncertain than a right one, ties counting 1/2 (Mann-Whitney U
from mid-ranks). 1 = perfect flagging, 0.5 = chance, 0 = inverted.
Calibration: the pooled vertices in uncertainty order are cut into 10 equal
parts (deciles); a group of tied values that straddles a cut is shared between
the two parts in proportion, each share carrying the group's error rate, so
the table does not depend on how ties are ordered.

Pooled over scenes: every population vertex of every scene counts once (no
per-scene averaging). Besides all population vertices, AUROC is reported among
the vertices assigned to a predicted instance, and among the vertices that have
an own GT instance (the instance vertices: the population of the issue that
asked for this metric; there, wall / floor, which a good uncertainty must call
certain when left out, do not count), and among the object-or-assigned vertices
(an own GT instance, or assigned to a predicted instance: every vertex where an
object is or is claimed, so wall / floor swallowed by an instance count, wall /
floor rightly left out do not). Printed everywhere with the population named:
"all", "GT instance", "object or assigned" (and "assigned"). The accumulator keeps 5 bytes per population vertex
(float32 value, uint8 code); float32 holds the network's values exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scene_pe.labels.label_set import SCANNET20, LabelSet
from scene_pe.evaluation.semantic import gt_labels
from scene_pe.util.errors import SceneError

NUM_BINS = 10
NO_INSTANCE = 0  # own GT instance of wall / floor vertices (GT instance values are >= 1000)
_WRONG, _ASSIGNED, _INSTANCE = 1, 2, 4  # bits of the accumulator's per-vertex code


def own_instances(gt, label_set: LabelSet = SCANNET20) -> tuple[np.ndarray, np.ndarray]:
    """(population mask, own GT instance per vertex: the GT value, or NO_INSTANCE)."""
    gt = np.asarray(gt, dtype=np.int64).ravel()
    cls = gt_labels(gt)
    population = label_set.semantic_index(cls) >= 0
    own = np.where(population & (gt >= 1000) & (label_set.instance_index(cls) >= 0), gt, NO_INSTANCE)
    return population, own


def wrong_assignments(gt, instance, label_set: LabelSet = SCANNET20) -> tuple[np.ndarray, np.ndarray]:
    """(population mask, wrong mask) over all vertices; ``wrong`` is False outside the population."""
    population, own = own_instances(gt, label_set)
    inst = np.asarray(instance, dtype=np.int64).ravel()
    if inst.shape != own.shape:
        raise ValueError(f"{inst.size} predicted ids for {own.size} GT vertices")
    if inst.size and inst.min() < -1:
        raise ValueError(f"instance ids must be >= -1, got {inst.min()}")
    assigned = inst >= 0
    voting = population & assigned
    # Majority per predicted instance: a (K, U) count table over the distinct own
    # labels; argmax takes the first maximum, i.e. the smallest label (none first).
    uniq, inv = np.unique(own[voting], return_inverse=True)
    k = int(inst.max()) + 1 if assigned.any() else 0
    counts = np.bincount(inst[voting] * len(uniq) + inv.ravel(), minlength=k * len(uniq)).reshape(k, len(uniq))
    majority = np.full(k + 1, -1, dtype=np.int64)  # last slot: ids of -1 (never read)
    if uniq.size:
        majority[:k] = uniq[counts.argmax(1)]
    has_own = own != NO_INSTANCE
    wrong_assigned = assigned & (~has_own | (own != majority[inst]))
    wrong = population & np.where(assigned, wrong_assigned, has_own)
    return population, wrong


def _check_scores(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores).ravel()
    if not np.isfinite(scores).all():
        raise ValueError("uncertainties must be finite")
    return scores


def tie_counts(scores, positive) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores ascending and, per score, the number of positives and negatives."""
    scores = _check_scores(scores)
    positive = np.asarray(positive, dtype=bool).ravel()
    if positive.shape != scores.shape:
        raise ValueError(f"{positive.size} labels for {scores.size} scores")
    values, inv = np.unique(scores, return_inverse=True)
    pos = np.bincount(inv.ravel(), weights=positive, minlength=values.size)
    return values, pos, np.bincount(inv.ravel(), minlength=values.size) - pos


def auroc_from_counts(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann-Whitney AUROC from per-distinct-score counts (scores ascending).

    Mid-rank of a tie group = vertices below it + (group size + 1) / 2;
    U = sum of the positives' mid-ranks - P (P + 1) / 2; AUROC = U / (P N).
    NaN when there are no positives or no negatives.
    """
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    p, n = pos.sum(), neg.sum()
    if p == 0 or n == 0:
        return float("nan")
    size = pos + neg
    midrank = np.cumsum(size) - size + (size + 1.0) / 2.0
    return float(((pos * midrank).sum() - p * (p + 1.0) / 2.0) / (p * n))


def auroc(scores, positive) -> float:
    """Probability that a positive scores higher than a negative, ties 1/2."""
    _, pos, neg = tie_counts(scores, positive)
    return auroc_from_counts(pos, neg)


@dataclass(frozen=True)
class Bin:
    lo: float  # smallest and largest uncertainty in the bin
    hi: float
    count: float  # vertices (fractional where a tie group straddles a cut)
    error_rate: float


def decile_error_rates(values: np.ndarray, pos: np.ndarray, neg: np.ndarray, bins: int = NUM_BINS
                       ) -> list[Bin]:
    """Error rate per equal-count bin of the vertices ordered by uncertainty (see module doc).

    ``values`` ascending distinct uncertainties, ``pos`` / ``neg`` wrong / right
    vertices per value. The wrong mass of the first x vertices, W(x), is linear
    inside each tie group, so bin [a, b) holds W(b) - W(a) wrong vertices.
    """
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    ends = np.concatenate([[0.0], np.cumsum(pos + neg)])
    total = ends[-1]
    if total == 0:
        return []
    cuts = np.linspace(0.0, total, bins + 1)
    wrong = np.interp(cuts, ends, np.concatenate([[0.0], np.cumsum(pos)]))
    # the group holding the first / last vertex of each bin
    first = np.searchsorted(ends, cuts[:-1], side="right") - 1
    last = np.searchsorted(ends, cuts[1:], side="left") - 1
    size = np.diff(cuts)
    return [Bin(float(values[f]), float(values[la]), float(s), float(w / s))
            for f, la, s, w in zip(first, last, size, np.diff(wrong))]


@dataclass(frozen=True)
class UncertaintyResult:
    num_scenes: int
    num_vertices: int  # population vertices pooled over the scenes
    num_wrong: int
    num_assigned: int
    num_wrong_assigned: int
    auroc: float  # all population vertices
    auroc_assigned: float  # vertices assigned to a predicted instance only
    auroc_instances: float  # vertices with an own GT instance only
    deciles: list[Bin]
    auroc_object_or_assigned: float = float("nan")  # own GT instance, or assigned (module doc)

    @property
    def error_rate(self) -> float:
        return self.num_wrong / self.num_vertices if self.num_vertices else float("nan")

    def scalars(self) -> dict[str, float]:
        """Flat metrics for validation logs (TensorBoard, ablation tables)."""
        out = {"unc_auroc": self.auroc, "unc_auroc_assigned": self.auroc_assigned,
               "unc_auroc_instances": self.auroc_instances,
               "unc_auroc_object_or_assigned": self.auroc_object_or_assigned, "unc_error_rate": self.error_rate}
        if self.deciles:  # error rate of the least / most uncertain tenth
            out["unc_err_low10"] = self.deciles[0].error_rate
            out["unc_err_high10"] = self.deciles[-1].error_rate
        return out

    def to_dict(self) -> dict:
        def num(x):
            return None if np.isnan(x) else float(x)
        return {"num_scenes": self.num_scenes, "num_vertices": self.num_vertices,
                "num_wrong": self.num_wrong, "error_rate": num(self.error_rate),
                "num_assigned": self.num_assigned, "num_wrong_assigned": self.num_wrong_assigned,
                "auroc": num(self.auroc), "auroc_assigned": num(self.auroc_assigned),
                "auroc_instances": num(self.auroc_instances),
                "auroc_object_or_assigned": num(self.auroc_object_or_assigned),
                "deciles": [{"lo": b.lo, "hi": b.hi, "count": b.count, "error_rate": b.error_rate}
                            for b in self.deciles]}

    def format_table(self) -> str:
        rows = [f"{'decile':<8}{'uncertainty range':>26}{'error rate':>12}", "-" * 46]
        rows += [f"{d:<8}{b.lo:>12.4g} .. {b.hi:<10.4g}{b.error_rate:>12.3f}"
                 for d, b in enumerate(self.deciles)]
        rows += ["-" * 46, f"AUROC {self.auroc:.3f} (all {self.num_vertices} vertices, "
                 f"{self.num_wrong} wrong), {self.auroc_assigned:.3f} among assigned "
                 f"({self.num_assigned}, {self.num_wrong_assigned} wrong), "
                 f"{self.auroc_instances:.3f} among GT instance vertices, "
                 f"{self.auroc_object_or_assigned:.3f} among object-or-assigned vertices"]
        return "\n".join(rows)

    def summary(self) -> str:
        """One line, each population named (tools/test.py, the demo)."""
        return (f"uncertainty AUROC: all {self.auroc:.3f} / GT instance {self.auroc_instances:.3f} / "
                f"object or assigned {self.auroc_object_or_assigned:.3f}")


class UncertaintyEvaluator:
    """Pools (uncertainty, wrong, assigned) of every population vertex over scenes."""

    def __init__(self, label_set: LabelSet = SCANNET20):
        self.label_set = label_set
        self._values: dict[str, np.ndarray] = {}
        self._codes: dict[str, np.ndarray] = {}

    @property
    def num_scenes(self) -> int:
        return len(self._values)

    def add(self, scene: str, gt, instance, uncertainty) -> None:
        if scene in self._values:
            raise SceneError(scene, "predictions", "scene added twice")
        unc = np.asarray(uncertainty).ravel()
        if unc.size != np.asarray(gt).size:
            raise SceneError(scene, "predictions", f"{unc.size} uncertainties for {np.asarray(gt).size} vertices")
        if not np.isfinite(unc).all():
            raise SceneError(scene, "predictions", "non-finite uncertainty")
        population, wrong = wrong_assignments(gt, instance, self.label_set)
        assigned = np.asarray(instance).ravel() >= 0
        has_own = own_instances(gt, self.label_set)[1] != NO_INSTANCE
        self._values[scene] = unc[population].astype(np.float32)
        self._codes[scene] = (wrong * _WRONG + assigned * _ASSIGNED + has_own * _INSTANCE
                              )[population].astype(np.uint8)

    def merge(self, other: "UncertaintyEvaluator") -> None:
        for scene in other._values:
            if scene in self._values:
                raise SceneError(scene, "predictions", "scene added twice")
            self._values[scene], self._codes[scene] = other._values[scene], other._codes[scene]

    def result(self) -> UncertaintyResult:
        scenes = sorted(self._values)  # by name: the result does not depend on the order of add / merge
        values = np.concatenate([np.zeros(0, np.float32), *(self._values[s] for s in scenes)])
        codes = np.concatenate([np.zeros(0, np.uint8), *(self._codes[s] for s in scenes)])
        wrong, assigned, inst = (codes & _WRONG) > 0, (codes & _ASSIGNED) > 0, (codes & _INSTANCE) > 0
        uniq, pos, neg = tie_counts(values, wrong)
        _, pos_a, neg_a = tie_counts(values[assigned], wrong[assigned])
        _, pos_i, neg_i = tie_counts(values[inst], wrong[inst])
        either = inst | assigned
        _, pos_o, neg_o = tie_counts(values[either], wrong[either])
        return UncertaintyResult(
            num_scenes=self.num_scenes, num_vertices=int(values.size), num_wrong=int(wrong.sum()),
            num_assigned=int(assigned.sum()), num_wrong_assigned=int((wrong & assigned).sum()),
            auroc=auroc_from_counts(pos, neg), auroc_assigned=auroc_from_counts(pos_a, neg_a),
            auroc_instances=auroc_from_counts(pos_i, neg_i),
            deciles=decile_error_rates(uniq, pos, neg), auroc_object_or_assigned=auroc_from_counts(pos_o, neg_o))
