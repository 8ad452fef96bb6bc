"""ScanNet++'s benchmark: instance AP and top-k semantic IoU, as its toolkit scores them.

Instance (scannetpp/scannetpp ``semantic/eval/eval_instance.py``): ScanNet's algorithm
(``instance.py``), with class ids 0..C-1 (``top100.txt`` order), run-length encoded masks,
and every vertex listed in the scene's ``mesh_aligned_0.05_mask.txt`` removed from GT and
predictions before anything is counted (sizes, the 100-vertex minimum, overlaps). Lines of
non-instance classes are skipped, as the toolkit does. GT values 1..999 (class id 0) are
never scored (its ``instance_id >= 1000`` filter; ``matching.py``).

Semantic (``semantic/eval/eval_semantic.py``, ``semantic/utils/confmat.py``): GT one class
id per vertex (or several, comma-separated: multi-label GT), -100 (any value outside
0..C-1) unlabelled; predictions 1 or k comma-separated ids per vertex, each in 0..C-1 (else an
error, as the toolkit's asserts). Top-k: a vertex counts as its first predicted id that is
one of its GT ids (then that GT id), else as its first prediction against its first GT id.
IoU = TP / (TP + FP + FN) per class, NaN without GT and predictions; mIoU the mean without NaN.
The toolkit scores top-1 and top-3; a single prediction per vertex is repeated (top-3 = top-1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scene_pe.labels.label_set import LabelSet
from scene_pe.evaluation.instance import InstanceEvaluator, InstanceResult
from scene_pe.evaluation.io import (SubmissionSource, gt_files, parse_int_lines, read_instance_scene,
                                    score_scenes)
from scene_pe.evaluation.masks import SparseMasks
from scene_pe.evaluation.matching import MIN_REGION_SIZE
from scene_pe.evaluation.semantic import SemanticResult
from scene_pe.util.errors import SceneError

TOP_K = (1, 3)  # the toolkit's semantic metrics
RELEASE_MASK = Path("scans") / "mesh_aligned_0.05_mask.txt"  # per scene, in the release's data/<scene>/


@dataclass(frozen=True)
class PlusGt:
    """Where a ScanNet++ scene's GT lives: instance GT (``class*1000+id``), semantic GT, vertex mask.

    ``mask_dir``: a folder of ``<scene>.txt`` masks (a preprocessed folder's ``gt_mask/``) or
    the release's ``data/`` folder; None: no vertex is left out."""

    instance_dir: Path
    semantic_dir: Path | None = None
    mask_dir: Path | None = None

    @classmethod
    def of_preprocessed(cls, gt_dir: str | Path) -> "PlusGt":
        """GT of a folder written by ``tools/preprocess.py --dataset scannetpp`` (``<out>/gt``)."""
        parent = Path(gt_dir).parent
        return cls(Path(gt_dir), parent / "gt_semantic", parent / "gt_mask")

    def excluded(self, scene: str, num_vertices: int) -> np.ndarray:
        """The scene's vertex indices left out of evaluation."""
        if self.mask_dir is None:
            return np.zeros(0, np.int64)
        path = self.mask_dir / f"{scene}.txt"
        if not path.is_file():
            path = self.mask_dir / scene / RELEASE_MASK
        if not path.is_file():  # the toolkit reads it for every scene
            raise SceneError(scene, path, "evaluation vertex mask not found")
        data = path.read_bytes()
        idx = parse_int_lines(data, scene, str(path)) if data.strip() else np.zeros(0, np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= num_vertices):
            raise SceneError(scene, path, f"vertex index outside 0..{num_vertices - 1}")
        return idx


def kept_vertices(num_vertices: int, excluded: np.ndarray) -> np.ndarray:
    keep = np.ones(num_vertices, dtype=bool)
    keep[excluded] = False
    return keep


def restrict_masks(masks: SparseMasks, keep: np.ndarray) -> SparseMasks:
    """The masks on the kept vertices only, renumbered 0..kept-1."""
    new_index = np.cumsum(keep) - 1
    inside = keep[masks.indices]
    rows = masks.rows()[inside]
    sizes = np.bincount(rows, minlength=masks.shape[0])
    return SparseMasks(new_index[masks.indices[inside]], np.concatenate(([0], np.cumsum(sizes))), int(keep.sum()))


def plus_scene_gt(gt_dir: str | Path, scene: str, num_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept vertices, semantic GT per vertex) of a scene of a preprocessed ScanNet++ folder."""
    gt = PlusGt.of_preprocessed(gt_dir)
    path = gt.semantic_dir / f"{scene}.txt"
    if not path.is_file():
        raise SceneError(scene, path, "semantic ground truth file not found")
    semantic = parse_int_lines(path.read_bytes(), scene, str(path))
    if len(semantic) != num_vertices:
        raise SceneError(scene, path, f"{len(semantic)} lines, but the instance GT has {num_vertices}")
    return kept_vertices(num_vertices, gt.excluded(scene, num_vertices)), semantic


def read_label_columns(data: bytes, scene: str, path: str) -> np.ndarray:
    """Lines of 1 or k comma-separated integers -> (N, k) int64; every line the same k."""
    body = data.rstrip(b"\n")
    lines = body.split(b"\n")
    commas = np.char.count(np.array(lines, dtype=bytes), b",")
    if (commas != commas[0]).any():
        i = int(np.flatnonzero(commas != commas[0])[0])
        raise SceneError(scene, path, f"line {i + 1}: {commas[i] + 1} labels, line 1 has {commas[0] + 1}")
    values = parse_int_lines(body.replace(b",", b"\n"), scene, path)
    return values.reshape(len(lines), int(commas[0]) + 1)


def topk_confusion(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C+1) counts of the toolkit's top-k rule (the last column stays 0: ids are checked)."""
    pred, gt = np.atleast_2d(pred.T).T, np.atleast_2d(gt.T).T
    valid_gt = (gt >= 0) & (gt < num_classes)
    rows = valid_gt.any(axis=1)
    pred, gt, valid_gt = pred[rows], gt[rows], valid_gt[rows]
    # hit[i, j, l]: prediction j of vertex i equals its GT label l
    hit = (pred[:, :, None] == gt[:, None, :]) & valid_gt[:, None, :]
    any_hit = hit.any(axis=2)
    first_pred = np.argmax(any_hit, axis=1)
    matched = any_hit.any(axis=1)
    first_gt = np.argmax(hit[np.arange(len(pred)), first_pred], axis=1)
    r = np.arange(len(pred))
    p_final = np.where(matched, pred[r, first_pred], pred[:, 0])
    g_final = np.where(matched, gt[r, first_gt], gt[:, 0])
    if len(g_final) and (g_final.min() < 0 or g_final.max() >= num_classes):  # the toolkit asserts too
        raise ValueError("a vertex with a valid GT label must have a valid first GT label")
    flat = np.bincount(g_final * (num_classes + 1) + p_final, minlength=num_classes * (num_classes + 1))
    return flat.reshape(num_classes, num_classes + 1)


def _instance_scene(source: SubmissionSource, scene: str, gt_path: Path, gt: PlusGt, min_region_size: int,
                    label_set: LabelSet) -> InstanceEvaluator:
    data = gt_path.read_bytes()
    gt_ids = parse_int_lines(data, scene, str(gt_path))
    if (gt_ids < 0).any():
        raise SceneError(scene, gt_path, "negative GT value")
    p = read_instance_scene(source, scene, len(gt_ids), skip_invalid_labels=True, label_set=label_set)
    keep = kept_vertices(len(gt_ids), gt.excluded(scene, len(gt_ids)))
    ev = InstanceEvaluator(min_region_size, label_set)
    ev.add(scene, gt_ids[keep], restrict_masks(p.masks, keep), p.labels, p.scores)
    return ev


def evaluate_plus_instance(pred: str | Path, gt: PlusGt, label_set: LabelSet, *, require_all: bool = False,
                           min_region_size: int = MIN_REGION_SIZE, workers: int | None = None
                           ) -> tuple[InstanceResult, list[str]]:
    """AP of a ScanNet++ instance submission; also the GT scenes it has no predictions for."""
    ev = InstanceEvaluator(min_region_size, label_set)
    missing = score_scenes(pred, gt_files(gt.instance_dir), require_all, _instance_scene,
                           (gt, min_region_size, label_set), ev.merge, workers)
    return ev.result(), missing


def _semantic_scene(source: SubmissionSource, scene: str, gt_path: Path, gt: PlusGt, num_classes: int,
                    top_k: tuple[int, ...]) -> dict[int, np.ndarray]:
    labels = read_label_columns(gt_path.read_bytes(), scene, str(gt_path))
    name = f"{scene}.txt"
    if not source.exists(name):
        raise SceneError(scene, source.display(name), "prediction file not found")
    pred = read_label_columns(source.read(name), scene, source.display(name))
    if len(pred) != len(labels):
        raise SceneError(scene, source.display(name), f"{len(pred)} lines, but the scene has {len(labels)} vertices")
    if pred.min() < 0 or pred.max() >= num_classes:
        raise SceneError(scene, source.display(name), f"labels must be class ids 0..{num_classes - 1}")
    keep = kept_vertices(len(labels), gt.excluded(scene, len(labels)))
    pred, labels = pred[keep], labels[keep]
    if pred.shape[1] == 1:  # the toolkit repeats a single prediction k times
        pred = np.repeat(pred, max(top_k), axis=1)
    elif pred.shape[1] != max(top_k):
        raise SceneError(scene, source.display(name), f"{pred.shape[1]} labels per line; 1 or {max(top_k)}")
    return {k: topk_confusion(pred[:, :k], labels, num_classes) for k in top_k}


def evaluate_plus_semantic(pred: str | Path, gt: PlusGt, label_set: LabelSet, *, require_all: bool = False,
                           top_k: tuple[int, ...] = TOP_K, workers: int | None = None
                           ) -> tuple[dict[int, SemanticResult], list[str]]:
    """Top-k IoU of a ScanNet++ semantic submission (k -> result); and GT scenes without predictions."""
    if gt.semantic_dir is None:
        raise ValueError("ScanNet++ semantic scoring needs the semantic GT folder")
    c = label_set.num_classes
    total = {k: np.zeros((c, c + 1), np.int64) for k in top_k}
    scored = []

    def merge(confusions: dict[int, np.ndarray]) -> None:
        scored.append(1)
        for k in top_k:
            total[k] += confusions[k]
    missing = score_scenes(pred, gt_files(gt.semantic_dir), require_all, _semantic_scene, (gt, c, tuple(top_k)),
                           merge, workers)
    return {k: SemanticResult(total[k], len(scored), label_set) for k in top_k}, missing
