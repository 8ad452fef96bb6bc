"""tools/demo.py (`make demo`): the whole job on generated rooms, each stage the command a user
would run, with an estimate of its cost first and a table of wall and CPU time at the end."""

from __future__ import annotations

import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: the stages run its tools/


def run_tool(cmd: list[str]) -> None:
    print(f"\n$ {shlex.join(cmd)}", flush=True)
    # one OpenMP thread per process (see the Makefile): the loader worker and
    # the trainer each take a core instead of spinning against each other
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    r = subprocess.run(cmd, cwd=ROOT, env=env)
    if r.returncode != 0:
        sys.exit(f"demo: step failed (exit {r.returncode}): {shlex.join(cmd)}")


# --- what the demo costs -------------------------------------------------------------------
# Per-stage figures for `make demo`'s defaults (scenes of 20k-60k vertices, OMP_NUM_THREADS=1)
# on COST_MACHINE; estimate() scales them by the run's scene, scene-pass and validation counts.
# Seconds: fixed (process start, imports, model build) + per unit. Measured 2026-12-03 (issue 20):
# the 16-epoch demo (1024 training scene-passes, 4 validation passes of 6 scenes) took 11.2 min on
# the idle machine; the other stages were timed with this table under load 1.5-7 (both cores
# busy with other jobs) and scaled to idle by their CPU time. Training is ~95 % of the demo; its
# figure is from the 7 cm demo on a fresh clone, idle (load 0.7-1.1): 6.74 min for 1024 passes.
COST_MACHINE = "2-core Intel Xeon (x86_64), idle"
COST = {
    "generate": (1.0, 0.12),      # + s per generated scene
    "preprocess": (5.0, 0.1),     # + s per scene (2 workers)
    "train": (10.0, 0.75, 1.0),   # + s per scene-pass (steps x batch_size) at 5 cm + s per val scene validated
    "val test": (6.0, 1.5),       # + s per val scene (inference, evaluation, PLYs)
    "test export": (6.0, 2.0),    # + s per test scene (inference, export + validation, PLYs)
    "predict": (15.0,),           # one scene, tools/predict.py --align floor, with its picture
}
# The figures (docs/results.md) are for the slower of the machines measured: the 2-core AMD EPYC CI
# machine took 20.7 min for the 16-epoch demo that took 11.2 min here (1.85x); 2x to be safe.
SLOW_FACTOR = 2.0
# A step's cost follows the voxel count, which for these rooms (surfaces) goes as 1 / voxel_size^2:
# 7 cm voxels have 0.52x the 5 cm ones and took 0.53x the CPU per training step (2026-12-03).
COST_VOXEL = 0.05
# disk: MB per scene (generated raw + preprocessed) and per predicted scene (predictions +
# PLYs), per viewer page (val scenes and the predicted scan), MB per run (checkpoints, TensorBoard);
# measured with du on a finished demo
DISK_MB = {"scene": 4.6, "predicted": 6.0, "viewer": 1.4, "run": 50.0}  # 243 MB in all for the defaults
STAGES = ["generate", "preprocess", "train", "val test", "test export", "predict"]


