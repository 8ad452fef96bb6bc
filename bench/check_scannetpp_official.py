#!/usr/bin/env python
"""scene_pe's ScanNet++ evaluation against the official toolkit (scannetpp/scannetpp), on random submissions.

The toolkit is not part of this project: give a checkout of it (``semantic/eval/``,
``semantic/utils/``, ``common/``). Its evaluation modules are copied into a temporary folder
and imported from there (``munch``, which only its config loader uses, is stubbed when absent).
Each instance trial draws a class list (``c0`` ...) and a random instance subset (class 0
among them in some trials, to exercise GT values below 1000), random scenes (the test suite's
generator, tests/test_eval_instance.py: random_scene) with a random vertex mask per scene
(``<data>/<scene>/scans/mesh_aligned_0.05_mask.txt``), writes GT in the toolkit's format and
predictions with scene_pe's exporter (RLE JSON masks), and compares every class's AP / AP50 /
AP25 and the three means with the toolkit's ``eval_instance.evaluate``. Semantic trials
compare top-1 and top-3 IoU per class and mIoU with ``eval_semantic.eval_semantic`` on
random single- and multi-label (3 per vertex) GT and 1- or 3-column predictions. Vertex masks of
exactly one index are not drawn: there the toolkit's semantic evaluation reads uninitialised memory.
  python bench/check_scannetpp_official.py --toolkit PATH/scannetpp [--compare 100]
Prints the counts and the largest differences; exit 1 on a difference above --tolerance (1e-12).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import shutil
import sys
import tempfile
import types
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from scene_pe.labels.scannetpp import scannetpp_label_set  # noqa: E402
from scene_pe.evaluation.scannetpp import PlusGt, evaluate_plus_instance, evaluate_plus_semantic  # noqa: E402
from scene_pe.export.submission import write_instance_submission  # noqa: E402
from scene_pe.util.io import int_lines_bytes, signed_int_lines_bytes  # noqa: E402
from test_eval_instance import random_scene  # noqa: E402

TOOLKIT_FILES = ("common/__init__.py", "common/file_io.py", "common/scene_release.py", "common/utils/__init__.py",
                 "common/utils/rle.py", "semantic/__init__.py", "semantic/eval/__init__.py",
                 "semantic/eval/eval_instance.py", "semantic/eval/eval_semantic.py", "semantic/utils/__init__.py",
                 "semantic/utils/instance_utils.py", "semantic/utils/confmat.py")
MASK = Path("scans") / "mesh_aligned_0.05_mask.txt"


def load_toolkit(toolkit: Path, work: Path):
    """(eval_instance, instance_utils, eval_semantic) imported from a copy of the toolkit."""
    for name in TOOLKIT_FILES:
        dest = work / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = toolkit / name
        if src.is_file():
            shutil.copy(src, dest)
        elif name.endswith("__init__.py"):
            dest.touch()  # the toolkit runs as namespace packages (python -m from its root)
        else:
            raise SystemExit(f"error: {src} not found: give the toolkit's checkout")
    if importlib.util.find_spec("munch") is None:
        stub = types.ModuleType("munch")
        stub.Munch = dict
        sys.modules["munch"] = stub
    sys.path.insert(0, str(work))
    return tuple(importlib.import_module(m) for m in ("semantic.eval.eval_instance", "semantic.utils.instance_utils",
                                                      "semantic.eval.eval_semantic"))


def compare(ref, ours, what: str, tol: float) -> float:
    ref, ours = np.asarray(ref, float), np.asarray(ours, float)
    if not (np.isnan(ref) == np.isnan(ours)).all():
        raise AssertionError(f"{what}: the classes without a score differ")
    diff = float(np.nanmax(np.abs(ref - ours), initial=0.0))
    if diff > tol:
        raise AssertionError(f"{what}: official {ref.tolist()}, ours {ours.tolist()}")
    return diff


def _classes(rng):
    c = int(rng.integers(4, 12))
    names = [f"c{i}" for i in range(c)]
    instance = sorted(rng.choice(c, int(rng.integers(1, c)), replace=False).tolist())
    return names, [names[i] for i in instance], instance


def _write_mask(data: Path, scene: str, n: int, rng) -> None:
    path = data / scene / MASK
    path.parent.mkdir(parents=True, exist_ok=True)
    count = int(rng.integers(0, n // 5))
    # Never one index: the toolkit's semantic evaluation reads a one-line mask as a 0-d array and
    # torch.LongTensor(0-d array of v) is an *uninitialised* tensor of v elements (garbage indices;
    # docs/scannetpp.md). Its instance evaluation (np.isin) and scene_pe leave out that one vertex.
    excluded = np.sort(rng.choice(n, count if count != 1 else 2, replace=False))
    path.write_bytes(int_lines_bytes(excluded))


CLASS0_TRIALS = []  # instance trials where class id 0 has instances (GT values 1..999)


def instance_trial(tk, rng, tmp: Path, tol: float) -> float:
    ev_inst, utils, _ = tk
    names, inst_names, inst_ids = _classes(rng)
    CLASS0_TRIALS.append(0 in inst_ids)
    label_set = scannetpp_label_set(names, inst_names)
    others = [i for i in range(len(names)) if i not in inst_ids]
    scenes = [f"s{k:02d}" for k in range(int(rng.integers(1, 5)))]
    for scene in scenes:
        gt, masks, labels, scores = random_scene(rng, tuple(inst_ids), tuple(others) or (len(names) + 3,))
        (tmp / "gt").mkdir(parents=True, exist_ok=True)
        (tmp / "gt" / f"{scene}.txt").write_bytes(int_lines_bytes(gt))
        m = np.array(masks, bool).reshape(len(masks), len(gt))
        ok = label_set.instance_index(labels) >= 0  # the exporter writes instance classes only
        write_instance_submission(tmp / "pred", scene, m[ok], labels[ok], scores[ok], label_set=label_set)
        _write_mask(tmp / "data", scene, len(gt), rng)
    label_info = utils.get_label_info(names, inst_names)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        avgs = ev_inst.evaluate([tmp / "pred" / f"{s}.txt" for s in scenes], [str(tmp / "gt" / f"{s}.txt") for s in scenes],
                                tmp / "pred", tmp / "data", label_info, utils.Instance_Eval_Opts())
    res, _ = evaluate_plus_instance(tmp / "pred", PlusGt(tmp / "gt", None, tmp / "data"), label_set, workers=1)
    worst = 0.0
    for key, ours in (("ap", res.ap), ("ap50%", res.ap50), ("ap25%", res.ap25)):
        worst = max(worst, compare([avgs["classes"][n][key] for n in label_set.instance_names], ours, key, tol))
    for key, ours in (("all_ap", res.mean_ap), ("all_ap_50%", res.mean_ap50), ("all_ap_25%", res.mean_ap25)):
        worst = max(worst, compare([avgs[key]], [ours], key, tol))
    return worst


def semantic_trial(tk, rng, tmp: Path, tol: float) -> float:
    _, _, ev_sem = tk
    names, inst_names, _ = _classes(rng)
    label_set = scannetpp_label_set(names, inst_names)
    c = len(names)
    scenes = [f"s{k:02d}" for k in range(int(rng.integers(1, 4)))]
    gt_cols, pred_cols = int(rng.choice([1, 3])), int(rng.choice([1, 3]))
    for d in ("sgt", "spred"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    for scene in scenes:
        n = int(rng.integers(200, 1500))
        gt = rng.integers(0, c, (n, gt_cols))
        gt[rng.random((n, gt_cols)) < 0.2] = -100  # unlabelled entries, filled from the right
        gt = -np.sort(-gt, axis=1)  # valid labels first, as the toolkit's GT is written
        pred = rng.integers(0, c, (n, pred_cols))
        right = (rng.random((n, pred_cols)) < 0.5) & (gt[:, :1] >= 0)
        pred[right] = np.broadcast_to(gt[:, :1], pred.shape)[right]
        for d, a in (("sgt", gt), ("spred", pred)):
            text = signed_int_lines_bytes(a.ravel()).decode().split("\n")[:-1]
            lines = [",".join(text[i:i + a.shape[1]]) for i in range(0, len(text), a.shape[1])]
            (tmp / d / f"{scene}.txt").write_text("\n".join(lines) + "\n")
        _write_mask(tmp / "data", scene, n, rng)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        confmats = ev_sem.eval_semantic(scenes, tmp / "spred", tmp / "sgt", tmp / "data", c, -100, [1, 3])
    ours, _ = evaluate_plus_semantic(tmp / "spred", PlusGt(tmp / "sgt", tmp / "sgt", tmp / "data"), label_set,
                                     workers=1)
    worst = 0.0
    for k in (1, 3):
        worst = max(worst, compare(confmats[k].ious, ours[k].iou, f"top-{k} IoU", tol),
                    compare([confmats[k].miou], [ours[k].miou], f"top-{k} mIoU", tol))
    return worst


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--toolkit", type=Path, required=True, help="checkout of scannetpp/scannetpp")
    p.add_argument("--compare", type=int, default=100, help="random submissions compared per metric")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tolerance", type=float, default=1e-12)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    warnings.simplefilter("ignore")  # the toolkit's means of empty slices, empty mask files
    with tempfile.TemporaryDirectory() as work:
        tk = load_toolkit(args.toolkit.resolve(), Path(work) / "toolkit")
        try:
            worst_inst = max(instance_trial(tk, rng, Path(work) / f"i{k}", args.tolerance) for k in range(args.compare))
            worst_sem = max(semantic_trial(tk, rng, Path(work) / f"s{k}", args.tolerance) for k in range(args.compare))
        except AssertionError as e:
            print(f"MISMATCH: {e}")
            return 1
    print(f"instance: {args.compare} random ScanNet++ submissions compared (class AP / AP50 / AP25 and means; "
          f"{sum(CLASS0_TRIALS)} with instances of class id 0), largest difference {worst_inst:.3g}")
    print(f"semantic: {args.compare} random submissions compared (top-1 / top-3 IoU per class and mIoU), "
          f"largest difference {worst_sem:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
