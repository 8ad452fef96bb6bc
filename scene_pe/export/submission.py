"""Write ScanNet benchmark submissions (instance and semantic) and zip them.

Instance submission (one folder)::

    <scene>.txt                      one line per instance:
                                     predicted_masks/<scene>_<k>.txt <class id> <confidence>
    predicted_masks/<scene>_<k>.txt  one line per mesh vertex: 1 inside, 0 outside

Semantic submission (another folder): ``<scene>.txt`` with one class id per
vertex. Class ids are the label set's (NYU40 ids for ScanNet v2, the tsv ``id``
for ScanNet200: the same formats, other ids). The two kinds both use ``<scene>.txt``, so they need separate folders.
The zip holds the folder's content without a root folder.

ScanNet++ (``scannetpp``; its toolkit's ``prepare_semantic_gt.py`` and ``eval_instance.py``):
the same files but class ids 0..C-1 and masks ``predicted_masks/<scene>_<kkk>.json``, each
run-length encoded (``evaluation/rle.py``).

Every file is written atomically (temporary file + rename; no fsync, see
``_write_bytes``), masks before the scene file that names them; the text is
built with numpy, not per line.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from scene_pe.labels.label_set import SCANNET20, LabelSet
from scene_pe.evaluation.rle import rle_bytes
from scene_pe.util.io import atomic_open, int_lines_bytes

MASK_DIR = "predicted_masks"


def mask_bytes(mask: np.ndarray) -> bytes:
    """Bool mask -> b"0\\n1\\n..." (one line per vertex)."""
    # One little-endian 16-bit word per line: "0\n" is 0x0A30, "1\n" 0x0A31.
    words = (np.asarray(mask).ravel() != 0).astype("<u2")
    words += 0x0A30
    return words.tobytes()


def _write_bytes(path: Path, data: bytes) -> None:
    # No fsync: a val/test export has thousands of mask files and fsync costs
    # milliseconds each; a killed process still never leaves a partial file.
    with atomic_open(path, "wb", fsync=False) as f:
        f.write(data)

def _select(labels: np.ndarray, scores: np.ndarray, sizes: np.ndarray,
            score_threshold: float | None, max_instances: int | None, min_vertices: int
            ) -> np.ndarray:
    """Indices of the instances to write, by decreasing confidence."""
    keep = sizes >= min_vertices
    if score_threshold is not None:
        keep &= scores >= score_threshold
    idx = np.flatnonzero(keep)
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    return idx[:max_instances] if max_instances is not None else idx


def _remove_stale_masks(mask_dir: Path, scene: str) -> None:
    """Masks of an earlier export of this scene would otherwise end up in the zip."""
    pattern = re.compile(re.escape(scene) + r"_\d+\.(txt|json)")
    if mask_dir.is_dir():
        for p in mask_dir.iterdir():
            if pattern.fullmatch(p.name):
                p.unlink()


def write_instance_submission(out_dir: str | Path, scene: str, masks, labels, confidences, *,
                              score_threshold: float | None = None,
                              max_instances: int | None = None,
                              min_vertices: int = 1, label_set: LabelSet = SCANNET20) -> int:
    """Write one scene of an instance submission; returns the number of instances written.

    ``masks``: (K, N) bool, or (N,) int instance index per vertex (-1: none);
    ``labels``: (K,) ids of the label set's instance classes; ``confidences``: (K,).
    Keeps instances with at least ``min_vertices`` vertices and a confidence
    >= ``score_threshold``, then the ``max_instances`` most confident.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels, dtype=np.int64).ravel()
    scores = np.asarray(confidences, dtype=np.float64).ravel()
    masks = np.asarray(masks)
    k = len(labels)
    if len(scores) != k:
        raise ValueError(f"{scene}: {k} labels but {len(scores)} confidences")
    bad = labels[label_set.instance_index(labels) < 0]
    if bad.size:
        raise ValueError(f"{scene}: labels {sorted(set(bad.tolist()))} are not instance-class "
                         f"ids of {label_set.name}")
    if not np.isfinite(scores).all():
        raise ValueError(f"{scene}: confidences must be finite")
    if masks.ndim == 2:
        if masks.shape[0] != k:
            raise ValueError(f"{scene}: {masks.shape[0]} masks but {k} labels")
        sizes = np.count_nonzero(masks, axis=1)
    elif masks.ndim == 1:
        if masks.size and masks.max() >= k:
            raise ValueError(f"{scene}: instance index {masks.max()} >= {k} labels")
        sizes = np.bincount(masks[masks >= 0], minlength=k)
    else:
        raise ValueError(f"{scene}: masks must be (K, N) or (N,), got shape {masks.shape}")

    chosen = _select(labels, scores, sizes, score_threshold, max_instances, min_vertices)
    mask_dir = out_dir / MASK_DIR
    mask_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_masks(mask_dir, scene)
    lines = []
    encode, suffix = (rle_bytes, "json") if label_set.rle_masks else (mask_bytes, "txt")
    for j, i in enumerate(chosen):
        name = f"{scene}_{j:03d}.{suffix}" if label_set.rle_masks else f"{scene}_{j}.{suffix}"
        _write_bytes(mask_dir / name, encode(masks[i] if masks.ndim == 2 else masks == i))
        # repr: shortest text that reads back as the same float (ranking unchanged).
        lines.append(f"{MASK_DIR}/{name} {labels[i]} {float(scores[i])!r}\n")
    _write_bytes(out_dir / f"{scene}.txt", "".join(lines).encode())
    return len(chosen)


def write_semantic_submission(out_dir: str | Path, scene: str, labels,
                              label_set: LabelSet = SCANNET20) -> None:
    """Write one scene of a semantic submission: one class id of the label set per vertex."""
    labels = np.asarray(labels, dtype=np.int64).ravel()
    valid = label_set.semantic_index(labels) >= 0
    if not valid.all():
        raise ValueError(f"{scene}: labels {sorted(set(labels[~valid].tolist()))[:10]} are not "
                         f"class ids of {label_set.name} (map training ids with LabelSet.train_to_id)")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    _write_bytes(Path(out_dir) / f"{scene}.txt", int_lines_bytes(labels))


def zip_submission(src_dir: str | Path, zip_path: str | Path, *, compresslevel: int = 1) -> int:
    """Zip the content of ``src_dir`` (no root folder) to ``zip_path``; returns the file count.

    Hidden files (the writers' unfinished temporaries) are left out. The
    archive is written to a temporary file and renamed when complete.
    """
    src_dir, zip_path = Path(src_dir), Path(zip_path)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"{src_dir}: no such folder")
    files = sorted(p for p in src_dir.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(src_dir).parts))
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    if zip_path.resolve().is_relative_to(src_dir.resolve()):
        files = [p for p in files if p.resolve() != zip_path.resolve()]
    with atomic_open(zip_path, "wb") as f:  # the central directory is written before the rename
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as zf:
            for p in files:
                zf.write(p, p.relative_to(src_dir).as_posix())
    return len(files)
