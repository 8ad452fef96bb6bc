"""Coloured PLYs of predictions: instances, semantics (the label set's classes) and uncertainty.

Every writer produces a binary little-endian PLY with per-vertex ``float x, y,
z`` and ``uchar red, green, blue`` and, when faces are given, ``list uchar int
vertex_indices`` triangles, which open3d and MeshLab open. Files are written
atomically (scene_pe.util.io.atomic_open).

Colours:
  instances    golden-ratio hue stepping in HSV (id k -> hue k * 0.618..., with
               saturation / value cycling over 4 levels) so consecutive ids are
               far apart in hue and any id always gets the same colour; ids < 0
               (no instance) are grey.
  semantics    ScanNet's NYU40 palette (the colours of ``_vh_clean_2.labels.ply``);
               ScanNet200: generated colours per class (``class_palette``).
  errors       one colour per error kind of scene_pe.evaluation.errors (the HTML
               viewer's error layer; Okabe-Ito colours, told apart with colour
               blindness), grey where right, light grey where not scored.
  uncertainty  a viridis-like map (dark purple -> yellow, lightness increasing)
               after normalising to [vmin, vmax] (default: the 2nd / 98th
               percentiles, robust to outliers); values outside are clipped,
               non-finite values are grey.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scene_pe.labels.label_set import SCANNET20, LabelSet
from scene_pe.data.scannet_files import NYU40_PALETTE, write_binary_ply

if TYPE_CHECKING:
    from scene_pe.inference.vertices import VertexPrediction

NONE_COLOR = np.array([200, 200, 200], dtype=np.uint8)  # no instance / no value
GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0  # 0.618...: hue step with no short cycles
# Saturation / value levels cycled with the id: a second cue besides hue, so
# ids whose hues land close together (every ~13th id) still differ in shade.
_SATURATION = np.array([0.85, 0.60, 0.95, 0.70])
_VALUE = np.array([0.95, 0.85, 0.70, 1.00])

# Viridis at 10 evenly spaced positions (0, 1/9, ..., 1); linear interpolation
# between them stays within a few levels of the full map.
VIRIDIS_ANCHORS = np.array([
    (68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142),
    (31, 158, 137), (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37),
], dtype=np.float64)

# Per error kind + 1 of scene_pe.evaluation.errors: void, right, missed, false positive, merged, split.
ERROR_COLORS = np.array([(235, 235, 235), (165, 165, 165), (0, 114, 178), (230, 159, 0), (204, 121, 167),
                         (0, 158, 115)], dtype=np.uint8)

_VERTEX_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                          ("red", "u1"), ("green", "u1"), ("blue", "u1")])


# ------------------------------------------------------------------ colours
def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """HSV in [0, 1] (broadcastable arrays) -> (..., 3) float RGB in [0, 1]."""
    h, s, v = np.broadcast_arrays(np.asarray(h, float), np.asarray(s, float), np.asarray(v, float))
    # Closed form per channel n in (5, 3, 1) = (R, G, B): no branching on the sextant.
    k = (np.array([5.0, 3.0, 1.0]) + h[..., None] * 6.0) % 6.0
    ramp = np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return v[..., None] * (1.0 - s[..., None] * ramp)


def instance_colors(instance: np.ndarray) -> np.ndarray:
    """(N,) int instance ids -> (N, 3) uint8; ids < 0 are grey."""
    inst = np.asarray(instance)
    if not np.issubdtype(inst.dtype, np.integer):
        raise ValueError(f"instance ids must be integers, got dtype {inst.dtype}")
    ids = np.maximum(inst, 0).astype(np.int64)
    rgb = hsv_to_rgb((ids * GOLDEN) % 1.0, _SATURATION[ids % 4], _VALUE[(ids // 4) % 4])
    out = np.round(rgb * 255.0).astype(np.uint8)
    out[inst < 0] = NONE_COLOR
    return out


def class_palette(label_set: LabelSet) -> np.ndarray:
    """(C, 3) uint8 colour per class of the label set: ScanNet's NYU40 palette where the ids are
    NYU40 ids, else distinct generated colours (golden-ratio hues) in class order."""
    if label_set.nyu40_ids:
        return NYU40_PALETTE[np.asarray(label_set.ids)]
    return instance_colors(np.arange(label_set.num_classes))


def semantic_colors(ids: np.ndarray, label_set: LabelSet = SCANNET20) -> np.ndarray:
    """(N,) class ids -> (N, 3) uint8 colours (0, unannotated, is black).

    ScanNet v2 (NYU40 ids 0..40): ScanNet's palette for every NYU40 id; other label sets:
    ``class_palette`` for their classes and black for any other id.
    """
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"class ids must be integers, got dtype {ids.dtype}")
    if label_set.nyu40_ids:
        bad = (ids < 0) | (ids >= len(NYU40_PALETTE))
        if bad.any():
            raise ValueError(f"NYU40 ids must be in 0..{len(NYU40_PALETTE) - 1}, got {ids[bad][0]}")
        return NYU40_PALETTE[ids]
    idx = label_set.semantic_index(ids)
    out = np.zeros(ids.shape + (3,), np.uint8)
    out[idx >= 0] = class_palette(label_set)[idx[idx >= 0]]
    return out


def robust_range(values: np.ndarray, low: float = 2.0, high: float = 98.0) -> tuple[float, float]:
    """(low, high) percentiles of the finite values; (0, 1) when there are none."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [low, high])
    return float(lo), float(hi)


