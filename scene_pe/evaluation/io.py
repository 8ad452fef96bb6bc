"""Read GT txt files and benchmark submissions (folder or zip) for the evaluators.

Thin wrappers around the in-memory API of ``instance.py`` / ``semantic.py``.
Every problem raises ``SceneError`` naming the scene, the file and the line.
The readers accept what the official scripts accept (any integer per mask
line, non-zero = inside; ``int(float(label))``); ``export.validate`` is the
strict checker of the exact format. Unlike the official script, a label
outside the label set's instance classes is an error here unless ``skip_invalid_labels`` (the
official script silently skips such lines), and two lines naming the same mask
file are an error (the official script silently keeps one of them).
"""

from __future__ import annotations

import os
import posixpath
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from scene_pe.labels.label_set import SCANNET20, LabelSet
from scene_pe.evaluation.instance import InstanceEvaluator, InstanceResult
from scene_pe.evaluation.masks import SparseMasks
from scene_pe.evaluation.matching import MIN_REGION_SIZE, ScenePrediction
from scene_pe.evaluation.parallel import map_scenes
from scene_pe.evaluation.rle import rle_indices
from scene_pe.evaluation.semantic import GtFormat, SemanticEvaluator, SemanticResult
from scene_pe.util.archive import folder_files, open_zip, read_member
from scene_pe.util.errors import SceneError

# Result files the official scripts write into the prediction folder: not scenes.
RESULT_FILES = {"semantic_instance_evaluation.txt", "semantic_label_evaluation.txt"}


