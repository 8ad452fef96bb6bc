"""ScanNet++'s evaluation against plain-loop references of its toolkit's rules (no toolkit needed).

The references below follow ``semantic/eval/eval_instance.py`` and ``semantic/utils/confmat.py``
of scannetpp/scannetpp step by step, one vertex / instance at a time, on random scenes with
vertex masks and (in some draws) instances of class id 0; bench/check_scannetpp_official.py
compares with the toolkit itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scene_pe.evaluation.scannetpp import PlusGt, evaluate_plus_instance, evaluate_plus_semantic, topk_confusion
from scene_pe.export.submission import write_instance_submission
from scene_pe.labels.scannetpp import scannetpp_label_set
from scene_pe.util.io import int_lines_bytes
from test_eval_instance import random_scene

THRESHOLDS = [*np.arange(0.5, 0.95, 0.05), 0.25]
MIN_SIZE = 100


def reference_scene(gt, masks, labels, scores, excluded, inst_ids):
    """One scene as the toolkit builds it: GT instances and kept predictions with their overlaps."""
    keep = [v not in set(excluded.tolist()) for v in range(len(gt))]
    gt = [g for g, k in zip(gt, keep) if k]
    gts = []
    for value in sorted(set(gt) - {0}):
        if value // 1000 in inst_ids:
            gts.append({"id": value, "cls": value // 1000, "size": sum(1 for g in gt if g == value), "preds": []})
    preds = []
    for mask, label, score in zip(masks, labels, scores):
        if label not in inst_ids:
            continue
        m = [bool(x) for x, k in zip(mask, keep) if k]
        size = sum(m)
        if size < MIN_SIZE:
            continue
        p = {"cls": label, "size": size, "score": score, "gts": [],
             "void": sum(1 for x, g in zip(m, gt) if x and g // 1000 not in inst_ids)}
        for g in gts:
            if g["cls"] != label:
                continue
            inter = sum(1 for x, v in zip(m, gt) if x and v == g["id"])
            if inter:
                p["gts"].append((g, inter))
                g["preds"].append((p, inter))
        preds.append(p)
    return gts, preds


def reference_ap(scenes, inst_ids):
    """(K, 10) AP per class and threshold (the last column: 0.25), loop by loop."""
    out = np.full((len(inst_ids), len(THRESHOLDS)), np.nan)
    for ti, t in enumerate(THRESHOLDS):
        for ci, c in enumerate(inst_ids):
            y_true, y_score, hard_fn, has_gt, has_pred = [], [], 0, False, False
            visited = set()
            for gts, preds in scenes:
                scored = [g for g in gts if g["cls"] == c and g["id"] >= 1000 and g["size"] >= MIN_SIZE]
                mine = [p for p in preds if p["cls"] == c]
                has_gt, has_pred = has_gt or bool(scored), has_pred or bool(mine)
                for g in scored:
                    matched, best = False, None
                    for p, inter in g["preds"]:
                        if id(p) in visited or inter / (g["size"] + p["size"] - inter) <= t:
                            continue
                        if best is not None:  # a second match: the lower confidence is a false positive
                            y_true.append(0)
                            y_score.append(min(best, p["score"]))
                            best = max(best, p["score"])
                        else:
                            matched, best = True, p["score"]
                            visited.add(id(p))
                    if matched:
                        y_true.append(1)
                        y_score.append(best)
                    else:
                        hard_fn += 1
                for p in mine:
                    if any(inter / (g["size"] + p["size"] - inter) > t for g, inter in p["gts"]):
                        continue
                    ignored = p["void"]
                    for g, inter in p["gts"]:
                        ignored += inter * ((g["id"] < 1000) + (g["size"] < MIN_SIZE))
                    if ignored / p["size"] <= t:
                        y_true.append(0)
                        y_score.append(p["score"])
            if has_gt and has_pred:
                out[ci, ti] = curve_ap(y_true, y_score, hard_fn)
            elif has_gt:
                out[ci, ti] = 0.0
    return out


def curve_ap(y_true, y_score, hard_fn):
    order = sorted(range(len(y_score)), key=lambda i: y_score[i])
    true = [y_true[i] for i in order]
    scores = [y_score[i] for i in order]
    total = sum(true)
    precision, recall = [], []
    for i in range(len(scores)):
        if i and scores[i] == scores[i - 1]:
            continue  # one point per distinct confidence: entries at or above it
        below = sum(true[:i])
        tp, fp = total - below, len(scores) - i - (total - below)
        precision.append(tp / (tp + fp))
        recall.append(tp / (tp + below + hard_fn))
    precision.append(1.0)
    recall.append(0.0)
    ext = [recall[0], *recall, 0.0]
    return sum(p * (ext[j] - ext[j + 2]) / 2 for j, p in enumerate(precision))


@pytest.mark.parametrize("seed", range(12))
def test_instance_ap_equals_loop_reference(tmp_path: Path, seed: int):
    rng = np.random.default_rng(100 + seed)
    c = int(rng.integers(3, 8))
    names = [f"c{i}" for i in range(c)]
    inst_ids = sorted(rng.choice(c, int(rng.integers(1, c)), replace=False).tolist())
    if seed % 3 == 0 and 0 not in inst_ids:  # GT values 1..999 of an instance class
        inst_ids = [0, *inst_ids]
    ls = scannetpp_label_set(names, [names[i] for i in inst_ids])
    others = tuple(i for i in range(c) if i not in inst_ids) or (c + 2,)
    ref_scenes = []
    for s in range(int(rng.integers(1, 4))):
        gt, masks, labels, scores = random_scene(rng, tuple(inst_ids), others)
        excluded = np.sort(rng.choice(len(gt), int(rng.integers(0, len(gt) // 4)), replace=False))
        (tmp_path / "gt").mkdir(exist_ok=True)
        (tmp_path / "gt" / f"s{s}.txt").write_bytes(int_lines_bytes(gt))
        (tmp_path / "mask").mkdir(exist_ok=True)
        (tmp_path / "mask" / f"s{s}.txt").write_bytes(int_lines_bytes(excluded))
        m = np.array(masks, bool).reshape(len(masks), len(gt))
        ok = ls.instance_index(labels) >= 0
        write_instance_submission(tmp_path / "pred", f"s{s}", m[ok], labels[ok], scores[ok], label_set=ls)
        order = np.argsort(-scores[ok], kind="stable")  # the exporter's line order (matters at 0.25)
        ref_scenes.append(reference_scene(gt.tolist(), m[ok][order].tolist(), labels[ok][order].tolist(),
                                          scores[ok][order].tolist(), excluded, set(inst_ids)))
    res, _ = evaluate_plus_instance(tmp_path / "pred", PlusGt(tmp_path / "gt", None, tmp_path / "mask"), ls,
                                    workers=1)
    ref = reference_ap(ref_scenes, inst_ids)
    np.testing.assert_allclose(res.ap_per_threshold, ref[:, :9], rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.ap25, ref[:, 9], rtol=0, atol=1e-12)


def reference_topk(pred, gt, c):
    """The toolkit's top-k rule, vertex by vertex."""
    conf = np.zeros((c, c + 1), np.int64)
    for p_row, g_row in zip(pred.tolist(), gt.tolist()):
        if not any(0 <= g < c for g in g_row):
            continue
        hit = next(((p, g) for p in p_row for g in g_row if p == g), None)
        p, g = hit if hit is not None else (p_row[0], g_row[0])
        conf[g, p] += 1
    return conf


