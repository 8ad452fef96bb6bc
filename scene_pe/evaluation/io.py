"""Read GT txt files and benchmark submissions (folder or zip) for the evaluators.

Thin wrappers around the in-memory API of ``instance.py`` / ``semantic.py``.
Every problem raises ``SceneError`` naming the scene, the file and the line.
The readers accept what the official scripts accept (any integer per mask
line, non-zero = inside; ``int(float(label))``); ``export.validate`` is the
strict checker of the exact format. Unlike the official script, a label
outside the 18 classes is an error here unless ``skip_invalid_labels`` (the
official script silently skips such lines), and two lines naming the same mask
file are an error (the official script silently keeps one of them).
"""

from __future__ import annotations

import posixpath
import warnings
import zipfile
from pathlib import Path
import numpy as np

from scene_pe.evaluation.instance import (MIN_REGION_SIZE, InstanceEvaluator, InstanceResult,
                                          ScenePrediction, instance_class_index)
from scene_pe.evaluation.semantic import SemanticEvaluator, SemanticResult
from scene_pe.util.archive import ArchiveError, open_zip, read_member, unsafe_folder_entries
from scene_pe.util.errors import SceneError

# Result files the official scripts write into the prediction folder: not scenes.
RESULT_FILES = {"semantic_instance_evaluation.txt", "semantic_label_evaluation.txt"}


