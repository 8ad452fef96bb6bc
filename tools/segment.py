#!/usr/bin/env python
"""Superpoints for any scan: ScanNet's over-segmentation, written as a segs.json.

    tools/segment.py INPUT [INPUT ...] [--out F.segs.json | --out-dir DIR] [--k-thresh 0.01]
                     [--min-vertices 20 (meshes) / 10 (clouds)] [--knn 10] [--color-veto 0.1] [--color-weight 0]

INPUT: anything tools/predict.py reads (meshes, point clouds, ScanNet scene
folders). Meshes are segmented on their edges, point clouds on a k-nearest-
neighbour graph (scene_pe/superpoints/segmentator.py). Output: ScanNet's
segs.json layout ({"params": {"kThresh", "segMinVerts"}, "sceneId",
"segIndices"}), by default ``<input stem>.<kThresh as %f>.segs.json`` beside
the input, as ScanNet's Segmentator names it; an existing file is kept unless
--overwrite. Exit status 1 if an input failed.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scene_pe.util import cli  # noqa: E402


def main(argv=None) -> int:
    ap = cli.ArgumentParser(description=__doc__)
    ap.add_argument("inputs", nargs="+", metavar="INPUT")
    ap.add_argument("--out", type=Path, help="output file (one input only)")
    ap.add_argument("--out-dir", type=Path, help="output folder (default: beside each input)")
    ap.add_argument("--k-thresh", type=float, default=0.01, help="Felzenszwalb's k (ScanNet: 0.01)")
    ap.add_argument("--min-vertices", type=int, default=None,
                    help="smaller segments are merged (default: ScanNet's 20 for meshes, 10 for point clouds)")
    ap.add_argument("--knn", type=int, default=10, help="neighbours per point (point clouds)")
    ap.add_argument("--color-veto", type=float, default=0.10,
                    help="point clouds with colours: an edge whose ends' RGB distance (channels 0-1) exceeds "
                         "this joins segments only in the small-segment pass (inf: no veto)")
    ap.add_argument("--color-weight", type=float, default=0.0,
                    help="point clouds with colours: weight of the RGB distance added to every edge")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace an existing segs.json (a ScanNet folder's own file is never replaced silently)")
    args = ap.parse_args(argv)
    from scene_pe.commands.segment import run
    from scene_pe.predict.scan import expand_inputs

    paths = expand_inputs(args.inputs)
    if args.out and len(paths) != 1:
        ap.error("--out takes one input; use --out-dir for several")
    return run(args, paths)


if __name__ == "__main__":
    sys.exit(cli.run(main))
