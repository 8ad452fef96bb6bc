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

import os
import re
import sys
import time
import traceback
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
    ap.add_argument("--scannet-format", action="store_true", help="also write benchmark txt + mask files")
    ap.add_argument("--no-render", action="store_true", help="no PNG")
    ap.add_argument("--renderer", default="auto", choices=("auto", "open3d", "matplotlib"))
    ap.add_argument("--no-html", action="store_true", help="no HTML viewer")
    ap.add_argument("--overwrite", action="store_true", help="predict inputs again even if done")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_intermixed_args(argv)  # overrides may follow the options
    args.overrides = [a for a in args.inputs if OVERRIDE.match(a) and not Path(a).exists()]
    args.inputs = [a for a in args.inputs if a not in args.overrides]
    if not args.inputs:
        ap.error("no INPUT given")
    return args


def summary_line(name: str, record: dict, written: list) -> str:
    counts = ", ".join(f"{c} {n}" for c, n in record["classes"].items()) or "none"
    where = f" -> {', '.join(map(str, written))}" if written else ""
    return (f"{name}: {len(record['instances'])} instances ({counts}); {record['num_vertices']:,} vertices, "
            f"{record['num_blocks']} block(s), {sum(record['seconds'].values()):.1f} s{where}")


def predict_one(predictor, opts, args, path, name, progress: bool) -> tuple[dict, list[Path]]:
    from scene_pe.inference.vertices import uncertainty_name
    from scene_pe.predict.outputs import (class_counts, instance_records, output_paths, versions,
                                          write_summary_json, write_vertex_files)
    from scene_pe.predict.pipeline import Timings
    from scene_pe.predict.render import render_png
    from scene_pe.predict.scan import read_scan
    from scene_pe.viewer import ViewerBundleMissing
    from scene_pe.viewer.scenes import predicted_scan_page

    t = Timings()
    with t.stage("read"):
        scan = read_scan(path, name)
    result = predictor(scan, opts, t, progress)
    for note in result.warnings:
        print(f"warning: {note}", file=sys.stderr)
    paths = output_paths(args.out, name)
    inf = predictor.cfg.inference
    with t.stage("write"):
        write_vertex_files(paths, scan, result.pred, result.frame.model_from_input, args.scannet_format,
                           inf.score_threshold, inf.max_instances, predictor.cfg.data.labels)
    renderer = None
    if not args.no_render:
        with t.stage("render"):
            renderer = render_png(paths["png"], result.xyz_model, result.normals, result.pred.instance,
                                  result.pred.labels, result.pred.semantic, f"{name}  ({Path(path).name})", args.renderer,
                                  predictor.cfg.data.labels)
    records = instance_records(result.pred, scan.coords, predictor.cfg.data.labels)
    cfg = predictor.cfg
    viewer = None
    if not args.no_html:
        try:
            with t.stage("html"):
                page = predicted_scan_page(paths["html"], name, path, scan, result, records, cfg.data.labels,
                                           uncertainty_name(cfg))
            viewer = {"file": paths["html"].name, "bytes": page.bytes, "points_drawn": page.num_drawn}
        except ViewerBundleMissing as e:  # the other outputs are still useful: say it once
            print(f"warning: no HTML viewer: {e}", file=sys.stderr)
            args.no_html = True
    record = {
        "input": str(path), "name": name, "kind": "mesh" if scan.is_mesh else "point cloud",
        "num_vertices": len(scan.coords), "has_colors": scan.colors is not None,
        "instances": records, "classes": class_counts(records),
        "uncertainty_definition": uncertainty_name(cfg),
        "frame": result.frame.to_dict(), "num_blocks": result.num_blocks,
        "superpoints": {"mode": cfg.inference.superpoints, "source": result.superpoints},
        "checkpoint": str(args.checkpoint), "head": cfg.model.head.type,
        "voxel_size": cfg.data.voxel.voxel_size, "device": str(predictor.device),
        "threads": int(os.environ["OMP_NUM_THREADS"]), "renderer": renderer, "viewer": viewer,
        "warnings": result.warnings, "seconds": {k: round(v, 4) for k, v in t.seconds.items()},
        "versions": versions(),
    }
    write_summary_json(paths["json"], record)
    return record, [p for p, done in ((paths["png"], renderer), (paths["html"], viewer)) if done]


def main(argv=None) -> int:
    args = parse_args(argv)
    from scene_pe.util.threads import set_cpu_threads

    threads = set_cpu_threads(args.threads)  # before torch / MinkowskiEngine load
    import torch

    from scene_pe.train.checkpoint import CheckpointError
    from scene_pe.predict.frame import AlignmentError
    from scene_pe.predict.outputs import output_paths
    from scene_pe.predict.pipeline import PredictOptions, Predictor
    from scene_pe.predict.scan import expand_inputs, output_names
    from scene_pe.util.errors import SceneError
    from scene_pe.util.typed_config import ConfigError

    torch.set_num_threads(threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    try:
        predictor = Predictor.from_checkpoint(args.checkpoint, device, args.overrides)
    except (CheckpointError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    opts = PredictOptions(scale=args.scale, up=args.up, align=args.align, max_voxels=args.block_voxels,
                          overlap=args.block_overlap, tiles=args.block_tiles)
    paths = expand_inputs(args.inputs)
    names = output_names(paths)
    progress = not args.no_progress
    failures, skipped, start = [], 0, time.perf_counter()
    bar = paths
    if progress and len(paths) > 1:
        from tqdm import tqdm
        bar = tqdm(paths, desc="predict", unit="scan", dynamic_ncols=True)
    for path, name in zip(bar, names):
        if not args.overwrite and output_paths(args.out, name)["json"].exists():
            skipped += 1
            continue
        try:
            record, written = predict_one(predictor, opts, args, path, name, progress)
            print(summary_line(name, record, written), flush=True)
        except SceneError as e:
            failures.append(str(e))
        except (AlignmentError, ValueError, OSError, RuntimeError) as e:
            failures.append(f"{name}: {path}: {type(e).__name__}: {e}")
            if args.debug:
                traceback.print_exc()
        except Exception as e:  # noqa: BLE001 - one input must not stop the batch
            failures.append(f"{name}: {path}: unexpected {type(e).__name__}: {e}"
                            + ("" if args.debug else " (--debug for the traceback)"))
            if args.debug:
                traceback.print_exc()
    done = len(paths) - len(failures) - skipped
    print(f"predicted {done}, skipped {skipped} (already done, --overwrite to redo), failed {len(failures)} "
          f"in {time.perf_counter() - start:.1f} s; outputs in {args.out}")
    for f in failures:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
