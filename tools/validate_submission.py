#!/usr/bin/env python
"""Check a ScanNet benchmark submission (folder or zip) before uploading it.

Examples:
  python tools/validate_submission.py sub.zip --scannet-root /data/scannet \
      --split-file scannetv2_test.txt
  python tools/validate_submission.py out/instance --vertex-counts data/scannet_pre/gt
Vertex counts come from each scene's _vh_clean_2.ply header (--scannet-root,
looked up in scans_test/ then scans/) or from GT txt line counts
(--vertex-counts). Expected scenes: --split-file or --scenes; by default every
scene of scans_test/ (--scannet-root) or of the GT folder. Prints every
problem; exit status 1 if there is any, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scene_pe.evaluation.io import SubmissionSource  # noqa: E402
from scene_pe.export.validate import (validate_submission, vertex_counts_from_gt,  # noqa: E402
                                      vertex_counts_from_scannet)
from scene_pe.labels.label_set import LABEL_SET_NAMES, SCANNETPP_NAME, get_label_set  # noqa: E402
from scene_pe.labels.scannetpp import read_benchmark_metadata  # noqa: E402
from scene_pe.labels.folder import label_set_of_gt  # noqa: E402
from scene_pe.util import cli  # noqa: E402
from scene_pe.util.io import read_lines  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("submission", type=Path, help="submission folder or zip")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--scannet-root", type=Path, help="ScanNet root with scans_test/ and scans/")
    src.add_argument("--vertex-counts", type=Path, metavar="GT_DIR",
                     help="folder of GT txt files (one line per vertex)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--split-file", type=Path, help="expected scenes, one per line")
    which.add_argument("--scenes", nargs="+", help="expected scenes")
    p.add_argument("--semantic", action="store_true", help="a semantic (not instance) submission")
    p.add_argument("--label-set", choices=LABEL_SET_NAMES, default=None,
                   help="whose class ids (default: with --vertex-counts, <GT_DIR>/../label_set.txt; "
                        "else scannet20)")
    return p.parse_args(argv)


def _expected(args: argparse.Namespace) -> list[str]:
    if args.split_file:
        return read_lines(args.split_file)
    if args.scenes:
        return list(args.scenes)
    if args.vertex_counts:
        return sorted(p.stem for p in args.vertex_counts.glob("*.txt"))
    test = args.scannet_root / "scans_test"
    if not test.is_dir():
        raise SystemExit(f"error: {test} not found: give --split-file or --scenes")
    return sorted(p.name for p in test.iterdir() if p.is_dir())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    expected = _expected(args)
    try:
        with SubmissionSource(args.submission) as src:
            scenes = sorted(set(expected) | set(src.scene_files()))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.scannet_root:
        counts = vertex_counts_from_scannet(args.scannet_root, scenes)
    else:
        counts = vertex_counts_from_gt(args.vertex_counts, scenes)
    # the GT folder's recorded label set, unless given; without a GT folder ScanNet v2's
    # ScanNet++ without a GT folder: the classes of the release's metadata (--scannet-root)
    try:
        if args.vertex_counts:
            label_set = label_set_of_gt(args.vertex_counts, args.label_set)
        elif args.label_set == SCANNETPP_NAME:
            label_set = read_benchmark_metadata(args.scannet_root).label_set()
        else:
            label_set = get_label_set(args.label_set or "scannet20")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    problems = validate_submission(args.submission, counts, expected,
                                   task="semantic" if args.semantic else "instance", label_set=label_set)
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} problems in {args.submission}", file=sys.stderr)
        return 1
    print(f"OK: {args.submission}: {len(expected)} scenes")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
