"""tools/ablate.py: runs, equal budgets, aggregates, resume, failures, errors; the trainer's time budget."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scene_pe.experiments.ablation import budget_overrides, scale_milestones
from scene_pe.experiments.ablation_report import markdown, summarise
from scene_pe.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [ROOT / "configs" / "synthetic_probabilistic.yaml", ROOT / "configs" / "synthetic_margin.yaml"]
# 2 training scenes, batch 1: one epoch is 2 steps; a small backbone and coarse voxels keep a run ~10 s
TINY = ["data.num_workers=0", "data.batch_size=1", "data.repeat=1", "data.voxel.voxel_size=0.08",
        "model.backbone.stem_channels=8", "model.head.hidden=16", "train.deterministic=true"]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def ablate(*args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "tools" / "ablate.py"), *map(str, args)]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=900)


def ablate_args(data_root: Path, out: Path, configs=CONFIGS) -> list:
    return ["--configs", *configs, "--seeds", 2, "--epochs", 1, "--out", out, "--jobs", 2,
            f"data.root={data_root}", *TINY]


@pytest.fixture(scope="module")
def ablation(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation")
    r = ablate(*ablate_args(small_dataset, out))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out


def run_dirs(out: Path) -> list[Path]:
    return sorted(out.glob("runs/*/seed*"))


def test_results_hold_every_run_with_equal_budget(ablation):
    results = json.loads((ablation / "results.json").read_text())
    runs = results["runs"]
    assert sorted((r["name"], r["seed"]) for r in runs) == [
        ("synthetic_margin", 0), ("synthetic_margin", 1), ("synthetic_probabilistic", 0),
        ("synthetic_probabilistic", 1)]
    for r in runs:
        assert r["status"] == "done" and r["checkpoint"] == "last.pth" and r["split"] == "val"
        assert {"ap", "ap50", "ap25", "miou"} <= set(r["metrics"])
        assert r["train_minutes"] > 0 and r["eval_seconds"] > 0
    # equal budget: one epoch of the 2 training scenes for every config and seed
    assert {r["steps"] for r in runs} == {2} and {r["epochs"] for r in runs} == {1}
    for d in run_dirs(ablation):
        ck = load_checkpoint(d / "last.pth")
        assert ck["step"] == 2 and ck["elapsed_s"] > 0
        cfg = ck["config"]
        assert "seed: %s" % d.name[len("seed"):] in cfg and "epochs: 1" in cfg
        assert re.search(r"lr_milestones:\n\s*- 1\n\s*- 1\n", cfg)  # [11, 14] of 16 epochs, scaled to 1
    assert set(results["configs"]) == {"synthetic_probabilistic", "synthetic_margin"}
    assert results["budget"] == {"epochs": 1}


def test_aggregates_equal_numpy_over_the_runs(ablation):
    results = json.loads((ablation / "results.json").read_text())
    table = (ablation / "results.md").read_text().splitlines()
    header = [c.strip() for c in table[4].strip("|").split("|")]
    rows = {}
    for line in table[6:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells))
    assert list(rows) == ["synthetic_probabilistic", "synthetic_margin"]  # the order of --configs
    assert header[:5] == ["config", "AP", "AP50", "AP25", "mIoU"] and header[-2:] == ["train time (min)", "seeds"]
    varied, varied_metrics = 0, {}
    for name, row in rows.items():
        runs = [r for r in results["runs"] if r["name"] == name]
        assert row["seeds"] == "2"
        columns = {"AP": "ap", "AP50": "ap50", "AP25": "ap25", "mIoU": "miou"}
        columns.update({k: k for k in header[5:-2]})  # further scalars of the evaluation
        series = {col: [r["metrics"][key] for r in runs] for col, key in columns.items()}
        series["train time (min)"] = [r["train_minutes"] for r in runs]
        for col, values in series.items():
            if any(v is None for v in values):
                assert row[col] == "n/a"
                continue
            mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
            shown = [float(x) for x in row[col].split("±")]
            assert shown == pytest.approx([mean, std], abs=5.1e-4), (name, col)
            key = columns.get(col)
            agg = results["configs"][name]["metrics"][key] if key else results["configs"][name]["train_minutes"]
            assert agg["mean"] == pytest.approx(mean, rel=1e-12, abs=1e-15)
            assert agg["std"] == pytest.approx(std, rel=1e-12, abs=1e-15) and agg["n"] == 2
            varied += std > 0
            varied_metrics[name] = varied_metrics.get(name, 0) + (std > 1e-3 and col != "train time (min)")
    assert varied >= 2  # the comparison is not only of zeros (training time always varies)
    # nor only of the training time: each config's seeds differ visibly (std > 0.001) in an evaluation
    # figure (a run's uncertainty AUROC moves with its seed even at AP 0), which zeros, or one seed's
    # model evaluated for every seed, cannot give
    assert all(varied_metrics.get(name, 0) >= 1 for name in rows), varied_metrics


def test_results_png_is_a_valid_image(ablation):
    import matplotlib.image

    data = (ablation / "results.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(ablation / "results.png")
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_rerun_reuses_resumes_and_reports_a_failure(ablation, small_dataset, tmp_path):
    """On a copy of the ablation's folder (the other tests read the original, in any order; a moved
    folder holds the same runs). Finished runs are reused untouched; a run with a checkpoint but no
    metrics is resumed, not retrained; a run whose checkpoint is broken fails, is reported, and the
    others still complete."""
    ablation = Path(shutil.copytree(ablation, tmp_path / "ablation"))  # copy2: mtimes kept
    dirs = {d.parent.name + "/" + d.name: d for d in run_dirs(ablation)}
    resumed, broken = dirs["synthetic_margin/seed1"], dirs["synthetic_probabilistic/seed0"]
    untouched = [d for d in dirs.values() if d not in (resumed, broken)]
    before = {f: (f.stat().st_mtime_ns, f.read_bytes()) for d in untouched
              for f in (d / "metrics.json", d / "last.pth", d / "ablate.log", d / "train.log")}
    old = json.loads((resumed / "metrics.json").read_text())
    ck_before = (resumed / "last.pth").read_bytes()
    (resumed / "metrics.json").unlink()
    (broken / "metrics.json").unlink()
    (broken / "last.pth").write_bytes(b"not a checkpoint")

    r = ablate(*ablate_args(small_dataset, ablation))
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert re.search(r"FAILED synthetic_probabilistic/seed0: training exited with status \d+", r.stdout)
    assert r.stdout.count(" reused:") == 2 and "synthetic_margin/seed1 resumed:" in r.stdout
    for f, (mtime, content) in before.items():
        assert f.stat().st_mtime_ns == mtime and f.read_bytes() == content, f
    # resumed from its checkpoint: no step trained again, same final model, same metrics
    assert "resumed from" in (resumed / "train.log").read_text()
    assert (resumed / "last.pth").read_bytes() == ck_before
    new = json.loads((resumed / "metrics.json").read_text())
    assert new["metrics"] == old["metrics"] and new["steps"] == old["steps"] == 2
    results = json.loads((ablation / "results.json").read_text())
    status = {(x["name"], x["seed"]): x["status"] for x in results["runs"]}
    assert status[("synthetic_probabilistic", 0)] == "failed" and list(status.values()).count("done") == 3
    assert results["configs"]["synthetic_probabilistic"]["n"] == 1
    assert "| synthetic_probabilistic |" in (ablation / "results.md").read_text()


# ------------------------------------------------------------------ budget and report units
def test_milestones_scale_with_the_epoch_budget():
    assert scale_milestones([128, 192, 224], 256, 8) == [4, 6, 7]
    assert scale_milestones([11, 14], 16, 1) == [1, 1]  # both decays kept, at the first epoch
    assert scale_milestones([6], 8, 2) == [2]  # 1.5 rounds up
    assert scale_milestones([150, 250, 350], 400, 800) == [300, 500, 700]

    class Train:
        epochs, lr_milestones = 16, [11, 14]

    assert budget_overrides(Train, 4, None) == ["train.epochs=4", "train.lr_milestones=[3, 4]",
                                                "train.max_minutes=0", "train.val_every=0"]
    assert budget_overrides(Train, None, 2.5) == ["train.max_minutes=2.5", "train.val_every=0"]


def test_report_mean_and_sample_std_closed_form():
    def rec(name, seed, ap, extra):
        return {"name": name, "seed": seed, "status": "done", "train_minutes": 1.0 + seed, "steps": 10,
                "metrics": {"ap": ap, "ap50": 0.5, "ap25": 0.75, "miou": 0.25, "unc_auroc": extra}}

    records = [rec("a", 0, 0.1, 0.6), rec("a", 1, 0.3, None), rec("b", 0, 0.2, 0.7),
               {"name": "b", "seed": 1, "status": "failed", "error": "x"}]
    s = summarise(["a", "b"], records)
    assert s["a"]["metrics"]["ap"]["mean"] == pytest.approx(0.2)
    assert s["a"]["metrics"]["ap"]["std"] == pytest.approx(0.1 * np.sqrt(2))  # sample std of {0.1, 0.3}
    assert s["a"]["metrics"]["unc_auroc"]["mean"] is None  # a missing value is not silently dropped
    assert s["b"]["n"] == 1 and s["b"]["metrics"]["ap"]["std"] is None
    md = markdown(s, {"budget": {"minutes": 3.0}, "seeds": 2})
    assert "| a | 0.200 ± 0.141 | 0.500 ± 0.000 | 0.750 ± 0.000 | 0.250 ± 0.000 | n/a | 1.500 ± 0.707 | 2 |" in md
    assert "| b | 0.200 | 0.500 | 0.750 | 0.250 | 0.700 | 1.000 | 1 |" in md
    assert "3.0 min of training time per run" in md


def test_time_budget_is_resumable(small_dataset, tmp_path):
    """train.max_minutes stops a run long before its epochs; the time spent is in the
    checkpoint, so resuming the spent budget trains nothing more."""
    cmd = [sys.executable, str(ROOT / "tools" / "train.py"), str(CONFIGS[0]), f"data.root={small_dataset}",
           *TINY, f"run_dir={tmp_path}", "name=budget", "train.epochs=1000", "train.val_every=1000",
           "train.max_minutes=0.005", "--no-progress"]
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    last = tmp_path / "budget" / "last.pth"
    ck = load_checkpoint(last)
    assert 1 <= ck["step"] < 100 and ck["elapsed_s"] >= 0.3
    saved = last.read_bytes()
    r = subprocess.run(cmd + ["--resume"], env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert last.read_bytes() == saved  # no step, no new checkpoint: the budget was already spent
    assert "resumed from" in (tmp_path / "budget" / "train.log").read_text()


# ------------------------------------------------------------------ request errors
def tool():
    spec = importlib.util.spec_from_file_location("ablate_tool", ROOT / "tools" / "ablate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("change,message", [
    (lambda a: a[:1] + ["missing.yaml"] + a[3:], r"config file missing\.yaml does not exist"),
    (lambda a: a + ["data.root=/nonexistent/data"], r"data root /nonexistent/data \(data.root of "),
    (lambda a: a + ["train.lr_milestone=[1]"], r"unknown config key 'train\.lr_milestone'"),
    (lambda a: a + ["train.seed=3"], r"train\.seed is set by the tool"),
])
def test_bad_requests_are_one_line_errors(small_dataset, tmp_path, capsys, change, message):
    argv = [str(x) for x in change(ablate_args(small_dataset, tmp_path / "out"))]
    assert tool().main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ablate: error: ") and re.search(message, err), err
    assert not (tmp_path / "out" / "runs").exists()  # nothing was started


@pytest.mark.parametrize("extra", [["--bogus"], ["--minutes", "3"], ["--jobs", "0"]])
def test_bad_options_are_usage_errors(small_dataset, tmp_path, capsys, extra):
    with pytest.raises(SystemExit) as e:
        tool().main([str(x) for x in ablate_args(small_dataset, tmp_path)] + extra)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("ablate: error: ") and err.count("\n") == 1, err


def test_missing_config_exits_without_traceback(tmp_path):
    r = ablate("--configs", tmp_path / "nope.yaml", "--seeds", 1, "--epochs", 1, "--out", tmp_path / "o")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"ablate: error: config file {tmp_path / 'nope.yaml'} does not exist"
