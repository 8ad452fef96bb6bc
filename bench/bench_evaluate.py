#!/usr/bin/env python
"""Time the instance evaluator on a val-sized synthetic set (312 scenes, ~80k vertices, 20 preds).

Prints seconds for: per-scene matching from (K, N) bool masks, from per-vertex
instance ids, the AP computation over all scenes, and (for --files scenes)
export + zip + validate + evaluating the files, extrapolated to 312 scenes.
  python bench/bench_evaluate.py [--scenes 312] [--files 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scene_pe.data.labels import SCANNET20  # noqa: E402
from scene_pe.evaluation.instance import InstanceEvaluator  # noqa: E402
from scene_pe.evaluation.io import evaluate_instance_submission  # noqa: E402
from scene_pe.export.submission import (write_instance_submission,  # noqa: E402
                                        zip_submission)
from scene_pe.export.validate import validate_submission  # noqa: E402
from scene_pe.util.io import int_lines_bytes  # noqa: E402


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scenes", type=int, default=312)
    p.add_argument("--files", type=int, default=20, help="scenes for the file round trip (0: skip)")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    ev_masks, ev_ids = InstanceEvaluator(), InstanceEvaluator()
    t_masks = t_ids = 0.0
    file_scenes = []
    for i in range(args.scenes):
        gt, masks, ids, labels, scores = synthetic_scene(rng)
        t = time.perf_counter()
        ev_masks.add(f"scene{i:04d}_00", gt, masks, labels, scores)
        t_masks += time.perf_counter() - t
        t = time.perf_counter()
        ev_ids.add(f"scene{i:04d}_00", gt, ids, labels, scores)
        t_ids += time.perf_counter() - t
        if i < args.files:
            file_scenes.append((f"scene{i:04d}_00", gt, masks, labels, scores))
    t = time.perf_counter()
    res = ev_masks.result()
    t_ap = time.perf_counter() - t
    print(f"{args.scenes} scenes x 80k vertices x 20 predictions")
    print(f"  match from (K, N) bool masks : {t_masks:6.2f} s")
    print(f"  match from per-vertex ids    : {t_ids:6.2f} s")
    print(f"  AP over all scenes (10 IoU)  : {t_ap:6.2f} s")
    print(f"  total in memory              : {t_masks + t_ap:6.2f} s"
          f"   (mAP {res.mean_ap:.3f} / AP50 {res.mean_ap50:.3f} / AP25 {res.mean_ap25:.3f})")
    if not file_scenes:
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "gt").mkdir()
        timings = {}
        t = time.perf_counter()
        for scene, gt, masks, labels, scores in file_scenes:
            write_instance_submission(tmp / "sub", scene, masks, labels, scores)
        timings["export"] = time.perf_counter() - t
        for scene, gt, *_ in file_scenes:
            (tmp / "gt" / f"{scene}.txt").write_bytes(int_lines_bytes(gt))
        t = time.perf_counter()
        zip_submission(tmp / "sub", tmp / "sub.zip")
        timings["zip"] = time.perf_counter() - t
        t = time.perf_counter()
        problems = validate_submission(tmp / "sub.zip", {s[0]: len(s[1]) for s in file_scenes})
        timings["validate zip"] = time.perf_counter() - t
        t = time.perf_counter()
        evaluate_instance_submission(tmp / "sub.zip", tmp / "gt")
        timings["evaluate zip"] = time.perf_counter() - t
        scale = args.scenes / len(file_scenes)
        print(f"files ({len(file_scenes)} scenes, seconds extrapolated to {args.scenes}); "
              f"validator problems: {len(problems)}")
        for k, v in timings.items():
            print(f"  {k:<28} : {v * scale:6.2f} s")
        print(f"  zip size per scene           : {(tmp / 'sub.zip').stat().st_size / len(file_scenes) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
