"""Low-level writers of ScanNet v2's raw file formats.

Used by the synthetic generator and by tests that craft (also deliberately bad)
files, so the writers check only what they need to serialise: they write what
they are given. Formats, as in the ScanNet v2 release:

- ``_vh_clean_2.ply``: binary little-endian PLY, ``comment VCGLIB generated``,
  vertex float x,y,z + uchar red,green,blue,alpha, face ``list uchar int vertex_indices``.
- ``_vh_clean_2.labels.ply``: the same but ``comment MLIB generated`` and an extra
  vertex property ``ushort label`` (NYU40 id); colours are the NYU40 palette.
- ``_vh_clean_2.0.010000.segs.json``: ``{"params": {...}, "sceneId": ..., "segIndices": [...]}``,
  one segment id per vertex (the Felzenszwalb segmentator's union-find roots:
  arbitrary, non-contiguous ints).
- ``.aggregation.json``: ``{"sceneId": "scannet.<scene>", "appId": "Aggregator.v2",
  "segGroups": [{"id", "objectId", "segments", "label"}...], "segmentsFile": ...}``.
- ``<scene>.txt``: ``key = value`` lines, keys sorted; ``axisAlignment`` (16 floats,
  row-major 4x4, raw -> aligned) is absent in test scenes.
- ``scannetv2-labels.combined.tsv``: 17 tab-separated columns, CRLF line ends.
- ``scannetv2_{train,val,test}.txt``: one scene name per line.

Every writer is atomic (temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement, PlyListProperty

from scene_pe.util.io import atomic_open, write_lines_atomic, write_text_atomic

MESH_COMMENT = "VCGLIB generated"  # header comment of the release's _vh_clean_2.ply
LABELS_COMMENT = "MLIB generated"  # header comment of the release's _vh_clean_2.labels.ply

# Parameters recorded in the release's segs.json files (values are strings there).
SEGS_PARAMS = {
    "kThresh": "0.0001", "segMinVerts": "20", "minPoints": "750", "maxPoints": "30000",
    "thinThresh": "0.05", "flatThresh": "0.001", "minLength": "0.02", "maxLength": "1",
}
AGGREGATION_APP_ID = "Aggregator.v2"

# Columns of scannetv2-labels.combined.tsv, in order.
TSV_COLUMNS = (
    "id", "raw_category", "category", "count", "nyu40id", "eigen13id", "nyuClass",
    "nyu40class", "eigen13class", "ModelNet40", "ModelNet10", "ShapeNetCore55",
    "synsetoffset", "wnsynsetid", "wnsynsetkey", "mpcat40", "mpcat40index",
)

# ScanNet's NYU40 colour palette (index = NYU40 id, 0 = unannotated): labels.ply colours.
NYU40_PALETTE = np.array([
    (0, 0, 0), (174, 199, 232), (152, 223, 138), (31, 119, 180), (255, 187, 120),
    (188, 189, 34), (140, 86, 75), (255, 152, 150), (214, 39, 40), (197, 176, 213),
    (148, 103, 189), (196, 156, 148), (23, 190, 207), (178, 76, 76), (247, 182, 210),
    (66, 188, 102), (219, 219, 141), (140, 57, 197), (202, 185, 52), (51, 176, 203),
    (200, 54, 131), (92, 193, 61), (78, 71, 183), (172, 114, 82), (255, 127, 14),
    (91, 163, 138), (153, 98, 156), (140, 153, 101), (158, 218, 229), (100, 125, 154),
    (178, 127, 135), (120, 185, 128), (146, 111, 194), (44, 160, 44), (112, 128, 144),
    (96, 207, 209), (227, 119, 194), (213, 92, 176), (94, 106, 211), (82, 84, 163),
    (100, 85, 144),
], dtype=np.uint8)

_VERTEX_FIELDS = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                  ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")]
# Byte layout of one triangle under "list uchar int": a uint8 count then 3 int32.
_FACE_RECORD = np.dtype([("count", "u1"), ("vertex_indices", "<i4", (3,))])


def _vertex_records(vertices: np.ndarray, colors: np.ndarray, extra=()) -> np.ndarray:
    vertices = np.asarray(vertices)
    colors = np.asarray(colors)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be (N, 3), got {vertices.shape}")
    if colors.shape not in ((len(vertices), 3), (len(vertices), 4)):
        raise ValueError(f"colors must be ({len(vertices)}, 4) RGBA or (N, 3) RGB, got {colors.shape}")
    rec = np.empty(len(vertices), dtype=_VERTEX_FIELDS + [(name, t) for name, t, _ in extra])
    for k, name in enumerate("xyz"):
        rec[name] = vertices[:, k]
    for k, name in enumerate(("red", "green", "blue")):
        rec[name] = colors[:, k]
    rec["alpha"] = colors[:, 3] if colors.shape[1] == 4 else 255
    for name, _, values in extra:
        rec[name] = values
    return rec


def write_binary_ply(path: str | os.PathLike, records: np.ndarray, faces: np.ndarray | None,
                     comments: Sequence[str] = ()) -> None:
    """Binary little-endian PLY of vertex ``records`` (+ triangles), written atomically.

    plyfile builds the header; numpy writes the body. plyfile serialises list
    properties one record at a time (seconds for 10^5 faces); all our faces are
    triangles, so the body is the packed record array whose bytes are exactly
    what plyfile would write (a test checks this).
    """
    elements = [PlyElement.describe(records, "vertex")]
    body = [records.tobytes()]
    if faces is not None:
        faces = np.asarray(faces)
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"{path}: faces must be (F, 3), got {faces.shape}")
        elements.append(PlyElement("face", [PlyListProperty("vertex_indices", "uchar", "int")], len(faces)))
        face_rec = np.empty(len(faces), dtype=_FACE_RECORD)
        face_rec["count"] = 3
        face_rec["vertex_indices"] = faces
        body.append(face_rec.tobytes())
    header = PlyData(elements, text=False, byte_order="<", comments=list(comments)).header
    with atomic_open(path, "wb") as f:
        f.write(header.encode("ascii") + b"\n")
        for chunk in body:
            f.write(chunk)


def write_mesh_ply(path: str | os.PathLike, vertices: np.ndarray, colors_rgba: np.ndarray,
                   faces: np.ndarray) -> None:
    """Write ``_vh_clean_2.ply``: float x,y,z + uchar RGBA per vertex, int triangles."""
    write_binary_ply(path, _vertex_records(vertices, colors_rgba), faces, [MESH_COMMENT])


def write_labels_ply(path: str | os.PathLike, vertices: np.ndarray, colors_rgba: np.ndarray,
                     faces: np.ndarray, nyu40: np.ndarray) -> None:
    """Write ``_vh_clean_2.labels.ply``: as the mesh plus ``ushort label`` (NYU40 id)."""
    nyu40 = np.asarray(nyu40)
    if nyu40.shape != (len(vertices),):
        raise ValueError(f"nyu40 must be ({len(vertices)},), got {nyu40.shape}")
    if nyu40.size and (nyu40.min() < 0 or nyu40.max() > np.iinfo(np.uint16).max):
        raise ValueError("nyu40 labels must fit in an unsigned 16-bit int")
    rec = _vertex_records(vertices, colors_rgba, extra=[("label", "<u2", nyu40)])
    write_binary_ply(path, rec, faces, [LABELS_COMMENT])


def _write_json(path: str | os.PathLike, obj: object, indent: str | None) -> None:
    separators = (",", ":") if indent is None else (",", ": ")
    write_text_atomic(path, json.dumps(obj, indent=indent, separators=separators))


def segs_file_name(scene_id: str) -> str:
    """``<scene>_vh_clean_2.0.010000.segs.json``."""
    return f"{scene_id}_vh_clean_2.0.010000.segs.json"


def write_segs_json(path: str | os.PathLike, scene_id: str, seg_indices: Sequence[int] | np.ndarray,
                    params: Mapping | None = None, mesh_name: str | None = None) -> None:
    """Write a segs.json: ``params``, ``sceneId`` (``<scene>_vh_clean_2``, or ``mesh_name``), ``segIndices``."""
    obj = {"params": dict(SEGS_PARAMS if params is None else params),
           "sceneId": mesh_name or f"{scene_id}_vh_clean_2",
           "segIndices": np.asarray(seg_indices).astype(np.int64).tolist()}
    _write_json(path, obj, indent=None)


def write_aggregation_json(path: str | os.PathLike, scene_id: str, seg_groups: Sequence[Mapping]) -> None:
    """Write an aggregation.json; ``seg_groups`` items hold id, objectId, segments, label."""
    groups = [{"id": int(g["id"]), "objectId": int(g["objectId"]),
               "segments": [int(s) for s in g["segments"]], "label": str(g["label"])}
              for g in seg_groups]
    obj = {"sceneId": f"scannet.{scene_id}", "appId": AGGREGATION_APP_ID, "segGroups": groups,
           "segmentsFile": f"scannet.{segs_file_name(scene_id)}"}
    _write_json(path, obj, indent="\t")


def format_matrix(matrix: np.ndarray) -> str:
    """The numbers row-major, ``%f`` like the release (e.g. ``0.945519 ... 1.000000``).

    Any count is written (a 4x4 gives the release's 16), so tests can craft bad files.
    """
    return " ".join(f"{v:f}" for v in np.asarray(matrix, dtype=np.float64).ravel())


# Capture metadata of the release's scene .txt (ScanNet's iPad + Structure sensor rig).
DEFAULT_META = {
    "colorHeight": "968", "colorWidth": "1296", "depthHeight": "480", "depthWidth": "640",
    "fx_color": "1170.187988", "fy_color": "1170.187988", "mx_color": "647.750000",
    "my_color": "483.750000", "fx_depth": "571.623718", "fy_depth": "571.623718",
    "mx_depth": "319.500000", "my_depth": "239.500000",
    "colorToDepthExtrinsics": format_matrix(np.eye(4)),
    "numColorFrames": "1000", "numDepthFrames": "1000", "numIMUmeasurements": "2000",
    "sceneType": "Misc.",
}


def write_meta_txt(path: str | os.PathLike, axis_alignment: np.ndarray | None,
                   **fields: object) -> None:
    """Write ``<scene>.txt``: ``key = value`` lines in sorted key order.

    ``axis_alignment`` None leaves out the ``axisAlignment`` line (as in test
    scenes); ``fields`` override or add keys of ``DEFAULT_META``.
    """
    meta = dict(DEFAULT_META)
    meta.update({k: str(v) for k, v in fields.items()})
    if axis_alignment is not None:
        meta["axisAlignment"] = format_matrix(axis_alignment)
    write_text_atomic(path, "".join(f"{k} = {meta[k]}\n" for k in sorted(meta)))


def write_labels_tsv(path: str | os.PathLike, rows: Sequence[Mapping[str, object] | Sequence[object]]) -> None:
    """Write ``scannetv2-labels.combined.tsv``: the 17-column header, then ``rows``.

    A row is a mapping column -> value (missing columns left empty) or a
    sequence of all 17 values. Lines end in CRLF, as in the release.
    """
    lines = ["\t".join(TSV_COLUMNS)]
    for row in rows:
        if isinstance(row, Mapping):
            unknown = set(row) - set(TSV_COLUMNS)
            if unknown:
                raise ValueError(f"unknown tsv columns {sorted(unknown)}")
            values = [row.get(c, "") for c in TSV_COLUMNS]
        else:
            values = list(row)
            if len(values) != len(TSV_COLUMNS):
                raise ValueError(f"a tsv row needs {len(TSV_COLUMNS)} values, got {len(values)}")
        lines.append("\t".join(str(v) for v in values))
    with atomic_open(path, "wb") as f:
        f.write(("\r\n".join(lines) + "\r\n").encode("utf-8"))


def write_split_list(path: str | os.PathLike, scenes: Sequence[str]) -> None:
    """Write a split list (``scannetv2_train.txt`` ...): one scene name per line."""
    write_lines_atomic(path, list(scenes))


def scene_file_paths(scene_dir: str | os.PathLike, scene_id: str) -> dict[str, Path]:
    """The release's file names of one scene folder, keyed mesh/labels/segs/aggregation/meta."""
    d = Path(scene_dir)
    return {"mesh": d / f"{scene_id}_vh_clean_2.ply",
            "labels": d / f"{scene_id}_vh_clean_2.labels.ply",
            "segs": d / segs_file_name(scene_id),
            "aggregation": d / f"{scene_id}.aggregation.json",
            "meta": d / f"{scene_id}.txt"}
