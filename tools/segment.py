#!/usr/bin/env python
"""Superpoints for any scan: ScanNet's over-segmentation, written as a segs.json.

    tools/segment.py INPUT [INPUT ...] [--out F.segs.json | --out-dir DIR] [--k-thresh 0.01]
                     [--min-vertices 20] [--knn 10]

INPUT: anything tools/predict.py reads (meshes, point clouds, ScanNet scene
folders). Meshes are segmented on their edges, point clouds on a k-nearest-
neighbour graph (scene_pe/superpoints/segmentator.py). Output: ScanNet's
segs.json layout ({"params": {"kThresh", "segMinVerts"}, "sceneId",
"segIndices"}), by default ``<input stem>.<kThresh as %f>.segs.json`` beside
the input, as ScanNet's Segmentator names it; an existing file is kept unless
--overwrite. Exit status 1 if an input failed.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scene_pe.util import cli  # noqa: E402


def main(argv=None) -> int:
    ap = cli.ArgumentParser(description=__doc__)
    ap.add_argument("inputs", nargs="+", metavar="INPUT")
    ap.add_argument("--out", type=Path, help="output file (one input only)")
    ap.add_argument("--out-dir", type=Path, help="output folder (default: beside each input)")
    ap.add_argument("--k-thresh", type=float, default=0.01, help="Felzenszwalb's k (ScanNet: 0.01)")
    ap.add_argument("--min-vertices", type=int, default=20, help="smaller segments are merged (ScanNet: 20)")
    ap.add_argument("--knn", type=int, default=10, help="neighbours per point (point clouds)")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace an existing segs.json (a ScanNet folder's own file is never replaced silently)")
    args = ap.parse_args(argv)

    from scene_pe.data.scannet_files import write_segs_json
    from scene_pe.predict.scan import expand_inputs, is_scannet_folder, output_names, read_scan
    from scene_pe.superpoints.segmentator import SegmentatorConfig, segment_scan
    from scene_pe.util.errors import SceneError

    paths = expand_inputs(args.inputs)
    if args.out and len(paths) != 1:
        ap.error("--out takes one input; use --out-dir for several")
    cfg = SegmentatorConfig(args.k_thresh, args.min_vertices, args.knn)
    failures = 0
    for path, name in zip(paths, output_names(paths)):
        try:
            t0 = time.perf_counter()
            scan = read_scan(path, name)
            seg = segment_scan(scan.coords, scan.faces, scan.normals, cfg)
            stem = scan.path.stem if is_scannet_folder(path) else name
            out = args.out or (args.out_dir or scan.path.parent) / f"{stem}.{args.k_thresh:f}.segs.json"
            if out.exists() and not args.overwrite:
                raise SceneError(name, out, "exists; not replaced (--overwrite, or --out / --out-dir elsewhere)")
            write_segs_json(out, name, seg, params=cfg.params(), mesh_name=stem)
            kind = "mesh" if scan.is_mesh else "point cloud"
            print(f"{name}: {len(set(seg.tolist()))} segments over {len(seg):,} vertices ({kind}), "
                  f"{time.perf_counter() - t0:.2f} s -> {out}")
        except (SceneError, ValueError, OSError) as e:
            failures += 1
            print(f"FAILED {e}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
