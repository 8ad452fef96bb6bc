"""best.pth, the checkpoint README tells users to evaluate, carries the inference values fitted for its
own weights; the epoch is chosen on the same select half of val as the thresholds, never on the report half."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from scene_pe.config import load_config
from scene_pe.inference.fitting import RECORD_KEY, fit_thresholds, split_halves
from scene_pe.model.build import build_model
from scene_pe.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
GRID = "inference.probabilistic.tau=0.05,0.3,0.9"


@pytest.fixture(scope="module")
def trained(small_dataset, tmp_path_factory, request):
    """Two epochs of two steps, validation after each; val = the 2 train scenes (GT on both)."""
    import scene_pe.train.trainer as trainer_module
    from scene_pe.train.trainer import Trainer

    run_dir = tmp_path_factory.mktemp("best")
    cfg = load_config(ROOT / "configs" / "synthetic_probabilistic.yaml", [
        f"data.root={small_dataset}", f"run_dir={run_dir}", "name=run", "data.num_workers=0", "data.batch_size=1",
        "data.repeat=1", "data.voxel.voxel_size=0.08", "data.val_split=train", "model.backbone.stem_channels=8",
        "model.head.hidden=16", "train.epochs=2", "train.val_every=1", "train.deterministic=true",
        "train.lr=0.01", "inference.probabilistic.min_size=2", "inference.min_vertices=10",
        "inference.probabilistic.score_threshold=0", "inference.probabilistic.exclude_stuff=false",
        f"train.fit.probabilistic=[{GRID!r}]"])
    seen: list[list[str]] = []
    real = trainer_module.evaluate_loader

    def spy(model, cfg_, scenes, *a, **kw):
        seen.append(list(scenes))
        return real(model, cfg_, scenes, *a, **kw)

    mp = pytest.MonkeyPatch()
    request.addfinalizer(mp.undo)
    mp.setattr(trainer_module, "evaluate_loader", spy)
    torch.manual_seed(0)
    t = Trainer(cfg, progress=False)
    t.fit()
    t.close(barrier=False)
    return cfg, run_dir / "run", seen


def test_validation_chooses_on_the_select_half_only(trained):
    cfg, run, seen = trained
    last = load_checkpoint(run / "last.pth")[RECORD_KEY]
    assert len(seen) == 2  # one validation per epoch
    for scenes in seen:
        assert scenes == last["scenes"]["select"] == split_halves(scenes + last["scenes"]["report"])["select"]
        assert not set(scenes) & set(last["scenes"]["report"])


def test_best_holds_the_values_fitted_for_its_own_weights(trained):
    cfg, run, _ = trained
    best, last = load_checkpoint(run / "best.pth"), load_checkpoint(run / "last.pth")
    assert best["step"] == 2 and last["step"] == 4  # random weights: AP 0 both epochs, the first is kept
    assert RECORD_KEY in best and RECORD_KEY in last
    model = build_model(cfg)
    model.load_state_dict(best["model"])
    again = fit_thresholds(model, cfg, [GRID], progress=False)
    rec = best[RECORD_KEY]
    assert rec["overrides"] == again["overrides"]  # the calibrated coefficients included
    assert [r["all"] for r in rec["rows"]] == [r["all"] for r in again["rows"]]
    # not last.pth's record copied: the calibrated uncertainty's coefficients follow the weights
    assert rec["uncertainty"]["coefficients"] != last[RECORD_KEY]["uncertainty"]["coefficients"]


def test_the_test_tool_applies_best_values_and_reports_the_report_half(trained, tmp_path, capsys):
    cfg, run, _ = trained
    spec = importlib.util.spec_from_file_location("test_tool", ROOT / "tools" / "test.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    rec = load_checkpoint(run / "best.pth")[RECORD_KEY]
    out = tmp_path / "out"
    assert tool.main([str(run / "config.yaml"), "--checkpoint", str(run / "best.pth"), "--split", "train",
                      "--no-progress", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"inference thresholds: {rec['overrides'][0]} inference.probabilistic.uncertainty=calibrated" in said
    assert "report half of train (1 scenes, used for no choice): AP " in said
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["report_half"]["scenes"] == rec["scenes"]["report"]
    assert rec["overrides"][0] in metrics["inference_thresholds"][0]
