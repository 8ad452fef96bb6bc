#!/usr/bin/env python
"""Segment any scan: meshes, point clouds or ScanNet scene folders, with a trained checkpoint.

    tools/predict.py INPUT [INPUT ...] --checkpoint CKPT --out DIR [options] [key.sub=value ...]

INPUT: a ScanNet scene folder, a mesh (.ply .obj .off .stl .gltf .glb), a point
cloud (.ply without faces, .pcd .xyz .xyzrgb .xyzn .pts, .txt/.csv/.npy rows
of x y z [r g b [nx ny nz]], .npz with coords/colors/normals/faces), a folder
of them or a glob. Per input NAME, DIR gets NAME.instances.ply,
NAME.semantic.ply, NAME.uncertainty.ply, NAME.npz, NAME.json, NAME.png, NAME.html
(a self-contained 3D viewer for any browser; scene_pe/viewer) and with
--scannet-format scannet/NAME.txt + masks; see scene_pe/predict/outputs.py.
Inputs already done (NAME.json exists) are skipped unless --overwrite.

Frame: --scale (1 = metres, 0.001 for millimetres), --up (the input's up axis),
--align floor (find the floor, put it at z = 0, turn the walls onto the axes).
Results are always in the input's own frame and vertex order. key.sub=value
overrides change the checkpoint's inference settings (e.g.
inference.probabilistic.tau=0.2). Exit status: 0 all written, 1 some inputs
failed (the others are written), 2 bad checkpoint or options.
"""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scene_pe.util import cli  # noqa: E402
from scene_pe.util.threads import add_threads_argument  # noqa: E402

OVERRIDE = re.compile(r"^[A-Za-z_][\w]*(\.[\w]+)+=")


def parse_args(argv):
    ap = cli.ArgumentParser(description=__doc__)
    ap.add_argument("inputs", nargs="+", metavar="INPUT", help="scans, folders, globs; key.sub=value overrides")
    ap.add_argument("--checkpoint", type=Path, required=True, help="a scene_pe training checkpoint (.pth)")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--scale", type=float, default=1.0, help="input units in metres (0.001: millimetres)")
    ap.add_argument("--up", default="z", choices=("z", "-z", "y", "-y", "x", "-x"), help="the input's up axis")
    ap.add_argument("--align", default="none", choices=("none", "floor"),
                    help="floor: level the floor at z = 0 and turn the walls onto the axes")
    ap.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    add_threads_argument(ap)
    ap.add_argument("--block-voxels", type=int, default=1_000_000,
                    help="cut larger scans into overlapping blocks of at most this many voxels")
    ap.add_argument("--block-overlap", type=float, default=2.0, help="metres of context around each block")
    ap.add_argument("--block-tiles", type=int, help="force an n x n block grid (testing, benchmarks)")
    ap.add_argument("--cloud-superpoints", action="store_true",
                    help="segment every input as a bare point cloud: a mesh and its vertices as a cloud then "
                         "give the same objects (a mesh's own segments score a little higher)")
    ap.add_argument("--scannet-format", action="store_true", help="also write benchmark txt + mask files")
    ap.add_argument("--no-render", action="store_true", help="no PNG")
    ap.add_argument("--renderer", default="auto", choices=("auto", "open3d", "matplotlib"))
    ap.add_argument("--no-html", action="store_true", help="no HTML viewer")
    ap.add_argument("--overwrite", action="store_true", help="predict inputs again even if done")
    ap.add_argument("--no-fitted", action="store_true",
                    help="the checkpoint config's inference thresholds, not the ones fitted on val at training")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_intermixed_args(argv)  # overrides may follow the options
    args.overrides = [a for a in args.inputs if OVERRIDE.match(a) and not Path(a).exists()]
    args.inputs = [a for a in args.inputs if a not in args.overrides]
    if not args.inputs:
        ap.error("no INPUT given")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from scene_pe.util.threads import set_cpu_threads

    threads = set_cpu_threads(args.threads)  # before torch / MinkowskiEngine load
    from scene_pe.commands.predict_scans import run

    return run(args, threads)


if __name__ == "__main__":
    sys.exit(cli.run(main))
