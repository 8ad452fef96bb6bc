"""Training engine: exact resume, DDP with gloo on the CPU, inference output contract."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from scene_pe.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "synthetic_probabilistic.yaml"


def tiny_overrides(data_root: Path, run_dir: Path, name: str, max_steps: int) -> list[str]:
    return [f"data.root={data_root}", f"run_dir={run_dir}", f"name={name}", "data.num_workers=0",
            "data.batch_size=1", "data.repeat=2", "data.voxel.voxel_size=0.08", "train.epochs=100",
            "train.val_every=1000", f"train.max_steps={max_steps}", "train.deterministic=true",
            "train.lr_milestones=[1]"]


def train(data_root, run_dir, name, max_steps, resume=False, checkpoint_every=0):
    """tools/train.py in a fresh process (one OpenMP thread: bitwise-repeatable on the CPU)."""
    cmd = [sys.executable, str(ROOT / "tools" / "train.py"), str(CONFIG),
           *tiny_overrides(data_root, run_dir, name, max_steps), "--no-progress",
           f"--checkpoint-every={checkpoint_every}"] + (["--resume"] if resume else [])
    r = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return load_checkpoint(Path(run_dir) / name / "last.pth")


def test_resume_continues_exactly(small_dataset, tmp_path):
    # 4 training scenes per epoch (2 scenes x repeat 2): steps 3..5 cross an epoch boundary
    # and an LR milestone, so sampler order, epoch counter and scheduler all matter.
    full = train(small_dataset, tmp_path, "full", max_steps=5)
    part = train(small_dataset, tmp_path, "part", max_steps=3, checkpoint_every=1)
    assert part["step"] == 3 and part["epoch"] == 0
    resumed = train(small_dataset, tmp_path, "part", max_steps=5, resume=True)
    assert resumed["step"] == 5 and resumed["epoch"] == full["epoch"] == 1
    for k, v in full["model"].items():
        assert torch.equal(v, resumed["model"][k]), k
    assert resumed["scheduler"] == full["scheduler"]
    assert resumed["optimizer"]["param_groups"][0]["lr"] == full["optimizer"]["param_groups"][0]["lr"] < 0.002
    # and training did change the parameters (the comparison is not vacuous)
    first = train(small_dataset, tmp_path, "one", max_steps=1)
    assert any(not torch.equal(v, first["model"][k]) for k, v in full["model"].items())


def test_two_gloo_processes_end_with_identical_parameters(small_dataset, tmp_path):
    out = tmp_path / "ddp"
    script = ROOT / "tests" / "ddp_worker.py"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with socket.socket() as s:  # a free port: another test run on the machine may hold a fixed one
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           str(script), str(CONFIG), str(out), *tiny_overrides(small_dataset, out, "ddp", 2)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    states = [torch.load(out / f"rank{i}.pt", weights_only=True) for i in range(2)]
    assert states[0]["step"] == states[1]["step"] == 2
    assert states[0]["scenes"] != states[1]["scenes"]  # each rank trained on its own shard
    for k, v in states[0]["model"].items():
        assert torch.equal(v, states[1]["model"][k]), k
    init = states[0]["initial"]
    assert any(not torch.equal(v, init[k]) for k, v in states[0]["model"].items())


def test_test_tool_writes_a_valid_submission_and_predictions(small_dataset, tmp_path):
    from scene_pe.inference.files import load_prediction
    from scene_pe.export.validate import validate_submission, vertex_counts_from_gt

    ck = train(small_dataset, tmp_path, "sub", max_steps=1)
    assert ck["step"] == 1
    out, sub = tmp_path / "pred", tmp_path / "submission"
    stdout = {}
    for split in ("val", "test"):
        cmd = [sys.executable, str(ROOT / "tools" / "test.py"), str(CONFIG),
               *tiny_overrides(small_dataset, tmp_path, "sub", 1), "--checkpoint",
               str(tmp_path / "sub" / "last.pth"), "--split", split, "--out", str(out / split),
               "--export", str(sub / split), "--no-progress", "--ply"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        stdout[split] = r.stdout
    # val has GT: the tables and the summary line of its 1 scene; test has none: no metrics at all
    v = r"(?:\d\.\d{3}|nan)"  # an untrained model may have no AP
    summary = rf"^AP {v}  AP50 {v}  AP25 {v}  mIoU {v}  \(1 scenes\)\nuncertainty AUROC: all {v} / " \
              rf"GT instance {v} / object or assigned {v}$"
    assert re.search(summary, stdout["val"], re.M), stdout["val"]
    # (the checkpoint's provenance note quotes real-scan AP50s: look at the metric lines, not the word)
    metric_lines = [ln for ln in stdout["test"].splitlines() if re.match(r"(AP |uncertainty AUROC|mIoU)", ln)]
    assert not metric_lines and "metrics:" not in stdout["test"] and "AP25" not in stdout["test"]
    # what the data guarantees is a number, in range, and the same in the summary and metrics.json:
    # the val scene has GT instances (AP, AP50, AP25 are defined: 0 for a class never predicted),
    # GT semantics (mIoU), and wrong and right vertices (their AUROC); the AUROC among assigned
    # vertices is NaN exactly when they are all right, all wrong or none (an untrained model)
    n = r"(\d\.\d{3})"
    strict = rf"^AP {n}  AP50 {n}  AP25 {n}  mIoU {n}  \(1 scenes\)\nuncertainty AUROC: all {n} / " \
             rf"GT instance {v} / object or assigned {v}$"
    shown = re.search(strict, stdout["val"], re.M)
    assert shown, stdout["val"]
    metrics = json.loads((out / "val" / "metrics.json").read_text())
    inst, miou, unc = metrics["instance"], metrics["semantic"]["miou"], metrics["uncertainty"]
    assert sum(c["num_gt"] for c in inst["classes"].values()) > 0
    figures = [inst["mean"]["ap"], inst["mean"]["ap50"], inst["mean"]["ap25"], miou, unc["auroc"]]
    for value, text in zip(figures, shown.groups()):
        assert value is not None and 0.0 <= value <= 1.0 and f"{value:.3f}" == text, (value, text)
    assert 0 < unc["num_wrong"] < unc["num_vertices"]
    assert (unc["auroc_assigned"] is None) == (unc["num_wrong_assigned"] in (0, unc["num_assigned"]))
    assert (out / "val" / "metrics.json").exists() and not (out / "test" / "metrics.json").exists()
    unc = json.loads((out / "val" / "metrics.json").read_text())["uncertainty"]
    assert unc["definition"] == "membership" and len(unc["deciles"]) == 10
    assert {"auroc", "auroc_instances", "auroc_object_or_assigned"} <= set(unc)
    assert 0 < unc["num_wrong"] <= unc["num_vertices"] and sum(d["count"] for d in unc["deciles"]) == \
        pytest.approx(unc["num_vertices"])
    test_scenes = (small_dataset / "splits" / "test.txt").read_text().split()
    counts = {}
    for scene in test_scenes:
        pred = load_prediction(out / "test", scene)
        with np.load(small_dataset / "scenes" / f"{scene}.npz") as z:
            counts[scene] = int(z["num_vertices"])
        assert len(pred.instance) == len(pred.semantic) == counts[scene]  # every vertex predicted
    for task in ("instance", "semantic"):
        assert validate_submission(sub / "test" / f"{task}.zip", counts, task=task) == []
    # coloured PLYs of every test scene, one coloured vertex per mesh vertex
    import open3d as o3d
    for scene in test_scenes:
        for kind in ("instances", "semantic", "uncertainty"):
            pcd = o3d.io.read_point_cloud(str(out / "test" / "ply" / f"{scene}_{kind}.ply"))
            assert len(pcd.points) == counts[scene] and pcd.has_colors()
    # the val submission is also valid against the val GT's vertex counts
    gt_counts = vertex_counts_from_gt(small_dataset / "gt")
    val_scenes = (small_dataset / "splits" / "val.txt").read_text().split()
    assert validate_submission(sub / "val" / "instance.zip", {s: gt_counts[s] for s in val_scenes}) == []