def colormap(values: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """(N,) float -> (N, 3) uint8 viridis-like colours; non-finite values are grey.

    ``vmin`` / ``vmax`` default to the 2nd / 98th percentiles; values outside
    are clipped to the ends. With vmax == vmin every value gets the low end.
    """
    vals = np.asarray(values, dtype=np.float64)
    lo, hi = robust_range(vals) if vmin is None or vmax is None else (0.0, 0.0)
    lo = lo if vmin is None else float(vmin)
    hi = hi if vmax is None else float(vmax)
    if hi < lo:
        raise ValueError(f"vmax ({hi}) must be >= vmin ({lo})")
    finite = np.isfinite(vals)
    span = hi - lo
    t = np.clip((np.where(finite, vals, lo) - lo) / span, 0.0, 1.0) if span > 0 else np.zeros_like(vals)
    pos = np.linspace(0.0, 1.0, len(VIRIDIS_ANCHORS))
    rgb = np.stack([np.interp(t, pos, VIRIDIS_ANCHORS[:, c]) for c in range(3)], axis=-1)
    out = np.round(rgb).astype(np.uint8)
    out[~finite] = NONE_COLOR
    return out


# ------------------------------------------------------------------ writers
def write_colored_ply(path: str | os.PathLike, coords: np.ndarray, colors: np.ndarray,
                      faces: np.ndarray | None = None) -> None:
    """Binary little-endian PLY of vertices with uchar RGB, plus triangles if given
    (through ``scannet_files.write_binary_ply``: no per-face Python loop)."""
    coords = np.asarray(coords)
    colors = np.asarray(colors)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(f"{path}: coords must be (N, 3), got {coords.shape}")
    n = len(coords)
    if colors.shape != (n, 3):
        raise ValueError(f"{path}: colors must be ({n}, 3), got {colors.shape}")
    vertex = np.empty(n, dtype=_VERTEX_DTYPE)
    for k, name in enumerate("xyz"):
        vertex[name] = coords[:, k]
    for k, name in enumerate(("red", "green", "blue")):
        vertex[name] = colors[:, k]
    if faces is not None:
        faces = np.asarray(faces)
        if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
            raise ValueError(f"{path}: faces must be (F, 3) integers, got {faces.shape} {faces.dtype}")
        if faces.size and (faces.min() < 0 or faces.max() >= n):
            raise ValueError(f"{path}: face indices must be in 0..{n - 1}, "
                             f"got {faces.min()}..{faces.max()}")
    write_binary_ply(path, vertex, faces)


def _check_length(path, name: str, values: np.ndarray, n: int) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != (n,):
        raise ValueError(f"{path}: {name} must be ({n},) like coords, got {values.shape}")
    return values


def write_instance_ply(path: str | os.PathLike, coords: np.ndarray, faces: np.ndarray | None,
                       instance: np.ndarray) -> None:
    """Vertices coloured by instance id (-1: grey)."""
    inst = _check_length(path, "instance", instance, len(coords))
    write_colored_ply(path, coords, instance_colors(inst), faces)


def write_semantic_ply(path: str | os.PathLike, coords: np.ndarray, faces: np.ndarray | None,
                       ids: np.ndarray, label_set: LabelSet = SCANNET20) -> None:
    """Vertices coloured by class id (``semantic_colors``)."""
    ids = _check_length(path, "ids", ids, len(coords))
    write_colored_ply(path, coords, semantic_colors(ids, label_set), faces)


def write_uncertainty_ply(path: str | os.PathLike, coords: np.ndarray, faces: np.ndarray | None,
                          values: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> None:
    """Vertices coloured by a scalar (viridis-like; see ``colormap``)."""
    vals = _check_length(path, "values", values, len(coords))
    write_colored_ply(path, coords, colormap(vals, vmin, vmax), faces)


def write_prediction_plys(out_dir: str | os.PathLike, coords: np.ndarray, faces: np.ndarray | None,
                          pred: "VertexPrediction", paths: dict[str, Path] | None = None,
                          label_set: LabelSet = SCANNET20) -> dict[str, Path]:
    """``<scene>_instances.ply``, ``_semantic.ply``, ``_uncertainty.ply`` of one prediction
    (``paths``: other file names for the kinds ``instances``, ``semantic``, ``uncertainty``)."""
    out_dir = Path(out_dir)
    paths = paths or {kind: out_dir / f"{pred.scene}_{kind}.ply" for kind in ("instances", "semantic", "uncertainty")}
    write_instance_ply(paths["instances"], coords, faces, pred.instance)
    write_semantic_ply(paths["semantic"], coords, faces, pred.semantic, label_set)
    write_uncertainty_ply(paths["uncertainty"], coords, faces, pred.uncertainty)
    return paths


__all__ = [
    "NONE_COLOR", "ERROR_COLORS", "VIRIDIS_ANCHORS", "hsv_to_rgb", "instance_colors", "semantic_colors", "class_palette", "colormap",
    "robust_range", "write_colored_ply", "write_instance_ply", "write_semantic_ply",
    "write_uncertainty_ply", "write_prediction_plys",
]
