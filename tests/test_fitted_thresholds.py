"""Fitted inference thresholds (inference/fitting.py): the fit's choice, its round trip through the
checkpoint, and tools/test.py and tools/predict.py using it unless overridden."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from scene_pe.config import load_config
from scene_pe.experiments.tuning import write_fitted
from scene_pe.inference.fitting import RECORD_KEY, effective_overrides, fit_thresholds
from scene_pe.method.error_model import NUM_COEFFICIENTS
from scene_pe.model.build import build_model
from scene_pe.predict.pipeline import Predictor
from scene_pe.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
GRID = ["inference.probabilistic.tau=0.05,0.3,0.9"]


@pytest.fixture(scope="module")
def run(untrained_run_factory) -> Path:
    """A randomly initialised small model whose val split is the 2 train scenes (GT on both)."""
    return untrained_run_factory("inference.probabilistic.tau=0.5", f"train.fit.probabilistic=[{GRID[0]!r}]")


def test_the_fit_chooses_the_best_select_half_point_and_keeps_every_figure(run):
    cfg = load_config(run / "config.yaml")
    torch.manual_seed(0)
    model = build_model(cfg)
    model.load_state_dict(load_checkpoint(run / "last.pth")["model"])
    rec = fit_thresholds(model, cfg, GRID, progress=False)
    select = [r["select"]["ap"] for r in rec["rows"]]
    assert rec["chosen"] == max(range(3), key=lambda i: (select[i], -i))
    # the chosen point, then the calibrated uncertainty fitted at it (method/error_model.py)
    calibration = rec["uncertainty"]
    assert rec["overrides"] == rec["rows"][rec["chosen"]]["overrides"] + calibration["overrides"]
    assert calibration["overrides"][0] == "inference.probabilistic.uncertainty=calibrated"
    assert len(calibration["coefficients"]) == NUM_COEFFICIENTS and set(calibration["report"]) == {"calibrated", "config"}
    assert calibration["report"]["config"]["definition"] == "membership"
    assert set(calibration["report"]["calibrated"]) == {"auroc", "auroc_instances", "auroc_object_or_assigned"}
    assert [r["overrides"] for r in rec["rows"]] == [[f"inference.probabilistic.tau={t}"] for t in ("0.05", "0.3", "0.9")]
    assert len({r["all"]["unc_auroc"] for r in rec["rows"]}) == 3  # tau changes the instances (random weights: AP 0)
    assert rec["scenes"]["select"] and rec["scenes"]["report"]
    assert not set(rec["scenes"]["select"]) & set(rec["scenes"]["report"])
    assert model.training  # left as it was found


def test_the_fit_chooses_the_point_with_the_best_select_ap_when_the_aps_differ(run, monkeypatch):
    """Random weights score AP 0 at every point, so the test above cannot tell the best point from
    the first. Here each point's scores are the real ones with the select and report APs set to
    known values: the best select AP is the middle point, the first has NaN (no GT on its half), the
    report half prefers another point and the config's own values beat them all."""
    import math

    from scene_pe.inference import fitting

    select = {0.05: math.nan, 0.3: 0.40, 0.9: 0.25, 0.5: 0.95}  # 0.5: the config's tau (the baseline)
    report = {0.05: 0.60, 0.3: 0.05, 0.9: 0.30, 0.5: 0.90}
    real = fitting.score_point

    def known_aps(cfg, cache):
        scores = real(cfg, cache)
        tau = cfg.inference.probabilistic.tau
        scores["select"]["ap"], scores["report"]["ap"] = select[tau], report[tau]
        return scores

    monkeypatch.setattr(fitting, "score_point", known_aps)
    cfg = load_config(run / "config.yaml")
    torch.manual_seed(0)
    model = build_model(cfg)
    model.load_state_dict(load_checkpoint(run / "last.pth")["model"])
    rec = fit_thresholds(model, cfg, GRID, progress=False, calibrate=False)
    assert [r["select"]["ap"] for r in rec["rows"]][1:] == [0.40, 0.25]  # every figure kept
    assert math.isnan(rec["rows"][0]["select"]["ap"]) and rec["baseline"]["select"]["ap"] == 0.95
    assert rec["chosen"] == 1 and rec["overrides"] == ["inference.probabilistic.tau=0.3"]
    # the grid in another order: the same point is chosen, now the last
    last = fit_thresholds(model, cfg, ["inference.probabilistic.tau=0.9,0.05,0.3"], progress=False, calibrate=False)
    assert last["chosen"] == 2 and last["overrides"] == ["inference.probabilistic.tau=0.3"]
    two = fit_thresholds(model, cfg, ["inference.probabilistic.tau=0.9,0.05"], progress=False, calibrate=False)
    assert two["chosen"] == 0 and two["overrides"] == ["inference.probabilistic.tau=0.9"]  # NaN is never best


def test_write_round_trips_through_a_weights_only_checkpoint(run):
    rec = write_fitted(run, [], progress=False)  # the config's train.fit grid
    ck = load_checkpoint(run / "last.pth")  # weights_only=True
    assert json.dumps(ck[RECORD_KEY], sort_keys=True) == json.dumps(rec, sort_keys=True)  # NaN == NaN here
    assert [k for k, _ in rec["grid"]] == ["inference.probabilistic.tau"]
    assert "model" in ck and ck["step"] == 0  # the rest of the checkpoint is kept


