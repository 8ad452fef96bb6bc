"""Read one raw ScanNet v2 scene folder (``scans/sceneXXXX_YY/``) into arrays.

Files (see METHOD_NOTES §7): ``_vh_clean_2.ply`` (mesh), ``_vh_clean_2.0.010000.segs.json``
(over-segment per vertex), ``.aggregation.json`` (objects = groups of segments, raw
category label), ``_vh_clean_2.labels.ply`` (per-vertex NYU40 id), ``.txt`` (axis alignment).

Semantic labels come from aggregation + label map (tsv), not from labels.ply, by default:
instances come from the aggregation anyway, so every vertex of an instance then carries
its instance's class; the official GT export (BenchmarkScripts) uses the same source; and
labels.ply has known invalid ids (50, 149 in scene0270_00/02, scene0384_00; ScanNet issue
#20). labels.ply, when present, is cross-checked (vertex count must match; the fraction of
disagreeing labels is stored and warned about above ``LABEL_DISAGREEMENT_WARN``).
``semantic_source="labels_ply"`` switches semantic labels to labels.ply.
"""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from plyfile import PlyData

from scene_pe.labels.label_set import NUM_NYU40, NYU40_COLUMN, SCANNET20, TSV_ID_COLUMNS, LabelSet
from scene_pe.geometry.normals import vertex_normals
from scene_pe.superpoints.segmentator import segment_mesh
from scene_pe.util.errors import SceneError
from scene_pe.util.io import atomic_open, int_lines_bytes

MESH_SUFFIX = "_vh_clean_2.ply"
LABELS_SUFFIX = "_vh_clean_2.labels.ply"
SEGS_SUFFIX = "_vh_clean_2.0.010000.segs.json"
AGGREGATION_SUFFIX = ".aggregation.json"
META_SUFFIX = ".txt"
LABEL_MAP_NAME = "scannetv2-labels.combined.tsv"
LABEL_DISAGREEMENT_WARN = 0.01  # warn when > 1% of vertices differ from labels.ply

SemanticSource = Literal["aggregation", "labels_ply"]


class SceneWarning(UserWarning):
    """Something odd but recoverable in one scene (named in the message)."""


@dataclass(frozen=True)
class ScenePaths:
    """The files of one raw scene folder (they need not exist)."""

    scene: str
    mesh: Path
    labels: Path
    segs: Path
    aggregation: Path
    meta: Path

    @classmethod
    def of(cls, scene_dir: str | Path) -> "ScenePaths":
        d = Path(scene_dir)
        s = d.name
        return cls(s, d / f"{s}{MESH_SUFFIX}", d / f"{s}{LABELS_SUFFIX}", d / f"{s}{SEGS_SUFFIX}",
                   d / f"{s}{AGGREGATION_SUFFIX}", d / f"{s}{META_SUFFIX}")

    @property
    def annotated(self) -> bool:
        """Train/val scenes have an aggregation file; test scenes do not."""
        return self.aggregation.is_file()


@dataclass
class RawScene:
    """One scene's arrays (N vertices, G aggregated objects, K instances)."""

    name: str
    coords: np.ndarray  # float32 (N,3), metres, axis alignment applied if `aligned`
    colors: np.ndarray  # uint8 (N,3) RGB
    normals: np.ndarray  # float32 (N,3) unit, area-weighted from faces
    faces: np.ndarray  # int32 (F,3)
    axis_alignment: np.ndarray  # float64 (4,4) from the .txt (identity when absent)
    aligned: bool  # whether axis_alignment was applied to coords
    segment: np.ndarray  # int32 (N,) over-segment id (segs.json, else the built-in segmentator)
    has_labels: bool
    label_set: LabelSet  # the classes of semantic / instance / object_class
    nyu40: np.ndarray  # int16 (N,) semantic NYU40 id, 0 unannotated / unknown (labels.ply's ids)
    semantic: np.ndarray  # int16 (N,) training id 0..C-1 of the label set or IGNORE_LABEL
    instance: np.ndarray  # int32 (N,) 0..K-1 (the label set's instance classes only), -1 none
    vertex_object: np.ndarray  # int32 (N,) index into object_* arrays, -1 none
    object_ids: np.ndarray  # int64 (G,) aggregation objectId, ascending
    object_labels: tuple[str, ...]  # (G,) raw category
    object_class: np.ndarray  # int16 (G,) benchmark id of each object in the label set's id space, 0 if unknown
    label_disagreement: float | None = None  # fraction differing from labels.ply

    @property
    def num_vertices(self) -> int:
        return int(self.coords.shape[0])


