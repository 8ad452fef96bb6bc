"""Inference thresholds chosen on held-out scenes, without re-running the network.

The network runs once per scene of a run's val split (outputs kept on the CPU);
each point of the grid (the cartesian product of ``inference.key=v1,v2,...``
overrides) then only re-clusters, devoxelizes and evaluates. Several runs (e.g.
the seeds of one config) are tuned together: a point's score is the mean over
the runs.

So that the chosen point's figure is not the maximum of a noisy search, the
sorted val scenes are split by position: ``select`` (even positions) and
``report`` (odd). The point with the best mean AP on ``select`` is chosen; its
``report`` figures were not looked at to choose it. Every point's figures on
both halves are kept (docs/method.md, "Tuning the inference thresholds").
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scene_pe.evaluation.instance import InstanceEvaluator
from scene_pe.evaluation.uncertainty import UncertaintyEvaluator

HALVES = ("select", "report")
PARTS = HALVES + ("all",)  # "all": every cached scene (for comparisons that choose nothing)
METRICS = ("ap", "ap50", "ap25", "unc_auroc")


class TuningError(ValueError):
    """A grid that cannot be searched (bad key or value); the message says which."""


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """``["inference.probabilistic.tau=0.3,0.5", ...]`` -> [(key, ["0.3", "0.5"]), ...].

    Only ``inference.*`` keys: anything else would change the network's
    outputs, which are computed once.
    """
    grid = []
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise TuningError(f"grid item {item!r} is not key=v1,v2,...")
        if not key.startswith("inference."):
            raise TuningError(f"grid key {key!r}: only inference.* keys can be tuned without retraining")
        if key in (k for k, _ in grid):
            raise TuningError(f"grid key {key!r} given twice")
        grid.append((key, [v.strip() for v in values.split(",")]))
    return grid


def grid_points(grid: list[tuple[str, list[str]]]) -> list[tuple[str, ...]]:
    """Every combination, as override lists (the first key varies slowest)."""
    keys = [k for k, _ in grid]
    return [tuple(f"{k}={v}" for k, v in zip(keys, combo))
            for combo in itertools.product(*(vals for _, vals in grid))]


def split_halves(scenes: list[str]) -> dict[str, list[str]]:
    ordered = sorted(scenes)
    return {"select": ordered[0::2], "report": ordered[1::2]}


@dataclass
class CachedScene:
    out: object        # the batch's HeadOutput (one scene), float32 on the CPU
    voxels: object     # its VoxelBatch (CPU)
    gt: np.ndarray     # per-vertex GT (label * 1000 + instance)


def cache_outputs(run_path: Path, max_scenes: int = 0, progress: bool = True) -> tuple[object, list[CachedScene]]:
    """Run the model once on the run's val scenes that have GT; returns (config, cache)."""
    from scene_pe.data.dataset import preprocessed_split
    from scene_pe.train.checkpoint import load_trained_run
    from scene_pe.inference.evaluate import inference_loader
    from scene_pe.inference.vertices import network_outputs
    from scene_pe.evaluation.io import read_gt_file

    cfg, model, _ = load_trained_run(run_path)
    root = Path(cfg.data.root)
    scenes = [s for s in preprocessed_split(root, cfg.data.val_split) if (root / "gt" / f"{s}.txt").exists()]
    scenes = sorted(scenes)[:max_scenes] if max_scenes else sorted(scenes)
    if len(scenes) < 2:
        raise TuningError(f"{run_path}: {len(scenes)} val scenes with GT in {root}; tuning needs >= 2")
    loader = inference_loader(cfg, scenes)
    if progress:
        from tqdm import tqdm
        loader = tqdm(loader, desc=f"network {Path(run_path).name}", leave=False, dynamic_ncols=True)
    cache = []
    for voxels, _ in loader:  # batch size 1: one scene
        out = network_outputs(model, voxels)
        scene = voxels.scenes[0]
        cache.append(CachedScene(out, voxels, read_gt_file(root / "gt" / f"{scene}.txt", scene)))
    return cfg, cache


