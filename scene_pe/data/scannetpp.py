"""Read one ScanNet++ scene (``<release>/data/<scene>/scans/``) into arrays, as the toolkit labels it.

Files (scannetpp/scannetpp ``common/scene_release.py``): ``mesh_aligned_0.05.ply`` (the
laser-scan mesh, already aligned: no axis alignment), ``segments.json`` (``segIndices``, one
over-segment id per vertex), ``segments_anno.json`` (``segGroups``: ``objectId``, ``label``,
``segments``) and ``mesh_aligned_0.05_mask.txt`` (vertex indices the evaluation leaves out).
Test scenes have no ``segments_anno.json``.

Labels follow the toolkit's ``GetLabelsOnVertices`` (``semantic/transforms/mesh.py``) with its
default single label per vertex: segGroups are visited in file order; a group whose mapped
label is not a benchmark class is skipped; a vertex takes up to 3 labels (a 4th group is
dropped there) and keeps the one of the smallest group (by the vertices it took, first on
ties). Only groups of instance classes give instances; the instance id of a group is its
position in ``segGroups``. The GT file (``prepare_semantic_gt.py``) is ``class * 1000 + id``
where the instance id is > 0, else 0, so the group at position 0 is never an instance in the
benchmark's GT (a quirk kept for parity; training still uses it as an instance).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scene_pe.labels.label_set import IGNORE_LABEL
from scene_pe.labels.scannetpp import BenchmarkClasses
from scene_pe.data.scannet import RawScene, SceneWarning, read_mesh, read_segments
from scene_pe.geometry.normals import vertex_normals
from scene_pe.util.errors import SceneError

SCAN_SUBDIR = "scans"
MESH_NAME = "mesh_aligned_0.05.ply"
SEGMENTS_NAME = "segments.json"
ANNOTATION_NAME = "segments_anno.json"
MASK_NAME = "mesh_aligned_0.05_mask.txt"
MAX_LABELS_PER_VERTEX = 3  # the toolkit's multilabel_max
# splits/ of the release -> split name used by the preprocessed folder
SPLIT_FILES = {"train": "nvs_sem_train.txt", "val": "nvs_sem_val.txt", "test": "sem_test.txt"}


@dataclass(frozen=True)
class PlusPaths:
    """The files of one ScanNet++ scene (they need not exist)."""

    scene: str
    mesh: Path
    segments: Path
    annotation: Path
    mask: Path

    @classmethod
    def of(cls, scene_dir: str | Path) -> "PlusPaths":
        d = Path(scene_dir)
        scans = d / SCAN_SUBDIR
        return cls(d.name, scans / MESH_NAME, scans / SEGMENTS_NAME, scans / ANNOTATION_NAME, scans / MASK_NAME)

    @property
    def annotated(self) -> bool:
        return self.annotation.is_file()


@dataclass
class PlusScene:
    """A ScanNet++ scene: the project's arrays plus the benchmark's GT files' contents."""

    raw: RawScene
    gt_instance: np.ndarray  # int64 (N,) class * 1000 + segGroup position, 0 elsewhere (toolkit GT)
    gt_semantic: np.ndarray  # int64 (N,) class index 0..C-1, IGNORE_LABEL (-100) unlabelled
    eval_mask: np.ndarray  # int64 (M,) vertex indices the evaluation leaves out


def read_annotation(path: Path, scene: str) -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """segments_anno.json -> (labels, segment ids, objectIds) of the segGroups, in file order."""
    try:
        with open(path, encoding="utf-8") as f:
            groups = json.load(f)["segGroups"]
        labels = [str(g["label"]) for g in groups]
        segs = [np.asarray(g["segments"], dtype=np.int64).reshape(-1) for g in groups]
        ids = np.array([int(g.get("objectId", g.get("id", k))) for k, g in enumerate(groups)], dtype=np.int64)
    except (OSError, ValueError, KeyError, TypeError, OverflowError, AttributeError) as e:
        raise SceneError(scene, path, f"cannot read segGroups: {type(e).__name__}: {e}") from e
    return labels, segs, ids


def read_eval_mask(path: Path, scene: str, num_vertices: int) -> np.ndarray:
    """The vertex indices of ``mesh_aligned_0.05_mask.txt`` (none when the file is absent)."""
    if not path.is_file():
        return np.zeros(0, np.int64)
    try:
        text = path.read_text(encoding="utf-8").split()
        idx = np.asarray(text, dtype=np.int64) if text else np.zeros(0, np.int64)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise SceneError(scene, path, f"cannot read the vertex mask: {type(e).__name__}: {e}") from e
    if idx.size and (idx.min() < 0 or idx.max() >= num_vertices):
        raise SceneError(scene, path, f"mask vertex index outside 0..{num_vertices - 1}")
    return np.unique(idx)


