"""Uncertainty metric: wrong-assignment mask, tie-aware AUROC, decile error rates, pooling."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scene_pe.labels.label_set import SCANNET20
from scene_pe.evaluation.uncertainty import (UncertaintyEvaluator, auroc, decile_error_rates, tie_counts,
                                             wrong_assignments)
from scene_pe.util.errors import SceneError

CHAIR, TABLE, WALL, FLOOR, OTHER = 5, 7, 1, 2, 13  # NYU40 ids; 13 (pillow) is not a benchmark class


def g(nyu, obj):
    return nyu * 1000 + obj


def brute_auroc(scores, positive):
    s, p = np.asarray(scores, float), np.asarray(positive, bool)
    pos, neg = s[p], s[~p]
    if not pos.size or not neg.size:
        return math.nan
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (pos.size * neg.size)


def loop_deciles(scores, positive, bins=10):
    """Reference: vertices sorted, each tie group's error spread evenly, unit cells cut into bins."""
    order = np.argsort(scores, kind="stable")
    s, p = np.asarray(scores, float)[order], np.asarray(positive, float)[order]
    rate = np.array([p[s == v].mean() for v in s])  # every vertex carries its tie group's rate
    n = len(s)
    out = []
    for d in range(bins):
        a, b = d * n / bins, (d + 1) * n / bins
        mass, members = 0.0, []
        for i in range(n):
            overlap = max(0.0, min(i + 1, b) - max(i, a))
            mass += overlap * rate[i]
            if overlap > 0:
                members.append(s[i])
        out.append((min(members), max(members), b - a, mass / (b - a)))
    return out


scores_and_labels = st.integers(2, 60).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 6), min_size=n, max_size=n),   # few distinct values: many ties
    st.lists(st.booleans(), min_size=n, max_size=n)))


@settings(max_examples=150, deadline=None)
@given(scores_and_labels)
def test_auroc_equals_pairwise_count_with_ties(data):
    scores, labels = data
    got, want = auroc(np.array(scores) * 0.25, labels), brute_auroc(scores, labels)
    assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=40), st.randoms())
def test_auroc_on_continuous_values(scores, rnd):
    labels = [rnd.random() < 0.4 for _ in scores]
    got, want = auroc(scores, labels), brute_auroc(scores, labels)
    assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)


def test_auroc_perfect_inverted_chance_and_undefined():
    s = np.arange(10.0)
    wrong = s >= 6
    assert auroc(s, wrong) == 1.0
    assert auroc(-s, wrong) == 0.0
    assert auroc(np.zeros(10), wrong) == 0.5  # one tie group: every pair counts 1/2
    assert math.isnan(auroc(s, np.zeros(10, bool)))
    with pytest.raises(ValueError):
        auroc([0.0, np.nan], [True, False])


@settings(max_examples=80, deadline=None)
@given(scores_and_labels, st.integers(1, 10))
def test_decile_error_rates_equal_loop_reference(data, bins):
    scores, labels = data
    values, pos, neg = tie_counts(np.array(scores, float), labels)
    got = decile_error_rates(values, pos, neg, bins)
    want = loop_deciles(scores, labels, bins)
    assert len(got) == bins
    for b, (lo, hi, count, rate) in zip(got, want):
        assert (b.lo, b.hi) == (lo, hi)
        assert b.count == pytest.approx(count) and b.error_rate == pytest.approx(rate, abs=1e-12)


def test_deciles_of_a_clean_ranking():
    s = np.arange(100.0)
    values, pos, neg = tie_counts(s, s >= 80)
    rates = [b.error_rate for b in decile_error_rates(values, pos, neg)]
    assert rates == [0.0] * 8 + [1.0, 1.0]


