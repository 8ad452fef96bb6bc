"""Scores do not depend on the order in which scenes reach an evaluator: a resumed tools/test.py adds
its saved scenes first, DDP ranks merge theirs in rank order, and both must give the bits of one
uninterrupted, single-process run."""

import itertools

import numpy as np

from scene_pe.labels.label_set import SCANNET20
from scene_pe.evaluation.instance import InstanceEvaluator
from scene_pe.evaluation.uncertainty import UncertaintyEvaluator

CHAIR = 5


def scenes(seed=0):
    """Four scenes of three chairs, each predicted with one right and one wrong mask of the same score
    (0.5 in every scene): how equal scores of different scenes rank decides the precision curve."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in range(4):
        n = 600
        gt = np.repeat(CHAIR * 1000 + np.arange(1, 4), 200)
        right = gt == CHAIR * 1000 + 1 + s % 3
        wrong = np.zeros(n, bool)
        wrong[rng.choice(n, 150, replace=False)] = True
        masks = np.stack([right, wrong])
        instance = np.where(right, 0, np.where(wrong, 1, -1))
        unc = rng.random(n).astype(np.float32)
        out[f"scene{s:04d}_00"] = (gt, masks, np.array([CHAIR, CHAIR]), np.array([0.5, 0.5]), instance, unc)
    return out


def evaluate(items, split=None):
    """(instance AP per threshold, uncertainty AUROCs) with scenes added in ``items`` order; with
    ``split``, the first ``split`` scenes go to a second pair of evaluators merged in like a DDP rank's."""
    inst, unc = InstanceEvaluator(label_set=SCANNET20), UncertaintyEvaluator(SCANNET20)
    rank_inst, rank_unc = InstanceEvaluator(label_set=SCANNET20), UncertaintyEvaluator(SCANNET20)
    for i, (scene, (gt, masks, labels, scores, instance, u)) in enumerate(items):
        to_rank = split is not None and i < split
        (rank_inst if to_rank else inst).add(scene, gt, masks, labels, scores)
        (rank_unc if to_rank else unc).add(scene, gt, instance, u)
    inst.merge(rank_inst)
    unc.merge(rank_unc)
    r, ru = inst.result(), unc.result()
    return r.ap_per_threshold.tobytes(), (ru.auroc, ru.auroc_assigned, ru.auroc_instances)


def test_any_order_and_any_split_give_the_same_bits():
    data = list(scenes().items())
    reference = evaluate(data)
    ap = np.frombuffer(reference[0])
    assert np.isfinite(ap).any() and 0.0 < np.nanmax(ap) < 1.0  # ties between a right and a wrong mask
    for order in itertools.permutations(data):
        assert evaluate(order) == reference
    for split in (1, 2, 3):
        assert evaluate(data[::-1], split) == reference