def score_point(config_path: Path, point: tuple[str, ...], cache: list[CachedScene]) -> dict[str, dict]:
    """Metrics of one grid point on each half of the cached scenes."""
    from scene_pe.config import load_config
    from scene_pe.inference.vertices import predictions_from_outputs

    cfg = load_config(config_path, list(point))
    halves = split_halves([c.voxels.scenes[0] for c in cache])
    evaluators = {h: (InstanceEvaluator(label_set=cfg.data.labels), UncertaintyEvaluator(cfg.data.labels))
                  for h in PARTS}
    where = {s: h for h, names in halves.items() for s in names}
    seconds = 0.0
    for c in cache:
        t0 = time.perf_counter()
        preds = predictions_from_outputs(c.out, c.voxels, cfg.inference, label_set=cfg.data.labels)
        seconds += time.perf_counter() - t0
        for pred in preds:
            for part in (where[pred.scene], "all"):
                inst_ev, unc_ev = evaluators[part]
                inst_ev.add(pred.scene, c.gt, pred.instance, pred.labels, pred.confidence)
                unc_ev.add(pred.scene, c.gt, pred.instance, pred.uncertainty)
    result = {}
    for h, (inst_ev, unc_ev) in evaluators.items():
        inst, unc = inst_ev.result(), unc_ev.result()
        result[h] = {"scenes": inst_ev.num_scenes, "ap": inst.mean_ap, "ap50": inst.mean_ap50,
                     "ap25": inst.mean_ap25, "unc_auroc": unc.auroc}
    # clustering + devoxelization (+ superpoint pooling) per scene, the network excluded
    result["seconds_per_scene"] = seconds / max(len(cache), 1)
    return result


def mean_std(values: list[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    if not v.size:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan")  # no spread from one run


def tune(runs: list[Path], grid_items: list[str], max_scenes: int = 0, progress: bool = True) -> dict:
    """Score every grid point on every run; returns the table and the chosen point (module doc)."""
    from scene_pe.config import load_config

    grid = parse_grid(grid_items)
    points = grid_points(grid) if grid else [()]
    per_run = []  # one list of point scores per run, in the order given (a run given twice counts twice)
    for run in runs:
        config_path = Path(run) / "config.yaml"
        for point in points:  # bad keys or values fail before the network runs
            try:
                load_config(config_path, list(point))
            except Exception as e:  # ConfigError or a value check: name the point
                raise TuningError(f"{run}: grid point {' '.join(point)}: {e}") from None
        _, cache = cache_outputs(Path(run), max_scenes, progress)
        per_run.append([score_point(config_path, p, cache) for p in points])
        del cache
    rows = []
    for i, point in enumerate(points):
        row = {"overrides": list(point)}
        for h in PARTS:
            for m in METRICS:
                row[f"{h}_{m}"] = mean_std([scores[i][h][m] for scores in per_run])
        row["seconds_per_scene"] = mean_std([scores[i]["seconds_per_scene"] for scores in per_run])
        row["runs"] = [scores[i] for scores in per_run]  # in the order of result["runs"]
        rows.append(row)
    return {"runs": [str(r) for r in runs], "grid": [[k, v] for k, v in grid], "rows": rows,
            "chosen": chosen_index(rows)}


def chosen_index(rows: list[dict]) -> int:
    """The row with the best mean AP on the select half; ties (and NaN, no GT) go to the earlier row."""
    return max(range(len(rows)), key=lambda i: (np.nan_to_num(rows[i]["select_ap"][0], nan=-1.0), -i))


def _ms(pair, digits: int = 3) -> str:
    m, s = pair
    return "n/a" if math.isnan(m) else f"{m:.{digits}f}" if math.isnan(s) else f"{m:.{digits}f} ± {s:.{digits}f}"


def format_table(result: dict) -> str:
    """Markdown: one row per grid point, mean +- std over the runs on both halves; the chosen one marked."""
    keys = [k for k, _ in result["grid"]]
    head = [*keys, "select AP", "select AP50", "report AP", "report AP50", "report AP25", "report unc AUROC"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, row in enumerate(result["rows"]):
        vals = [o.split("=", 1)[1] for o in row["overrides"]]
        cells = [*vals, _ms(row["select_ap"]), _ms(row["select_ap50"]), _ms(row["report_ap"]),
                 _ms(row["report_ap50"]), _ms(row["report_ap25"]), _ms(row["report_unc_auroc"])]
        if i == result["chosen"]:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_all_table(result: dict) -> str:
    """Markdown: every grid point on all the val scenes (nothing chosen), with its post-processing time."""
    keys = [k for k, _ in result["grid"]]
    head = [*keys, "AP", "AP50", "AP25", "clustering s/scene"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["rows"]:
        vals = [o.split("=", 1)[1] for o in row["overrides"]]
        lines.append("| " + " | ".join([*vals, _ms(row["all_ap"]), _ms(row["all_ap50"]), _ms(row["all_ap25"]),
                                        _ms(row["seconds_per_scene"], 2)]) + " |")
    return "\n".join(lines)
