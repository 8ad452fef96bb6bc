"""Run ScanNet's official ``evaluate_semantic_instance.py`` (Python 2) under Python 3, for timing.

The official script is not part of this project: give the path of a copy of
``BenchmarkScripts/3d_evaluation/evaluate_semantic_instance.py`` (its
``util.py`` and ``util_3d.py`` in the folder above, as in the ScanNet
repository, or beside it). It is copied into a temporary folder, converted
with lib2to3 (the Python 2 ``print`` statements), and run in a subprocess
with the numpy aliases it uses (``np.float``, ``np.bool``, removed in numpy
1.24) restored and its unused ``imageio`` import stubbed.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# Executed by the subprocess: aliases and stub, then the converted script as __main__.
_RUNNER = """
import os, runpy, sys, types
import numpy as np
np.float, np.bool, np.int = float, bool, int
sys.modules.setdefault("imageio", types.ModuleType("imageio"))
script = sys.argv[1]
sys.argv = [script] + sys.argv[2:]
runpy.run_path(script, run_name="__main__")
"""


def prepare(official: str | Path, workdir: str | Path) -> Path:
    """Python 3 copy of the official script (and its utils) in ``workdir``; its path."""
    official = Path(official)
    if not official.is_file():
        raise FileNotFoundError(f"{official}: no such file")
    utils = [d for d in (official.parent.parent, official.parent)
             if (d / "util.py").is_file() and (d / "util_3d.py").is_file()]
    if not utils:
        raise FileNotFoundError(f"util.py and util_3d.py not found beside or above {official}")
    # The script puts its parent folder first on sys.path: keep the repository layout.
    root = Path(workdir) / "BenchmarkScripts"
    (root / "3d_evaluation").mkdir(parents=True, exist_ok=True)
    for name in ("util.py", "util_3d.py"):
        shutil.copy(utils[0] / name, root / name)
    script = root / "3d_evaluation" / official.name
    shutil.copy(official, script)
    with open(Path(workdir) / "2to3.log", "w") as log:
        subprocess.run([sys.executable, "-W", "ignore", "-m", "lib2to3", "-w", "-n", str(root)],
                       check=True, stdout=log, stderr=subprocess.STDOUT)
    return script


def run(script: Path, pred_dir: Path, gt_dir: Path, out_file: Path) -> float:
    """Seconds the official script takes on a submission folder (writes its CSV to out_file)."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-W", "ignore", "-c", _RUNNER, str(script),
                    "--pred_path", str(pred_dir), "--gt_path", str(gt_dir),
                    "--output_file", str(out_file)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def read_results(out_file: Path) -> dict[int, tuple[float, float, float]]:
    """NYU40 id -> (AP, AP50, AP25) from the official CSV (str of float64: exact)."""
    with open(out_file) as f:
        return {int(r["class id"]): (float(r["ap"]), float(r["ap50"]), float(r["ap25"]))
                for r in csv.DictReader(f)}


def same_numbers(official: dict, ours) -> bool:
    """Whether every class's AP, AP50 and AP25 are the same float64 (NaN = NaN)."""
    mine = np.array([[a, a50, a25] for a, a50, a25 in zip(ours.ap, ours.ap50, ours.ap25)])
    theirs = np.array([official[int(c)] for c in ours.class_ids])
    return bool(np.array_equal(mine, theirs, equal_nan=True))
