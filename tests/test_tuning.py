"""tools/tune_inference.py: grid parsing, halves, re-clustering equals full inference, selection rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from scene_pe.config import load_config
from scene_pe.data.dataset import preprocessed_split
from scene_pe.inference.evaluate import evaluate_loader, inference_loader
from scene_pe.model.build import build_model
from scene_pe.inference.vertices import predict_batch, predictions_from_outputs
from scene_pe.experiments.tuning import (METRICS, PARTS, TuningError, cache_outputs, chosen_index, grid_points, parse_grid, split_halves, tune)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "synthetic_probabilistic.yaml"


def test_grid_is_the_cartesian_product_in_order():
    grid = parse_grid(["inference.probabilistic.tau=0.3, 0.5", "inference.min_vertices=50,100,200"])
    assert grid == [("inference.probabilistic.tau", ["0.3", "0.5"]), ("inference.min_vertices", ["50", "100", "200"])]
    points = grid_points(grid)
    assert len(points) == 6 and len(set(points)) == 6
    assert points[0] == ("inference.probabilistic.tau=0.3", "inference.min_vertices=50")
    assert points[-1] == ("inference.probabilistic.tau=0.5", "inference.min_vertices=200")


@pytest.mark.parametrize("item, fragment", [
    ("train.lr=0.1,0.2", "only inference"),
    ("inference.probabilistic.tau", "key=v1"),
    ("inference.probabilistic.tau=", "key=v1"),
])
def test_bad_grid_items_are_errors_naming_them(item, fragment):
    with pytest.raises(TuningError, match=fragment):
        parse_grid([item])


def test_repeated_key_is_an_error():
    with pytest.raises(TuningError, match="twice"):
        parse_grid(["inference.min_vertices=1", "inference.min_vertices=2"])


def test_halves_alternate_over_sorted_scenes_and_cover_them_once():
    scenes = [f"scene{i:04d}_00" for i in (5, 1, 4, 2, 3)]
    h = split_halves(scenes)
    assert h["select"] == ["scene0001_00", "scene0003_00", "scene0005_00"]
    assert h["report"] == ["scene0002_00", "scene0004_00"]


@pytest.fixture(scope="module")
def untrained_run(untrained_run_factory) -> Path:
    """A run folder with a randomly initialised small model; val = the 2 train scenes (GT on both)."""
    return untrained_run_factory()


def _model(cfg):
    torch.manual_seed(0)
    return build_model(cfg).eval()


def test_cached_outputs_recluster_to_the_same_predictions(untrained_run):
    _, cache = cache_outputs(untrained_run, progress=False)
    counts = []
    for tau in ("0.05", "0.3", "0.9"):
        cfg = load_config(untrained_run / "config.yaml", [f"inference.probabilistic.tau={tau}"])
        model = _model(cfg)
        for c, (voxels, _) in zip(cache, inference_loader(cfg, [c.voxels.scenes[0] for c in cache])):
            got = predictions_from_outputs(c.out, c.voxels, cfg.inference, label_set=cfg.data.labels)[0]
            want = predict_batch(model, voxels, cfg.inference, label_set=cfg.data.labels)[0]
            assert got.scene == want.scene
            for f in ("instance", "labels", "confidence", "semantic", "uncertainty"):
                assert np.array_equal(getattr(got, f), getattr(want, f)), f
            counts.append(len(got.labels))
    assert len(set(counts)) > 1  # tau changes the instances: the comparison is not vacuous


@pytest.mark.parametrize("tau", ["0.2", "0.6"])
def test_each_half_equals_full_evaluation(untrained_run, tau):
    result = tune([untrained_run], [f"inference.probabilistic.tau={tau}"], progress=False)
    row = result["rows"][0]
    cfg = load_config(untrained_run / "config.yaml", [f"inference.probabilistic.tau={tau}"])
    halves = split_halves(preprocessed_split(Path(cfg.data.root), "train"))
    for half, scenes in halves.items():
        full = evaluate_loader(_model(cfg), cfg, scenes, torch.device("cpu"), progress=False)
        assert row[f"{half}_unc_auroc"][0] == pytest.approx(full["unc_auroc"], abs=1e-12)
        assert 0.0 < full["unc_auroc"] < 1.0
        for m in ("ap", "ap50", "ap25"):
            assert row[f"{half}_{m}"][0] == pytest.approx(full[m], abs=1e-12), (half, m)


def test_choice_is_the_best_select_ap_ties_and_nan_to_the_first():
    rows = [{"select_ap": (v, 0.0)} for v in (0.2, float("nan"), 0.5, 0.5, 0.1)]
    assert chosen_index(rows) == 2
    assert chosen_index([{"select_ap": (float("nan"), 0.0)}] * 3) == 0


def test_seeds_are_averaged_with_sample_std(untrained_run, untrained_run_factory):
    """Two different runs (another network width: other random weights): every figure of the joint
    row is the mean and the sample std (ddof 1) of the two runs' own figures, computed here."""
    grid = ["inference.probabilistic.tau=0.3"]
    other_run = untrained_run_factory("model.head.hidden=24")
    one = tune([untrained_run], grid, progress=False)["rows"][0]
    other = tune([other_run], grid, progress=False)["rows"][0]
    both = tune([untrained_run, other_run], grid, progress=False)["rows"][0]
    figures = lambda scores: {h: scores[h] for h in PARTS}  # noqa: E731 (not the timing)
    assert [figures(r) for r in both["runs"]] == [figures(one["runs"][0]), figures(other["runs"][0])]  # in order
    differ = 0
    for h in PARTS:
        for m in METRICS:
            a, b = one["runs"][0][h][m], other["runs"][0][h][m]
            assert one[f"{h}_{m}"][0] == a or (np.isnan(a) and np.isnan(one[f"{h}_{m}"][0]))
            if np.isnan(a) or np.isnan(b):
                continue
            mean, std = both[f"{h}_{m}"]
            assert mean == pytest.approx((a + b) / 2, rel=1e-12, abs=1e-15), (h, m)
            assert std == pytest.approx(abs(a - b) / np.sqrt(2), rel=1e-9, abs=1e-15), (h, m)  # not |a - b| / 2
            differ += a != b
    # the runs differ, on both halves: a mean of one run or a population std would show
    assert differ >= 2 and one["report_unc_auroc"][0] != other["report_unc_auroc"][0]
    assert one["select_unc_auroc"][0] != other["select_unc_auroc"][0]
    # the same run twice: its own figure, with a spread of exactly 0
    two = tune([untrained_run, untrained_run], grid, progress=False)["rows"][0]
    assert two["report_unc_auroc"] == pytest.approx((one["report_unc_auroc"][0], 0.0))
    assert np.isnan(one["report_unc_auroc"][1])  # one run: no spread, not a spread of 0