def test_wrong_mask_on_a_hand_built_scene():
    gt = np.array([
        g(CHAIR, 1), g(CHAIR, 1), g(CHAIR, 1), g(CHAIR, 1),  # 0-3 chair A
        g(CHAIR, 2), g(CHAIR, 2),                            # 4-5 chair B
        g(WALL, 3), g(WALL, 3), g(FLOOR, 4),                 # 6-8 stuff (wall, floor objects)
        0, g(OTHER, 5),                                      # 9-10 unannotated, non-benchmark: out
        g(TABLE, 6), g(TABLE, 6), g(TABLE, 6),               # 11-13 table
    ])
    pred = np.array([
        0, 0, 0, -1,        # chair A: 3 in prediction 0 (right), 1 missed (wrong)
        0, 1,               # chair B: 4 joined A's prediction (wrong); 5 alone in prediction 1 (right)
        0, -1, -1,          # wall in prediction 0 (wrong); wall, floor left out (right)
        0, 1,               # outside the population whatever their prediction
        2, 2, 2,            # table: prediction 2 holds 3 table vertices
    ])
    pop, wrong = wrong_assignments(gt, pred)
    assert pop.tolist() == [True] * 9 + [False, False] + [True] * 3
    assert np.flatnonzero(wrong).tolist() == [3, 4, 6]


def test_wrong_mask_prediction_mostly_stuff_and_ties():
    # prediction 0: 3 wall + 2 chair vertices: majority none -> all 5 wrong
    # prediction 1: 2 table + 2 chair (tie): smallest GT value (chair 5001 < table 7002) wins
    gt = np.array([g(WALL, 1)] * 3 + [g(CHAIR, 1)] * 2 + [g(TABLE, 2)] * 2 + [g(CHAIR, 3)] * 2)
    pred = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1])
    pop, wrong = wrong_assignments(gt, pred)
    assert pop.all()
    assert wrong.tolist() == [True] * 5 + [True, True, False, False]
    # none beats an instance on a tie: 1 wall + 1 chair
    _, wrong = wrong_assignments(np.array([g(WALL, 1), g(CHAIR, 2)]), np.array([0, 0]))
    assert wrong.tolist() == [True, True]


def test_wrong_mask_without_predictions_and_without_instances():
    gt = np.array([g(CHAIR, 1), g(WALL, 2), g(FLOOR, 3), 0])
    pop, wrong = wrong_assignments(gt, np.full(4, -1))
    assert pop.tolist() == [True, True, True, False] and wrong.tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match=r"^3 predicted ids for 4 GT vertices$"):
        wrong_assignments(gt, np.full(3, -1))


