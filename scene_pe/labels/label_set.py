"""Label sets: the classes a benchmark scores, and the maps between its ids and training ids.

A label set names the benchmark ids of its semantic classes (training id = position in
that list), which of them are *stuff* (semantic classes without instances: wall and
floor in both ScanNet benchmarks), the column of ``scannetv2-labels.combined.tsv``
that maps a raw category to a benchmark id, and optional frequency splits.

* ``scannet20``: ScanNet v2's benchmark; ids are NYU40 ids (tsv column ``nyu40id``);
  20 semantic classes, 18 instance classes.
* ``scannet200``: ScanNet200 (tsv column ``id``, raw-category ids up to 1191); 200
  semantic classes, 198 instance classes, head / common / tail splits.
* ``scannetpp``: ScanNet++'s benchmark (``labels/scannetpp.py``); ids are the line indices
  0..C-1 of the release's class list, read from the release at preprocessing time and
  recorded with the preprocessed scenes, so it is not in ``LABEL_SETS``: get it from a
  folder (``labels/folder.py``) or a config (``DataConfig.labels``).

Every other id (and 0, unannotated) maps to ``IGNORE_LABEL``. Code gets its class
count and class lists from a ``LabelSet`` (the config's ``data.label_set``), never
from literals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping

import numpy as np

from scene_pe.labels.scannet200 import SCANNET200_CLASSES

IGNORE_LABEL = -100  # torch.nn.functional.cross_entropy's default ignore_index
NUM_NYU40 = 41  # NYU40 ids 0 (unannotated) .. 40: the labels.ply / palette id space
SCANNETPP_NAME = "scannetpp"  # the label set whose classes come with the data (labels/scannetpp.py)
NYU40_COLUMN = "nyu40id"  # the tsv column of NYU40 ids (labels.ply's, ScanNet v2's benchmark ids)


def map_ids(table: np.ndarray, ids, fill: int) -> np.ndarray:
    """``table[ids]`` for any ints; values outside the table (even beyond int64) map to ``fill``."""
    try:
        a = np.asarray(ids, dtype=np.int64)
    except OverflowError:  # Python ints beyond int64 (a submission's label "1e30"): no class
        big = np.asarray(ids, dtype=object)
        a = np.where((big >= -1) & (big < len(table)), big, -1).astype(np.int64)
    out = np.full(a.shape, fill, dtype=np.int64)
    ok = (a >= 0) & (a < len(table))
    out[ok] = table[a[ok]]
    return out


def index_table(ids, fill: int, size: int | None = None) -> np.ndarray:
    """Lookup table over 0..size-1 (default max id): position of the id in ``ids``, ``fill`` elsewhere."""
    ids = list(ids)
    table = np.full(size if size is not None else (max(ids) + 1 if ids else 1), fill, dtype=np.int64)
    table[ids] = np.arange(len(ids))
    return table


@dataclass(frozen=True)
class LabelSet:
    name: str
    ids: tuple[int, ...]  # benchmark id of each training id 0..C-1
    names: tuple[str, ...]
    stuff_ids: tuple[int, ...]  # semantic classes without instances
    tsv_column: str  # column of scannetv2-labels.combined.tsv giving the benchmark id
    splits: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # split -> benchmark ids

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.names) or len(set(self.ids)) != len(self.ids):
            raise ValueError(f"label set {self.name}: ids and names must be distinct and paired")
        if not set(self.stuff_ids) <= set(self.ids):
            raise ValueError(f"label set {self.name}: stuff ids must be class ids")

    @property
    def num_classes(self) -> int:
        return len(self.ids)

    @property
    def nyu40_ids(self) -> bool:
        """Whether the benchmark ids are NYU40 ids (then labels.ply and ScanNet's palette apply)."""
        return self.tsv_column == NYU40_COLUMN

    @property
    def rle_masks(self) -> bool:
        """Whether its benchmark's instance masks are run-length encoded JSON (ScanNet++), not 0/1 lines."""
        return self.name == SCANNETPP_NAME

    @cached_property
    def instance_ids(self) -> tuple[int, ...]:
        """Benchmark ids of the instance classes (all but stuff), in class order."""
        return tuple(i for i in self.ids if i not in self.stuff_ids)

    @cached_property
    def instance_names(self) -> tuple[str, ...]:
        return tuple(n for i, n in zip(self.ids, self.names) if i not in self.stuff_ids)

    @cached_property
    def class_name(self) -> dict[int, str]:
        """Benchmark id -> class name."""
        return dict(zip(self.ids, self.names))

    @cached_property
    def max_id(self) -> int:
        return max(self.ids)

    @cached_property
    def train_to_id(self) -> np.ndarray:
        """(C,) int64: benchmark id of each training id."""
        return np.asarray(self.ids, dtype=np.int64)

    @cached_property
    def train_is_instance(self) -> np.ndarray:
        """(C,) bool: True for training ids whose class has instances."""
        return np.isin(self.train_to_id, self.instance_ids)

    @cached_property
    def instance_train_ids(self) -> np.ndarray:
        return np.flatnonzero(self.train_is_instance)

    @cached_property
    def _to_instance_index(self) -> np.ndarray:
        return index_table(self.instance_ids, -1, self.max_id + 1)

    @cached_property
    def _to_semantic_index(self) -> np.ndarray:
        return index_table(self.ids, -1)

    def to_train(self, ids) -> np.ndarray:
        """Benchmark ids (any int array) -> training ids, ``IGNORE_LABEL`` for other values."""
        index = self.semantic_index(ids)
        return np.where(index >= 0, index, IGNORE_LABEL)

    def instance_index(self, ids) -> np.ndarray:
        """Index into ``instance_ids`` for each benchmark id, -1 for any other value."""
        return map_ids(self._to_instance_index, ids, -1)

    def semantic_index(self, ids) -> np.ndarray:
        """Index into ``ids`` (= training id) for each benchmark id, -1 for any other value."""
        return map_ids(self._to_semantic_index, ids, -1)

    def split_of_instance_classes(self) -> dict[str, np.ndarray]:
        """Split name -> (instance class indices) of the instance classes in that split."""
        return {s: np.flatnonzero(np.isin(self.instance_ids, members)) for s, members in self.splits.items()}


SCANNET20 = LabelSet(
    name="scannet20",
    ids=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39),
    names=("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window",
           "bookshelf", "picture", "counter", "desk", "curtain", "refrigerator",
           "shower curtain", "toilet", "sink", "bathtub", "otherfurniture"),
    stuff_ids=(1, 2),  # wall, floor
    tsv_column=NYU40_COLUMN,
)