def test_tool_writes_json_and_marks_the_chosen_row(untrained_run, tmp_path):
    cmd = [sys.executable, str(ROOT / "tools" / "tune_inference.py"), str(untrained_run), "--grid",
           "inference.probabilistic.tau=0.05,0.3", "inference.min_vertices=10,50", "--out", str(tmp_path),
           "--no-progress"]
    r = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((tmp_path / "tuning.json").read_text())
    assert [row["overrides"] for row in result["rows"]] == [list(p) for p in grid_points(parse_grid(
        ["inference.probabilistic.tau=0.05,0.3", "inference.min_vertices=10,50"]))]
    assert result["chosen"] == chosen_index([{"select_ap": tuple(r["select_ap"])} for r in result["rows"]])
    md = (tmp_path / "tuning.md").read_text().splitlines()
    assert sum("**" in line for line in md) == 1 and len([x for x in md if x.startswith("| ")]) == 5
    assert " ".join(result["rows"][result["chosen"]]["overrides"]) in r.stdout


def test_bad_value_fails_before_the_network_runs(untrained_run, monkeypatch, capsys):
    import importlib.util

    import scene_pe.train.checkpoint as checkpoint
    from scene_pe.model.network import InstanceSegmentationNet

    spec = importlib.util.spec_from_file_location("tune_tool", ROOT / "tools" / "tune_inference.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    calls = {"load": 0, "forward": 0}
    load, forward = checkpoint.load_trained_run, InstanceSegmentationNet.forward

    def counted_load(*a, **k):
        calls["load"] += 1
        return load(*a, **k)

    def counted_forward(self, *a, **k):
        calls["forward"] += 1
        return forward(self, *a, **k)

    monkeypatch.setattr(checkpoint, "load_trained_run", counted_load)
    monkeypatch.setattr(InstanceSegmentationNet, "forward", counted_forward)
    # the bad value comes second: every point is checked before the first one is scored
    rc = tool.main([str(untrained_run), "--grid", "inference.probabilistic.tau=0.3,fast", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and calls == {"load": 0, "forward": 0}, (calls, err)
    assert "grid point inference.probabilistic.tau=fast" in err and "Traceback" not in err
    # the counters do count: a good grid loads the run once and runs the network on its 2 val scenes
    assert tool.main([str(untrained_run), "--grid", "inference.probabilistic.tau=0.3", "--no-progress"]) == 0
    assert calls == {"load": 1, "forward": 2}
