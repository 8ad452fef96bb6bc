"""ScanNet++'s benchmark classes, read from a release's ``metadata/semantic_benchmark/`` folder.

The class lists ship with the dataset, not with the toolkit (scannetpp/scannetpp), so they are
read from the user's release when it is preprocessed and recorded in the output folder
(``label_set_classes.json``); training, evaluation and export read them from there (or from
the run's config, which copies them). Files, as the toolkit reads them:

* ``top100.txt``: the semantic classes, one name a line; the benchmark id of a class is its
  line index 0..C-1 (``semantic/transforms/mesh.py`` MapLabelToIndex; eval_instance.py
  ``get_label_info``: ``all_class_ids = range(len(classes))``).
* ``top100_instance.txt``: the instance classes (names, a subset of the semantic ones); the
  other semantic classes are scored for mIoU only.
* ``map_benchmark.csv``: columns ``class, count, semantic_map_to, instance_map_to``; a raw
  label maps through ``semantic_map_to`` (``semantic/prep/map_semantic.py``): an empty cell
  keeps the label, ``None`` drops it, any other value renames it; a raw label missing from
  the csv is dropped. The toolkit also maps instance labels with ``semantic_map_to``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from scene_pe.labels.label_set import SCANNETPP_NAME, LabelSet

CLASSES_FILE = "top100.txt"
INSTANCE_CLASSES_FILE = "top100_instance.txt"
MAPPING_FILE = "map_benchmark.csv"
METADATA_SUBDIR = Path("metadata") / "semantic_benchmark"
RECORD_FILE = "label_set_classes.json"  # written beside label_set.txt in a preprocessed folder
MAPPING_COLUMNS = ("class", "count", "semantic_map_to")
DROP_TARGET = "None"  # a semantic_map_to value that removes the raw label from the benchmark


@dataclass(frozen=True)
class BenchmarkClasses:
    """The benchmark's semantic classes, instance classes and raw-label mapping."""

    classes: tuple[str, ...]
    instance_classes: tuple[str, ...]
    mapping: dict[str, str]  # raw label -> benchmark class name (labels not in it: ignored)

    def __post_init__(self) -> None:
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError("the semantic class list must be non-empty and without repeats")
        unknown = sorted(set(self.instance_classes) - set(self.classes))
        if unknown:
            raise ValueError(f"instance classes not among the semantic classes: {unknown[:5]}")

    def label_set(self) -> LabelSet:
        return scannetpp_label_set(self.classes, self.instance_classes)

    def to_json(self) -> str:
        return json.dumps({"classes": list(self.classes), "instance_classes": list(self.instance_classes),
                           "mapping": self.mapping}, indent=1) + "\n"


def scannetpp_label_set(classes, instance_classes) -> LabelSet:
    """The ``scannetpp`` label set: ids 0..C-1 (line order of top100.txt), stuff = non-instance."""
    classes, instance = tuple(classes), set(instance_classes)
    return LabelSet(name=SCANNETPP_NAME, ids=tuple(range(len(classes))), names=classes,
                    stuff_ids=tuple(i for i, n in enumerate(classes) if n not in instance),
                    tsv_column=SCANNETPP_NAME)


def _name_lines(path: Path) -> tuple[str, ...]:
    """Non-empty lines of a class list (the toolkit's read_txt_list, without blank lines)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read the class list: {e}") from None
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def read_mapping(path: Path) -> dict[str, str]:
    """``map_benchmark.csv`` -> raw label -> benchmark class name (the toolkit's semantic mapping,
    count threshold 0: rows with a count below 0 or none are left out as the toolkit's filter)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in MAPPING_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise ValueError(f"needs columns {', '.join(MAPPING_COLUMNS)}; lacks {missing}")
            mapping: dict[str, str] = {}
            for row in reader:
                try:
                    count = float(row["count"])
                except (TypeError, ValueError):
                    continue  # no count: below any threshold in the toolkit's filter (NaN >= 0 is False)
                if not count >= 0:
                    continue
                raw, target = row["class"] or "", (row["semantic_map_to"] or "").strip()
                if target == DROP_TARGET:
                    continue
                if target:  # as the toolkit's map_classes: a renaming row overrides an earlier row,
                    mapping[raw] = target
                else:  # an empty cell keeps the label unless an earlier row renamed it
                    mapping.setdefault(raw, raw)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{path}: cannot read the mapping: {e}") from None
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return mapping


def read_benchmark_metadata(metadata_dir: str | Path) -> BenchmarkClasses:
    """The classes of a release's ``metadata/semantic_benchmark/`` folder (or the release root)."""
    d = Path(metadata_dir)
    if not (d / CLASSES_FILE).is_file() and (d / METADATA_SUBDIR / CLASSES_FILE).is_file():
        d = d / METADATA_SUBDIR
    for name in (CLASSES_FILE, INSTANCE_CLASSES_FILE, MAPPING_FILE):
        if not (d / name).is_file():
            raise ValueError(f"{d / name}: missing (ScanNet++ ships it in {METADATA_SUBDIR}/)")
    try:
        return BenchmarkClasses(_name_lines(d / CLASSES_FILE), _name_lines(d / INSTANCE_CLASSES_FILE),
                                read_mapping(d / MAPPING_FILE))
    except ValueError as e:
        raise ValueError(f"{d}: {e}") from None


def read_record(path: str | Path) -> BenchmarkClasses:
    """The classes recorded in a preprocessed folder's ``label_set_classes.json``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        mapping = {str(k): str(v) for k, v in dict(data.get("mapping", {})).items()}
        return BenchmarkClasses(tuple(map(str, data["classes"])), tuple(map(str, data["instance_classes"])),
                                mapping)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: cannot read the recorded ScanNet++ classes: {type(e).__name__}: {e}") from None