class SubmissionSource:
    """A submission folder or zip archive, addressed by relative POSIX names."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._zip = None
        if self.path.is_dir():
            links = unsafe_folder_entries(self.path)
            if links:
                raise ArchiveError(self.path, "refused: a symbolic link in the submission", links[0])
            self._names = {p.relative_to(self.path).as_posix()
                           for p in self.path.rglob("*") if p.is_file()}
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            self._zip = open_zip(self.path)  # names, links, sizes checked before any read
            self._names = {n for n in self._zip.namelist() if not n.endswith("/")}
        elif self.path.exists():
            raise ValueError(f"{self.path}: not a folder or a zip archive")
        else:
            raise FileNotFoundError(f"{self.path}: no such submission")

    def __enter__(self) -> "SubmissionSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def names(self) -> set[str]:
        return self._names

    def exists(self, name: str) -> bool:
        return name in self._names

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return read_member(self._zip, name, self.path)
        return (self.path / name).read_bytes()

    def display(self, name: str) -> str:
        """How to name a member in messages."""
        return f"{self.path}:{name}" if self._zip is not None else str(self.path / name)

    def scene_files(self) -> dict[str, str]:
        """scene -> name of its root-level ``<scene>.txt``."""
        return {n[:-4]: n for n in sorted(self._names)
                if "/" not in n and n.endswith(".txt") and n not in RESULT_FILES}


def resolve_mask_path(rel: str) -> str | None:
    """Normalised member name of a mask path from a scene file; None if absolute or outside."""
    if not rel or rel.startswith("/") or "\\" in rel or ":" in rel:
        return None
    norm = posixpath.normpath(rel)
    if norm == "." or norm.startswith("../") or norm == "..":
        return None
    return norm


_PLAIN_CHARS = np.zeros(256, dtype=bool)
_PLAIN_CHARS[list(b"0123456789\n")] = True


def _first_non_integer(lines: np.ndarray) -> int:
    """Index of the first line that is not ``[+-]?[0-9]+`` (vectorised over a bytes array)."""
    lines = np.char.strip(lines)
    width = max(lines.dtype.itemsize, 1)
    chars = np.frombuffer(lines.tobytes(), dtype=np.uint8).reshape(len(lines), width)
    digit = (chars >= 48) & (chars <= 57)
    pad = chars == 0  # numpy pads shorter byte strings with NULs
    minus = np.zeros_like(digit)
    minus[:, 0] = (chars[:, 0] == 45) | (chars[:, 0] == 43)
    ok = np.all(digit | pad | minus, axis=1) & digit.any(axis=1)
    bad = np.flatnonzero(~ok)
    return int(bad[0]) if len(bad) else -1


def parse_int_lines(data: bytes, scene: str, path: str) -> np.ndarray:
    """One integer per line (final newline optional) -> int64 array; errors name the line."""
    if not data.strip():
        raise SceneError(scene, path, "empty file")
    n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    # Fast path (C parser) when the text has only digits and single newlines: then
    # each line is one token, and fromstring parses all of them or stops early.
    if (_PLAIN_CHARS[np.frombuffer(data, dtype=np.uint8)].all() and b"\n\n" not in data
            and not data.startswith(b"\n")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fromstring warns on unparsable text: counted below
            values = np.fromstring(data, dtype=np.int64, sep="\n")
        if len(values) == n_lines:
            return values
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines = lines[:-1]
    arr = np.array(lines, dtype=bytes)
    try:
        return arr.astype(np.int64)  # Python int() rules, as the official load_ids
    except (ValueError, OverflowError):
        i = _first_non_integer(arr)
        if i < 0:
            raise SceneError(scene, path, "a value does not fit in 64 bits") from None
        raise SceneError(scene, path,
                         f"line {i + 1}: {lines[i][:40]!r} is not an integer") from None


def parse_mask(data: bytes, scene: str, path: str) -> np.ndarray:
    """Mask file -> bool per vertex (non-zero = inside), fast for the usual one-digit lines."""
    body = data if data.endswith(b"\n") else data + b"\n"
    if len(body) % 2 == 0 and len(body):
        chars = np.frombuffer(body, dtype=np.uint8).reshape(-1, 2)
        if (chars[:, 1] == 10).all() and ((chars[:, 0] >= 48) & (chars[:, 0] <= 57)).all():
            return chars[:, 0] != 48
    return parse_int_lines(data, scene, path) != 0


def read_gt_file(path: str | Path, scene: str | None = None) -> np.ndarray:
    """GT txt (``nyu40*1000+id`` per vertex, 0 unannotated) -> int64 array."""
    path = Path(path)
    scene = scene or path.stem
    if not path.is_file():
        raise SceneError(scene, path, "ground truth file not found")
    ids = parse_int_lines(path.read_bytes(), scene, str(path))
    if (ids < 0).any():
        i = int(np.flatnonzero(ids < 0)[0])
        raise SceneError(scene, path, f"line {i + 1}: negative GT value {ids[i]}")
    return ids


def gt_files(gt_dir: str | Path) -> dict[str, Path]:
    """scene -> GT txt path of every ``<scene>.txt`` in ``gt_dir``."""
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"{gt_dir}: no such GT folder")
    return {p.stem: p for p in sorted(gt_dir.glob("*.txt"))}


def _decode(data: bytes, scene: str, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SceneError(scene, path, f"not UTF-8 text ({e})") from None


def read_instance_scene(source: SubmissionSource, scene: str, num_vertices: int, *,
                        skip_invalid_labels: bool = False) -> ScenePrediction:
    """Predictions of one scene of an instance submission: masks (K, N) bool, labels, scores."""
    name = f"{scene}.txt"
    path = source.display(name)
    if not source.exists(name):
        raise SceneError(scene, path, "prediction file not found")
    text = _decode(source.read(name), scene, path)
    lines = text.splitlines()  # as the official reader; an empty file = no predictions
    masks, labels, scores, seen = [], [], [], set()
    for i, line in enumerate(lines, start=1):
        parts = line.split(" ")
        if len(parts) != 3:
            raise SceneError(scene, path, f"line {i}: expected '<mask path> <label id> "
                             f"<confidence>' separated by single spaces, got {line[:80]!r}")
        member = resolve_mask_path(parts[0])
        if member is None:
            raise SceneError(scene, path, f"line {i}: mask path {parts[0]!r} must be relative and "
                             "inside the submission")
        try:
            label, conf = int(float(parts[1])), float(parts[2])
        except (ValueError, OverflowError):
            raise SceneError(scene, path, f"line {i}: label {parts[1]!r} or confidence "
                             f"{parts[2]!r} is not a number") from None
        if np.isnan(conf):
            raise SceneError(scene, path, f"line {i}: confidence is NaN")
        if instance_class_index(label) < 0:
            if skip_invalid_labels:
                continue
            raise SceneError(scene, path, f"line {i}: label {label} is not one of the 18 "
                             "instance classes' NYU40 ids")
        if member in seen:
            raise SceneError(scene, path, f"line {i}: mask file {parts[0]} named twice")
        seen.add(member)
        if not source.exists(member):
            raise SceneError(scene, path, f"line {i}: mask file {source.display(member)} not found")
        mask = parse_mask(source.read(member), scene, source.display(member))
        if len(mask) != num_vertices:
            raise SceneError(scene, source.display(member), f"{len(mask)} lines, but the scene has "
                             f"{num_vertices} vertices")
        masks.append(mask)
        labels.append(label)
        scores.append(conf)
    mask_arr = np.stack(masks) if masks else np.zeros((0, num_vertices), dtype=bool)
    return ScenePrediction(mask_arr, np.asarray(labels, np.int64), np.asarray(scores, np.float64))


def read_semantic_scene(source: SubmissionSource, scene: str, num_vertices: int) -> np.ndarray:
    """NYU40 id per vertex of one scene of a semantic submission."""
    name = f"{scene}.txt"
    path = source.display(name)
    if not source.exists(name):
        raise SceneError(scene, path, "prediction file not found")
    labels = parse_int_lines(source.read(name), scene, path)
    if len(labels) != num_vertices:
        raise SceneError(scene, path,
                         f"{len(labels)} lines, but the scene has {num_vertices} vertices")
    return labels


def _scenes_to_score(source: SubmissionSource, gt: dict[str, Path], require_all: bool
                     ) -> tuple[list[str], list[str]]:
    """Submission scenes (each must have GT) and GT scenes missing from the submission."""
    scenes = list(source.scene_files())
    if not scenes:
        raise ValueError(f"{source.path}: no <scene>.txt prediction files at the top level")
    for s in scenes:
        if s not in gt:
            raise SceneError(s, source.display(f"{s}.txt"), "no ground truth file for this scene")
    missing = sorted(set(gt) - set(scenes))
    if require_all and missing:
        raise SceneError(missing[0], source.path, f"no predictions for {len(missing)} GT scenes "
                         f"({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''})")
    return scenes, missing


def evaluate_instance_submission(pred: str | Path, gt_dir: str | Path, *,
                                 require_all: bool = False, skip_invalid_labels: bool = False,
                                 min_region_size: int = MIN_REGION_SIZE
                                 ) -> tuple[InstanceResult, list[str]]:
    """AP of an instance submission; also the GT scenes it has no predictions for."""
    gt = gt_files(gt_dir)
    ev = InstanceEvaluator(min_region_size)
    with SubmissionSource(pred) as source:
        todo, missing = _scenes_to_score(source, gt, require_all)
        for scene in todo:
            gt_ids = read_gt_file(gt[scene], scene)
            p = read_instance_scene(source, scene, len(gt_ids),
                                    skip_invalid_labels=skip_invalid_labels)
            ev.add(scene, gt_ids, p.masks, p.labels, p.scores)
    return ev.result(), missing


def evaluate_semantic_submission(pred: str | Path, gt_dir: str | Path, *,
                                 require_all: bool = False
                                 ) -> tuple[SemanticResult, list[str]]:
    """mIoU of a semantic submission; also the GT scenes it has no predictions for."""
    gt = gt_files(gt_dir)
    ev = SemanticEvaluator()
    with SubmissionSource(pred) as source:
        todo, missing = _scenes_to_score(source, gt, require_all)
        for scene in todo:
            gt_ids = read_gt_file(gt[scene], scene)
            ev.add(scene, gt_ids, read_semantic_scene(source, scene, len(gt_ids)))
    return ev.result(), missing
