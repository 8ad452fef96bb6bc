"""Mesh vs point cloud: do the same scans give the same objects under each pair of superpoint modes?

    python bench/mesh_cloud_agreement.py --run RUN --cloud-root ROOT [--pairs cluster:cluster,vote:vote,none:none]
        [--max-scenes N] [--iou 0.9]

RUN is a training run (config.yaml, last.pth; its fitted inference values are
applied); its val scenes are predicted once by the network (the input,
colours on voxels, is the same for a mesh and for its vertices as a cloud),
then clustered with the mesh's segments (the run's data.root: segs.json) and
with ROOT's segments (bench/cloud_superpoints_root.py: the built-in point-cloud
segmentator on the same vertices). A pair ``mesh_mode:cloud_mode`` says which
superpoint mode each side uses. Prints, per pair, the mesh instances whose
one-to-one partner in the cloud prediction has IoU >= --iou
(scene_pe/evaluation/agreement.py), and each side's AP.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--cloud-root", type=Path, required=True)
    ap.add_argument("--pairs", default="cluster:cluster,vote:vote,none:none,cluster:vote")
    ap.add_argument("--max-scenes", type=int, default=0)
    ap.add_argument("--iou", type=float, default=0.9)
    args = ap.parse_args(argv)

    import torch

    from scene_pe.evaluation.agreement import instance_agreement
    from scene_pe.evaluation.instance import InstanceEvaluator
    from scene_pe.inference.fitting import RECORD_KEY, cache_scenes, effective_overrides, point_config, val_scenes_with_gt
    from scene_pe.inference.vertices import predictions_from_outputs
    from scene_pe.train.checkpoint import load_trained_run

    torch.set_num_threads(1)
    cfg, model, ck = load_trained_run(args.run)
    overrides, notes = effective_overrides(ck.get(RECORD_KEY), [])
    cfg = point_config(cfg, tuple(overrides))
    print("\n".join(notes))
    scenes = val_scenes_with_gt(cfg, args.max_scenes)
    with torch.no_grad():
        cache = cache_scenes(model, cfg, scenes, progress=True, desc="network")
    pairs = [tuple(p.split(":")) for p in args.pairs.split(",")]
    print(f"{len(scenes)} val scenes of {cfg.data.root}; cloud segments from {args.cloud_root}; IoU >= {args.iou}")
    print("| mesh mode | cloud mode | agreeing mesh instances | mesh AP | cloud AP |")
    print("|---|---|---|---|---|")
    for mesh_mode, cloud_mode in pairs:
        agree = total = 0
        evs = {side: InstanceEvaluator(label_set=cfg.data.labels) for side in ("mesh", "cloud")}
        for c in cache:
            scene = c.voxels.scenes[0]
            with np.load(args.cloud_root / "scenes" / f"{scene}.npz") as z:
                cloud_segment = z["segment"]
            preds = {}
            for side, mode, segment in (("mesh", mesh_mode, c.voxels.segments[0]), ("cloud", cloud_mode, cloud_segment)):
                inf = dataclasses.replace(cfg.inference, superpoints=mode)
                voxels = dataclasses.replace(c.voxels, segments=[segment])
                (preds[side],) = predictions_from_outputs(c.out, voxels, inf, label_set=cfg.data.labels)
                p = preds[side]
                evs[side].add(scene, c.gt, p.instance, p.labels, p.confidence)
            a = instance_agreement(preds["mesh"].instance, preds["cloud"].instance, args.iou)
            agree, total = agree + a.agreeing, total + a.first
        print(f"| {mesh_mode} | {cloud_mode} | {agree} of {total} ({100.0 * agree / max(total, 1):.1f} %) | "
              f"{evs['mesh'].result().mean_ap:.3f} | {evs['cloud'].result().mean_ap:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