class SubmissionSource:
    """A submission folder or zip archive, addressed by relative POSIX names."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._zip = None
        if self.path.is_dir():
            self._names = folder_files(self.path)  # a symbolic link in it is refused
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            self._zip = open_zip(self.path)  # names, links, sizes checked before any read
            self._names = {n for n in self._zip.namelist() if not n.endswith("/")}
        elif self.path.exists():
            raise ValueError(f"{self.path}: not a folder or a zip archive")
        else:
            raise FileNotFoundError(f"{self.path}: no such submission")

    @classmethod
    def from_listing(cls, path: str | Path, names: set[str]) -> "SubmissionSource":
        """The same submission opened again (in a worker process) without listing it again."""
        source = cls.__new__(cls)
        source.path, source._names, source._zip = Path(path), names, None
        if not source.path.is_dir():  # checked by open_zip in the process that listed it
            source._zip = zipfile.ZipFile(source.path)
        return source

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
            return read_member(self._zip, name, self.path)  # sizes checked as it inflates
        with open(os.path.join(self.path, name), "rb") as f:  # pathlib: 3x the time of the read
            return f.read()

    def display(self, name: str) -> str:
        """How to name a member in messages."""
        return f"{self.path}:{name}" if self._zip is not None else os.path.join(self.path, name)

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


def _plain_line_count(data: bytes) -> int:
    """Lines of ``data`` if it has only digits and single newlines and starts with a digit;
    else -1. (Counts on a byte array: ``bytes.count`` and ``in`` take 5x longer.)"""
    chars = np.frombuffer(data, dtype=np.uint8)
    newline = chars == ord("\n")
    n_newlines = np.count_nonzero(newline)
    if (int(chars.max()) > ord("9") or np.count_nonzero(chars < ord("0")) != n_newlines
            or newline[0] or (newline[1:] & newline[:-1]).any()):
        return -1
    return n_newlines + (0 if newline[-1] else 1)


def parse_int_lines(data: bytes, scene: str, path: str) -> np.ndarray:
    """One integer per line (final newline optional) -> int64 array; errors name the line."""
    if not data.strip():
        raise SceneError(scene, path, "empty file")
    # Fast path (C parser) when the text has only digits and single newlines: then
    # each line is one token, and fromstring parses all of them or stops early.
    n_lines = _plain_line_count(data)
    if n_lines > 0:
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


def mask_indices(data: bytes, scene: str, path: str) -> tuple[np.ndarray, int]:
    """Mask file -> (sorted indices of the non-zero lines, number of lines).

    Fast path for the usual one-digit lines: read as little-endian 16-bit
    words, each line is one word ``0x0A30 + digit``, so two reductions check
    the layout and one comparison finds the vertices inside.
    """
    body = data if data.endswith(b"\n") else data + b"\n"
    if len(body) % 2 == 0 and len(body):
        words = np.frombuffer(body, dtype="<u2")
        if int(words.min()) >= 0x0A30 and int(words.max()) <= 0x0A39:
            return np.flatnonzero(words != 0x0A30), len(words)
    mask = parse_int_lines(data, scene, path) != 0
    return np.flatnonzero(mask), len(mask)


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
                        skip_invalid_labels: bool = False, label_set: LabelSet = SCANNET20) -> ScenePrediction:
    """Predictions of one scene of an instance submission: masks (``SparseMasks``), labels, scores."""
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
        if label_set.instance_index(label) < 0:
            if skip_invalid_labels:
                continue
            raise SceneError(scene, path, f"line {i}: label {label} is not one of the "
                             f"{len(label_set.instance_ids)} instance class ids of {label_set.name}")
        if member in seen:
            raise SceneError(scene, path, f"line {i}: mask file {parts[0]} named twice")
        seen.add(member)
        if not source.exists(member):
            raise SceneError(scene, path, f"line {i}: mask file {source.display(member)} not found")
        read_mask = rle_indices if label_set.rle_masks else mask_indices  # ScanNet++: RLE JSON
        inside, n_lines = read_mask(source.read(member), scene, source.display(member))
        if n_lines != num_vertices:
            what = f"'length' {n_lines}" if label_set.rle_masks else f"{n_lines} lines"
            raise SceneError(scene, source.display(member), f"{what}, but the scene has {num_vertices} vertices")
        masks.append(inside)
        labels.append(label)
        scores.append(conf)
    return ScenePrediction(SparseMasks.of(masks, num_vertices), np.asarray(labels, np.int64),
                           np.asarray(scores, np.float64))


def read_semantic_scene(source: SubmissionSource, scene: str, num_vertices: int) -> np.ndarray:
    """Class id per vertex of one scene of a semantic submission."""
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


def score_scenes(pred: str | Path, gt: dict[str, Path], require_all: bool, fn: Callable, args: tuple,
                 merge: Callable, workers: int | None) -> list[str]:
    """``merge(fn(source, scene, gt_path, *args))`` for each scene of the submission ``pred`` (in
    ``workers`` processes); returns the GT scenes it has no predictions for."""
    with SubmissionSource(pred) as source:
        todo, missing = _scenes_to_score(source, gt, require_all)
        for result in map_scenes(fn, source, [(s, (gt[s], *args)) for s in todo], workers):
            merge(result)
    return missing


def _instance_scene(source: SubmissionSource, scene: str, gt_path: Path,
                    skip_invalid_labels: bool, min_region_size: int, label_set: LabelSet) -> InstanceEvaluator:
    """One scene read and matched (in a worker process): an evaluator holding just it."""
    gt_ids = read_gt_file(gt_path, scene)
    p = read_instance_scene(source, scene, len(gt_ids), skip_invalid_labels=skip_invalid_labels,
                            label_set=label_set)
    ev = InstanceEvaluator(min_region_size, label_set)
    ev.add(scene, gt_ids, p.masks, p.labels, p.scores)
    return ev


def _semantic_scene(source: SubmissionSource, scene: str, gt_path: Path, label_set: LabelSet,
                    gt_format: GtFormat) -> SemanticEvaluator:
    gt_ids = read_gt_file(gt_path, scene)
    ev = SemanticEvaluator(label_set, gt_format)
    ev.add(scene, gt_ids, read_semantic_scene(source, scene, len(gt_ids)))
    return ev


def evaluate_instance_submission(pred: str | Path, gt_dir: str | Path, *,
                                 require_all: bool = False, skip_invalid_labels: bool = False,
                                 min_region_size: int = MIN_REGION_SIZE, label_set: LabelSet = SCANNET20,
                                 workers: int | None = None
                                 ) -> tuple[InstanceResult, list[str]]:
    """AP of an instance submission; also the GT scenes it has no predictions for.

    ``workers``: processes reading the scenes (default: every core; 1: this process).
    """
    ev = InstanceEvaluator(min_region_size, label_set)
    missing = score_scenes(pred, gt_files(gt_dir), require_all, _instance_scene,
                           (skip_invalid_labels, min_region_size, label_set), ev.merge, workers)
    return ev.result(), missing


def evaluate_semantic_submission(pred: str | Path, gt_dir: str | Path, *,
                                 require_all: bool = False, label_set: LabelSet = SCANNET20,
                                 gt_format: GtFormat = "instance", workers: int | None = None
                                 ) -> tuple[SemanticResult, list[str]]:
    """mIoU of a semantic submission; also the GT scenes it has no predictions for.

    ``workers``: processes reading the scenes (default: every core; 1: this process).
    """
    ev = SemanticEvaluator(label_set, gt_format)
    missing = score_scenes(pred, gt_files(gt_dir), require_all, _semantic_scene, (label_set, gt_format),
                           ev.merge, workers)
    return ev.result(), missing
