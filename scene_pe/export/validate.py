"""Check a benchmark submission (folder or zip) the way the ScanNet server reads it.

Collects every problem (not just the first) as ``"<file>: [line N: ]message"``:
expected scenes present (and no others), archive without a root folder, scene
files with exactly ``<mask path> <label id> <confidence>`` per line (single
spaces, no leading/trailing whitespace, no empty line, no CR), mask paths
relative, in a subfolder, existing and named once, label ids of the label
set's instance classes (ScanNet v2: the 18 NYU40 ids; ScanNet200: the 198 tsv
ids), finite float confidences, and mask files with one ``0`` or ``1`` per
vertex of the scene's ``_vh_clean_2.ply``. A scene file without lines (no
instance found) is valid. Semantic submissions: one class id of the label set
per vertex.

ScanNet++ (``scannetpp``), as its toolkit's ``eval_instance.py`` (``verify_pred_files``,
``read_instance_prediction_file``) reads it: masks are run-length encoded JSON (``evaluation/rle.py``)
of length = the mesh's vertices, label ids any class index 0..C-1 (lines of non-instance
classes are not scored), confidences in [0, 1]; semantic lines hold 1 or 3 comma-separated
class ids (top-3), the same number on every line.
"""

from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
from plyfile import PlyData

from scene_pe.labels.label_set import SCANNET20, LabelSet
from scene_pe.evaluation.io import SubmissionSource, gt_files, resolve_mask_path
from scene_pe.evaluation.rle import rle_indices
from scene_pe.util.errors import SceneError
from scene_pe.util.archive import ArchiveError


def ply_vertex_count(path: str | Path) -> int:
    """Vertex count of a mesh from its PLY (faces memory-mapped, not parsed, when triangles)."""
    try:
        ply = PlyData.read(str(path), known_list_len={"face": {"vertex_indices": 3}})
        return ply["vertex"].count
    except Exception:  # not all triangles, other face layout: plain read
        return PlyData.read(str(path))["vertex"].count


def vertex_counts_from_scannet(root: str | Path, scenes: Iterable[str]) -> dict[str, int]:
    """scene -> vertices of ``scans[_test]/<scene>/<scene>_vh_clean_2.ply`` (ScanNet++:
    ``data/<scene>/scans/mesh_aligned_0.05.ply``); absent if not found."""
    root = Path(root)
    counts = {}
    for s in scenes:
        for ply in (root / "scans_test" / s / f"{s}_vh_clean_2.ply", root / "scans" / s / f"{s}_vh_clean_2.ply",
                    root / "data" / s / "scans" / "mesh_aligned_0.05.ply"):  # data/scannetpp.py's MESH_NAME
            if ply.is_file():
                counts[s] = ply_vertex_count(ply)
                break
    return counts


def vertex_counts_from_gt(gt_dir: str | Path, scenes: Iterable[str] | None = None
                          ) -> dict[str, int]:
    """scene -> line count of its GT txt (one line per vertex)."""
    files = gt_files(gt_dir)
    if scenes is not None:
        files = {s: files[s] for s in scenes if s in files}
    counts = {}
    for s, p in files.items():
        data = p.read_bytes()
        counts[s] = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return counts


def _split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    return lines[:-1] if data.endswith(b"\n") else lines


def _mask_problems(data: bytes, n: int) -> list[str]:
    """Problems of a mask file that must hold n lines of 0 or 1."""
    if not data:
        return [f"empty file, expected {n} lines (one per mesh vertex)"]
    body = data if data.endswith(b"\n") else data + b"\n"
    if len(body) == 2 * n:  # fast path: n lines of one character each
        # As little-endian 16-bit words "0\n" is 0x0A30 and "1\n" 0x0A31: two reductions.
        words = np.frombuffer(body, dtype="<u2")
        if int(words.min()) >= 0x0A30 and int(words.max()) <= 0x0A31:
            return []
    lines = np.array(_split_lines(data), dtype=bytes)
    out = []
    if len(lines) != n:
        out.append(f"{len(lines)} lines, expected {n} (one per mesh vertex)")
    bad = np.flatnonzero(~np.isin(lines, [b"0", b"1"]))
    if len(bad):
        out.append(f"line {bad[0] + 1}: {lines[bad[0]][:40]!r} is not 0 or 1 "
                   f"({len(bad)} such lines)")
    return out


def _rle_problems(data: bytes, n: int) -> list[str]:
    """Problems of a ScanNet++ mask file: RLE JSON over n vertices."""
    try:
        length = rle_indices(data, "-", "-")[1]
    except SceneError as e:
        return [e.message]
    return [] if length == n else [f"'length' {length}, expected {n} (the mesh's vertices)"]


def _label_problem(label: str, conf: str, label_set: LabelSet) -> list[str]:
    """Problems of a scene line's label id and confidence."""
    out = []
    if label_set.rle_masks:  # ScanNet++'s check: any class index, confidence in [0, 1]
        if not re.fullmatch(r"[0-9]+", label) or int(label) >= label_set.num_classes:
            out.append(f"label {label!r} is not a class index 0..{label_set.num_classes - 1} of {label_set.name}")
    elif not re.fullmatch(r"[0-9]+", label) or label_set.instance_index(int(label)) < 0:
        ids = label_set.instance_ids
        shown = f"{ids}" if len(ids) <= 20 else f"({ids[0]}, {ids[1]}, ..., {ids[-1]})"
        out.append(f"label {label!r} is not one of the {len(ids)} instance-class ids of "
                   f"{label_set.name} {shown}")
    try:
        value = float(conf)
        ok = math.isfinite(value) and (not label_set.rle_masks or 0.0 <= value <= 1.0)
    except ValueError:
        ok = False
    if not ok:
        out.append(f"confidence {conf!r} is not a finite float{' in [0, 1]' if label_set.rle_masks else ''}")
    return out


