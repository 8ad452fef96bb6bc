"""The calibrated uncertainty's fit: its error model learned on the select half of the val scenes, judged on the report half.

At the end of the threshold fit (scene_pe/inference/fitting.py), with the
chosen thresholds, every cached val scene is clustered once. On the select
half each population vertex (scene_pe/evaluation/uncertainty.py) gives its
features (scene_pe/method/error_model.py) and whether its assignment
is wrong; a logistic model per group is fitted on them (at most
``MAX_VERTICES_PER_SCENE`` per scene, drawn with a fixed seed, so that large
scenes do not dominate and the fit stays small). On the report half, which
played no part in the fit, the AUROC of the calibrated uncertainty and of the
config's own definition are measured over the three populations; both go
into the checkpoint's record. A network whose outputs give non-finite
features on the select half (sigma underflowed to 0: a collapsed entropy
regulariser) cannot be calibrated: ``CalibrationError`` says so and the fit
keeps its thresholds without the calibrated uncertainty.
"""

from __future__ import annotations

import numpy as np

from scene_pe.evaluation.uncertainty import UncertaintyEvaluator, wrong_assignments
from scene_pe.method.error_model import FEATURES, error_probability, fit_error_model
from scene_pe.method.uncertainty import calibration_features

MAX_VERTICES_PER_SCENE = 20000
POPULATIONS = {"auroc": "all", "auroc_instances": "GT instance", "auroc_object_or_assigned": "object or assigned"}


class CalibrationError(ValueError):
    """The error model cannot be fitted on these outputs; the message says why."""


def _figures(ev: UncertaintyEvaluator) -> dict:
    r = ev.result()
    return {k: float(getattr(r, k)) for k in POPULATIONS}


def calibration_overrides(coefficients: list[float]) -> list[str]:
    """The config overrides that apply a fitted model (``repr``: every float's digits kept)."""
    return ["inference.probabilistic.uncertainty=calibrated",
            "inference.probabilistic.calibration=[" + ", ".join(repr(float(c)) for c in coefficients) + "]"]


def fit_calibration(cfg, cache, halves: dict[str, list[str]]) -> dict:
    """The calibrated uncertainty of the probabilistic head fitted at ``cfg``'s thresholds on the
    ``select`` scenes of ``cache`` (fitting.CachedScene); the record the checkpoint stores (None
    when the select half has no labelled vertex)."""
    from scene_pe.inference.vertices import predictions_from_outputs

    labels = cfg.data.labels
    select, report = set(halves["select"]), set(halves["report"])
    xs, groups, wrongs, held_out = [], [], [], []
    for c in cache:
        (pred,) = predictions_from_outputs(c.out, c.voxels, cfg.inference, label_set=labels)
        out = c.out
        local = c.voxels.point_to_voxel[0].cpu().numpy()
        x, assigned = calibration_features(out.mu, out.sigma, out.scores, pred.voxel_instance, pred.instance, local,
                                           cfg.inference.probabilistic.rbf_sigma, instance_classes=out.instance_classes)
        if pred.scene in select:
            population, wrong = wrong_assignments(c.gt, pred.instance, labels)
            rows = np.flatnonzero(population)
            if rows.size > MAX_VERTICES_PER_SCENE:
                rng = np.random.default_rng(sorted(select).index(pred.scene))
                rows = np.sort(rng.choice(rows, MAX_VERTICES_PER_SCENE, replace=False))
            xs.append(x[rows])
            groups.append(assigned[rows])
            wrongs.append(wrong[rows])
        elif pred.scene in report:
            held_out.append((pred, c.gt, x, assigned))
    if not xs or not sum(len(w) for w in wrongs):
        return None  # no labelled vertex on the select half: nothing to learn from
    x, assigned, wrong = (np.concatenate(a) for a in (xs, groups, wrongs))
    bad = ~np.isfinite(x).all(1)
    if bad.any():
        raise CalibrationError(f"{int(bad.sum())} of {len(x)} select-half vertices have non-finite features "
                               f"({', '.join(f for f, b in zip(FEATURES, ~np.isfinite(x).all(0)) if b)}; "
                               "e.g. sigma underflowed to 0)")
    coefficients = fit_error_model(x, assigned, wrong)
    base, calibrated = UncertaintyEvaluator(labels), UncertaintyEvaluator(labels)
    for pred, gt, x_scene, assigned_scene in held_out:
        base.add(pred.scene, gt, pred.instance, pred.uncertainty)
        calibrated.add(pred.scene, gt, pred.instance, error_probability(x_scene, assigned_scene, coefficients))
    return {"definition": "calibrated", "features": list(FEATURES), "coefficients": coefficients,
            "overrides": calibration_overrides(coefficients),
            "fit_vertices": {"assigned": int(assigned.sum()), "unassigned": int((~assigned).sum()),
                             "wrong": int(wrong.sum())},
            "report": {"calibrated": _figures(calibrated),
                       "config": {"definition": cfg.inference.probabilistic.uncertainty, **_figures(base)}},
            "populations": dict(POPULATIONS)}


def format_calibration(record: dict) -> str:
    """One line: the report-half AUROC of the calibrated uncertainty and of the config's definition."""
    rep = record["report"]
    parts = [f"{name} " + " / ".join(f"{pop} {fig[k]:.3f}" for k, pop in POPULATIONS.items())
             for name, fig in (("calibrated", rep["calibrated"]), (rep["config"]["definition"], rep["config"]))]
    return "uncertainty AUROC on the report half: " + "; ".join(parts)
