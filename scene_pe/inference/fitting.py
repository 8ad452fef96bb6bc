"""Inference thresholds fitted on held-out scenes, the network run once per scene.

The network runs once per val scene (outputs kept on the CPU); each point of
the grid (the cartesian product of ``inference.key=v1,v2,...`` overrides) then
only re-clusters, devoxelizes and evaluates. So that the chosen point's figure
is not the maximum of a noisy search, the sorted val scenes are split by
position: ``select`` (even positions) and ``report`` (odd). The point with the
best mean AP on ``select`` is chosen; its ``report`` figures were not looked at
to choose it.

Training calls :func:`fit_thresholds` at its end (``train.fit``) and stores its
record in the checkpoint (key ``fitted_inference``); ``tools/tune_inference.py
--write RUN`` does the same for a finished run; tools/test.py and
tools/predict.py apply the record's ``overrides`` before their own command-line
overrides (:func:`effective_overrides`). scene_pe/experiments/tuning.py builds
its multi-run tables on the same pieces.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np

from scene_pe.evaluation.instance import InstanceEvaluator
from scene_pe.evaluation.uncertainty import UncertaintyEvaluator

HALVES = ("select", "report")
PARTS = HALVES + ("all",)  # "all": every cached scene (for comparisons that choose nothing)
METRICS = ("ap", "ap50", "ap25", "unc_auroc", "unc_auroc_instances", "unc_auroc_object_or_assigned")
RECORD_KEY = "fitted_inference"  # the checkpoint's key for the fit's record


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


def val_scenes_with_gt(cfg, max_scenes: int = 0) -> list[str]:
    from pathlib import Path

    from scene_pe.data.dataset import preprocessed_split

    root = Path(cfg.data.root)
    scenes = sorted(s for s in preprocessed_split(root, cfg.data.val_split) if (root / "gt" / f"{s}.txt").exists())
    return scenes[:max_scenes] if max_scenes else scenes


def selection_scenes(cfg) -> list[str]:
    """The val scenes that choose: validation's best epoch (best.pth) and the fit's thresholds.

    The select half of the val scenes with GT; every val scene when fewer than two
    have GT (no half is left to report on). A ``max_scenes`` fit takes a prefix of
    the same sorted list, so its report half never meets these scenes.
    """
    from pathlib import Path

    from scene_pe.data.dataset import preprocessed_split

    with_gt = val_scenes_with_gt(cfg)
    if len(with_gt) < 2:
        return preprocessed_split(Path(cfg.data.root), cfg.data.val_split)
    return split_halves(with_gt)["select"]


def cache_scenes(model, cfg, scenes: list[str], progress: bool = True, desc: str = "network") -> list[CachedScene]:
    """Run ``model`` (eval mode, on the CPU or its device) once on each scene; outputs kept on the CPU."""
    from pathlib import Path

    from scene_pe.evaluation.io import read_gt_file
    from scene_pe.inference.evaluate import inference_loader
    from scene_pe.inference.vertices import network_outputs

    import dataclasses

    import torch

    root = Path(cfg.data.root)
    device = next(model.parameters()).device
    loader = inference_loader(cfg, scenes)
    if progress:
        from tqdm import tqdm
        loader = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True)
    cache = []
    for voxels, _ in loader:  # batch size 1: one scene
        out = network_outputs(model, voxels if device.type == "cpu" else voxels.to(device))
        if device.type != "cpu":
            out = type(out)(**{f.name: v.cpu() if torch.is_tensor(v) else v
                               for f in dataclasses.fields(out) for v in (getattr(out, f.name),)})
        scene = voxels.scenes[0]
        cache.append(CachedScene(out, voxels, read_gt_file(root / "gt" / f"{scene}.txt", scene)))
    return cache


def score_point(cfg, cache: list[CachedScene]) -> dict[str, dict]:
    """Metrics of one config (a grid point applied) on each half of the cached scenes."""
    from scene_pe.inference.vertices import predictions_from_outputs

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
                     "ap25": inst.mean_ap25, "unc_auroc": unc.auroc, "unc_auroc_instances": unc.auroc_instances,
                     "unc_auroc_object_or_assigned": unc.auroc_object_or_assigned}
    # clustering + devoxelization (+ superpoint pooling) per scene, the network excluded
    result["seconds_per_scene"] = seconds / max(len(cache), 1)
    return result


def mean_std(values: list[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    if not v.size:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan")  # no spread from one run


def chosen_index(rows: list[dict]) -> int:
    """The row with the best mean AP on the select half; ties (and NaN, no GT) go to the earlier row."""
    return max(range(len(rows)), key=lambda i: (np.nan_to_num(rows[i]["select_ap"][0], nan=-1.0), -i))


def point_config(cfg, point: tuple[str, ...]):
    """``cfg`` with one grid point's overrides applied (a bad key or value: TuningError)."""
    from scene_pe.config import config_from_text, dump_config

    try:
        return config_from_text(dump_config(cfg), list(point), source="grid point")
    except Exception as e:  # ConfigError or a value check: name the point
        raise TuningError(f"grid point {' '.join(point)}: {e}") from None