@dataclass(frozen=True)
class LabelMap:
    """``scannetv2-labels.combined.tsv`` read once: raw category -> id, per id column.

    ``nyu40id`` gives the ScanNet v2 benchmark's ids (and labels.ply's), ``id`` the
    ScanNet200 benchmark's. A raw category listed twice keeps its first row (as
    ScanNet200's preprocessing); rows with an empty id are skipped for that column.
    """

    columns: dict[str, dict[str, int]]

    def ids(self, column: str) -> dict[str, int]:
        return self.columns[column]


def load_label_map(tsv_path: str | Path) -> LabelMap:
    """Read ``scannetv2-labels.combined.tsv`` (columns raw_category, nyu40id and id)."""
    with open(tsv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        try:
            cols = set(reader.fieldnames or ())
            need = {"raw_category", *TSV_ID_COLUMNS}
            if not need <= cols:
                raise ValueError(f"needs columns {', '.join(sorted(need))}, has {sorted(cols)}")
            out: dict[str, dict[str, int]] = {c: {} for c in TSV_ID_COLUMNS}
            for row in reader:
                for c in TSV_ID_COLUMNS:
                    v = (row[c] or "").strip()
                    if v:
                        try:
                            out[c].setdefault(row["raw_category"], int(v))
                        except ValueError:
                            raise ValueError(f"column {c} is not an integer: {v!r}") from None
        except (ValueError, csv.Error) as e:  # not UTF-8, a NUL byte, an id that is no integer
            raise ValueError(f"{tsv_path}: line {reader.line_num}: {e}") from None
    return LabelMap(out)


def read_ply_file(path: Path, scene: str, what: str) -> PlyData:
    if not path.is_file():
        raise SceneError(scene, path, f"{what} file is missing")
    try:
        # Fixed-length triangles let plyfile memory-map the faces (fast path).
        return PlyData.read(str(path), known_list_len={"face": {"vertex_indices": 3}})
    except Exception:  # noqa: BLE001 - retry below; a real fault raises again there
        pass
    try:
        return PlyData.read(str(path))
    except Exception as e:  # plyfile raises many types on corrupt/truncated files
        raise SceneError(scene, path, f"cannot read {what} ply: {type(e).__name__}: {e}") from e


def _vertex_fields(ply: PlyData, path: Path, scene: str, names: tuple[str, ...]) -> list[np.ndarray]:
    try:
        vertex = ply["vertex"]
    except KeyError:
        raise SceneError(scene, path, "no 'vertex' element") from None
    missing = [n for n in names if n not in vertex.data.dtype.names]
    if missing:
        raise SceneError(scene, path, f"vertex element lacks properties {missing}")
    return [np.asarray(vertex.data[n]) for n in names]


def read_mesh(path: Path, scene: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mesh ply -> (xyz float32 (N,3), rgb uint8 (N,3), triangles int32 (F,3))."""
    ply = read_ply_file(path, scene, "mesh")
    x, y, z, r, g, b = _vertex_fields(ply, path, scene, ("x", "y", "z", "red", "green", "blue"))
    xyz = np.stack([x, y, z], axis=1).astype(np.float32)
    rgb = np.stack([r, g, b], axis=1).astype(np.uint8)
    if xyz.shape[0] == 0:
        raise SceneError(scene, path, "empty mesh (0 vertices)")
    if not np.isfinite(xyz).all():
        bad = int((~np.isfinite(xyz).all(axis=1)).sum())
        raise SceneError(scene, path, f"{bad} vertices have NaN/inf coordinates")
    return xyz, rgb, ply_triangles(ply, path, scene, xyz.shape[0])


def ply_triangles(ply: PlyData, path: Path, scene: str, num_vertices: int) -> np.ndarray:
    """(F, 3) int32 triangles of a ply's face element ((0, 3) without one)."""
    if "face" not in ply:
        return np.zeros((0, 3), np.int32)
    data = ply["face"].data
    if "vertex_indices" not in data.dtype.names:
        raise SceneError(scene, path, "face element lacks 'vertex_indices'")
    tri = data["vertex_indices"]
    if tri.dtype == object:  # variable-length lists (slow path)
        try:
            tri = np.stack(tri) if len(tri) else np.zeros((0, 3))
        except ValueError:
            tri = np.zeros((0, 0))
        if tri.ndim != 2 or tri.shape[1] != 3:
            raise SceneError(scene, path, "faces are not all triangles")
    faces = np.asarray(tri, dtype=np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= num_vertices):
        raise SceneError(scene, path, f"face indices outside 0..{num_vertices - 1}")
    return faces.astype(np.int32)


def read_labels_ply(path: Path, scene: str, num_vertices: int) -> np.ndarray:
    """int64 (N,) NYU40 id per vertex of a ``_vh_clean_2.labels.ply`` (0 for ids outside 0..40)."""
    (label,) = _vertex_fields(read_ply_file(path, scene, "labels"), path, scene, ("label",))
    if label.shape[0] != num_vertices:
        raise SceneError(scene, path, f"{label.shape[0]} vertices but the mesh has {num_vertices}")
    return np.where((label >= 0) & (label < NUM_NYU40), label, 0).astype(np.int64)


def read_axis_alignment(path: Path, scene: str) -> np.ndarray | None:
    """The ``axisAlignment`` 4x4 (row-major) of a scene .txt, or None when absent."""
    if not path.is_file():
        return None
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "axisAlignment":
            try:
                m = np.array([float(v) for v in value.split()], dtype=np.float64)
            except ValueError:
                m = np.zeros(0)
            if m.shape != (16,) or not np.isfinite(m).all():
                raise SceneError(scene, path, "axisAlignment needs 16 finite numbers")
            return m.reshape(4, 4)
    return None


def read_segments(path: Path, scene: str, num_vertices: int) -> np.ndarray:
    """segs.json -> int64 (N,) over-segment id per vertex."""
    try:
        with open(path, encoding="utf-8") as f:
            seg = np.asarray(json.load(f)["segIndices"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SceneError(scene, path, f"cannot read segIndices: {type(e).__name__}: {e}") from e
    if seg.ndim != 1 or (seg.size and (seg.dtype.kind not in "iu" or seg.min() < 0)):
        raise SceneError(scene, path, "segIndices must be a list of non-negative integers")
    if seg.shape[0] != num_vertices:
        raise SceneError(scene, path, f"{seg.shape[0]} segIndices but the mesh has {num_vertices} vertices")
    return seg.astype(np.int64)


def read_aggregation(path: Path, scene: str) -> tuple[np.ndarray, list[str], list[np.ndarray]]:
    """aggregation.json -> (objectIds, raw labels, segment ids), sorted by objectId."""
    try:
        with open(path, encoding="utf-8") as f:
            groups = json.load(f)["segGroups"]
        ids = np.array([int(g["objectId"]) for g in groups], dtype=np.int64)
        labels = [str(g["label"]) for g in groups]
        segs = [np.asarray(g["segments"], dtype=np.int64).reshape(-1) for g in groups]
    except (OSError, ValueError, KeyError, TypeError, OverflowError) as e:
        raise SceneError(scene, path, f"cannot read segGroups: {type(e).__name__}: {e}") from e
    if np.unique(ids).size != ids.size:
        raise SceneError(scene, path, "duplicate objectId in segGroups")
    order = np.argsort(ids, kind="stable")
    return ids[order], [labels[i] for i in order], [segs[i] for i in order]


def _objects_to_vertices(segment: np.ndarray, object_segs: list[np.ndarray], scene: str,
                         path: Path) -> np.ndarray:
    """Per-vertex object index (-1 none); later objects win where segments are shared."""
    seg_ids, seg_of_vertex = np.unique(segment, return_inverse=True)
    object_of_seg = np.full(seg_ids.shape[0], -1, dtype=np.int32)
    for k, segs in enumerate(object_segs):  # loop over objects, not vertices
        pos = np.minimum(np.searchsorted(seg_ids, segs), seg_ids.shape[0] - 1)
        unknown = segs[seg_ids[pos] != segs]
        if unknown.size:
            raise SceneError(scene, path, f"object {k} references segments not in the segs file: "
                                          f"{unknown[:5].tolist()}")
        object_of_seg[pos] = k
    return object_of_seg[seg_of_vertex.reshape(-1)]


def read_scene(scene_dir: str | Path, label_map: LabelMap | None, align: bool = True,
               semantic_source: SemanticSource = "aggregation", label_set: LabelSet = SCANNET20) -> RawScene:
    """Read one raw scene folder; test scenes (no aggregation) come back without labels.

    Semantic and instance labels are those of ``label_set`` (its tsv column maps raw
    categories to its ids); ``nyu40`` is always kept for the labels.ply cross-check.
    """
    p = ScenePaths.of(scene_dir)
    scene = p.scene
    if not Path(scene_dir).is_dir():
        raise SceneError(scene, scene_dir, "scene folder is missing")
    coords, colors, faces = read_mesh(p.mesh, scene)
    n = coords.shape[0]
    if p.segs.is_file():
        segment = read_segments(p.segs, scene, n)
    else:  # no segs.json (own scans): ScanNet's over-segmentation of the file as it is
        segment = segment_mesh(coords, faces)

    matrix = read_axis_alignment(p.meta, scene)
    aligned = bool(align and matrix is not None)
    if matrix is None:
        if align:
            warnings.warn(f"{scene}: {p.meta}: no axisAlignment; using identity", SceneWarning,
                          stacklevel=2)
        matrix = np.eye(4)
    if aligned:  # rigid transform: rotation + translation (bottom row is 0 0 0 1)
        coords = (coords.astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]).astype(np.float32)
    normals = vertex_normals(coords, faces)

    out = RawScene(
        name=scene, coords=coords, colors=colors, normals=normals, faces=faces,
        axis_alignment=matrix, aligned=aligned,
        segment=segment.astype(np.int32), has_labels=False, label_set=label_set,
        nyu40=np.zeros(n, np.int16), semantic=label_set.to_train(np.zeros(n, np.int16)).astype(np.int16),
        instance=np.full(n, -1, np.int32), vertex_object=np.full(n, -1, np.int32),
        object_ids=np.zeros(0, np.int64), object_labels=(), object_class=np.zeros(0, np.int16))
    if not p.annotated:
        if p.labels.is_file():
            warnings.warn(f"{scene}: {p.labels}: labels.ply without aggregation is ignored",
                          SceneWarning, stacklevel=2)
        return out
    if label_map is None:
        raise SceneError(scene, p.aggregation, f"annotated scene needs a label map ({LABEL_MAP_NAME})")
    if not p.segs.is_file():
        raise SceneError(scene, p.segs, "segs file is missing (needed by the aggregation)")
    _add_labels(out, p, label_map, semantic_source)
    return out


def _add_labels(out: RawScene, p: ScenePaths, label_map: LabelMap, source: SemanticSource) -> None:
    """Fill the label fields of ``out`` from aggregation + segs (+ labels.ply)."""
    scene, n = p.scene, out.num_vertices
    ids, labels, segs = read_aggregation(p.aggregation, scene)
    ls = out.label_set
    to_nyu, to_class = label_map.ids(NYU40_COLUMN), label_map.ids(ls.tsv_column)
    missing = sorted({lab for lab in labels if lab not in to_class})
    if missing:
        warnings.warn(f"{scene}: {p.aggregation}: raw categories not in the label map (ignored): "
                      f"{missing}", SceneWarning, stacklevel=3)
    obj_nyu = np.array([to_nyu.get(lab, 0) for lab in labels], dtype=np.int64)
    obj_nyu[(obj_nyu < 0) | (obj_nyu >= NUM_NYU40)] = 0
    obj_cls = np.array([to_class.get(lab, 0) for lab in labels], dtype=np.int64)
    obj_cls[(obj_cls < 0) | (obj_cls > np.iinfo(np.int16).max)] = 0
    vobj = _objects_to_vertices(out.segment.astype(np.int64), segs, scene, p.aggregation)
    has_obj = vobj >= 0
    nyu40 = np.append(obj_nyu, 0)[vobj]  # vobj -1 (no object) takes the appended 0; works for 0 objects
    cls = np.append(obj_cls, 0)[vobj]

    if p.labels.is_file():
        ply_nyu = read_labels_ply(p.labels, scene, n)
        out.label_disagreement = float(np.mean(ply_nyu != nyu40))
        if out.label_disagreement > LABEL_DISAGREEMENT_WARN:
            warnings.warn(f"{scene}: {p.labels}: {out.label_disagreement:.1%} of vertices differ from "
                          f"aggregation labels", SceneWarning, stacklevel=3)
        if source == "labels_ply":
            if not ls.nyu40_ids:
                raise SceneError(scene, p.labels, f"labels.ply holds NYU40 ids; label set {ls.name} needs "
                                                  "semantic_source='aggregation'")
            nyu40 = cls = ply_nyu
    elif source == "labels_ply":
        raise SceneError(scene, p.labels, "labels file is missing (semantic_source='labels_ply')")

    # Instances: objects of the label set's instance classes that own >= 1 vertex, in objectId order.
    counts = np.bincount(vobj[has_obj], minlength=ids.shape[0])
    keep = np.isin(obj_cls, ls.instance_ids) & (counts > 0)
    obj_to_inst = np.where(keep, np.cumsum(keep) - 1, -1)
    out.instance = np.append(obj_to_inst, -1)[vobj].astype(np.int32)
    out.nyu40 = nyu40.astype(np.int16)
    out.semantic = ls.to_train(cls).astype(np.int16)
    out.vertex_object = vobj.astype(np.int32)
    out.object_ids, out.object_labels, out.object_class = ids, tuple(labels), obj_cls.astype(np.int16)
    out.has_labels = True


def gt_ids(raw: RawScene) -> np.ndarray:
    """Evaluator GT per vertex: class * 1000 + objectId + 1 (object's class), 0 unannotated.

    ``class`` is the object's id in the label set's id space (NYU40 for scannet20, the tsv
    ``id`` for scannet200). As BenchmarkScripts' export_train_mesh_for_evaluation: every
    aggregated object, whatever its class (the evaluator filters classes); objects with an
    unknown category give 0.
    """
    v = raw.vertex_object
    if raw.object_ids.size == 0:
        return np.zeros(v.shape[0], np.int64)
    k = np.maximum(v, 0)
    cls = raw.object_class.astype(np.int64)[k]
    return np.where((v >= 0) & (cls > 0), cls * 1000 + raw.object_ids[k] + 1, 0).astype(np.int64)


def write_gt_txt(path: str | Path, ids: np.ndarray) -> None:
    """Write evaluator GT ids atomically (one line per vertex)."""
    with atomic_open(path, "wb") as f:
        f.write(int_lines_bytes(ids))
