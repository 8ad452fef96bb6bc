#!/usr/bin/env python
"""Inference over a split, evaluation where GT exists, benchmark submission export.

    tools/test.py CONFIG --checkpoint C --split val|test [--out DIR] [--export DIR]
                  [--scannet-root R] [--ply] [--html] [--overwrite] [key.sub=value ...]

Per-scene predictions go to <out>/predictions/<scene>.npz (resumable: scenes
already predicted are skipped unless --overwrite). With GT (<data.root>/gt),
prints the per-class AP table, mIoU and how well the per-vertex uncertainty
flags wrongly assigned vertices (AUROC, error rate per uncertainty decile;
scene_pe/evaluation/uncertainty.py) and writes all of it to <out>/metrics.json.
--export DIR writes the instance submission (DIR/instance/, DIR/instance.zip)
and the semantic one (DIR/semantic/, DIR/semantic.zip) and validates both.
--ply writes coloured PLYs (instances, semantics, per-vertex uncertainty) to <out>/ply/,
as meshes when --scannet-root gives the raw scenes, else as point clouds.
--html writes one self-contained 3D viewer page per scene to <out>/html/ (any browser,
offline; with GT its GT instances and errors; scene_pe/viewer).
Torchrun works too (each rank predicts every world-th scene).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scene_pe.util import cli  # noqa: E402
from scene_pe.util.threads import add_threads_argument, set_cpu_threads  # noqa: E402


def parse_args(argv):
    ap = cli.ArgumentParser(description=__doc__)
    ap.add_argument("config", type=Path)
    ap.add_argument("overrides", nargs="*", help="key.sub=value overrides of the config")
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--split", default="val", help="split list under <data.root>/splits (val, test, ...)")
    ap.add_argument("--out", type=Path, help="output folder (default: <run>/test_<split>)")
    ap.add_argument("--export", type=Path, help="write benchmark submissions (+ zips) here")
    ap.add_argument("--scannet-root", type=Path, help="raw ScanNet folder (or ScanNet++ release): mesh faces for --ply")
    ap.add_argument("--ply", action="store_true", help="write coloured prediction PLYs")
    ap.add_argument("--html", action="store_true", help="write a viewer page per scene (<out>/html/)")
    ap.add_argument("--overwrite", action="store_true", help="predict scenes again even if saved")
    ap.add_argument("--no-fitted", action="store_true",
                    help="the config's inference thresholds, not the ones fitted on val stored in the checkpoint")
    ap.add_argument("--no-progress", action="store_true")
    add_threads_argument(ap)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    set_cpu_threads(args.threads)  # before torch / MinkowskiEngine (OpenBLAS) load
    from scene_pe.commands.test_split import run

    return run(args)


if __name__ == "__main__":
    sys.exit(cli.run(main))