def _line_format_problems(line: str) -> list[str]:
    out = []
    if not line:
        return ["empty line"]
    if line != line.rstrip():
        out.append("trailing whitespace")
    if line != line.lstrip():
        out.append("leading whitespace")
    if "  " in line.strip() or "\t" in line:
        out.append("fields must be separated by single spaces")
    return out


def _check_instance_scene(source: SubmissionSource, name: str, n: int | None,
                          referenced: dict[str, str], problems: list[str], label_set: LabelSet) -> None:
    where = source.display(name)
    try:
        text = source.read(name).decode("utf-8")
    except UnicodeDecodeError:
        problems.append(f"{where}: not UTF-8 text")
        return
    if "\r" in text:
        problems.append(f"{where}: CR characters (Windows line ends); use \\n only")
        text = text.replace("\r", "")
    lines = text.split("\n")
    if text.endswith("\n"):
        lines = lines[:-1]
    if text == "":
        lines = []
    for i, line in enumerate(lines, start=1):
        msgs = _line_format_problems(line)
        parts = line.split()
        if line and len(parts) != 3:
            msgs.append("expected 3 fields '<mask path> <label id> <confidence>', "
                        f"got {len(parts)}")
        if len(parts) == 3:
            path, label, conf = parts
            member = resolve_mask_path(path)
            if member is None:
                msgs.append(f"mask path {path!r} must be relative and inside the submission")
            elif "/" not in member:
                msgs.append(f"mask file {path!r} must be in a subfolder (predicted_masks/)")
            elif not source.exists(member):
                msgs.append(f"mask file {path!r} not found")
            elif member in referenced:
                msgs.append(f"mask file {path!r} already named by {referenced[member]}")
            else:
                referenced[member] = f"{name} line {i}"
                if n is not None:
                    check = _rle_problems if label_set.rle_masks else _mask_problems
                    problems.extend(f"{source.display(member)}: {m}" for m in check(source.read(member), n))
            msgs += _label_problem(label, conf, label_set)
        problems.extend(f"{where}: line {i}: {m}" for m in msgs)


def _check_semantic_scene(source: SubmissionSource, name: str, n: int | None,
                          problems: list[str], label_set: LabelSet) -> None:
    where = source.display(name)
    data = source.read(name)
    if not data:
        problems.append(f"{where}: empty file")
        return
    lines = np.array(_split_lines(data), dtype=bytes)
    if n is not None and len(lines) != n:
        problems.append(f"{where}: {len(lines)} lines, expected {n} (one per mesh vertex)")
    if label_set.rle_masks and b"," in data:  # ScanNet++'s top-3 lines: "a,b,c"
        commas = np.char.count(lines, b",")
        if (commas != commas[0]).any() or commas[0] != 2:
            problems.append(f"{where}: every line must hold 1 or 3 comma-separated class ids, the same number")
            return
        lines = np.array(b"\n".join(lines.tolist()).replace(b",", b"\n").split(b"\n"), dtype=bytes)
    valid = np.array([str(i).encode() for i in label_set.ids])
    bad = np.flatnonzero(~np.isin(lines, valid))
    if len(bad):
        problems.append(f"{where}: line {bad[0] + 1}: {lines[bad[0]][:40]!r} is not one of the "
                        f"{label_set.num_classes} class ids of {label_set.name} ({len(bad)} such lines)")


def _root_folder_problem(source: SubmissionSource) -> str:
    """Why no scene file is at the top level (a zipped folder is the usual cause)."""
    tops = {n.split("/")[0] for n in source.names() if n.count("/") >= 1 and n.endswith(".txt")}
    tops.discard("predicted_masks")
    if tops:
        return (f"{source.path}: no <scene>.txt at the top level; they are inside "
                f"{sorted(tops)[0]}/ (zip the folder's content, not the folder)")
    return f"{source.path}: no <scene>.txt files at the top level"


def validate_submission(submission: str | Path, vertex_counts: Mapping[str, int],
                        expected_scenes: Iterable[str] | None = None, *,
                        task: str = "instance", label_set: LabelSet = SCANNET20) -> list[str]:
    """Every problem of a submission folder or zip; empty list if it is valid.

    ``vertex_counts``: scene -> mesh vertices; ``expected_scenes`` defaults to
    its keys. ``task``: ``"instance"`` or ``"semantic"``; ``label_set``: whose class ids.
    """
    if task not in ("instance", "semantic"):
        raise ValueError(f"task must be 'instance' or 'semantic', not {task!r}")
    try:
        source = SubmissionSource(submission)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        return [str(e)]
    expected = set(vertex_counts if expected_scenes is None else expected_scenes)
    problems: list[str] = []
    referenced: dict[str, str] = {}
    with source:
        scene_files = source.scene_files()
        if not scene_files:
            problems.append(_root_folder_problem(source))
        for s in sorted(expected - set(scene_files)):
            problems.append(f"{source.display(s + '.txt')}: missing (expected scene {s})")
        for scene, name in scene_files.items():
            if scene not in expected:
                problems.append(f"{source.display(name)}: unexpected scene "
                                "(not in the expected list)")
                continue
            n = vertex_counts.get(scene)
            if n is None:
                problems.append(f"{source.display(name)}: vertex count of {scene} unknown "
                                "(mesh or GT not found)")
            try:
                if task == "instance":
                    _check_instance_scene(source, name, n, referenced, problems, label_set)
                else:
                    _check_semantic_scene(source, name, n, problems, label_set)
            except ArchiveError as e:  # a damaged member: a problem of the submission, go on
                problems.append(str(e))
    return problems