def vertex_labels(segment: np.ndarray, group_segments: list[np.ndarray], group_class: np.ndarray,
                  group_is_instance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class index or IGNORE_LABEL, segGroup position or -1) per vertex, by the toolkit's rules.

    Worked on unique segments (every vertex of a segment takes the same labels); the loop
    runs over groups, each step vectorised over the segments."""
    seg_ids, seg_of_vertex, seg_size = np.unique(segment, return_inverse=True, return_counts=True)
    n_seg, k = len(seg_ids), MAX_LABELS_PER_VERTEX
    labels = np.full((n_seg, k), IGNORE_LABEL, np.int64)
    groups = np.full((n_seg, k), -1, np.int64)
    sizes = np.full((n_seg, k), np.inf)
    used = np.zeros(n_seg, np.int64)
    for g, segs in enumerate(group_segments):  # a loop over annotated objects, not vertices
        if group_class[g] < 0:
            continue
        take = np.isin(seg_ids, segs) & (used < k)
        count = int(seg_size[take].sum())
        if count == 0:
            continue
        rows = np.flatnonzero(take)
        labels[rows, used[rows]] = group_class[g]
        if group_is_instance[g]:
            groups[rows, used[rows]] = g
        sizes[rows, used[rows]] = count
        used[rows] += 1
    pick = np.where(used > 1, np.argmin(sizes, axis=1), 0)
    rows = np.arange(n_seg)
    return labels[rows, pick][seg_of_vertex.reshape(-1)], groups[rows, pick][seg_of_vertex.reshape(-1)]


def read_plus_scene(scene_dir: str | Path, classes: BenchmarkClasses) -> PlusScene:
    """Read one ScanNet++ scene folder; a test scene (no annotation) comes back without labels."""
    p = PlusPaths.of(scene_dir)
    scene = p.scene
    if not Path(scene_dir).is_dir():
        raise SceneError(scene, scene_dir, "scene folder is missing")
    coords, colors, faces = read_mesh(p.mesh, scene)
    n = coords.shape[0]
    label_set = classes.label_set()
    segment = read_segments(p.segments, scene, n) if p.segments.is_file() else None
    raw = RawScene(
        name=scene, coords=coords, colors=colors, normals=vertex_normals(coords, faces), faces=faces,
        axis_alignment=np.eye(4), aligned=False,
        segment=(segment if segment is not None else np.arange(n)).astype(np.int32), has_labels=False,
        label_set=label_set, nyu40=np.zeros(n, np.int16), semantic=np.full(n, IGNORE_LABEL, np.int16),
        instance=np.full(n, -1, np.int32), vertex_object=np.full(n, -1, np.int32),
        object_ids=np.zeros(0, np.int64), object_labels=(), object_class=np.zeros(0, np.int16))
    out = PlusScene(raw, np.zeros(n, np.int64), np.full(n, IGNORE_LABEL, np.int64),
                    read_eval_mask(p.mask, scene, n))
    if not p.annotated:
        return out
    if segment is None:
        raise SceneError(scene, p.segments, "segments file is missing (needed by the annotation)")
    labels, group_segs, object_ids = read_annotation(p.annotation, scene)
    mapped = [classes.mapping.get(lab) for lab in labels]
    index = {name: i for i, name in enumerate(classes.classes)}
    group_class = np.array([index.get(m, -1) if m is not None else -1 for m in mapped], dtype=np.int64)
    instance_names = set(classes.instance_classes)
    group_is_instance = np.array([m in instance_names for m in mapped], dtype=bool)
    unknown = sorted({lab for lab, m in zip(labels, mapped) if m is None})
    if unknown:
        warnings.warn(f"{scene}: {p.annotation}: raw labels that map_benchmark.csv does not map to a class (ignored): {unknown[:10]}",
                      SceneWarning, stacklevel=2)
    known = np.unique(segment)
    stray = sorted({int(s) for segs in group_segs for s in segs[~np.isin(segs, known)]})
    if stray:  # the toolkit matches segments by value and ignores these silently
        warnings.warn(f"{scene}: {p.annotation}: segments not in {SEGMENTS_NAME}: {stray[:5]}",
                      SceneWarning, stacklevel=2)
    cls, group = vertex_labels(segment, group_segs, group_class, group_is_instance)

    # Training instances: 0..K-1 over the groups that own vertices, in segGroups order.
    owned = np.zeros(len(labels) + 1, bool)
    owned[group[group >= 0]] = True
    instance_of_group = np.where(owned, np.cumsum(owned) - 1, -1)
    raw.semantic = cls.astype(np.int16)
    raw.instance = np.where(group >= 0, instance_of_group[group], -1).astype(np.int32)
    raw.vertex_object = group.astype(np.int32)
    raw.object_ids, raw.object_labels = object_ids, tuple(labels)
    raw.object_class = np.maximum(group_class, 0).astype(np.int16)
    raw.has_labels = True
    out.gt_instance = np.where(group > 0, cls * 1000 + group, 0)
    out.gt_semantic = cls
    return out