def training_plan(cfg, train_scenes: int, val_scenes: int) -> tuple[int, int]:
    """(optimiser steps, validation passes inside training) of a training run from scratch."""
    t = cfg.train
    steps = t.epochs * ((train_scenes * cfg.data.repeat) // cfg.data.batch_size)
    if t.max_steps:
        steps = min(steps, t.max_steps)
    vals = sum(1 for e in range(1, t.epochs + 1) if e % t.val_every == 0 or e == t.epochs) if t.val_every else 0
    return steps, vals if val_scenes else 0


def estimate(cfg, train_scenes: int, val_scenes: int, test_scenes: int) -> dict[str, float]:
    """Estimated seconds per stage on COST_MACHINE."""
    steps, vals = training_plan(cfg, train_scenes, val_scenes)
    c = COST
    return {"generate": c["generate"][0] + c["generate"][1] * (train_scenes + val_scenes + test_scenes),
            "preprocess": c["preprocess"][0] + c["preprocess"][1] * (train_scenes + val_scenes + test_scenes),
            "train": c["train"][0] + c["train"][1] * (COST_VOXEL / cfg.data.voxel.voxel_size) ** 2
            * steps * cfg.data.batch_size + c["train"][2] * vals * val_scenes,
            "val test": c["val test"][0] + c["val test"][1] * val_scenes,
            "test export": c["test export"][0] + c["test export"][1] * test_scenes,
            "predict": c["predict"][0]}


def print_estimate(cfg, args, est: dict[str, float]) -> None:
    steps, vals = training_plan(cfg, args.train_scenes, args.val_scenes)
    scenes = args.train_scenes + args.val_scenes + args.test_scenes
    disk = DISK_MB["scene"] * scenes + DISK_MB["predicted"] * (args.val_scenes + args.test_scenes + 1) \
        + DISK_MB["viewer"] * (args.val_scenes + 1) + DISK_MB["run"]
    total = sum(est.values())
    print(f"scene_pe demo: {args.train_scenes} training, {args.val_scenes} held-out val, {args.test_scenes} test "
          f"scenes; {steps} training steps of {cfg.data.batch_size} scenes ({cfg.train.epochs} epochs), "
          f"{vals} validation pass(es) inside training")
    print(f"estimated cost (from per-stage figures measured on a {COST_MACHINE}, scaled by the counts above; "
          f"a {SLOW_FACTOR:g}x slower machine, such as a 2-core AMD EPYC CI machine, takes the second figure):")
    for name in STAGES:
        print(f"  {name:<12} {est[name] / 60:5.1f} min   {SLOW_FACTOR * est[name] / 60:5.1f} min")
    print(f"  {'total':<12} {total / 60:5.1f} min   {SLOW_FACTOR * total / 60:5.1f} min   "
          f"(stages done by an earlier run in the same --out are reused)")
    print(f"disk: about {disk:.0f} MB under the output folder; memory: under 2 GB", flush=True)


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its finished children (the stages'
    commands and their loader workers): unlike wall time, it hardly changes with other jobs' load."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Stages:
    """Wall and CPU time of each stage, and whether an earlier run's outputs were reused."""

    def __init__(self):
        self.rows: list[tuple[str, float, float, str]] = []
        self.load = os.getloadavg()  # other jobs slow every stage down: say how busy the machine was

    def run(self, name: str, fn, status: str = "ran") -> None:
        tick, cpu = time.perf_counter(), cpu_seconds()
        fn()
        self.rows.append((name, time.perf_counter() - tick, cpu_seconds() - cpu, status))

    def table(self, est: dict[str, float]) -> str:
        lines = [f"  {'stage':<12} {'wall':>9} {'cpu':>9} {'estimate':>9}  status"]
        for name, sec, cpu, status in self.rows:
            lines.append(f"  {name:<12} {sec / 60:5.2f} min {cpu / 60:5.2f} min {est.get(name, 0) / 60:5.1f} min"
                         f"  {status}")
        wall, cpu = sum(r[1] for r in self.rows), sum(r[2] for r in self.rows)
        lines.append(f"  {'total':<12} {wall / 60:5.2f} min {cpu / 60:5.2f} min {sum(est.values()) / 60:5.1f} min")
        lines.append("  load average (1, 5, 15 min) at the start %.2f %.2f %.2f, now %.2f %.2f %.2f; cpu: all "
                     "processes of a stage together (up to cores x wall)" % (*self.load, *os.getloadavg()))
        return "\n".join(lines)


def split_path(raw: Path, split: str) -> Path:
    """A generated folder's split list (ScanNet++'s layout: splits/<release name>)."""
    from scene_pe.data.scannetpp import SPLIT_FILES

    plus = raw / "splits" / SPLIT_FILES[split]
    return plus if plus.exists() else raw / f"scannetv2_{split}.txt"


def split_scenes(raw: Path, split: str) -> list[str]:
    path = split_path(raw, split)
    return path.read_text().split() if path.exists() else []


def training_status(last: Path, epochs: int) -> str:
    """"ran", or for a run directory that already has last.pth "reused" (all epochs done) / "resumed"."""
    if not last.exists():
        return "ran"
    from scene_pe.train.checkpoint import CheckpointError, load_checkpoint
    try:
        epoch = load_checkpoint(last).get("epoch", 0)
    except CheckpointError:
        return "resumed"  # train.py falls back to last.prev.pth or starts over
    return "reused" if epoch >= epochs else f"resumed at epoch {epoch}"


def predictions_status(out_dir: Path, scenes: list[str]) -> str:
    from scene_pe.inference.files import prediction_path
    done = sum(prediction_path(out_dir, s).exists() for s in scenes)
    if done == 0:
        return "ran"
    return "reused (predictions)" if done == len(scenes) else f"resumed ({done}/{len(scenes)} reused)"


def own_scan(raw: Path, folder: Path) -> Path:
    """One generated test scene as a user's scan: a point cloud .ply (vertices and colours, no
    faces, no labels) in the scan's raw frame, which tools/predict.py must level and turn itself."""
    from scene_pe.data.scannet import read_mesh
    from scene_pe.viz import write_colored_ply

    scene = split_scenes(raw, "test")[0]
    mesh = raw / "scans_test" / scene / f"{scene}_vh_clean_2.ply"
    if not mesh.exists():  # ScanNet++'s layout
        mesh = raw / "data" / scene / "scans" / "mesh_aligned_0.05.ply"
    xyz, rgb, _ = read_mesh(mesh, scene)
    path = folder / f"{scene}_points.ply"
    write_colored_ply(path, xyz, rgb)
    return path


def run(args) -> int:
    """tools/demo.py's arguments -> exit status."""
    py = sys.executable
    out = args.out if args.out.is_absolute() else ROOT / args.out
    from scene_pe.config import load_config

    # the label set decides the generated rooms and the folders (one label set per folder)
    label_set = load_config(ROOT / args.config, args.overrides).data.label_set
    suffix, profile = {"scannet20": ("", "basic"), "scannet200": ("200", "basic200"),
                       "scannetpp": ("pp", "scannetpp")}[label_set]
    raw, pre = out / f"scannet{suffix}", out / f"preprocessed{suffix}"
    # ScanNet++'s layout: its label set comes with the rooms' metadata folder
    dataset = ["--dataset", "scannetpp"] if label_set == "scannetpp" else ["--label-set", label_set]
    overrides = [f"data.root={pre}", f"run_dir={out / 'runs'}", *args.overrides]
    cfg = load_config(ROOT / args.config, overrides)
    run_path = cfg.run_path
    last = run_path / "last.pth"
    est = estimate(cfg, args.train_scenes, args.val_scenes, args.test_scenes)
    print_estimate(cfg, args, est)
    stages = Stages()
    start = time.time()

    generated = split_path(raw, "test").exists()
    stages.run("generate", lambda: None if generated else run_tool(
        [py, "tools/make_synthetic.py", "--out", str(raw), "--train", str(args.train_scenes),
         "--val", str(args.val_scenes), "--test", str(args.test_scenes), "--seed", str(args.seed),
         "--min-vertices", "20000", "--max-vertices", "60000", "--profile", profile]),
        "reused" if generated else "ran")
    every = [s for split in ("train", "val", "test") for s in split_scenes(raw, split)]
    preprocessed = generated and bool(every) and all((pre / "scenes" / f"{s}.npz").exists() for s in every)
    stages.run("preprocess", lambda: run_tool(
        [py, "tools/preprocess.py", "--scannet-root", str(raw), "--out", str(pre), "--split", "all",
         "--workers", str(args.workers), *dataset]), "reused (checked)" if preprocessed else "ran")

    status = training_status(last, cfg.train.epochs)
    resume = ["--resume"] if last.exists() else []
    stages.run("train", lambda: run_tool([py, "tools/train.py", args.config, *overrides, *resume]), status)

    val_out, test_out = run_path / "test_val", run_path / "test_test"
    status = predictions_status(val_out, split_scenes(raw, "val"))
    stages.run("val test", lambda: run_tool(
        [py, "tools/test.py", args.config, *overrides, "--checkpoint", str(last), "--split", "val",
         "--out", str(val_out), "--ply", "--html", "--scannet-root", str(raw)]), status)
    status = predictions_status(test_out, split_scenes(raw, "test"))
    stages.run("test export", lambda: run_tool(
        [py, "tools/test.py", args.config, *overrides, "--checkpoint", str(last), "--split", "test",
         "--out", str(test_out), "--export", str(run_path / "submission"), "--ply", "--scannet-root", str(raw)]),
        status)

    own_out = out / "predict"
    scan = out / "own_scan" / f"{split_scenes(raw, 'test')[0]}_points.ply"

    def predict() -> None:
        own_scan(raw, scan.parent)
        run_tool([py, "tools/predict.py", str(scan), "--checkpoint", str(last), "--out", str(own_out), "--align",
             "floor", "--overwrite"])
    stages.run("predict", predict)

    metrics = json.loads((val_out / "metrics.json").read_text())
    m = metrics["instance"]["mean"]
    print("\n=== scene_pe demo finished in %.1f min ===" % ((time.time() - start) / 60))
    print(f"wall time per stage (estimates for a {COST_MACHINE}):")
    print(stages.table(est))
    print(f"head: {cfg.model.head.type}   held-out val scenes: {metrics['instance']['num_scenes']}")
    print(f"AP {m['ap']:.3f}  AP50 {m['ap50']:.3f}  AP25 {m['ap25']:.3f}  "
          f"mIoU {metrics['semantic']['miou']:.3f}   (label set {label_set})")
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731  (None: no GT in a split, no wrong vertex)
    for split, s in metrics["instance"].get("splits", {}).items():
        print(f"  {split:<7} AP {fmt(s['ap'])}  AP50 {fmt(s['ap50'])}  AP25 {fmt(s['ap25'])}")
    u = metrics["uncertainty"]
    print(f"uncertainty ({u['definition']}) flags wrongly assigned vertices: AUROC all {fmt(u['auroc'])} / "
          f"GT instance {fmt(u['auroc_instances'])} / object or assigned {fmt(u.get('auroc_object_or_assigned'))} "
          f"(populations: docs/method.md, \"Uncertainty\")")
    print("outputs:")
    layout = "ScanNet++" if label_set == "scannetpp" else "ScanNet"
    for what, path in [(f"generated {layout}-format scenes", raw), ("preprocessed scenes", pre),
                       ("training run (config, log, TensorBoard, checkpoints)", run_path),
                       ("val predictions + metrics.json", val_out), ("val coloured PLYs", val_out / "ply"),
                       ("val viewer pages (GT, errors; open in a browser)", val_out / "html"),
                       ("test predictions", test_out), ("test coloured PLYs", test_out / "ply"),
                       ("benchmark submission zips", run_path / "submission"),
                       ("a plain point cloud segmented (tools/predict.py)", own_out),
                       ("  its picture", own_out / f"{scan.stem}.png"),
                       ("  its viewer (open in a browser)", own_out / f"{scan.stem}.html")]:
        print(f"  {what:<55} {path}")
    return 0
