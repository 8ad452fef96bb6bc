#!/usr/bin/env python
"""Time the instance evaluator on a val-sized synthetic set (312 scenes x 20 predictions).

In memory (80k-vertex scenes): seconds for per-scene matching from (K, N)
bool masks, from per-vertex instance ids, and the AP over all scenes. Files
(80k-150k vertices per scene, as ScanNet val): export, then on the folder
``evaluate_instance_submission`` (what tools/evaluate.py runs) with every
core and with one; the whole ``tools/evaluate.py`` process on it (start-up and
imports included, as a user times it) and its ``--help``; and, with --official,
ScanNet's official script on the same folder in the same run, also a whole
process (its numbers must be the same floats); then zip, validate the zip and
the folder, evaluate the zip.
  python bench/bench_evaluate.py [--scenes 312] [--files 312] [--official PATH]
PATH: a copy of ScanNet's BenchmarkScripts/3d_evaluation/evaluate_semantic_instance.py
(util.py, util_3d.py one folder up); see bench/official_eval.py.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scene_pe.labels.label_set import SCANNET20  # noqa: E402
from scene_pe.evaluation.instance import InstanceEvaluator  # noqa: E402
from scene_pe.evaluation.io import evaluate_instance_submission  # noqa: E402
from scene_pe.export.submission import (write_instance_submission,  # noqa: E402
                                        zip_submission)
from scene_pe.export.validate import validate_submission  # noqa: E402
from scene_pe.util.io import int_lines_bytes  # noqa: E402

import official_eval  # noqa: E402  (bench/, beside this file)

EVALUATE_TOOL = Path(__file__).resolve().parents[1] / "tools" / "evaluate.py"


def time_process(args: list[str]) -> float:
    """Seconds of ``python tools/evaluate.py ARGS`` as a whole process (its output discarded)."""
    t = time.perf_counter()
    subprocess.run([sys.executable, str(EVALUATE_TOOL), *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def synthetic_scene(rng: np.random.Generator, n: int = 80_000, n_obj: int = 30, n_pred: int = 20):
    """GT (nyu40*1000+id) with ~30 objects on wall/floor; 20 noisy predictions of them."""
    sizes = rng.integers(200, 4000, n_obj)
    labels = rng.choice(SCANNET20.instance_ids, n_obj)
    gt = np.zeros(n, np.int64)
    gt[: n // 3] = 1001  # wall
    gt[n // 3: n // 2] = 2002  # floor
    start = n // 2
    for j, (s, lab) in enumerate(zip(sizes, labels)):  # loop over objects, not vertices
        gt[start:start + s] = lab * 1000 + j + 3
        start += s
    obj_ids = rng.choice(n_obj, n_pred, replace=True)
    ids = np.full(n, -1)
    masks = np.zeros((n_pred, n), bool)
    for k, j in enumerate(obj_ids):
        idx = np.flatnonzero(gt == labels[j] * 1000 + j + 3)
        shift = int(rng.integers(-len(idx) // 4, len(idx) // 4 + 1))
        masks[k, np.clip(idx + shift, 0, n - 1)] = True
        ids[masks[k]] = k
    pred_labels = np.where(rng.random(n_pred) < 0.8, labels[obj_ids],
                           rng.choice(SCANNET20.instance_ids, n_pred))
    return gt, masks, ids, pred_labels, rng.random(n_pred)


def _timed(timings: dict, key: str, fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    timings[key] = time.perf_counter() - t
    return out


def bench_files(n_scenes: int, official: Path | None) -> None:
    """Export a val-sized submission folder and time the file tools on it."""
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "gt").mkdir()
        timings, n_vertices, t_export = {}, 0, 0.0
        for i in range(n_scenes):
            n = int(rng.integers(80_000, 150_001))
            gt, masks, _, labels, scores = synthetic_scene(rng, n=n)
            scene = f"scene{i:04d}_00"
            (tmp / "gt" / f"{scene}.txt").write_bytes(int_lines_bytes(gt))
            t = time.perf_counter()
            write_instance_submission(tmp / "sub", scene, masks, labels, scores)
            t_export += time.perf_counter() - t
            n_vertices += n
        timings["export (write the folder)"] = t_export
        size = sum(p.stat().st_size for p in (tmp / "sub").rglob("*"))
        print(f"files: {n_scenes} scenes, {n_vertices / n_scenes / 1e3:.0f}k vertices on average, "
              f"20 masks each, {size / 1e9:.2f} GB")
        res, _ = _timed(timings, "evaluate folder (every core)", evaluate_instance_submission,
                        tmp / "sub", tmp / "gt")
        _timed(timings, "evaluate folder (1 process)", evaluate_instance_submission,
               tmp / "sub", tmp / "gt", workers=1)
        timings["tools/evaluate.py --help"] = min(time_process(["--help"]) for _ in range(3))
        timings["tools/evaluate.py, whole process"] = time_process(["--pred", str(tmp / "sub"),
                                                                    "--gt", str(tmp / "gt")])
        if official is not None:
            script = official_eval.prepare(official, tmp / "official")
            out = tmp / "official_result.csv"
            timings["official script on the folder"] = official_eval.run(
                script, tmp / "sub", tmp / "gt", out)
            same = official_eval.same_numbers(official_eval.read_results(out), res)
        _timed(timings, "zip", zip_submission, tmp / "sub", tmp / "sub.zip")
        counts = {p.stem: p.read_bytes().count(b"\n") for p in (tmp / "gt").glob("*.txt")}
        problems = _timed(timings, "validate zip", validate_submission, tmp / "sub.zip", counts)
        problems += _timed(timings, "validate folder", validate_submission, tmp / "sub", counts)
        _timed(timings, "evaluate zip (every core)", evaluate_instance_submission,
               tmp / "sub.zip", tmp / "gt")
        for k, v in timings.items():
            print(f"  {k:<32} : {v:6.2f} s")
        print(f"  zip size                         : {(tmp / 'sub.zip').stat().st_size / 1e6:.0f} MB"
              f"; validator problems: {len(problems)}")
        print(f"  mAP {res.mean_ap:.4f} / AP50 {res.mean_ap50:.4f} / AP25 {res.mean_ap25:.4f}")
        if official is not None:
            ratio = timings["official script on the folder"] / timings["evaluate folder (every core)"]
            print(f"  official / ours (every core): {ratio:.1f}x; "
                  f"one process: {timings['official script on the folder'] / timings['evaluate folder (1 process)']:.1f}x; "
                  f"same AP/AP50/AP25 floats for every class: {same}")
            whole = timings["official script on the folder"] / timings["tools/evaluate.py, whole process"]
            print(f"  whole processes, official script / tools/evaluate.py: {whole:.1f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=312, help="scenes in memory")
    p.add_argument("--files", type=int, default=312, help="scenes written as files (0: skip)")
    p.add_argument("--official", type=Path, default=None,
                   help="ScanNet's evaluate_semantic_instance.py, to time it side by side")
    args = p.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")
    rng = np.random.default_rng(0)
    ev_masks, ev_ids = InstanceEvaluator(), InstanceEvaluator()
    t_masks = t_ids = 0.0
    for i in range(args.scenes):
        gt, masks, ids, labels, scores = synthetic_scene(rng)
        t = time.perf_counter()
        ev_masks.add(f"scene{i:04d}_00", gt, masks, labels, scores)
        t_masks += time.perf_counter() - t
        t = time.perf_counter()
        ev_ids.add(f"scene{i:04d}_00", gt, ids, labels, scores)
        t_ids += time.perf_counter() - t
    t = time.perf_counter()
    res = ev_masks.result()
    t_ap = time.perf_counter() - t
    print(f"in memory: {args.scenes} scenes x 80k vertices x 20 predictions")
    print(f"  match from (K, N) bool masks     : {t_masks:6.2f} s")
    print(f"  match from per-vertex ids        : {t_ids:6.2f} s")
    print(f"  AP over all scenes (10 IoU)      : {t_ap:6.2f} s")
    print(f"  total in memory                  : {t_masks + t_ap:6.2f} s"
          f"   (mAP {res.mean_ap:.3f} / AP50 {res.mean_ap50:.3f} / AP25 {res.mean_ap25:.3f})")
    if args.files:
        bench_files(args.files, args.official)
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
