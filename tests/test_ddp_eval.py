"""Evaluation under DDP (inference/evaluate.merge_evaluators): two gloo ranks, each scoring every
second scene, end with the metrics of one process scoring them all; and the process-group
helpers (util/distributed.py) leave the group however a rank ends, a rank's exception reaching
the launcher."""

import pickle
import time

import numpy as np
import pytest
import torch.multiprocessing as mp

from scene_pe.util import distributed as D
from scene_pe.inference.evaluate import add_scene, merge_evaluators
from scene_pe.inference.vertices import VertexPrediction
from scene_pe.evaluation.instance import InstanceEvaluator
from scene_pe.evaluation.semantic import SemanticEvaluator
from scene_pe.evaluation.uncertainty import UncertaintyEvaluator

WALL, FLOOR, CHAIR, TABLE = 1, 2, 5, 7  # NYU40 ids
WORLD = 2


def scenes(count: int = 5, n: int = 900) -> list[tuple[VertexPrediction, np.ndarray]]:
    """(prediction, GT) of ``count`` random rooms: 3 objects of 150-300 vertices, predictions
    that overlap them in part, some of another class, confidences with ties across scenes."""
    rng = np.random.default_rng(7)
    out = []
    for s in range(count):
        gt = np.where(rng.random(n) < 0.5, WALL * 1000, FLOOR * 1000)  # stuff: class * 1000, no id
        starts = np.sort(rng.choice(np.arange(0, n - 300, 300), 2, replace=False))
        for k, start in enumerate(starts):
            gt[start:start + rng.integers(150, 300)] = (CHAIR if k % 2 else TABLE) * 1000 + k + 1
        gt[rng.random(n) < 0.05] = 0  # unannotated
        instance = np.full(n, -1)
        labels = []
        for k, start in enumerate(starts):
            lo, hi = start + rng.integers(-40, 40), start + rng.integers(120, 320)
            instance[max(lo, 0):min(hi, n)] = k
            labels.append(rng.choice([CHAIR, TABLE]))
        confidence = rng.integers(1, 6, len(labels)) / 6.0
        semantic = np.where(gt >= 1000, gt // 1000, WALL)
        semantic[rng.random(n) < 0.2] = FLOOR
        uncertainty = rng.integers(0, 10, n) / 10.0
        out.append((VertexPrediction(f"scene{s:04d}_00", instance, np.array(labels), confidence, semantic,
                                     uncertainty), gt))
    return out


def evaluate(part) -> tuple:
    inst, sem, unc = InstanceEvaluator(), SemanticEvaluator(), UncertaintyEvaluator()
    for pred, gt in part:
        add_scene(inst, sem, pred, gt, unc)
    return inst, sem, unc


def figures(inst, sem, unc) -> dict:
    i, s, u = inst.result(), sem.result(), unc.result()
    return {"scenes": (inst.num_scenes, sem.result().num_scenes, unc.num_scenes),
            "ap": i.ap_per_threshold, "ap25": i.ap25, "num_gt": i.num_gt, "num_pred": i.num_pred,
            "confusion": s.confusion, "unc": u}


def _merge_rank(rank: int, port: int, out_dir: str) -> None:
    with D.process_group("gloo", rank, WORLD, D.store_client(port, WORLD)):
        mine = evaluate(scenes()[rank::WORLD])  # as evaluate_loader shares them out
        merged = figures(*merge_evaluators(*mine))
    with open(f"{out_dir}/rank{rank}.pkl", "wb") as f:
        pickle.dump(merged, f)


def test_two_ranks_merge_to_the_single_process_metrics(tmp_path):
    store = D.host_store(WORLD)
    mp.spawn(_merge_rank, args=(store.port, str(tmp_path)), nprocs=WORLD)
    single = figures(*evaluate(scenes()))
    assert single["scenes"] == (5, 5, 5) and single["num_gt"].sum() == 10
    assert 0 < np.nanmean(single["ap"]) < 1 and single["unc"].num_wrong > 0  # not all 0s or 1s
    for rank in range(WORLD):
        with open(tmp_path / f"rank{rank}.pkl", "rb") as f:
            merged = pickle.load(f)
        assert merged["scenes"] == single["scenes"], rank
        for key in ("ap", "ap25"):  # AP: counts ranked by confidence, whatever the scene order
            np.testing.assert_array_equal(merged[key], single[key], err_msg=f"{key}, rank {rank}")
        for key in ("num_gt", "num_pred", "confusion"):
            np.testing.assert_array_equal(merged[key], single[key], err_msg=f"{key}, rank {rank}")
        assert merged["unc"] == single["unc"], rank


def test_one_rank_alone_is_not_the_merged_result():
    """The comparison above is not vacuous: half the scenes score differently."""
    half, single = figures(*merge_evaluators(*evaluate(scenes()[0::WORLD]))), figures(*evaluate(scenes()))
    assert half["scenes"] == (3, 3, 3)
    assert not np.array_equal(half["confusion"], single["confusion"]) and half["unc"] != single["unc"]


def _failing_rank(rank: int, port: int) -> None:
    with D.process_group("gloo", rank, WORLD, D.store_client(port, WORLD)):
        if rank == 1:
            raise ValueError("rank 1 cannot go on")
        time.sleep(120)  # rank 0 busy: the launcher must end it


def test_a_failing_rank_reaches_the_launcher_and_ends_the_other():
    store = D.host_store(WORLD)
    start = time.monotonic()
    with pytest.raises(mp.ProcessRaisedException, match="ValueError: rank 1 cannot go on"):
        mp.spawn(_failing_rank, args=(store.port,), nprocs=WORLD)
    assert time.monotonic() - start < 100  # rank 0 was ended, not waited for
