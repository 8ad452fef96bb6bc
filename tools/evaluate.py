#!/usr/bin/env python
"""Score a ScanNet benchmark submission (folder or zip) against GT txt files.

Examples:
  python tools/evaluate.py --pred out/instance --gt data/scannet_pre/gt --json ap.json
  python tools/evaluate.py --pred out/semantic.zip --gt data/scannet_pre/gt --semantic
Instance: AP (IoU 0.5:0.95), AP50, AP25 per class and mean, as ScanNet's
evaluate_semantic_instance.py. Semantic: IoU per class and mIoU, as
evaluate_semantic_label.py (GT class = value // 1000). ScanNet200: the same
scripts with its classes, plus head / common / tail means (--label-set, default:
the one the GT's preprocessed folder was written with). Scenes are those of the
submission; GT scenes without predictions are listed and not scored (as the
official script), or an error with --require-all. Exit status 1 on bad input.
ScanNet++ (label set scannetpp, docs/scannetpp.md): as its toolkit's eval_instance.py /
eval_semantic.py: --gt is <preprocessed>/gt (its gt_semantic/ and gt_mask/ are found beside
it), or GT the toolkit wrote with --gt-semantic and --data-root (the release's data/, for each
scene's mesh_aligned_0.05_mask.txt); semantic scores are top-1 and top-3 IoU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scene_pe.labels.label_set import LABEL_SET_NAMES  # noqa: E402
from scene_pe.labels.folder import label_set_of_gt  # noqa: E402
from scene_pe.labels.scannetpp import read_benchmark_metadata  # noqa: E402
from scene_pe.evaluation.semantic import GT_FORMATS  # noqa: E402
from scene_pe.evaluation.io import (evaluate_instance_submission,  # noqa: E402
                                    evaluate_semantic_submission)
from scene_pe.evaluation.scannetpp import PlusGt, evaluate_plus_instance, evaluate_plus_semantic  # noqa: E402
from scene_pe.util import cli  # noqa: E402
from scene_pe.util.errors import SceneError  # noqa: E402
from scene_pe.util.io import write_text_atomic  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--pred", type=Path, required=True, help="submission folder or zip")
    p.add_argument("--gt", type=Path, required=True, help="folder of <scene>.txt GT files")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--semantic", action="store_true", help="score a semantic submission")
    p.add_argument("--label-set", choices=LABEL_SET_NAMES, default=None,
                   help="classes to score (default: <gt>/../label_set.txt, else scannet20)")
    p.add_argument("--gt-format", choices=GT_FORMATS, default="instance",
                   help="semantic scoring: GT as class*1000+id (tools/preprocess.py's; default) or plain "
                        "class ids (the official semantic GT files; needed for ScanNet200's ids >= 1000)")
    p.add_argument("--metadata", type=Path, default=None,
                   help="ScanNet++: the release's metadata/semantic_benchmark/ (its classes; default: those "
                        "recorded in <gt>/..)")
    p.add_argument("--gt-semantic", type=Path, default=None,
                   help="ScanNet++: the semantic GT folder (default: <gt>/../gt_semantic)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="ScanNet++: the release's data/ folder, whose scenes' vertex masks are left out "
                        "(default: <gt>/../gt_mask)")
    p.add_argument("--require-all", action="store_true",
                   help="fail when a GT scene has no prediction file")
    p.add_argument("--skip-invalid-labels", action="store_true",
                   help="skip instance lines whose label is not an instance class "
                        "(the official script does; default: error)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes reading the scenes (default: every core)")
    return p.parse_args(argv)


def evaluate_plus(args: argparse.Namespace, label_set, t0: float) -> int:
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
    print(f"\n{scored} scenes scored in {time.perf_counter() - t0:.1f} s")
    if missing:
        print(f"warning: {len(missing)} GT scenes have no predictions and were not scored: "
              f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}", file=sys.stderr)
    if args.json:
        out["unscored_gt_scenes"] = missing
        write_text_atomic(args.json, json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
    print(f"\n{result.num_scenes} scenes scored in {time.perf_counter() - t0:.1f} s")
    if missing:
        print(f"warning: {len(missing)} GT scenes have no predictions and were not scored: "
              f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}", file=sys.stderr)
    if args.json:
        out = result.to_dict()
        out["unscored_gt_scenes"] = missing
        write_text_atomic(args.json, json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
