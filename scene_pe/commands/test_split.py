"""tools/test.py: a split predicted (resumable, torchrun-aware), scored where GT exists, exported
as benchmark submissions, drawn as coloured PLYs and viewer pages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from scene_pe.util.io import write_text_atomic


def export(cfg, out_dir: Path, export_dir: Path, scenes: list[str]) -> list[str]:
    from scene_pe.inference.files import load_prediction
    from scene_pe.export.submission import write_instance_submission, write_semantic_submission, zip_submission
    from scene_pe.export.validate import validate_submission

    counts = {}
    for scene in scenes:
        pred = load_prediction(out_dir, scene)
        counts[scene] = len(pred.instance)
        write_instance_submission(export_dir / "instance", scene, pred.instance, pred.labels, pred.confidence,
                                  score_threshold=cfg.inference.score_threshold,
                                  max_instances=cfg.inference.max_instances, label_set=cfg.data.labels)
        write_semantic_submission(export_dir / "semantic", scene, pred.semantic, cfg.data.labels)
    problems = []
    for task in ("instance", "semantic"):
        zip_path = export_dir / f"{task}.zip"
        zip_submission(export_dir / task, zip_path)
        problems += [f"{zip_path}: {p}" for p in validate_submission(zip_path, counts, task=task,
                                                                            label_set=cfg.data.labels)]
        print(f"{task} submission: {zip_path}" + ("" if problems else " (validated)"))
    return problems


def write_plys(out_dir: Path, scenes: list[str], data_root: Path, scannet_root: Path | None, label_set) -> None:
    from scene_pe.data.dataset import load_scene
    from scene_pe.data.scannet import read_mesh
    from scene_pe.inference.files import load_prediction
    from scene_pe.viz import write_prediction_plys

    for scene in scenes:
        pred, sample = load_prediction(out_dir, scene), load_scene(data_root, scene, label_set.name)
        faces = None
        if scannet_root is not None:
            for mesh in (scannet_root / "scans" / scene / f"{scene}_vh_clean_2.ply",
                         scannet_root / "scans_test" / scene / f"{scene}_vh_clean_2.ply",
                         scannet_root / "data" / scene / "scans" / "mesh_aligned_0.05.ply"):  # ScanNet++
                if mesh.exists():
                    faces = read_mesh(mesh, scene)[2]
                    break
        write_prediction_plys(out_dir / "ply", sample["coords"], faces, pred, label_set=label_set)
    print(f"coloured PLYs: {out_dir / 'ply'}")


def report_half(record: dict | None, split: str, scenes: list[str]) -> list[str]:
    """The scenes of ``split`` that no choice looked at: the fit's report half, when the checkpoint was
    fitted on this split (else [])."""
    if not record or record.get("split") != split or "scenes" not in record:
        return []
    present = set(scenes)
    return [s for s in record["scenes"].get("report", []) if s in present]


def predict_and_score(args, cfg, rank: int, world: int, device) -> int:
    """This rank's share of the scenes predicted and saved; on rank 0 the metrics, export and PLYs."""
    import torch

    from scene_pe.data.dataset import preprocessed_split
    from scene_pe.train.checkpoint import CheckpointError, load_checkpoint, load_model_weights
    from scene_pe.inference.evaluate import predict_scenes
    from scene_pe.inference.vertices import uncertainty_name
    from scene_pe.inference.files import evaluate_saved, prediction_path, save_prediction
    from scene_pe.model.build import build_model
    from scene_pe.model.precision import amp_dtype

    data_root = Path(cfg.data.root)
    scenes = preprocessed_split(data_root, args.split)
    out_dir = args.out or cfg.run_path / f"test_{args.split}"
    model = build_model(cfg).to(device)
    try:
        load_model_weights(model, load_checkpoint(args.checkpoint, device), args.checkpoint)
    except CheckpointError as e:
        print(f"checkpoint error: {e}", file=sys.stderr)
        return 2
    todo = [s for s in scenes if args.overwrite or not prediction_path(out_dir, s).exists()]
    if rank == 0 and len(todo) < len(scenes):
        print(f"{len(scenes) - len(todo)} scenes already predicted in {out_dir}; predicting {len(todo)}")
    for pred, _ in predict_scenes(model, cfg, todo, device, rank=rank, world=world,
                                  progress=not args.no_progress, amp_dtype=amp_dtype(cfg.train, device)):
        save_prediction(out_dir, pred)
    if world > 1:
        torch.distributed.barrier()
    status = 0
    if rank == 0:
        print(f"predictions: {out_dir / 'predictions'}")
        inst, sem, unc = evaluate_saved(out_dir, data_root / "gt", scenes, cfg.data.labels)
        if inst is not None:
            print(inst.format_table())
            print(sem.format_table())
            print(f"uncertainty ({uncertainty_name(cfg)}) vs wrong instance assignment:")
            print(unc.format_table())
            print(f"AP {inst.mean_ap:.3f}  AP50 {inst.mean_ap50:.3f}  AP25 {inst.mean_ap25:.3f}  "
                  f"mIoU {sem.miou:.3f}  ({inst.num_scenes} scenes)")
            print(unc.summary())
            metrics = {"inference_thresholds": getattr(args, "threshold_notes", []),
                       "trained_on": getattr(args, "trained_on", None),
                       "instance": inst.to_dict(), "semantic": sem.to_dict(),
                       "uncertainty": {"definition": uncertainty_name(cfg), **unc.to_dict()}}
            honest = report_half(getattr(args, "fitted_record", None), args.split, scenes)
            if honest:  # the fit's select half chose the thresholds (and training's best epoch)
                r_inst, r_sem, _ = evaluate_saved(out_dir, data_root / "gt", honest, cfg.data.labels)
                print(f"report half of {args.split} ({r_inst.num_scenes} scenes, used for no choice): AP "
                      f"{r_inst.mean_ap:.3f}  AP50 {r_inst.mean_ap50:.3f}  AP25 {r_inst.mean_ap25:.3f}  mIoU "
                      f"{r_sem.miou:.3f}; the figures above include the select half, which chose the "
                      "thresholds (and, with validation in training, the best epoch)")
                metrics["report_half"] = {"scenes": honest, "instance": r_inst.to_dict(),
                                          "semantic": r_sem.to_dict()}
            write_text_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=1))
            print(f"metrics: {out_dir / 'metrics.json'}")
        if args.export:
            problems = export(cfg, out_dir, args.export, scenes)
            for p in problems:
                print(f"INVALID: {p}", file=sys.stderr)
            status = 1 if problems else 0
        if args.ply:
            write_plys(out_dir, scenes, data_root, args.scannet_root, cfg.data.labels)
        if args.html:
            from scene_pe.viewer.scenes import write_saved_viewers

            pages = write_saved_viewers(out_dir, scenes, data_root, cfg.data.labels, uncertainty_name(cfg))
            print(f"viewer pages: {out_dir / 'html'} ({len(pages)}, {sum(p.bytes for p in pages) / 1e6:.1f} MB, "
                  f"{sum(p.seconds for p in pages):.1f} s)")
    return status