def test_overrides_command_line_wins_and_old_checkpoints_use_the_config():
    rec = {"overrides": ["inference.probabilistic.tau=0.15"], "chosen": 0, "split": "val", "source": "training",
           "rows": [{"report": {"ap": 0.2}}], "baseline": {"report": {"ap": 0.1}}}
    applied, notes = effective_overrides(rec, ["inference.min_vertices=50"])
    assert applied == ["inference.probabilistic.tau=0.15", "inference.min_vertices=50"]
    assert "tau=0.15" in notes[0] and "fitted" in notes[0]
    applied, notes = effective_overrides(rec, ["inference.probabilistic.tau=0.4"])
    assert applied == ["inference.probabilistic.tau=0.4"] and "command line" in notes[0]
    assert effective_overrides(rec, [], use_fitted=False)[0] == []
    applied, notes = effective_overrides(None, ["inference.min_vertices=50"])
    assert applied == ["inference.min_vertices=50"] and "no fitted values" in notes[0]


def test_predict_uses_the_fitted_values_unless_overridden(run):
    fitted = load_checkpoint(run / "last.pth")[RECORD_KEY]
    tau = float(fitted["overrides"][0].split("=")[1])
    p = Predictor.from_checkpoint(run / "last.pth")
    assert p.cfg.inference.probabilistic.tau == tau and p.thresholds["fitted"] == fitted["overrides"]
    assert p.cfg.inference.probabilistic.uncertainty == "calibrated"
    assert list(p.cfg.inference.probabilistic.calibration) == fitted["uncertainty"]["coefficients"]
    p = Predictor.from_checkpoint(run / "last.pth", overrides=["inference.probabilistic.tau=0.77"])
    assert p.cfg.inference.probabilistic.tau == 0.77 and p.thresholds["fitted"] == fitted["overrides"][1:]
    assert Predictor.from_checkpoint(run / "last.pth", use_fitted=False).cfg.inference.probabilistic.tau == 0.5


def _test_tool():
    spec = importlib.util.spec_from_file_location("test_tool", ROOT / "tools" / "test.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_test_tool_uses_the_fitted_values_and_says_so(run, tmp_path, capsys):
    tool = _test_tool()
    fitted_overrides = load_checkpoint(run / "last.pth")[RECORD_KEY]["overrides"]
    tau = fitted_overrides[0]
    base = ["--checkpoint", str(run / "last.pth"), "--split", "train", "--no-progress"]
    assert tool.main([str(run / "config.yaml")] + base + ["--out", str(tmp_path / "fitted")]) == 0
    said = capsys.readouterr().out
    assert f"inference thresholds: {tau} inference.probabilistic.uncertainty=calibrated " \
           f"inference.probabilistic.calibration=[{NUM_COEFFICIENTS} fitted coefficients] (fitted" in said
    assert "uncertainty AUROC on the report half: calibrated all " in said
    assert tool.main([str(run / "config.yaml"), *fitted_overrides] + base
                     + ["--out", str(tmp_path / "explicit"), "--no-fitted"]) == 0
    assert "--no-fitted" in capsys.readouterr().out
    fitted, explicit = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("fitted", "explicit"))
    # the fitted run is the run at the fitted value (the uncertainty depends on the instances, so on tau)
    assert fitted["instance"] == explicit["instance"] and fitted["uncertainty"] == explicit["uncertainty"]
    assert tau in fitted["inference_thresholds"][0]


def test_a_collapsed_sigma_keeps_the_thresholds_and_says_why_it_is_not_calibrated(run, monkeypatch):
    """sigma underflowed to 0 on some voxels (a collapsed entropy regulariser: w_reg = 1 on the
    ScanNet-like rooms) makes the error model's log-sigma feature -inf there. The fit keeps its
    thresholds, leaves the calibrated uncertainty out and says why, instead of failing the training
    at its end with a message about coefficients."""
    import numpy as np

    import scene_pe.inference.calibration as calibration
    from scene_pe.inference.fitting import fit_summary
    from scene_pe.method.error_model import FEATURES

    real = calibration.calibration_features

    def collapsed(*a, **kw):
        x, assigned = real(*a, **kw)
        x[::7, FEATURES.index("log_sigma")] = -np.inf
        return x, assigned

    monkeypatch.setattr(calibration, "calibration_features", collapsed)
    cfg = load_config(run / "config.yaml")
    model = build_model(cfg)
    model.load_state_dict(load_checkpoint(run / "last.pth")["model"])
    rec = fit_thresholds(model, cfg, GRID, progress=False)
    assert "uncertainty" not in rec and rec["overrides"] == rec["rows"][rec["chosen"]]["overrides"]
    assert rec["uncertainty_skipped"].endswith("vertices have non-finite features (log_sigma; e.g. sigma "
                                               "underflowed to 0)")
    assert fit_summary(rec)[-1] == f"calibrated uncertainty not fitted: {rec['uncertainty_skipped']}"