@pytest.mark.parametrize("seed", range(6))
def test_topk_semantic_equals_loop_reference(tmp_path: Path, seed: int):
    rng = np.random.default_rng(seed)
    c, n = 6, 400
    gt = -np.sort(-np.where(rng.random((n, 3)) < 0.3, -100, rng.integers(0, c, (n, 3))), axis=1)
    pred = rng.integers(0, c, (n, 3))
    for k in (1, 3):
        np.testing.assert_array_equal(topk_confusion(pred[:, :k], gt, c), reference_topk(pred[:, :k], gt, c))
    # through the files, with a vertex mask: top-3 counts more hits than top-1
    for d in ("sgt", "sp", "mask"):
        (tmp_path / d).mkdir()
    (tmp_path / "sgt" / "a.txt").write_text("\n".join(",".join(map(str, r)) for r in gt.tolist()) + "\n")
    (tmp_path / "sp" / "a.txt").write_text("\n".join(",".join(map(str, r)) for r in pred.tolist()) + "\n")
    excluded = np.arange(0, n, 7)
    (tmp_path / "mask" / "a.txt").write_bytes(int_lines_bytes(excluded))
    ls = scannetpp_label_set([f"c{i}" for i in range(c)], ["c1"])
    res, _ = evaluate_plus_semantic(tmp_path / "sp", PlusGt(tmp_path / "sgt", tmp_path / "sgt", tmp_path / "mask"),
                                    ls, workers=1)
    keep = np.ones(n, bool)
    keep[excluded] = False
    np.testing.assert_array_equal(res[1].confusion, reference_topk(pred[keep, :1], gt[keep], c))
    np.testing.assert_array_equal(res[3].confusion, reference_topk(pred[keep], gt[keep], c))
    assert res[3].miou > res[1].miou