def run(args) -> int:
    """tools/test.py's arguments (its parse_args) -> exit status; the thread count is already set."""
    from scene_pe.config import load_config
    from scene_pe.inference.fitting import RECORD_KEY, effective_overrides
    from scene_pe.train.checkpoint import CheckpointError, load_checkpoint
    from scene_pe.util.typed_config import ConfigError

    from scene_pe.data.provenance import CHECKPOINT_KEY, checkpoint_notes

    record = None  # the checkpoint's fitted inference thresholds, unless overridden (inference/fitting.py)
    trained_on = None  # what it was trained on (data/provenance.py)
    if Path(args.checkpoint).is_file():  # a missing one is reported where the model loads, as before
        try:
            ck = load_checkpoint(args.checkpoint, "cpu")
        except CheckpointError as e:
            print(f"checkpoint error: {e}", file=sys.stderr)
            return 2
        record, trained_on = ck.get(RECORD_KEY), ck.get(CHECKPOINT_KEY)
        del ck
    overrides, notes = effective_overrides(record, args.overrides, not args.no_fitted)
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    args.threshold_notes, args.fitted_record, args.trained_on = notes, record, trained_on
    for line in notes + (checkpoint_notes(trained_on) if Path(args.checkpoint).is_file() else []):
        print(line)
    from scene_pe.util import distributed as D

    rank, world, device = D.init_distributed()
    ok = False
    try:
        status = predict_and_score(args, cfg, rank, world, device)
        ok = True
        return status
    finally:
        D.cleanup(barrier=ok)  # after a failure no barrier: the other ranks may never reach it
