"""Where the real ScanNet scans are (../shared/real_scans by default) and which files each has.

The scans are never part of the repository (their terms: docs/results.md, "Real scans"); the
bench scripts read them when present and say so, with exit status 3, when not.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "real_scans"
MISSING_STATUS = 3


def scannet_root(folder: Path | None) -> Path:
    """The ScanNet-layout root (scans/, the label map) inside ``folder`` (or ``folder`` itself)."""
    folder = Path(folder) if folder is not None else DEFAULT
    for root in (folder / "scannet", folder):
        if (root / "scans").is_dir():
            return root
    given = "the default folder" if folder == DEFAULT else "the folder given"
    raise FileNotFoundError(f"no real scans: {given} {folder} holds no scans/ folder (ScanNet's layout: "
                            "scans/<scene>/<scene>_vh_clean_2.ply ...); pass the folder as an argument")


def scene_dirs(root: Path) -> list[Path]:
    dirs = sorted(d for d in (root / "scans").iterdir() if d.is_dir())
    if not dirs:
        raise FileNotFoundError(f"no real scans: {root / 'scans'} is empty")
    return dirs


def find_or_exit(folder: Path | None) -> tuple[Path, list[Path]]:
    """(ScanNet root, scene folders), or a message on stderr and exit status MISSING_STATUS."""
    try:
        root = scannet_root(folder)
        return root, scene_dirs(root)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(MISSING_STATUS)
