"""Viewer pages of the tools' predictions: tools/predict.py's NAME.html, tools/test.py --html's pages."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scene_pe.labels.label_set import LabelSet
from scene_pe.viewer.layers import SceneView
from scene_pe.viewer.page import ViewerPage, write_viewer


def predicted_scan_page(path: Path, name: str, source: Path, scan, result, records: list[dict], label_set: LabelSet,
                        uncertainty_definition: str) -> ViewerPage:
    """tools/predict.py's page of one scan: in the model frame (z up), with the JSON's instance records."""
    notes = [f"{Path(source).name}: {len(scan.coords):,} vertices ({'mesh' if scan.is_mesh else 'point cloud'}), shown in the "
             "model frame (z up, metres; NAME.json gives the transform to the input's frame)"]
    view = SceneView(name, result.xyz_model, result.pred, label_set, records, colors=scan.colors,
                     title=name, uncertainty_definition=uncertainty_definition, notes=notes)
    return write_viewer(path, view)


def saved_scene_view(out_dir: Path, data_root: Path, scene: str, label_set: LabelSet,
                     uncertainty_definition: str) -> SceneView:
    """A scene tools/test.py predicted (<out>/predictions), with its GT where <data.root>/gt has it."""
    from scene_pe.data.dataset import load_scene
    from scene_pe.inference.files import load_prediction
    from scene_pe.evaluation.io import read_gt_file
    from scene_pe.predict.outputs import instance_records

    pred, sample = load_prediction(out_dir, scene), load_scene(data_root, scene, label_set.name)
    gt_path = Path(data_root) / "gt" / f"{scene}.txt"
    gt = read_gt_file(gt_path, scene) if gt_path.exists() else None
    colors = np.round(np.clip(sample["colors"], 0.0, 1.0) * 255.0).astype(np.uint8)
    # names, not paths: a page is shared and pictured, and must not carry a machine's folders
    notes = [f"{scene}.npz of {Path(data_root).name}/scenes: preprocessed scene, axis-aligned frame (z up, metres)"
             + (f"; GT from gt/{scene}.txt" if gt is not None else "; no GT")]
    return SceneView(scene, sample["coords"], pred, label_set, instance_records(pred, sample["coords"], label_set),
                     colors=colors, gt=gt, title=scene, uncertainty_definition=uncertainty_definition, notes=notes)


def write_saved_viewers(out_dir: Path, scenes: list[str], data_root: Path, label_set: LabelSet,
                        uncertainty_definition: str) -> list[ViewerPage]:
    """One page per scene under <out>/html/."""
    return [write_viewer(Path(out_dir) / "html" / f"{scene}.html",
                         saved_scene_view(out_dir, data_root, scene, label_set, uncertainty_definition))
            for scene in scenes]
