"""What a dataset folder holds and what a model was trained on: generated rooms or real scans.

``tools/make_synthetic.py`` (scene_pe/synthetic) writes ``PROVENANCE_NAME`` into the folder it
generates: the generator, its profile and version, the seed. ``tools/preprocess.py`` writes one
into its output folder: the raw folder it read and that folder's generator record (None for
a folder without one: real scans, or rooms generated before the record existed). The trainer
keeps the preprocessed folder's record in every checkpoint (``CHECKPOINT_KEY``), and
``tools/predict.py`` and ``tools/test.py`` say once what the checkpoint rests on
(``describe``), with a warning for a model trained on generated rooms: its figures on them say
little about real scans (``REAL_SCANS``: what the demo model measured on real ones). A
checkpoint written before the record reads as "unknown".
"""

from __future__ import annotations

import json
from pathlib import Path

from scene_pe.util.io import write_text_atomic

PROVENANCE_NAME = "scene_pe_provenance.json"
CHECKPOINT_KEY = "trained_on"
GENERATOR = "scene_pe.synthetic"
# Where a model trained on generated rooms stands on real scans: the demo's config on scene0000_00 as a
# ScanNet folder (issue 32's full demo model, and bench/real_scans.py with a 10-epoch one; the
# table, its commands, machine and date: docs/results.md, "Real scans").
REAL_SCANS = ("on a real ScanNet scan (scene0000_00) demo models reach 18-class AP50 0.01-0.06 and class-agnostic "
              "AP50 0.09-0.22, against 0.7-0.85 on generated rooms (docs/results.md, \"Real scans\")")


class ProvenanceError(ValueError):
    """A provenance file that cannot be read: names the file."""


def read_provenance(folder: str | Path) -> dict | None:
    """The record in ``folder`` (None when it has none)."""
    path = Path(folder) / PROVENANCE_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProvenanceError(f"{path}: not a readable provenance record: {e}") from None
    if not isinstance(record, dict):
        raise ProvenanceError(f"{path}: not a provenance record (a JSON object)")
    return record


def write_provenance(folder: str | Path, record: dict) -> Path:
    path = Path(folder) / PROVENANCE_NAME
    write_text_atomic(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def generated_record(profile: str, version: int, seed: int) -> dict:
    """The record of a folder of generated rooms."""
    return {"dataset": "generated", "generator": GENERATOR, "profile": profile, "generator_version": int(version),
            "seed": int(seed)}


def preprocessed_record(raw_root: str | Path, dataset: str) -> dict:
    """The record of a preprocessed folder made from ``raw_root`` (``dataset``: its layout,
    scannet or scannetpp): the raw folder's generator record, or None."""
    generated = read_provenance(raw_root)
    return {"source": str(raw_root), "layout": dataset,
            "generated": generated if generated and generated.get("dataset") == "generated" else None}


def training_record(data_root: str | Path) -> dict:
    """What a model trained on ``data_root`` (a preprocessed folder) rests on, for its checkpoint."""
    record = read_provenance(data_root)
    return record if record is not None else {"source": str(data_root), "unrecorded": True}


def is_generated(record: dict | None) -> bool:
    return bool(record) and bool(record.get("generated"))


def describe(record: dict | None) -> str:
    """One line: what a checkpoint with this ``CHECKPOINT_KEY`` record (None: absent) was trained on."""
    if not record:
        return "unknown (the checkpoint predates the record of its training data)"
    gen = record.get("generated")
    if gen:
        return (f"generated rooms ({gen.get('generator', '?')} profile {gen.get('profile', '?')}, generator version "
                f"{gen.get('generator_version', '?')}, seed {gen.get('seed', '?')}; {record.get('source', '?')})")
    if record.get("unrecorded"):
        return f"unknown ({record.get('source', '?')} has no {PROVENANCE_NAME}: preprocessed before the record)"
    return (f"{record.get('layout', 'scannet')} data from {record.get('source', '?')} (no generator record: "
            "real scans, or rooms generated before the record existed)")


def checkpoint_notes(record: dict | None) -> list[str]:
    """The lines tools/predict.py and tools/test.py print once for a checkpoint."""
    lines = [f"trained on: {describe(record)}"]
    if is_generated(record):
        lines.append(f"note: this model was trained on generated rooms only, not on ScanNet; {REAL_SCANS}")
    return lines
