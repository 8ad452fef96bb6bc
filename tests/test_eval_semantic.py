"""Semantic IoU / mIoU: hand cases, the official per-vertex loop, file reading."""

from __future__ import annotations

import numpy as np
import pytest

from scene_pe.labels.label_set import SCANNET20
from scene_pe.evaluation.io import evaluate_semantic_submission
from scene_pe.evaluation.semantic import (SemanticEvaluator, evaluate_semantic,
                                          iou_from_confusion, semantic_confusion)
from scene_pe.util.errors import SceneError

WALL, FLOOR, CABINET, BED, CHAIR = 0, 1, 2, 3, 4  # indices into SCANNET20.ids


def test_hand_case():
    # GT mixes NYU40 ids and the instance format (1001 = wall, 5005 = chair).
    gt = np.array([1, 1001, 2, 0, 5005, 40, 5, 5, 3, 1])
    pred = np.array([1, 2, 2, 1, 5, 1, 40, 13, 5, 4])
    conf = semantic_confusion(gt, pred)
    assert conf.shape == (20, 21) and conf.sum() == 8  # unannotated and otherprop GT ignored
    assert conf[WALL, WALL] == 1 and conf[WALL, FLOOR] == 1 and conf[WALL, BED] == 1
    assert conf[CHAIR, CHAIR] == 1 and conf[CHAIR, 20] == 2  # 40 and 13 -> unknown column
    iou = iou_from_confusion(conf)
    assert iou[WALL] == pytest.approx(1 / 3)
    assert iou[FLOOR] == 0.5
    assert iou[CHAIR] == 0.25  # TP 1, FN 2 (unknown), FP 1 (the cabinet vertex)
    assert iou[CABINET] == 0.0 and iou[BED] == 0.0  # bed: predicted, never GT
    assert np.isnan(iou).sum() == 15
    r = evaluate_semantic({"s": pred}, {"s": gt})
    assert r.miou == pytest.approx((1 / 3 + 0.5 + 0.25 + 0 + 0) / 5)
    assert r.to_dict()["classes"]["sofa"]["iou"] is None


def _official_loop(gts, preds):
    valid = list(SCANNET20.ids)
    confusion = np.zeros((41, 41), np.int64)
    for gt, pred in zip(gts, preds):
        for g, p in zip(gt, pred):
            if g not in valid:
                continue
            confusion[g][p if p in valid else 40] += 1
    ious = []
    for c in valid:
        tp = confusion[c, c]
        fn = confusion[c, :].sum() - tp
        fp = confusion[[v for v in valid if v != c], c].sum()
        ious.append(tp / (tp + fp + fn) if tp + fp + fn else np.nan)
    return np.array(ious)


def test_matches_official_loop_over_scenes():
    rng = np.random.default_rng(0)
    ids = np.array([0, *SCANNET20.ids, 13, 15, 40])
    gts = [rng.choice(ids, 500) for _ in range(3)]
    preds = [np.where(rng.random(500) < 0.6, g, rng.choice(ids, 500)) for g in gts]
    gts[1] = np.where(gts[1] > 0, gts[1] * 1000 + 7, 0)  # instance format for one scene
    ev = SemanticEvaluator()
    for i, (g, p) in enumerate(zip(gts, preds)):
        ev.add(f"s{i}", g, p)
    ref = _official_loop([np.where(g >= 1000, g // 1000, g) for g in gts], preds)
    np.testing.assert_allclose(ev.result().iou, ref, rtol=0, atol=1e-15)
    assert ev.result().num_scenes == 3


def test_errors():
    with pytest.raises(SceneError, match="s: predictions: 3 predicted labels for 4 GT vertices"):
        evaluate_semantic({"s": np.ones(3)}, {"s": np.ones(4)})
    with pytest.raises(SceneError, match="t: ground truth: no ground truth"):
        evaluate_semantic({"t": np.ones(3)}, {"s": np.ones(3)})


def test_submission_files(tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "p").mkdir()
    (tmp_path / "gt" / "scene0000_00.txt").write_text("1001\n5002\n0\n")
    (tmp_path / "p" / "scene0000_00.txt").write_text("1\n5\n2\n")
    r, missing = evaluate_semantic_submission(tmp_path / "p", tmp_path / "gt")
    assert missing == [] and r.miou == 1.0 and r.confusion.sum() == 2
    (tmp_path / "p" / "scene0000_00.txt").write_text("1\n5\n")
    with pytest.raises(SceneError, match=r"p/scene0000_00\.txt: 2 lines, but the scene has 3"):
        evaluate_semantic_submission(tmp_path / "p", tmp_path / "gt")
    (tmp_path / "p" / "scene0000_00.txt").write_text("1\nchair\n3\n")
    with pytest.raises(SceneError, match=r"line 2: b'chair' is not an integer"):
        evaluate_semantic_submission(tmp_path / "p", tmp_path / "gt")
