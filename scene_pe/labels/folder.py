"""The label set a preprocessed folder was written with (its ``label_set.txt``)."""

from __future__ import annotations

from pathlib import Path

from scene_pe.labels.label_set import LEGACY_LABEL_SET, LabelSet, get_label_set
from scene_pe.util.errors import SceneError
from scene_pe.util.io import write_text_atomic

LABEL_SET_FILE = "label_set.txt"


def stored_label_set(out_dir: str | Path) -> LabelSet | None:
    """The label set a preprocessed folder was written with (None: not written yet)."""
    path = Path(out_dir) / LABEL_SET_FILE
    if not path.is_file():
        return None
    name = path.read_text(encoding="utf-8").strip()
    try:
        return get_label_set(name)
    except ValueError as e:
        raise SceneError("-", path, str(e)) from None


def label_set_of_gt(gt_dir: str | Path, given: str | None) -> LabelSet:
    """The label set to score GT of ``gt_dir`` with: ``given``, else the one its preprocessed
    folder (the parent) records, else the legacy one (folders written before label sets)."""
    if given is not None:
        return get_label_set(given)
    return stored_label_set(Path(gt_dir).parent) or LEGACY_LABEL_SET


def claim_label_set(out_dir: Path, label_set: LabelSet) -> None:
    """Record ``label_set`` for ``out_dir``, or refuse when the folder holds another one."""
    stored = stored_label_set(out_dir)
    if stored is None:
        write_text_atomic(out_dir / LABEL_SET_FILE, label_set.name + "\n")
    elif stored != label_set:
        raise ValueError(f"{out_dir}: preprocessed with label set {stored.name}, not {label_set.name}; "
                         "use another output folder")
