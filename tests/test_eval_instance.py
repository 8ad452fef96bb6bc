"""Instance AP: hand-computed cases, a loop-based reference of the official algorithm, readers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scene_pe.labels.label_set import SCANNET20, SCANNET200
from scene_pe.evaluation.instance import AP_THRESHOLDS, evaluate_instances
from scene_pe.evaluation.matching import ScenePrediction, gt_from_training_labels
from scene_pe.evaluation.io import evaluate_instance_submission, read_gt_file
from scene_pe.util.errors import SceneError

CHAIR, TABLE, SOFA, WALL = 5, 7, 6, 1
C_CHAIR, C_TABLE, C_SOFA = (int(SCANNET20.instance_index(c)) for c in (CHAIR, TABLE, SOFA))


def run(gt, masks, labels, scores):
    """Evaluate one scene; masks: list of vertex-index arrays (or bool masks)."""
    n = len(gt)
    m = np.zeros((len(masks), n), dtype=bool)
    for i, idx in enumerate(masks):
        m[i, idx] = True
    return evaluate_instances({"s": ScenePrediction(m, np.array(labels), np.array(scores, float))},
                              {"s": np.asarray(gt)})


def four_chairs():
    gt = np.zeros(1000, np.int64)
    for j in range(4):
        gt[j * 200:(j + 1) * 200] = CHAIR * 1000 + j + 1
    gt[800:] = WALL * 1000 + 9
    return gt


def test_perfect_prediction_is_one():
    gt = four_chairs()
    gt[600:800] = TABLE * 1000 + 4
    masks = [np.flatnonzero(gt == v) for v in (5001, 5002, 5003, 7004)]
    r = run(gt, masks, [CHAIR, CHAIR, CHAIR, TABLE], [0.9, 0.8, 0.7, 0.6])
    # (the official sum of widths 1/6 + 1/3 + 1/3 + 1/6 rounds to 1 - 1e-16)
    for v in (r.ap[C_CHAIR], r.ap50[C_CHAIR], r.ap25[C_CHAIR], r.ap[C_TABLE],
              r.mean_ap, r.mean_ap50, r.mean_ap25):
        assert v == pytest.approx(1.0, abs=1e-15)
    assert r.num_gt[C_CHAIR] == 3 and r.num_gt.sum() == 4


def test_one_of_four_missing():
    gt = four_chairs()
    masks = [np.flatnonzero(gt == v) for v in (5001, 5002, 5003)]
    # recall 1/4, 2/4, 3/4 at precision 1: widths 1/8 + 1/4 + 1/4 + 1/8 -> 0.75
    r = run(gt, masks, [CHAIR] * 3, [0.9, 0.8, 0.7])
    np.testing.assert_allclose(r.ap_per_threshold[C_CHAIR], 0.75, rtol=0, atol=1e-15)
    assert r.ap25[C_CHAIR] == pytest.approx(0.75, abs=1e-15)
    # Tied confidences: a single point (p=1, r=3/4) -> the same 0.75.
    assert run(gt, masks, [CHAIR] * 3, [1.0] * 3).ap[C_CHAIR] == pytest.approx(0.75, abs=1e-15)


def test_false_positive_ranked_first_vs_last():
    gt = np.zeros(800, np.int64)
    gt[:200], gt[200:400], gt[400:600] = 5001, 5002, 7003
    fp = np.arange(400, 600)  # a "chair" on the table
    tps = [np.arange(0, 200), np.arange(200, 400)]
    last = run(gt, tps + [fp], [CHAIR] * 3, [0.9, 0.8, 0.1])
    first = run(gt, tps + [fp], [CHAIR] * 3, [0.9, 0.8, 0.95])
    assert last.ap[C_CHAIR] == pytest.approx(1.0, abs=1e-15)  # precision 2/3 only at recall 1: width 0
    # points (p, r): (2/3, 1), (1/2, 1/2), (0, 0), (1, 0) -> 1/4*2/3 + 1/2*1/2 = 5/12
    assert first.ap[C_CHAIR] == pytest.approx(5 / 12, abs=1e-15)
    assert first.ap[C_TABLE] == 0.0  # GT, no table prediction


def test_duplicate_with_higher_confidence():
    gt = np.zeros(400, np.int64)
    gt[:200] = 5001
    exact = np.arange(200)
    dup = np.arange(156)  # IoU 0.78: a candidate for t <= 0.75 only
    r = run(gt, [exact, dup], [CHAIR, CHAIR], [0.5, 0.9])
    # t <= 0.75: TP at 0.9 (GT keeps the higher confidence), FP at 0.5 -> AP 1.
    # t >= 0.8: TP at 0.5, unmatched FP at 0.9 ranked first -> AP 1/4.
    expect = np.where(AP_THRESHOLDS < 0.78, 1.0, 0.25)
    np.testing.assert_allclose(r.ap_per_threshold[C_CHAIR], expect, rtol=0, atol=1e-15)
    assert r.ap[C_CHAIR] == pytest.approx((6 + 0.75) / 9)


def test_iou_0_4_counts_for_ap25_only():
    gt = np.zeros(500, np.int64)
    gt[:300] = 5001
    r = run(gt, [np.arange(120)], [CHAIR], [0.7])  # IoU 120/300 = 0.4
    assert r.ap25[C_CHAIR] == 1.0
    assert r.ap50[C_CHAIR] == 0.0 and r.ap[C_CHAIR] == 0.0


def test_small_regions_ignored():
    gt = np.zeros(1000, np.int64)
    gt[:200] = 5001
    gt[200:260] = 5002  # 60-vertex chair: not scored
    gt[300:500] = 7003
    gt[500:540] = WALL * 1000 + 4
    tp = np.arange(200)
    on_small = np.r_[200:260, 500:540]  # 100 vertices: small GT + wall, IoU 0.6 with it
    fp99 = np.arange(300, 399)  # 99-vertex chair on the table: dropped
    r = run(gt, [tp, on_small, fp99], [CHAIR] * 3, [0.5, 0.99, 0.99])
    assert r.num_gt[C_CHAIR] == 1 and r.num_pred[C_CHAIR] == 2
    np.testing.assert_array_equal(r.ap_per_threshold[C_CHAIR], 1.0)
    assert r.ap25[C_CHAIR] == 1.0
    # The same at 100 vertices is a FP ranked first.
    r100 = run(gt, [tp, on_small, np.arange(300, 400)], [CHAIR] * 3, [0.5, 0.99, 0.99])
    np.testing.assert_allclose(r100.ap_per_threshold[C_CHAIR], 0.25, atol=1e-15)


def test_void_rule():
    gt = np.zeros(1000, np.int64)
    gt[:200] = 5001
    gt[200:400] = WALL * 1000 + 2
    gt[600:800] = 7003
    tp = np.arange(200)
    on_wall = np.r_[200:300, 450:500]  # wall + unannotated: always ignored
    mixed = np.r_[400:430, 600:670]  # 30% unannotated, 70% table
    r = run(gt, [tp, on_wall], [CHAIR, CHAIR], [0.5, 0.9])
    assert r.ap[C_CHAIR] == 1.0 and r.ap25[C_CHAIR] == 1.0
    r = run(gt, [tp, mixed], [CHAIR, CHAIR], [0.5, 0.9])
    # ignored fraction 0.3: > 0.25 (ignored for AP25), <= t for t >= 0.5 (a FP ranked first)
    assert r.ap25[C_CHAIR] == 1.0
    np.testing.assert_allclose(r.ap_per_threshold[C_CHAIR], 0.25, atol=1e-15)
    # Exactly 25% ignored is not more than 0.25: a FP for AP25 too.
    r = run(gt, [tp, np.r_[400:425, 600:675]], [CHAIR, CHAIR], [0.5, 0.9])
    assert r.ap25[C_CHAIR] == 0.25


def test_nan_without_gt_and_means_ignore_nan():
    gt = np.zeros(600, np.int64)
    gt[:200], gt[200:400] = 5001, 7002
    r = run(gt, [np.arange(200), np.arange(400, 600)], [CHAIR, SOFA], [0.9, 0.9])
    assert r.ap[C_CHAIR] == 1.0 and r.ap[C_TABLE] == 0.0
    assert np.isnan(r.ap[C_SOFA])  # predictions but no GT
    assert np.isnan(r.ap).sum() == 16
    assert r.mean_ap == 0.5 and r.mean_ap50 == 0.5 and r.mean_ap25 == 0.5
    d = r.to_dict()
    assert d["classes"]["sofa"]["ap"] is None and d["mean"]["ap"] == 0.5


def test_all_predictions_ignored_gives_zero():
    gt = np.zeros(600, np.int64)
    gt[:200], gt[200:400] = 5001, WALL * 1000 + 2
    r = run(gt, [np.arange(200, 400)], [CHAIR], [0.9])  # official: IndexError
    assert r.ap[C_CHAIR] == 0.0


def test_ap25_greedy_follows_prediction_order():
    gt = np.zeros(600, np.int64)
    gt[:200], gt[200:400] = 5001, 5002
    whole_a = np.arange(200)
    both = np.r_[80:200, 200:320]  # IoU 0.375 with each GT
    # whole_a first: GT 1 takes it, `both` is its duplicate (FP 0.8) and then GT 2's TP.
    r = run(gt, [whole_a, both], [CHAIR, CHAIR], [0.9, 0.8])
    assert r.ap25[C_CHAIR] == pytest.approx(11 / 12, abs=1e-15)
    # `both` first: GT 1 takes it, whole_a is the duplicate; GT 2 finds `both` taken.
    r = run(gt, [both, whole_a], [CHAIR, CHAIR], [0.8, 0.9])
    assert r.ap25[C_CHAIR] == pytest.approx(0.5, abs=1e-15)
    assert r.ap50[C_CHAIR] == pytest.approx(0.5, abs=1e-15)


def test_instance_id_masks_equal_bool_masks():
    rng = np.random.default_rng(3)
    gt = four_chairs()
    ids = np.full(len(gt), -1)
    ids[:180], ids[200:420], ids[600:750] = 0, 1, 2
    labels, scores = np.array([CHAIR, CHAIR, TABLE]), rng.random(3)
    a = evaluate_instances({"s": (ids, labels, scores)}, {"s": gt})
    b = evaluate_instances({"s": (np.stack([ids == k for k in range(3)]), labels, scores)},
                           {"s": gt})
    np.testing.assert_array_equal(a.ap_per_threshold, b.ap_per_threshold)
    np.testing.assert_array_equal(a.ap25, b.ap25)


def test_gt_from_training_labels_scores_like_gt_txt():
    gt = four_chairs()
    gt[600:700], gt[700:800], gt[850:900] = 7005, 40006, 0  # table, otherprop, unannotated
    semantic = SCANNET20.to_train(np.where(gt >= 1000, gt // 1000, gt))
    inst_vals = [5001, 5002, 5003, 5004, 7005]
    instance = np.full(len(gt), -1)
    for k, v in enumerate(inst_vals):
        instance[gt == v] = k
    derived = gt_from_training_labels(semantic, instance)
    masks = [np.r_[0:150], np.r_[180:420], np.r_[600:760], np.r_[820:990]]
    m = np.zeros((4, len(gt)), bool)
    for i, idx in enumerate(masks):
        m[i, idx] = True
    args = (m, np.array([CHAIR, CHAIR, TABLE, CHAIR]), np.array([0.3, 0.9, 0.5, 0.8]))
    a = evaluate_instances({"s": args}, {"s": gt})
    b = evaluate_instances({"s": args}, {"s": derived})
    np.testing.assert_array_equal(a.ap_per_threshold, b.ap_per_threshold)
    np.testing.assert_array_equal(a.ap25, b.ap25)
    assert derived[0] == 5001 and derived[850] == 0 and derived[800] == WALL


# ----------------------------------------------------------------------------------------
# Reference: the official algorithm step by step (loops, dicts), for random submissions.

OVERLAPS = list(np.append(np.arange(0.5, 0.95, 0.05), 0.25))


def _reference_pr_ap(y_true, y_score, hard_fn):
    order = np.argsort(y_score)
    y_score, y_true = np.asarray(y_score)[order], np.asarray(y_true)[order]
    cumsum = np.cumsum(y_true)
    _, unique_idx = np.unique(y_score, return_index=True)
    precision, recall = np.zeros(len(unique_idx) + 1), np.zeros(len(unique_idx) + 1)
    cumsum = np.append(cumsum, 0)
    n, n_true = len(y_score), cumsum[-2]
    for j, i in enumerate(unique_idx):
        below = cumsum[i - 1]
        tp = n_true - below
        fp = n - i - tp
        fn = below + hard_fn
        precision[j], recall[j] = tp / (tp + fp), tp / (tp + fn)
    precision[-1], recall[-1] = 1.0, 0.0
    r = np.append(np.append(recall[0], recall), 0.0)
    return float(np.dot(precision, np.convolve(r, [-0.5, 0, 0.5], "valid")))


def reference_aps(scenes, min_size, label_set=SCANNET20):
    """(K, 10) AP per instance class and overlap (9 thresholds, then 0.25)."""
    matches = []
    for si, (gt, masks, labels, scores) in enumerate(scenes):
        gts = {c: [] for c in label_set.instance_ids}
        for v in np.unique(gt):
            if v != 0 and v // 1000 in label_set.instance_ids:
                gts[v // 1000].append({"id": v, "size": int((gt == v).sum()), "preds": []})
        void = ~np.isin(gt // 1000, label_set.instance_ids)
        preds = {c: [] for c in label_set.instance_ids}
        for k in range(len(labels)):
            mask, label = masks[k] != 0, int(labels[k])
            if label not in label_set.instance_ids or mask.sum() < min_size:
                continue
            p = {"key": (si, k), "size": int(mask.sum()), "conf": float(scores[k]),
                 "void": int((void & mask).sum()), "gts": []}
            for g in gts[label]:
                inter = int(((gt == g["id"]) & mask).sum())
                if inter > 0:
                    p["gts"].append({"size": g["size"], "inter": inter})
                    g["preds"].append({"key": p["key"], "size": p["size"], "conf": p["conf"],
                                       "inter": inter})
            preds[label].append(p)
        matches.append((gts, preds))

    aps = np.zeros((len(label_set.instance_ids), len(OVERLAPS)))
    for oi, th in enumerate(OVERLAPS):
        visited = {}
        for ci, c in enumerate(label_set.instance_ids):
            y_true, y_score, hard_fn, has_gt, has_pred = [], [], 0, False, False
            for gts, preds in matches:
                big = [g for g in gts[c] if g["size"] >= min_size]
                has_gt |= bool(big)
                has_pred |= bool(preds[c])
                true, score, match = [1] * len(big), [-np.inf] * len(big), [False] * len(big)
                for gi, g in enumerate(big):
                    found = False
                    for p in g["preds"]:
                        if visited.get(p["key"], False):
                            continue
                        if p["inter"] / (g["size"] + p["size"] - p["inter"]) > th:
                            if match[gi]:
                                lo, hi = sorted((score[gi], p["conf"]))
                                score[gi] = hi
                                true.append(0), score.append(lo), match.append(True)
                            else:
                                found, match[gi], score[gi] = True, True, p["conf"]
                                visited[p["key"]] = True
                    hard_fn += not found
                true = [t for t, m in zip(true, match) if m]
                score = [s for s, m in zip(score, match) if m]
                for p in preds[c]:
                    if any(g["inter"] / (g["size"] + p["size"] - g["inter"]) > th for g in p["gts"]):
                        continue
                    ignore = p["void"] + sum(g["inter"] for g in p["gts"] if g["size"] < min_size)
                    if ignore / p["size"] <= th:
                        true.append(0), score.append(p["conf"])
                y_true += true
                y_score += score
            if has_gt and has_pred:
                aps[ci, oi] = _reference_pr_ap(y_true, y_score, hard_fn) if y_true else 0.0
            else:
                aps[ci, oi] = 0.0 if has_gt else np.nan
    return aps


def random_scene(rng, classes=(3, 5, 7), others=(1, 2, 40)):
    """GT of random segments (``classes``: instance classes, ``others``: stuff / outside the set)
    and predictions that overlap them in the ways the matching rules care about."""
    n = int(rng.integers(300, 900))
    n_seg = int(rng.integers(1, 9))
    segs = np.split(rng.permutation(n), np.sort(rng.choice(np.arange(1, n), n_seg, replace=False)))
    gt = np.zeros(n, np.int64)
    for j, seg in enumerate(segs):
        u = rng.random()
        if u < 0.15:
            continue  # unannotated
        label = int(rng.choice(others)) if u < 0.3 else int(rng.choice(classes))
        gt[seg] = label * 1000 + j + 1
    masks, labels = [], []
    for _ in range(int(rng.integers(0, 12))):
        kind = rng.random()
        mask = np.zeros(n, bool)
        a, b = segs[rng.integers(len(segs))], segs[rng.integers(len(segs))]
        if kind < 0.35:  # a noisy copy of a segment
            mask[a[rng.random(len(a)) < rng.uniform(0.3, 1.0)]] = True
            mask[rng.random(n) < rng.uniform(0, 0.3) * len(a) / n] = True
        elif kind < 0.7:  # parts of two segments of one class (several candidates at 0.25)
            same = [s for s in segs if gt[s[0]] // 1000 == gt[a[0]] // 1000 and s is not a]
            b = same[rng.integers(len(same))] if same else b
            mask[a[rng.random(len(a)) < 0.6]] = True
            mask[b[rng.random(len(b)) < 0.6]] = True
        elif kind < 0.85 and masks:  # a duplicate of an earlier prediction
            mask = masks[rng.integers(len(masks))].copy()
        else:
            mask[rng.random(n) < rng.uniform(0, 0.4)] = True
        first = gt[a[0]] // 1000
        label = first if first in classes and rng.random() < 0.8 else int(rng.choice([*classes, *others]))
        masks.append(mask)
        labels.append(label)
    scores = np.round(rng.random(len(masks)), 1)  # ties on purpose
    return gt, masks, np.array(labels, np.int64), scores


# ScanNet200: ids above 1000 (encoded GT above 10^6), head / common / tail classes; 12 is a
# raw id outside the set, 1 and 3 its stuff (wall, floor)
LABEL_SET_CASES = {"scannet20": (SCANNET20, (3, 5, 7), (1, 2, 40)),
                   "scannet200": (SCANNET200, (2, 67, 102, 1174, 1191), (1, 3, 12))}


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_scenes=st.integers(1, 4),
       min_size=st.sampled_from([100, 30]), case=st.sampled_from(sorted(LABEL_SET_CASES)))
def test_matches_loop_reference(seed, n_scenes, min_size, case):
    label_set, classes, others = LABEL_SET_CASES[case]
    rng = np.random.default_rng(seed)
    scenes = [random_scene(rng, classes, others) for _ in range(n_scenes)]
    preds = {f"s{i}": ScenePrediction(np.array(m, bool).reshape(len(m), len(g)), lab, sc)
             for i, (g, m, lab, sc) in enumerate(scenes)}
    gts = {f"s{i}": s[0] for i, s in enumerate(scenes)}
    r = evaluate_instances(preds, gts, min_region_size=min_size, label_set=label_set)
    ref = reference_aps(scenes, min_size, label_set)
    np.testing.assert_allclose(r.ap_per_threshold, ref[:, :9], rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.ap25, ref[:, 9], rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.mean_ap, np.nanmean(ref[:, :9]) if np.isfinite(ref).any()
                               else np.nan, atol=1e-12)


# ----------------------------------------------------------------------------------------
# File readers: bad input names the file and the line.

def _write_submission(root, scene, lines, masks):
    (root / "predicted_masks").mkdir(parents=True, exist_ok=True)
    (root / f"{scene}.txt").write_text("".join(line + "\n" for line in lines))
    for name, data in masks.items():
        (root / "predicted_masks" / name).write_text(data)


def _gt_dir(tmp_path, scene="scene0000_00"):
    gt = four_chairs()
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / f"{scene}.txt").write_text("".join(f"{v}\n" for v in gt))
    return gt


def test_reader_round_trip_and_official_leniency(tmp_path):
    gt = _gt_dir(tmp_path)
    m1 = "".join("2\n" if v == 5001 else "0\n" for v in gt)  # any non-zero value is inside
    _write_submission(tmp_path / "p", "scene0000_00",
                      ["predicted_masks/a.txt 5.0 0.5", "predicted_masks/b.txt 1 0.9"],
                      {"a.txt": m1, "b.txt": m1})
    with pytest.raises(SceneError, match=r"scene0000_00\.txt: line 2: label 1 is not"):
        evaluate_instance_submission(tmp_path / "p", tmp_path / "gt")
    r, missing = evaluate_instance_submission(tmp_path / "p", tmp_path / "gt",
                                              skip_invalid_labels=True)
    assert missing == [] and r.num_pred[C_CHAIR] == 1
    assert r.ap[C_CHAIR] == pytest.approx(0.25)  # 1 of 4 chairs: p=1 at r=1/4


@pytest.mark.parametrize("lines, masks, match", [
    (["predicted_masks/a.txt 5 0.5"], {"a.txt": "0\n1\n"}, r"a\.txt: 2 lines, but the scene has 1000"),
    (["predicted_masks/a.txt 5  0.5"], {"a.txt": ""}, r"scene0000_00\.txt: line 1: expected"),
    (["predicted_masks/a.txt 5 x"], {"a.txt": ""}, r"line 1: label '5' or confidence 'x'"),
    (["predicted_masks/a.txt 5 0.5"], {"a.txt": ""}, r"a\.txt: empty file"),
    (["predicted_masks/zz.txt 5 0.5"], {}, r"line 1: mask file .*zz\.txt not found"),
    (["/abs/a.txt 5 0.5"], {}, r"line 1: mask path '/abs/a.txt' must be relative"),
    (["predicted_masks/a.txt 5 0.5", "predicted_masks/a.txt 5 0.4"], {"a.txt": "1\n" * 1000},
     r"line 2: mask file predicted_masks/a.txt named twice"),
    (["predicted_masks/a.txt 5 0.5"], {"a.txt": "1\n" * 500 + "1.0\n" * 500},
     r"a\.txt: line 501: b'1.0' is not an integer"),
    # a label beyond int64 is no class (not an internal overflow)
    (["predicted_masks/a.txt 1e30 0.5"], {"a.txt": "1\n" * 1000},
     r"line 1: label 1000000000000000019884624838656 is not one of the 18 instance class ids"),
])
def test_reader_errors(tmp_path, lines, masks, match):
    _gt_dir(tmp_path)
    _write_submission(tmp_path / "p", "scene0000_00", lines, masks)
    with pytest.raises(SceneError, match=match):
        evaluate_instance_submission(tmp_path / "p", tmp_path / "gt")


def test_missing_gt_and_bad_gt(tmp_path):
    _gt_dir(tmp_path)
    _write_submission(tmp_path / "p", "scene0001_00", [], {})
    with pytest.raises(SceneError, match=r"scene0001_00: .*scene0001_00\.txt: no ground truth"):
        evaluate_instance_submission(tmp_path / "p", tmp_path / "gt")
    (tmp_path / "gt" / "scene0001_00.txt").write_text("")
    with pytest.raises(SceneError, match=r"gt/scene0001_00\.txt: empty file"):
        evaluate_instance_submission(tmp_path / "p", tmp_path / "gt")
    (tmp_path / "gt" / "scene0001_00.txt").write_text("5001\n\n0\n")
    with pytest.raises(SceneError, match=r"line 2: b'' is not an integer"):
        read_gt_file(tmp_path / "gt" / "scene0001_00.txt")
    (tmp_path / "gt" / "scene0001_00.txt").write_text("5001\n0\n")
    r, missing = evaluate_instance_submission(tmp_path / "p", tmp_path / "gt")
    assert missing == ["scene0000_00"] and r.num_scenes == 1  # as official: not scored
    with pytest.raises(SceneError, match="no predictions for 1 GT scenes"):
        evaluate_instance_submission(tmp_path / "p", tmp_path / "gt", require_all=True)