def test_evaluator_pools_scenes_and_merges():
    rng = np.random.default_rng(0)
    scenes = []
    for s in range(3):
        n = 200
        gt = np.where(rng.random(n) < 0.3, g(WALL, 1), g(CHAIR, 2) + rng.integers(0, 3, n))
        gt[rng.random(n) < 0.1] = 0
        pred = rng.integers(-1, 3, n)
        unc = rng.integers(0, 20, n) / 20.0  # ties across scenes too
        scenes.append((f"scene{s:04d}_00", gt, pred, unc))
    one, a, b = UncertaintyEvaluator(), UncertaintyEvaluator(), UncertaintyEvaluator()
    for i, (name, gt, pred, unc) in enumerate(scenes):
        one.add(name, gt, pred, unc)
        (a if i < 2 else b).add(name, gt, pred, unc)
    a.merge(b)
    r, r2 = one.result(), a.result()
    assert r == r2 and r.num_scenes == 3
    wrongs, uncs, assigned, inst = [], [], [], []
    for _, gt, pred, unc in scenes:
        pop, wrong = wrong_assignments(gt, pred)
        wrongs.append(wrong[pop]), uncs.append(unc[pop]), assigned.append(pred[pop] >= 0)
        inst.append(gt[pop] // 1000 == CHAIR)  # the scenes' only instance class
    w, u, asg, ins = (np.concatenate(x) for x in (wrongs, uncs, assigned, inst))
    assert r.num_vertices == w.size and r.num_wrong == int(w.sum()) and r.num_assigned == int(asg.sum())
    assert r.auroc == pytest.approx(brute_auroc(u, w), abs=1e-12)
    assert r.auroc_assigned == pytest.approx(brute_auroc(u[asg], w[asg]), abs=1e-12)
    assert r.auroc_instances == pytest.approx(brute_auroc(u[ins], w[ins]), abs=1e-12)
    assert 0 < ins.sum() < ins.size and 0 < asg.sum() < asg.size
    assert sum(d.count for d in r.deciles) == pytest.approx(w.size)
    assert np.mean([d.error_rate for d in r.deciles]) == pytest.approx(w.mean())
    s = r.scalars()
    assert s["unc_auroc"] == r.auroc and s["unc_err_high10"] == r.deciles[-1].error_rate
    assert r.to_dict()["deciles"][0]["error_rate"] == r.deciles[0].error_rate
    with pytest.raises(SceneError, match=r"^scene0000_00: predictions: scene added twice$"):
        a.add(*scenes[0])  # the same scene twice
    with pytest.raises(SceneError, match=r"^scene0002_00: predictions: scene added twice$"):
        a.merge(b)  # b's scene is in a already
    assert a.result() == r2  # neither refused call changed what was added


def test_saved_predictions_are_scored_like_the_instance_evaluator(tmp_path):
    """engine.predictions.evaluate_saved: uncertainty metric on the scenes with a GT file."""
    from scene_pe.data.scannet import write_gt_txt
    from scene_pe.inference.vertices import VertexPrediction
    from scene_pe.inference.files import evaluate_saved, save_prediction

    rng = np.random.default_rng(3)
    gt_dir, want = tmp_path / "gt", UncertaintyEvaluator()
    gt_dir.mkdir()
    for s in range(3):
        scene, n = f"scene{s:04d}_00", 300
        gt = np.where(rng.random(n) < 0.3, g(WALL, 1), g(CHAIR, 2) + rng.integers(0, 3, n))
        inst = rng.integers(-1, 2, n)
        unc = rng.random(n).astype(np.float32)
        save_prediction(tmp_path, VertexPrediction(scene, inst, np.array([CHAIR, TABLE]), np.array([0.9, 0.4]),
                                                   np.full(n, CHAIR), unc))
        if s < 2:  # the third scene has no GT: left out of every metric
            write_gt_txt(gt_dir / f"{scene}.txt", gt)
            want.add(scene, gt, inst, unc)
    inst_res, _, unc_res = evaluate_saved(tmp_path, gt_dir, [f"scene{s:04d}_00" for s in range(3)], SCANNET20)
    assert inst_res.num_scenes == unc_res.num_scenes == 2
    assert unc_res == want.result()


def test_three_populations_on_a_hand_computed_scene():
    # the scene of test_wrong_mask_on_a_hand_built_scene: wrong = 3 (chair A missed), 4 (chair B in A's
    # prediction), 6 (wall in A's prediction); 9, 10 are outside every population
    gt = np.array([g(CHAIR, 1)] * 4 + [g(CHAIR, 2)] * 2 + [g(WALL, 3), g(WALL, 3), g(FLOOR, 4), 0, g(OTHER, 5)]
                  + [g(TABLE, 6)] * 3)
    pred = np.array([0, 0, 0, -1, 0, 1, 0, -1, -1, 0, 1, 2, 2, 2])
    unc = np.array([.1, .2, .3, .5, .6, .4, .15, .05, .25, .9, .9, .35, .45, .7])
    ev = UncertaintyEvaluator()
    ev.add("scene0000_00", gt, pred, unc)
    r = ev.result()
    # all 12 population vertices; wrong {3: .5, 4: .6, 6: .15}; right: .1 .2 .3 .4 .05 .25 .35 .45 .7
    # pairs (wrong > right): .5 beats 8, .6 beats 8, .15 beats 2 -> 18 of 27
    assert r.auroc == pytest.approx(18 / 27)
    # GT instance vertices (0-5, 11-13): wrong {.5, .6}; right .1 .2 .3 .4 .35 .45 .7 -> (6 + 6) / 14
    assert r.auroc_instances == pytest.approx(12 / 14)
    # object or assigned: the instance vertices plus the wall in prediction 0 (6: wrong, .15);
    # wrong {.5, .6, .15} against the same 7 right: (6 + 6 + 1) / 21
    assert r.auroc_object_or_assigned == pytest.approx(13 / 21)
    # assigned only (0-2, 4-6, 11-13): wrong {.6, .15}; right .1 .2 .3 .4 .35 .45 .7 -> (6 + 1) / 14
    assert r.auroc_assigned == pytest.approx(7 / 14)
    assert "all 0.667 / GT instance 0.857 / object or assigned 0.619" in r.summary()
    assert r.scalars()["unc_auroc_object_or_assigned"] == r.auroc_object_or_assigned
