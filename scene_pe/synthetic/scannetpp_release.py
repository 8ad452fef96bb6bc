"""Generated rooms written in ScanNet++'s release layout (the ``scannetpp`` profile).

::

    <root>/data/<scene>/scans/mesh_aligned_0.05.ply        aligned mesh (no axis alignment file)
    <root>/data/<scene>/scans/segments.json                 segIndices per vertex
    <root>/data/<scene>/scans/segments_anno.json            segGroups (train / val scenes only)
    <root>/data/<scene>/scans/mesh_aligned_0.05_mask.txt    vertex indices left out of evaluation
    <root>/metadata/semantic_benchmark/top100.txt, top100_instance.txt, map_benchmark.csv
    <root>/splits/nvs_sem_train.txt, nvs_sem_val.txt, sem_test.txt

The rooms' raw labels are the generator's categories; ``map_benchmark.csv`` renames some
(``office chair`` -> ``chair``, as ScanNet++ maps its 1.5k raw labels to 100 classes), drops
one (``ottoman`` -> ``None``) and leaves one out (``crate``: ignored), so every branch of the
mapping is exercised. The first segGroup of each room is a wall (stuff): the benchmark's GT
drops the instance at position 0 (``data/scannetpp.py``), and a wall there loses nothing.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from scene_pe.data import scannet_files as sf
from scene_pe.data.scannetpp import (ANNOTATION_NAME, MASK_NAME, MESH_NAME, SCAN_SUBDIR, SEGMENTS_NAME,
                                     SPLIT_FILES)
from scene_pe.labels.scannetpp import CLASSES_FILE, INSTANCE_CLASSES_FILE, MAPPING_FILE, METADATA_SUBDIR
from scene_pe.util.io import atomic_open, int_lines_bytes, write_lines_atomic, write_text_atomic

# The generated rooms' benchmark: semantic classes in "top100" order (stuff first, as ScanNet++'s
# list starts with wall, ceiling, floor), instance classes, and the raw-label renames.
CLASSES = ("wall", "floor", "curtain", "table", "door", "chair", "cabinet", "window", "bookshelf", "monitor",
           "sofa", "bed", "trash can", "pillow", "picture", "box", "kitchen cabinet", "kitchen counter", "sink",
           "toilet", "refrigerator", "bathtub", "table lamp", "desk", "basket", "bucket")
STUFF = ("wall", "floor", "curtain", "kitchen counter")  # scored for mIoU only
RENAMES = {"office chair": "chair", "armchair": "chair", "couch": "sofa", "coffee table": "table",
           "dining table": "table", "lamp": "table lamp", "nightstand": "cabinet", "shower curtain": "curtain"}
DROPPED = ("ottoman",)  # semantic_map_to None
UNLISTED = ("crate",)  # absent from the csv
MASKED_FRACTION = 0.01  # vertices listed in the evaluation mask


def write_metadata(root: str | Path, raw_labels: list[str]) -> Path:
    """Write ``metadata/semantic_benchmark/`` for rooms holding ``raw_labels``; returns the folder."""
    d = Path(root) / METADATA_SUBDIR
    d.mkdir(parents=True, exist_ok=True)
    write_lines_atomic(d / CLASSES_FILE, list(CLASSES))
    write_lines_atomic(d / INSTANCE_CLASSES_FILE, [c for c in CLASSES if c not in STUFF])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class", "count", "semantic_map_to", "instance_map_to"])
    for k, raw in enumerate(sorted(set(raw_labels) | set(RENAMES) | set(DROPPED))):
        if raw in UNLISTED:
            continue
        target = "None" if raw in DROPPED else RENAMES.get(raw, "")
        w.writerow([raw, 1000 - k, target, target])
    write_text_atomic(d / MAPPING_FILE, buf.getvalue())
    return d


def write_splits(root: str | Path, splits: dict[str, list[str]]) -> None:
    for split, names in splits.items():
        write_lines_atomic(Path(root) / "splits" / SPLIT_FILES[split], names)


def _json(path: Path, obj: dict) -> None:
    with atomic_open(path, "wb") as f:
        f.write(json.dumps(obj).encode())


def write_plus_scene(scene, data_dir: str | Path) -> Path:
    """Write one ``SyntheticScene`` as ``data_dir/<scene>/scans/`` (aligned frame, as ScanNet++)."""
    scans = Path(data_dir) / scene.scene_id / SCAN_SUBDIR
    scans.mkdir(parents=True, exist_ok=True)
    sf.write_mesh_ply(scans / MESH_NAME, scene.aligned_vertices().astype(np.float32), scene.colors, scene.faces)
    _json(scans / SEGMENTS_NAME, {"sceneId": scene.scene_id, "segIndices": scene.segments.tolist()})
    rng = np.random.default_rng(scene.num_vertices)
    masked = np.sort(rng.choice(scene.num_vertices, int(scene.num_vertices * MASKED_FRACTION), replace=False))
    with atomic_open(scans / MASK_NAME, "wb") as f:
        f.write(int_lines_bytes(masked))
    if scene.has_labels:
        groups = sorted(scene.seg_groups, key=lambda g: g["label"] != "wall")  # a wall first (stable)
        _json(scans / ANNOTATION_NAME, {"sceneId": scene.scene_id, "segGroups": [
            {"id": int(g["id"]), "objectId": int(g["objectId"]), "label": str(g["label"]),
             "segments": [int(s) for s in g["segments"]]} for g in groups]})
    return scans.parent