def fit_thresholds(model, cfg, grid_items: list[str], max_scenes: int = 0, progress: bool = True,
                   source: str = "training", calibrate: bool = True) -> dict:
    """Fit the grid on ``cfg``'s val split with ``model``; the record a checkpoint stores.

    The record holds only strings, numbers and lists (a weights_only checkpoint):
    ``overrides`` (the chosen point), ``grid``, ``scenes`` per half, each point's
    figures per half, the config's own values (``baseline``: its point's figures,
    the grid point equal to the config when it is in the grid), ``source`` and the time.
    """
    import torch

    grid = parse_grid(grid_items)
    points = grid_points(grid)
    if not points:
        raise TuningError("an empty grid: nothing to fit")
    configs = [point_config(cfg, p) for p in points]  # bad points fail before the network runs
    scenes = val_scenes_with_gt(cfg, max_scenes)
    if len(scenes) < 2:
        raise TuningError(f"{len(scenes)} val scenes with GT in {cfg.data.root}; fitting needs >= 2")
    t0 = time.time()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            cache = cache_scenes(model, cfg, scenes, progress, desc="fit thresholds")
    finally:
        model.train(was_training)
    rows = [{"overrides": list(p), **score_point(c, cache)} for p, c in zip(points, configs)]
    baseline = score_point(cfg, cache)
    flat = [{"select_ap": (r["select"]["ap"], float("nan"))} for r in rows]
    best = chosen_index(flat)
    halves = split_halves(scenes)
    record = {"overrides": list(rows[best]["overrides"]), "grid": [[k, v] for k, v in grid], "rows": rows,
              "chosen": best, "baseline": baseline, "scenes": {h: halves[h] for h in HALVES},
              "split": cfg.data.val_split, "source": source,
              "rule": "best mean AP on the select half (even positions of the sorted val scenes)"}
    if calibrate and cfg.model.head.type == "probabilistic":
        from scene_pe.inference.calibration import CalibrationError, fit_calibration

        try:
            calibration = fit_calibration(configs[best], cache, halves)
        except CalibrationError as e:  # the thresholds stand; the config's uncertainty is used
            calibration, record["uncertainty_skipped"] = None, str(e)
        if calibration is not None:
            record["uncertainty"] = calibration
            record["overrides"] += calibration["overrides"]
    record["seconds"] = round(time.time() - t0, 1)
    return record


def effective_overrides(record: dict | None, user_overrides: list[str], use_fitted: bool = True
                        ) -> tuple[list[str], list[str]]:
    """(overrides to apply, lines saying which inference values are used and where they come from).

    The fitted overrides go first, so a command-line override of the same key wins.
    """
    user = list(user_overrides)
    user_keys = {o.split("=", 1)[0].strip() for o in user}
    if not record or not record.get("overrides"):
        why = "no fitted values in the checkpoint" if not record else "the fit chose nothing"
        return user, [f"inference thresholds: the config's ({why})"]
    if not use_fitted:
        return user, ["inference thresholds: the config's (fitted values ignored: --no-fitted)"]
    lines, applied = [], []
    rep = record["rows"][record["chosen"]]["report"]
    base = record.get("baseline", {}).get("report", {})
    for o in record["overrides"]:
        key = o.split("=", 1)[0].strip()
        if key in user_keys:
            lines.append(f"inference thresholds: {key} from the command line (fitted {o.split('=', 1)[1]} ignored)")
        else:
            applied.append(o)
    if applied:
        lines.insert(0, f"inference thresholds: {describe_overrides(applied)} (fitted on the "
                        f"{record.get('split', 'val')} split at {record.get('source', 'training')}: report-half "
                        f"AP {rep['ap']:.3f}, config values {base.get('ap', float('nan')):.3f})")
    if "uncertainty" in record and any(o.startswith(UNCERTAINTY_KEY + "=") for o in applied):
        from scene_pe.inference.calibration import format_calibration

        lines.append(format_calibration(record["uncertainty"]))
    return applied + user, lines


UNCERTAINTY_KEY = "inference.probabilistic.uncertainty"
_CALIBRATION_KEY = "inference.probabilistic.calibration"


def describe_overrides(overrides: list[str]) -> str:
    """The overrides for a log line, the calibrated uncertainty's coefficients counted, not listed."""
    return " ".join(f"{_CALIBRATION_KEY}=[{o.count(',') + 1} fitted coefficients]"
                    if o.startswith(_CALIBRATION_KEY + "=") else o for o in overrides)


def fit_summary(record: dict) -> list[str]:
    """Log lines of a fit: the chosen values with their AP, and the calibrated uncertainty's AUROC."""
    row, base = record["rows"][record["chosen"]], record["baseline"]
    lines = [f"fitted inference thresholds: {describe_overrides(record['overrides'])} (select-half AP "
             f"{row['select']['ap']:.3f}; report-half AP {row['report']['ap']:.3f}, config values "
             f"{base['report']['ap']:.3f})"]
    if "uncertainty" in record:
        from scene_pe.inference.calibration import format_calibration

        lines.append(format_calibration(record["uncertainty"]))
    if "uncertainty_skipped" in record:
        lines.append(f"calibrated uncertainty not fitted: {record['uncertainty_skipped']}")
    return lines
