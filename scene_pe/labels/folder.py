"""The label set a preprocessed folder was written with (its ``label_set.txt``)."""

from __future__ import annotations

from pathlib import Path

from scene_pe.labels.label_set import LEGACY_LABEL_SET, SCANNETPP_NAME, LabelSet, get_label_set
from scene_pe.labels.scannetpp import RECORD_FILE, BenchmarkClasses, read_record
from scene_pe.util.errors import SceneError
from scene_pe.util.io import write_text_atomic

LABEL_SET_FILE = "label_set.txt"


def stored_label_set(out_dir: str | Path) -> LabelSet | None:
    """The label set a preprocessed folder was written with (None: not written yet).

    ``scannetpp``'s classes are those recorded beside it (``label_set_classes.json``)."""
    path = Path(out_dir) / LABEL_SET_FILE
    if not path.is_file():
        return None
    name = path.read_text(encoding="utf-8").strip()
    try:
        if name == SCANNETPP_NAME:
            return read_record(Path(out_dir) / RECORD_FILE).label_set()
        return get_label_set(name)
    except ValueError as e:
        raise SceneError("-", path, str(e)) from None


def stored_classes(out_dir: str | Path) -> BenchmarkClasses | None:
    """The ScanNet++ classes recorded in a preprocessed folder (None: another label set or none)."""
    path = Path(out_dir) / RECORD_FILE
    return read_record(path) if path.is_file() else None


def label_set_of_gt(gt_dir: str | Path, given: str | None) -> LabelSet:
    """The label set to score GT of ``gt_dir`` with: ``given``, else the one its preprocessed
    folder (the parent) records, else the legacy one (folders written before label sets).
    ``scannetpp`` is always the folder's (its classes are recorded there)."""
    if given is not None and given != SCANNETPP_NAME:
        return get_label_set(given)
    stored = stored_label_set(Path(gt_dir).parent)
    if given == SCANNETPP_NAME and (stored is None or stored.name != SCANNETPP_NAME):
        raise ValueError(f"{Path(gt_dir).parent}: no recorded ScanNet++ classes ({RECORD_FILE}); "
                         "give the GT folder of a folder preprocessed with --dataset scannetpp")
    return stored or LEGACY_LABEL_SET


def claim_label_set(out_dir: Path, label_set: LabelSet, classes: BenchmarkClasses | None = None) -> None:
    """Record ``label_set`` (and ScanNet++'s ``classes``) for ``out_dir``, or refuse when the
    folder holds another one (other ScanNet++ classes included)."""
    if (label_set.name == SCANNETPP_NAME) != (classes is not None):
        raise ValueError("the scannetpp label set is recorded with its classes (and only it)")
    stored = stored_label_set(out_dir)
    if stored is None:
        if classes is not None:
            write_text_atomic(out_dir / RECORD_FILE, classes.to_json())
        write_text_atomic(out_dir / LABEL_SET_FILE, label_set.name + "\n")
    elif stored != label_set or (classes is not None and stored_classes(out_dir) != classes):
        raise ValueError(f"{out_dir}: preprocessed with label set {stored.name}"
                         f"{' (other classes or mapping)' if stored.name == label_set.name else ''}, "
                         f"not {label_set.name}; use another output folder")
