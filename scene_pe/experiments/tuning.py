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

import math
from pathlib import Path

from scene_pe.inference.fitting import (HALVES, METRICS, PARTS, CachedScene, TuningError, cache_scenes,  # noqa: F401
                                        chosen_index, grid_points, mean_std, parse_grid, point_config,
                                        score_point, split_halves, val_scenes_with_gt)


def cache_outputs(run_path: Path, max_scenes: int = 0, progress: bool = True) -> tuple[object, list[CachedScene]]:
    """Run the model once on the run's val scenes that have GT; returns (config, cache)."""
    from scene_pe.train.checkpoint import load_trained_run

    cfg, model, _ = load_trained_run(run_path)
    scenes = val_scenes_with_gt(cfg, max_scenes)
    if len(scenes) < 2:
        raise TuningError(f"{run_path}: {len(scenes)} val scenes with GT in {cfg.data.root}; tuning needs >= 2")
    return cfg, cache_scenes(model, cfg, scenes, progress, desc=f"network {Path(run_path).name}")


def tune(runs: list[Path], grid_items: list[str], max_scenes: int = 0, progress: bool = True) -> dict:
    """Score every grid point on every run; returns the table and the chosen point (module doc)."""
    from scene_pe.config import load_config

    grid = parse_grid(grid_items)
    points = grid_points(grid) if grid else [()]
    per_run = []  # one list of point scores per run, in the order given (a run given twice counts twice)
    for run in runs:
        run_cfg = load_config(Path(run) / "config.yaml")
        try:  # bad keys or values fail before the network runs
            configs = [point_config(run_cfg, p) for p in points]
        except TuningError as e:
            raise TuningError(f"{run}: {e}") from None
        _, cache = cache_outputs(Path(run), max_scenes, progress)
        per_run.append([score_point(c, cache) for c in configs])
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


def _ms(pair, digits: int = 3) -> str:
    m, s = pair
    return "n/a" if math.isnan(m) else f"{m:.{digits}f}" if math.isnan(s) else f"{m:.{digits}f} ± {s:.{digits}f}"


def format_table(result: dict) -> str:
    """Markdown: one row per grid point, mean +- std over the runs on both halves; the chosen one marked."""
    keys = [k for k, _ in result["grid"]]
    head = [*keys, "select AP", "select AP50", "report AP", "report AP50", "report AP25", "report unc AUROC (all vertices)"]
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
    head = [*keys, "AP", "AP50", "AP25", "unc AUROC: all", "GT instance", "object or assigned", "clustering s/scene"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["rows"]:
        vals = [o.split("=", 1)[1] for o in row["overrides"]]
        lines.append("| " + " | ".join([*vals, _ms(row["all_ap"]), _ms(row["all_ap50"]), _ms(row["all_ap25"]),
                                        _ms(row["all_unc_auroc"]), _ms(row["all_unc_auroc_instances"]),
                                        _ms(row["all_unc_auroc_object_or_assigned"]),
                                        _ms(row["seconds_per_scene"], 2)]) + " |")
    return "\n".join(lines)


def write_fitted(run: Path, grid_items: list[str], max_scenes: int = 0, progress: bool = True) -> dict:
    """Fit ``run``'s inference thresholds on its val split and store the record in its last.pth, and
    best.pth's own (its weights fitted alike) in best.pth when the run has one.

    ``grid_items`` empty: the run config's own ``train.fit`` grid for its head. The
    checkpoints are rewritten atomically; everything else in them is kept.
    """
    from scene_pe.inference.fitting import RECORD_KEY, fit_thresholds
    from scene_pe.train.checkpoint import fit_best, load_trained_run, save_checkpoint

    cfg, model, ck = load_trained_run(run)
    f = cfg.train.fit
    grid_items = list(grid_items) or (f.probabilistic if cfg.model.head.type == "probabilistic" else f.margin)

    def fit(m) -> dict:
        return fit_thresholds(m, cfg, grid_items, max_scenes, progress, source="tools/tune_inference.py --write",
                              calibrate=f.uncertainty)

    record = fit(model)
    ck[RECORD_KEY] = record
    save_checkpoint(Path(run) / "last.pth", ck)
    fit_best(run, cfg, ck.get("step"), record, fit)
    return record


def format_fitted(record: dict) -> str:
    """Markdown: one row per grid point of one run's fit (select / report halves), the chosen one marked."""
    keys = [k for k, _ in record["grid"]]
    head = [*keys, "select AP", "report AP", "report AP50", "report AP25"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = record["rows"] + [{"overrides": [f"{k}=(config)" for k in keys], **record["baseline"]}]
    for i, row in enumerate(rows):
        cells = [o.split("=", 1)[1] for o in row["overrides"]]
        cells += [f"{row['select']['ap']:.3f}", *(f"{row['report'][m]:.3f}" for m in ("ap", "ap50", "ap25"))]
        lines.append("| " + " | ".join(f"**{c}**" if i == record["chosen"] else c for c in cells) + " |")
    return "\n".join(lines)
