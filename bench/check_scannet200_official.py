#!/usr/bin/env python
"""scene_pe's ScanNet200 evaluation against ScanNet's official scripts, on random submissions.

The official scripts are not part of this project: give ScanNet's ``BenchmarkScripts``
folder (``3d_evaluation/``, ``ScanNet200/``, ``util.py``, ``util_3d.py``). They are
copied into a temporary folder, converted to Python 3 (lib2to3: Python <= 3.12) and
imported here with ScanNet200's classes set into their module globals: instance AP over
the 200 classes minus wall and floor (as the ScanNet200 benchmark scores it), semantic
IoU over all 200; head / common / tail as the NaN-ignoring mean of the official per-class
AP over each split's classes (ScanNet200's splits file). Submissions and GT are drawn by
the test suite's generator (tests/test_eval_instance.py: random_scene) with random
ScanNet200 classes, ids above 1000 included.
  python bench/check_scannet200_official.py --benchmark-scripts PATH/BenchmarkScripts [--compare 100]
Draws until --compare submissions were compared (a draw that crashes the official script is
counted and redrawn); prints the counts and the largest difference; exit 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import subprocess
import sys
import tempfile
import types
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from scene_pe.labels.label_set import SCANNET200  # noqa: E402
from scene_pe.evaluation.io import evaluate_instance_submission, evaluate_semantic_submission  # noqa: E402
from scene_pe.export.submission import write_instance_submission  # noqa: E402
from test_eval_instance import random_scene  # noqa: E402

FILES = ("util.py", "util_3d.py", "3d_evaluation/evaluate_semantic_instance.py",
         "3d_evaluation/evaluate_semantic_label.py", "ScanNet200/scannet200_constants.py",
         "ScanNet200/scannet200_splits.py")
STUFF = ("wall", "floor")


def load_official(scripts: Path, work: Path):
    """(instance module, semantic module, constants, splits) of a Python 3 copy of the scripts."""
    for name in FILES:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(scripts / name, work / name)
    subprocess.run([sys.executable, "-W", "ignore", "-m", "lib2to3", "-w", "-n", str(work)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    label = work / "3d_evaluation/evaluate_semantic_label.py"  # 2to3 empties its izip import's try
    label.write_text(label.read_text().replace("try:\n    \nexcept ImportError:\n    izip = zip", "izip = zip"))
    for alias, kind in (("float", float), ("int", int), ("bool", bool)):  # removed in numpy 1.24
        setattr(np, alias, kind)
    sys.modules.setdefault("imageio", types.ModuleType("imageio"))  # imported, not used
    sys.argv = [sys.argv[0], "--pred_path", str(work), "--gt_path", str(work)]  # parsed at import
    sys.path[:0] = [str(work), str(work / "3d_evaluation"), str(work / "ScanNet200")]
    mods = [importlib.import_module(m) for m in ("evaluate_semantic_instance", "evaluate_semantic_label",
                                                 "scannet200_constants", "scannet200_splits")]
    inst, sem, const, _ = mods
    names, ids = list(const.CLASS_LABELS_200), list(const.VALID_CLASS_IDS_200)
    keep = [k for k, n in enumerate(names) if n not in STUFF]
    inst.CLASS_LABELS = [names[k] for k in keep]
    inst.VALID_CLASS_IDS = np.array([ids[k] for k in keep])
    inst.ID_TO_LABEL = dict(zip(inst.VALID_CLASS_IDS, inst.CLASS_LABELS))
    inst.LABEL_TO_ID = dict(zip(inst.CLASS_LABELS, inst.VALID_CLASS_IDS))
    sem.CLASS_LABELS, sem.VALID_CLASS_IDS = names, np.array(ids)
    sem.UNKNOWN_ID = int(np.max(sem.VALID_CLASS_IDS)) + 1
    return mods


def close(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= 1e-6


def instance_trial(off, splits, rng, tmp: Path) -> float | None:
    """Largest difference on one random submission; None when the official script crashes."""
    classes = tuple(int(c) for c in rng.choice(SCANNET200.instance_ids, int(rng.integers(2, 8)), replace=False))
    others = (1, 3, 12, 1191 if 1191 not in classes else 40)  # stuff, a raw id outside the set
    pred_files, gt_files = [], []
    for s in range(int(rng.integers(1, 5))):
        gt, masks, labels, scores = random_scene(rng, classes, others)
        name = f"scene{s:04d}_00"
        (tmp / "gt").mkdir(parents=True, exist_ok=True)
        (tmp / "gt" / f"{name}.txt").write_text("".join(f"{v}\n" for v in gt))
        m = np.array(masks, bool).reshape(len(masks), len(gt))
        ok = SCANNET200.instance_index(labels) >= 0  # the exporter writes instance classes only
        write_instance_submission(tmp / "pred", name, m[ok], labels[ok], scores[ok], label_set=SCANNET200)
        pred_files.append(str(tmp / "pred" / f"{name}.txt"))
        gt_files.append(str(tmp / "gt" / f"{name}.txt"))
    try:
        matches = {}
        for pf, gf in zip(pred_files, gt_files):
            g2p, p2g = off.assign_instances_for_scan(pf, gf, str(tmp / "pred"))
            matches[gf] = {"gt": g2p, "pred": p2g}
        avgs = off.compute_averages(off.evaluate_matches(matches))
    except IndexError:  # the official script's crash (scene_pe/evaluation/instance.py docstring)
        return None
    res, _ = evaluate_instance_submission(tmp / "pred", tmp / "gt", label_set=SCANNET200, workers=1)
    worst = 0.0
    for key, ours in (("ap", res.ap), ("ap50%", res.ap50), ("ap25%", res.ap25)):
        ref = np.array([avgs["classes"][n][key] for n in SCANNET200.instance_names], float)
        if not (np.isnan(ref) == np.isnan(ours)).all():
            raise AssertionError(f"{key}: classes without a score differ")
        worst = max(worst, float(np.nanmax(np.abs(ref - ours), initial=0.0)))
    pairs = [(avgs["all_ap"], res.mean_ap), (avgs["all_ap_50%"], res.mean_ap50), (avgs["all_ap_25%"], res.mean_ap25)]
    mine = res.split_means()
    for split, names in (("head", splits.HEAD_CATS_SCANNET_200), ("common", splits.COMMON_CATS_SCANNET_200),
                         ("tail", splits.TAIL_CATS_SCANNET_200)):
        vals = np.array([avgs["classes"][n]["ap"] for n in names if n in avgs["classes"]], float)
        pairs.append((np.nanmean(vals) if np.isfinite(vals).any() else np.nan, mine[split]["ap"]))
    for ref, ours in pairs:
        if not close(ref, ours):
            raise AssertionError(f"mean differs: official {ref}, ours {ours}")
        if np.isfinite(ref):
            worst = max(worst, abs(ref - ours))
    return worst


def semantic_trial(off, rng, tmp: Path) -> float:
    """Largest IoU difference on one random semantic submission with plain-id GT."""
    used = rng.choice(SCANNET200.ids, int(rng.integers(2, 12)), replace=False)
    confusion = np.zeros((off.UNKNOWN_ID + 1,) * 2, dtype=np.ulonglong)
    (tmp / "sgt").mkdir(parents=True)
    (tmp / "spred").mkdir()
    for s in range(int(rng.integers(1, 4))):
        n = int(rng.integers(200, 2000))
        gt = rng.choice(np.concatenate([used, [0, 12, 1300]]), n)  # 0, 12, 1300: not scored
        pred = np.where(rng.random(n) < 0.6, gt, rng.choice(np.concatenate([used, [12, 2000]]), n))
        name = f"scene{s:04d}_00.txt"
        (tmp / "sgt" / name).write_text("".join(f"{v}\n" for v in gt))
        (tmp / "spred" / name).write_text("".join(f"{v}\n" for v in pred))
        off.evaluate_scan(str(tmp / "spred" / name), str(tmp / "sgt" / name), confusion)
    ref = [off.get_iou(i, confusion) for i in off.VALID_CLASS_IDS]
    ref = np.array([r[0] if isinstance(r, tuple) else r for r in ref], float)
    res, _ = evaluate_semantic_submission(tmp / "spred", tmp / "sgt", label_set=SCANNET200, gt_format="semantic",
                                          workers=1)
    if not (np.isnan(ref) == np.isnan(res.iou)).all() or not close(float(np.nanmean(ref)), res.miou):
        raise AssertionError("semantic IoU differs")
    return float(np.nanmax(np.abs(ref - res.iou), initial=0.0))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark-scripts", type=Path, required=True, help="ScanNet's BenchmarkScripts folder")
    p.add_argument("--compare", type=int, default=100, help="random submissions compared per metric")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as work:
        inst, sem, _, splits = load_official(args.benchmark_scripts, Path(work) / "official")
        done = crashed = 0
        worst_inst = worst_sem = 0.0
        warnings.simplefilter("ignore", RuntimeWarning)  # the official means of empty slices
        try:
            k = 0
            while done < args.compare:
                d = instance_trial(inst, splits, rng, Path(work) / f"i{k}")
                if d is None:
                    crashed += 1
                else:
                    done, worst_inst = done + 1, max(worst_inst, d)
                k += 1
            for k in range(args.compare):
                worst_sem = max(worst_sem, semantic_trial(sem, rng, Path(work) / f"s{k}"))
        except AssertionError as e:
            print(f"MISMATCH: {e}")
            return 1
    print(f"instance: {done} random ScanNet200 submissions compared ({crashed} more crashed the official "
          f"script), largest difference {worst_inst:.3g} (class AP / AP50 / AP25, means, head / common / tail)")
    print(f"semantic: {args.compare} random submissions compared, largest IoU difference {worst_sem:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
