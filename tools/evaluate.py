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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scene_pe.commands.evaluate import run  # noqa: E402
from scene_pe.evaluation.semantic import GT_FORMATS  # noqa: E402
from scene_pe.labels.label_set import LABEL_SET_NAMES  # noqa: E402
from scene_pe.util import cli  # noqa: E402


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


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli.run(main))
