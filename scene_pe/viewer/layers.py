"""What a viewer page shows, as compact arrays: the points drawn and one colour layer each.

Layers (each a per-point value and a palette, so that a value is also what the
page looks up on hover; the input colours are plain RGB):

  input        the scan's own colours (absent for a colourless scan)
  instances    value = instance id + 1 (0: none); the colours of NAME.instances.ply
  classes      value = class index + 1 in the label set (0: another id); its palette
  uncertainty  value = one of 255 levels between the 2nd and 98th percentile
               (scene_pe.viz.robust_range), 255 non-finite; the viridis-like map
  gt           with GT: value = GT instance index + 1, by ascending GT value; a GT
               instance that is its prediction's best match and the other way
               round has that prediction's colour, so right objects keep their
               colour when switching between the two layers
  errors       with GT: error kind + 1 (scene_pe.evaluation.errors)

Budgets: at most ``max_points`` points are drawn, fewer if the page would grow
past ``max_mb``; the points drawn are a uniform random subsample
(scene_pe.predict.render.subsample), ordered by height so that the page's
height cut is a prefix. Coordinates are quantised to 16 bits per axis over the
bounding box (0.15 mm over 10 m). Every figure in the tables (vertex counts,
mean uncertainty, IoU) is over all vertices, not only those drawn.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from scene_pe.labels.label_set import LabelSet
from scene_pe.inference.vertices import VertexPrediction
from scene_pe.evaluation.errors import ERROR_KINDS, VOID, error_kinds, match_instances
from scene_pe.predict.render import subsample
from scene_pe.viz import ERROR_COLORS, NONE_COLOR, class_palette, colormap, instance_colors, robust_range

MAX_POINTS = 300_000
MAX_MB = 32.0
LEVELS = 255  # uncertainty levels; value LEVELS is non-finite
SPACING_SAMPLE = 20_000


@dataclass
class SceneView:
    """One scene's prediction (and GT) as a viewer page shows it."""

    name: str
    xyz: np.ndarray                 # (N, 3) float: the frame shown (z up, metres)
    pred: VertexPrediction
    label_set: LabelSet
    records: list[dict]             # scene_pe.predict.outputs.instance_records (NAME.json's "instances")
    colors: np.ndarray | None = None  # (N, 3) uint8 input colours
    gt: np.ndarray | None = None      # (N,) GT values (class * 1000 + id), evaluation format
    title: str = ""
    uncertainty_definition: str = ""
    notes: list[str] = field(default_factory=list)


def _dtype(top: int) -> str:
    return "u1" if top < 1 << 8 else "u2" if top < 1 << 16 else "u4"


def encode(values: np.ndarray) -> dict:
    """Non-negative integers as little-endian bytes of the smallest unsigned type, base64."""
    values = np.asarray(values)
    dtype = _dtype(int(values.max()) if values.size else 0)
    return {"dtype": dtype, "data": base64.b64encode(values.astype("<" + dtype).tobytes()).decode("ascii")}


def _rgb(palette: np.ndarray) -> list[list[int]]:
    return np.asarray(palette, dtype=np.uint8).tolist()


def _legend(palette: np.ndarray, labels: list[str], counts: np.ndarray) -> list[dict]:
    """Entries of the values present, most vertices first."""
    present = np.flatnonzero(counts)
    present = present[np.argsort(-counts[present], kind="stable")]
    return [{"rgb": _rgb(palette[v]), "label": labels[v], "count": int(counts[v])} for v in present]


def _none(x) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


