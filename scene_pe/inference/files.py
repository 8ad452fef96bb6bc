"""Per-scene prediction files (``<out>/predictions/<scene>.npz``): save, load, evaluate.

tools/test.py writes one file per scene as soon as it is predicted, so an
interrupted run resumes where it stopped; evaluation and export read them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from scene_pe.labels.label_set import LabelSet
from scene_pe.inference.evaluate import add_scene, new_evaluators
from scene_pe.inference.vertices import VertexPrediction
from scene_pe.evaluation.io import read_gt_file
from scene_pe.util.errors import SceneError
from scene_pe.util.io import save_npz_atomic

FIELDS = ("instance", "labels", "confidence", "semantic", "uncertainty")


def prediction_path(out_dir: Path, scene: str) -> Path:
    return Path(out_dir) / "predictions" / f"{scene}.npz"


def save_prediction(out_dir: Path, pred: VertexPrediction) -> Path:
    path = prediction_path(out_dir, pred.scene)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_npz_atomic(path, **{f: getattr(pred, f) for f in FIELDS})
    return path


def load_prediction(out_dir: Path, scene: str) -> VertexPrediction:
    path = prediction_path(out_dir, scene)
    try:
        with np.load(path) as z:
            return VertexPrediction(scene, *(z[f] for f in FIELDS))
    except (OSError, KeyError, ValueError) as e:
        raise SceneError(scene, path, f"cannot read prediction: {e}") from e


def evaluate_saved(out_dir: Path, gt_dir: Path, scenes: Iterable[str], label_set: LabelSet):
    """Instance, semantic and uncertainty results over the scenes that have GT (Nones if none has)."""
    inst_ev, sem_ev, unc_ev = new_evaluators(label_set)
    for scene in scenes:
        gt_path = Path(gt_dir) / f"{scene}.txt"
        if not gt_path.exists():
            continue
        add_scene(inst_ev, sem_ev, load_prediction(out_dir, scene), read_gt_file(gt_path, scene), unc_ev,
                  Path(gt_dir))
    if not inst_ev.num_scenes:
        return None, None, None
    return inst_ev.result(), sem_ev.result(), unc_ev.result()
