"""tools/predict.py: every input scan read, segmented by a trained checkpoint and written (vertex
files, picture, viewer page, NAME.json last); one bad input is reported and the others go on."""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path


def summary_line(name: str, record: dict, written: list) -> str:
    counts = ", ".join(f"{c} {n}" for c, n in record["classes"].items()) or "none"
    where = f" -> {', '.join(map(str, written))}" if written else ""
    return (f"{name}: {len(record['instances'])} instances ({counts}); {record['num_vertices']:,} vertices, "
            f"{record['num_blocks']} block(s), {sum(record['seconds'].values()):.1f} s{where}")


def inference_thresholds(cfg) -> dict:
    """The thresholds the head's clustering used (NAME.json), whatever their source."""
    if cfg.model.head.type == "probabilistic":
        p = cfg.inference.probabilistic
        return {"tau": p.tau, "score_threshold": p.score_threshold}
    m = cfg.inference.margin
    return {"phi_threshold": m.phi_threshold, "seed_threshold": m.seed_threshold}


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
        "superpoints": {"mode": result.superpoint_mode, "source": result.superpoints,
                        "mode_for": {"mesh": cfg.inference.superpoints, "point cloud": cfg.inference.superpoints_cloud}},
        "inference_thresholds": {**inference_thresholds(cfg), **predictor.thresholds},
        "checkpoint": str(args.checkpoint), "trained_on": predictor.trained_on, "head": cfg.model.head.type,
        "voxel_size": cfg.data.voxel.voxel_size, "device": str(predictor.device),
        "threads": int(os.environ["OMP_NUM_THREADS"]), "renderer": renderer, "viewer": viewer,
        "warnings": result.warnings, "seconds": {k: round(v, 4) for k, v in t.seconds.items()},
        "versions": versions(),
    }
    write_summary_json(paths["json"], record)
    return record, [p for p, done in ((paths["png"], renderer), (paths["html"], viewer)) if done]


def run(args, threads: int) -> int:
    """tools/predict.py's arguments (its parse_args) -> exit status; ``threads``: the CPU thread
    count already set (scene_pe.util.threads.set_cpu_threads)."""
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
        predictor = Predictor.from_checkpoint(args.checkpoint, device, args.overrides, not args.no_fitted)
    except (CheckpointError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for line in predictor.thresholds["notes"]:
        print(line)
    from scene_pe.data.provenance import checkpoint_notes
    for line in checkpoint_notes(predictor.trained_on):  # generated rooms or real scans, once
        print(line)
    opts = PredictOptions(scale=args.scale, up=args.up, align=args.align, max_voxels=args.block_voxels,
                          overlap=args.block_overlap, tiles=args.block_tiles, cloud_superpoints=args.cloud_superpoints)
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