SCANNET200 = LabelSet(
    name="scannet200",
    ids=tuple(r[0] for r in SCANNET200_CLASSES),
    names=tuple(r[1] for r in SCANNET200_CLASSES),
    stuff_ids=(1, 3),  # wall, floor (the benchmark scores instances of the other 198)
    tsv_column="id",
    splits={s: tuple(r[0] for r in SCANNET200_CLASSES if r[2] == s) for s in ("head", "common", "tail")},
)

LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (SCANNET20, SCANNET200)}
LABEL_SET_NAMES = (*LABEL_SETS, SCANNETPP_NAME)
TSV_ID_COLUMNS = tuple(dict.fromkeys(s.tsv_column for s in LABEL_SETS.values()))  # what the tsv reader keeps
LEGACY_LABEL_SET = SCANNET20  # folders and scenes preprocessed before label sets were recorded


def get_label_set(name: str) -> LabelSet:
    """A label set with fixed classes (``scannetpp``'s come from a preprocessed folder or a config)."""
    if name == SCANNETPP_NAME:
        raise ValueError("the scannetpp classes are read from the ScanNet++ release when it is preprocessed; "
                         "take them from the preprocessed folder (label_set_classes.json) or the run's config")
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise ValueError(f"unknown label set {name!r}; known: {', '.join(LABEL_SET_NAMES)}") from None
