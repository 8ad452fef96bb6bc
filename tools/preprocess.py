#!/usr/bin/env python
"""Preprocess raw ScanNet v2 (or ScanNet++) scenes into <out>/scenes/*.npz and <out>/gt/*.txt.

Example:
  python tools/preprocess.py --scannet-root /data/scannet --out data/scannet_pre --split train val
  python tools/preprocess.py --scannet-root /data/scannet --out data/scannet200_pre --label-set scannet200
  python tools/preprocess.py --dataset scannetpp --scannet-root /data/scannetpp --out data/scannetpp_pre
Split lists scannetv2_{train,val,test}.txt are read from the root (ScanNet ships them in its
GitHub repo, Tasks/Benchmark/: copy them there) or given with --split-file. ScanNet++ (docs/scannetpp.md):
the root is the release (data/, metadata/semantic_benchmark/, splits/nvs_sem_train.txt,
nvs_sem_val.txt, sem_test.txt); its label set, scannetpp, takes its classes from the metadata
folder and records them in <out>. Exit status 1 when any scene failed, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scene_pe.labels.label_set import LABEL_SET_NAMES, SCANNETPP_NAME, get_label_set  # noqa: E402
from scene_pe.labels.scannetpp import METADATA_SUBDIR, read_benchmark_metadata  # noqa: E402
from scene_pe.data.preprocess import (SPLITS, default_workers, run_preprocess,  # noqa: E402
                                      split_file_path, split_name)
from scene_pe.data.scannetpp import SPLIT_FILES  # noqa: E402
from scene_pe.data.scannet import LABEL_MAP_NAME, load_label_map  # noqa: E402
from scene_pe.util import cli  # noqa: E402
from scene_pe.util.io import read_lines  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--dataset", choices=["scannet", "scannetpp"], default="scannet",
                   help="scannet (ScanNet v2 layout) or scannetpp (ScanNet++ release layout, label set scannetpp)")
    p.add_argument("--scannet-root", type=Path, required=True,
                   help="folder holding scans/ (and scans_test/); ScanNet++: the release (data/, metadata/, splits/)")
    p.add_argument("--metadata", type=Path, default=None,
                   help=f"ScanNet++: the benchmark's class lists and mapping (default: <root>/{METADATA_SUBDIR})")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--split", nargs="+", choices=[*SPLITS, "all"], default=[],
                   help="splits to process (default: every split whose list exists in the root)")
    p.add_argument("--split-file", nargs="+", type=Path, default=[],
                   help="split lists by path; the split is named after the file "
                        "(scannetv2_val.txt -> val)")
    p.add_argument("--scenes", nargs="+", default=None,
                   help="only these scenes (filters the splits; alone: no split files written)")
    p.add_argument("--label-map", type=Path, default=None,
                   help=f"default: <root>/{LABEL_MAP_NAME}")
    p.add_argument("--label-set", choices=LABEL_SET_NAMES, default=None,
                   help="classes of the labels and the GT txt: scannet20 (NYU40 ids, the default) or scannet200 "
                        "(the tsv's id column); scannetpp goes with --dataset scannetpp; one label set per "
                        "output folder")
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--overwrite", action="store_true", help="redo scenes already done")
    p.add_argument("--no-align", action="store_true", help="do not apply axisAlignment")
    p.add_argument("--semantic-source", choices=["aggregation", "labels_ply"], default="aggregation")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def split_path(root: Path, split: str, plus: bool) -> Path:
    return root / "splits" / SPLIT_FILES[split] if plus else split_file_path(root, split)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    root = a.scannet_root
    plus = a.dataset == "scannetpp"
    if (a.label_set == SCANNETPP_NAME) != plus and a.label_set is not None:
        print("error: the scannetpp label set goes with --dataset scannetpp (and only it)", file=sys.stderr)
        return 2
    classes = None
    if plus:
        try:
            classes = read_benchmark_metadata(a.metadata or root / METADATA_SUBDIR)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    splits: dict[str, list[str]] = {}
    names = list(SPLITS) if "all" in a.split else a.split
    if not names and not a.split_file and a.scenes is None:
        names = [s for s in SPLITS if split_path(root, s, plus).is_file()]
        if not names:
            where = "splits/<nvs_sem_train|nvs_sem_val|sem_test>.txt" if plus else "scannetv2_<split>.txt"
            print(f"error: no {where} in {root}; use --split-file or --scenes", file=sys.stderr)
            return 2
    for split in names:
        path = split_path(root, split, plus)
        if not path.is_file():
            print(f"error: split list {path} not found (give it with --split-file)", file=sys.stderr)
            return 2
        splits[split] = read_lines(path)
    for path in a.split_file:
        if not path.is_file():
            print(f"error: split list {path} not found (give it with --split-file)", file=sys.stderr)
            return 2
        splits[split_name(path)] = read_lines(path)

    tsv = a.label_map or root / LABEL_MAP_NAME
    label_map = None
    if plus:
        pass  # ScanNet++ maps raw labels with the metadata's map_benchmark.csv
    elif tsv.is_file():
        label_map = load_label_map(tsv)
    else:  # test scenes need none; annotated scenes then fail with a clear reason
        print(f"warning: label map {tsv} not found: annotated scenes will fail", file=sys.stderr)

    try:
        summary = run_preprocess(root, a.out, splits, label_map, scenes=a.scenes, workers=a.workers,
                                 overwrite=a.overwrite, align=not a.no_align,
                                 semantic_source=a.semantic_source, progress=not a.no_progress,
                                 label_set=classes.label_set() if plus else get_label_set(a.label_set or "scannet20"),
                                 classes=classes)
    except ValueError as e:  # e.g. the output folder holds another label set
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary.format())
    for split, path in summary.split_files.items():
        print(f"split {split}: {path}")
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(cli.run(main))
