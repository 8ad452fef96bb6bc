"""tools/evaluate.py: a submission folder or zip scored against GT txt files, as the benchmark's
official scripts score it (ScanNet v2, ScanNet200, ScanNet++); the table printed, JSON optional."""

from __future__ import annotations

import json
import sys
import time

from scene_pe.evaluation.io import evaluate_instance_submission, evaluate_semantic_submission
from scene_pe.evaluation.scannetpp import PlusGt, evaluate_plus_instance, evaluate_plus_semantic
from scene_pe.labels.folder import label_set_of_gt
from scene_pe.labels.scannetpp import read_benchmark_metadata
from scene_pe.util.errors import SceneError
from scene_pe.util.io import write_text_atomic


def report(args, out: dict, scored: int, missing: list[str], t0: float) -> int:
    """The closing lines (scenes scored, unscored GT scenes) and the JSON file."""
    print(f"\n{scored} scenes scored in {time.perf_counter() - t0:.1f} s")
    if missing:
        print(f"warning: {len(missing)} GT scenes have no predictions and were not scored: "
              f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}", file=sys.stderr)
    if args.json:
        out["unscored_gt_scenes"] = missing
        write_text_atomic(args.json, json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def evaluate_plus(args, label_set, t0: float) -> int:
    """ScanNet++: instance AP, or top-1 / top-3 semantic IoU, as its toolkit."""
    gt = PlusGt.of_preprocessed(args.gt)
    gt = PlusGt(args.gt, args.gt_semantic or gt.semantic_dir, args.data_root or gt.mask_dir)
    if args.semantic:
        results, missing = evaluate_plus_semantic(args.pred, gt, label_set, require_all=args.require_all,
                                                  workers=args.workers)
        for k, r in results.items():
            print(f"top-{k}\n{r.format_table()}")
        out = {f"top{k}": r.to_dict() for k, r in results.items()}
        scored = next(iter(results.values())).num_scenes
    else:
        result, missing = evaluate_plus_instance(args.pred, gt, label_set, require_all=args.require_all,
                                                 workers=args.workers)
        print(result.format_table())
        out, scored = result.to_dict(), result.num_scenes
    return report(args, out, scored, missing, t0)


def run(args) -> int:
    """tools/evaluate.py's arguments -> exit status (1: the submission or GT could not be read)."""
    t0 = time.perf_counter()
    try:
        label_set = read_benchmark_metadata(args.metadata).label_set() if args.metadata \
            else label_set_of_gt(args.gt, args.label_set)
        print(f"label set: {label_set.name}")
        if label_set.rle_masks:
            return evaluate_plus(args, label_set, t0)
        if args.semantic:
            result, missing = evaluate_semantic_submission(args.pred, args.gt,
                                                           require_all=args.require_all, label_set=label_set,
                                                           gt_format=args.gt_format, workers=args.workers)
        else:
            result, missing = evaluate_instance_submission(
                args.pred, args.gt, require_all=args.require_all,
                skip_invalid_labels=args.skip_invalid_labels, label_set=label_set, workers=args.workers)
    except (SceneError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(result.format_table())
    return report(args, result.to_dict(), result.num_scenes, missing, t0)
