"""The files tools/predict.py writes for one input, all in the input's frame and vertex order.

  NAME.instances.ply / .semantic.ply / .uncertainty.ply
        coloured copies of the input (its vertices, and triangles for a mesh)
  NAME.npz
        per vertex: ``instance`` (int64, -1 none), ``class`` (the label set's class id:
        NYU40 id for ScanNet v2, ScanNet200 id),
        ``confidence`` (the vertex's instance's, 0 without one),
        ``uncertainty`` (float, see ``uncertainty_definition`` in the JSON);
        per instance: ``instance_class``, ``instance_confidence``;
        ``model_from_input`` (4, 4)
  NAME.json
        one record per instance (id, class, class id: ``nyu40_id`` or ``scannet200_id``,
        confidence, vertex count,
        axis-aligned box and centroid in the input frame, mean uncertainty),
        classes found, the frame transform, seconds per stage, versions;
        written last, so its presence marks the input done (resume)
  scannet/NAME.txt + scannet/predicted_masks/   with ``--scannet-format``
  NAME.png                                      scene_pe/predict/render.py
  NAME.html                                     scene_pe/viewer (a 3D viewer for any browser)
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from pathlib import Path

import numpy as np

from scene_pe.export.submission import write_instance_submission
from scene_pe.inference.vertices import VertexPrediction
from scene_pe.labels.label_set import LabelSet
from scene_pe.util.io import save_npz_atomic, write_text_atomic
from scene_pe.viz import write_prediction_plys

PLY_KINDS = ("instances", "semantic", "uncertainty")


def output_paths(out_dir: Path, name: str) -> dict[str, Path]:
    out_dir = Path(out_dir)
    paths = {k: out_dir / f"{name}.{k}.ply" for k in PLY_KINDS}
    paths.update(npz=out_dir / f"{name}.npz", json=out_dir / f"{name}.json", png=out_dir / f"{name}.png",
                 html=out_dir / f"{name}.html",
                 scannet=out_dir / "scannet" / f"{name}.txt")
    return paths


def instance_records(pred: VertexPrediction, coords: np.ndarray, label_set: LabelSet) -> list[dict]:
    """One dict per instance, with geometry in the frame of ``coords``; class names of ``label_set``."""
    k = len(pred.labels)
    if k == 0:
        return []
    inst = pred.instance
    on = inst >= 0
    order = np.argsort(inst[on], kind="stable")
    ids = inst[on][order]
    xyz = coords[on][order]
    starts = np.searchsorted(ids, np.arange(k))
    count = np.bincount(ids, minlength=k)
    present = count > 0
    lo = np.full((k, 3), np.nan)
    hi = np.full((k, 3), np.nan)
    lo[present] = np.minimum.reduceat(xyz, starts[present], axis=0)
    hi[present] = np.maximum.reduceat(xyz, starts[present], axis=0)
    centroid = np.stack([np.bincount(ids, weights=xyz[:, c], minlength=k) for c in range(3)], 1) \
        / np.maximum(count, 1)[:, None]
    unc = np.bincount(ids, weights=pred.uncertainty[on][order].astype(np.float64), minlength=k) \
        / np.maximum(count, 1)
    r = lambda a: [round(float(v), 6) if np.isfinite(v) else None for v in a]  # noqa: E731
    id_key = "nyu40_id" if label_set.nyu40_ids else f"{label_set.name}_id"
    return [{"id": i, "class": label_set.class_name.get(int(pred.labels[i]), "unknown"), id_key: int(pred.labels[i]),
             "confidence": round(float(pred.confidence[i]), 6), "num_vertices": int(count[i]),
             "bbox_min": r(lo[i]), "bbox_max": r(hi[i]), "centroid": r(centroid[i]),
             "mean_uncertainty": r([unc[i]])[0]} for i in range(k)]


def class_counts(records: list[dict]) -> dict[str, int]:
    """Instances per class name, most frequent first (ties: by name)."""
    counts = Counter(rec["class"] for rec in records)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def write_vertex_files(paths: dict[str, Path], scan, pred: VertexPrediction, model_from_input: np.ndarray,
                       scannet_format: bool, score_threshold: float, max_instances: int,
                       label_set: LabelSet) -> None:
    """The PLYs, the npz and (optionally) the benchmark txt + masks of one input."""
    write_prediction_plys(paths["npz"].parent, scan.coords.astype(np.float32), scan.faces if scan.is_mesh else None,
                          pred, {k: paths[k] for k in PLY_KINDS}, label_set)
    conf = np.where(pred.instance >= 0, pred.confidence[np.maximum(pred.instance, 0)] if len(pred.labels)
                    else 0.0, 0.0)
    save_npz_atomic(paths["npz"], instance=pred.instance.astype(np.int64), **{"class": pred.semantic.astype(np.int16)},
                    confidence=conf.astype(np.float32), uncertainty=pred.uncertainty.astype(np.float32),
                    instance_class=pred.labels.astype(np.int16),
                    instance_confidence=pred.confidence.astype(np.float32),
                    model_from_input=model_from_input.astype(np.float64))
    if scannet_format:
        write_instance_submission(paths["scannet"].parent, paths["scannet"].stem, pred.instance, pred.labels,
                                  pred.confidence, score_threshold=score_threshold, max_instances=max_instances,
                                  label_set=label_set)


def versions() -> dict[str, str]:
    import MinkowskiEngine as ME
    import open3d
    import torch

    import scene_pe

    return {"scene_pe": scene_pe.__version__, "torch": torch.__version__, "MinkowskiEngine": ME.__version__,
            "open3d": open3d.__version__, "numpy": np.__version__, "python": platform.python_version()}


def write_summary_json(path: Path, record: dict) -> None:
    write_text_atomic(path, json.dumps(record, indent=1, allow_nan=False) + "\n")