class _Layers:
    """Per-vertex values of every layer (all N vertices) and what the page says about them."""

    def __init__(self, view: SceneView):
        self.view, self.layers, self.values = view, [], {}
        pred, ls = view.pred, view.label_set
        k = len(pred.labels)
        if view.colors is not None:
            self.layers.append({"key": "input", "label": "input colours", "rgb": None,
                                "note": "the scan's own colours"})
            self.values["input"] = np.asarray(view.colors, dtype=np.uint8)
        self._add("instances", "instances", pred.instance + 1,
                  np.vstack([NONE_COLOR, instance_colors(np.arange(k))]),
                  note=f"{k} predicted instances; hover or click one, or a row of the table")
        cls = ls.semantic_index(pred.semantic) + 1
        pal = np.vstack([[0, 0, 0], class_palette(ls)])
        names = ["other"] + list(ls.names)
        self._add("classes", "classes", cls, pal, labels=names,
                  legend=_legend(pal, names, np.bincount(cls, minlength=len(pal))))
        unc = np.asarray(pred.uncertainty, dtype=np.float64)
        lo, hi = robust_range(unc)
        level = np.clip(np.floor((np.nan_to_num(unc, nan=lo) - lo) / max(hi - lo, 1e-12) * LEVELS), 0, LEVELS - 1)
        level = np.where(np.isfinite(unc), level, LEVELS).astype(np.int64)
        pal = np.vstack([colormap((np.arange(LEVELS) + 0.5) / LEVELS * (hi - lo) + lo, lo, hi), NONE_COLOR])
        self._add("uncertainty", "uncertainty", level, pal,
                  colorbar={"lo": lo, "hi": hi, "definition": view.uncertainty_definition,
                            "rgb": _rgb(pal[np.linspace(0, LEVELS - 1, 16).astype(int)])})
        self.matches = None
        if view.gt is not None:
            self._add_gt(np.asarray(view.gt, dtype=np.int64).ravel())

    def _add(self, key, label, values, palette, legend=None, colorbar=None, note=None, labels=None) -> None:
        self.layers.append({"key": key, "label": label, "palette": _rgb(palette), "legend": legend,
                            "colorbar": colorbar, "note": note, "labels": labels})
        self.values[key] = np.asarray(values, dtype=np.int64)

    def _add_gt(self, gt: np.ndarray) -> None:
        pred, ls = self.view.pred, self.view.label_set
        k = len(pred.labels)
        m = self.matches = match_instances(gt, pred.instance, pred.labels, pred.confidence, ls)
        g = len(m.gt_values)
        index = np.full(len(gt), -1, np.int64)
        if g:
            pos = np.minimum(np.searchsorted(m.gt_values, gt), g - 1)
            index = np.where(m.gt_values[pos] == gt, pos, -1)
        has = m.gt_pred >= 0
        mutual = np.zeros(g, bool)
        mutual[has] = m.pred_gt[m.gt_pred[has]] == np.flatnonzero(has)
        colour_id = np.where(mutual, m.gt_pred, k + np.cumsum(~mutual) - 1)
        self._add("gt", "GT instances", index + 1, np.vstack([NONE_COLOR, instance_colors(colour_id)]),
                  note=f"{g} GT instances; one matched one to one has its prediction's colour")
        kinds = error_kinds(gt, pred.instance, ls) - VOID
        names = ["not scored"] + list(ERROR_KINDS)
        self._add("errors", "errors", kinds, ERROR_COLORS, labels=names,
                  legend=_legend(ERROR_COLORS, names, np.bincount(kinds, minlength=len(ERROR_COLORS))))

    def bytes_per_point(self) -> int:
        """Bytes per drawn point in the page (base64 of the coordinates and every layer)."""
        raw = 6 + sum(3 if key == "input" else int(_dtype(int(v.max(initial=0)))[1])
                      for key, v in self.values.items())
        return -(-raw * 4 // 3)

    def instance_table(self) -> tuple[list[dict], list[dict]]:
        """(predicted instances, GT instances) as the page's tables list them."""
        ls, m = self.view.label_set, self.matches
        rows = [{"id": r["id"], "class": r["class"], "confidence": r["confidence"],
                 "num_vertices": r["num_vertices"], "mean_uncertainty": r["mean_uncertainty"]}
                for r in self.view.records]
        if m is None:
            return rows, []
        for r in rows:
            gi = int(m.pred_gt[r["id"]])
            r["gt"], r["iou"] = (gi, _none(m.pred_iou[r["id"]])) if gi >= 0 else (None, None)
        gts = [{"id": j, "class": ls.class_name.get(int(c), "unknown"), "num_vertices": int(s),
                "pred": int(p) if p >= 0 else None, "iou": _none(iou) if p >= 0 else None}
               for j, (c, s, p, iou) in enumerate(zip(m.gt_class, m.gt_size, m.gt_pred, m.gt_iou))]
        return rows, gts


def point_spacing(xyz: np.ndarray) -> float:
    """Median nearest-neighbour distance of the points drawn (from a sample, scaled as on a surface)."""
    if len(xyz) < 2:
        return 0.01
    sample = xyz[subsample(len(xyz), SPACING_SAMPLE)]
    d = cKDTree(sample).query(sample, k=2)[0][:, 1]
    return float(max(np.median(d) * np.sqrt(len(sample) / len(xyz)), 1e-4))


def page_data(view: SceneView, fixed_bytes: int, max_points: int = MAX_POINTS, max_mb: float = MAX_MB) -> dict:
    """The JSON object a page embeds (``fixed_bytes``: the page without its data)."""
    n = len(view.xyz)
    layers = _Layers(view)
    instances, gt_instances = layers.instance_table()
    meta = len(json.dumps([layers.layers, instances, gt_instances, view.notes]))  # palettes, tables
    by_size = int((max_mb * 1e6 - fixed_bytes - meta - 2000) // layers.bytes_per_point())
    drawn = max(1, min(n, max_points, by_size))
    keep = subsample(n, drawn)
    keep = keep[np.argsort(view.xyz[keep, 2], kind="stable")]  # by height: the height cut is a prefix
    xyz = np.asarray(view.xyz, dtype=np.float64)[keep]
    lo, span = xyz.min(axis=0), np.ptp(xyz, axis=0)
    step = np.where(span > 0, span / 65535.0, 1.0)
    q = np.round((xyz - lo) / step).astype(np.int64)
    for layer in layers.layers:
        v = layers.values[layer["key"]][keep]
        if layer["key"] == "input":
            layer["rgb"] = base64.b64encode(np.ascontiguousarray(v, dtype=np.uint8).tobytes()).decode("ascii")
        else:
            layer["values"] = encode(v)
    why = ("all of them" if drawn == n else
           f"a uniform random subsample: point budget {max_points:,}" if drawn == max_points else
           f"a uniform random subsample: file-size budget {max_mb:g} MB")
    return {"name": view.name, "title": view.title or view.name, "num_vertices": n, "num_drawn": len(keep),
            "budget": f"{len(keep):,} of {n:,} vertices drawn ({why})", "max_points": max_points,
            "max_mb": max_mb, "points": {"q": encode(q.ravel()), "lo": lo.tolist(), "step": step.tolist()},
            "spacing": point_spacing(xyz), "layers": layers.layers, "instances": instances,
            "gt_instances": gt_instances, "has_gt": view.gt is not None, "notes": list(view.notes),
            "uncertainty_definition": view.uncertainty_definition}
