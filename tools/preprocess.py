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

from scene_pe.commands.preprocess import run  # noqa: E402
from scene_pe.data.preprocess import SPLITS, default_workers  # noqa: E402
from scene_pe.data.scannet import LABEL_MAP_NAME  # noqa: E402
from scene_pe.labels.label_set import LABEL_SET_NAMES  # noqa: E402
from scene_pe.labels.scannetpp import METADATA_SUBDIR  # noqa: E402
from scene_pe.util import cli  # noqa: E402


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


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli.run(main))
