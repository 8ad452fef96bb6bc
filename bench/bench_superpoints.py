"""Purity and segment counts of the point-cloud superpoints (scene_pe/superpoints/) on generated rooms.

    python bench/bench_superpoints.py --scannet-root data/scannetlike/scannet [--scenes 6] [--split val]

For each of the first ``--scenes`` rooms of the split (tools/make_synthetic.py
--profile scannet: sensor noise, holes, clutter): ScanNet's mesh segments
(segs.json) as the reference count, then the built-in point-cloud segmentator,
normals only and with colour edges, on the room's vertices as a bare cloud
(normals estimated, no faces) and on clouds resampled from them: random halves
and quarters of the vertices and one vertex per 2 cm voxel. Purity
(scene_pe/superpoints/purity.py): annotated vertices in a segment whose majority
GT object is their own; "strict" also counts the unannotated as an object.
Prints one row per cloud and method: mean and minimum purity over the rooms,
strict purity, segments as a multiple of the mesh's, seconds per room.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def resampled(n: int, xyz: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Vertex indices of each cloud: all, random half, random quarter, one per 2 cm voxel."""
    grid = np.floor(xyz / 0.02).astype(np.int64)
    _, first = np.unique(grid, axis=0, return_index=True)
    return {"vertices": np.arange(n), "half": np.sort(rng.choice(n, n // 2, replace=False)),
            "quarter": np.sort(rng.choice(n, n // 4, replace=False)), "2 cm grid": np.sort(first)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scannet-root", type=Path, required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from scene_pe.data.scannet import LABEL_MAP_NAME, gt_ids, load_label_map, read_scene
    from scene_pe.geometry.normals import estimate_normals
    from scene_pe.superpoints.purity import num_segments, purity
    from scene_pe.superpoints.segmentator import SegmentatorConfig, segment_cloud

    names = (args.scannet_root / f"scannetv2_{args.split}.txt").read_text().split()[:args.scenes]
    label_map = load_label_map(args.scannet_root / LABEL_MAP_NAME)
    methods = {"normals only": SegmentatorConfig(color_weight=0.0), "normals + colour": SegmentatorConfig()}
    rows: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    rng = np.random.default_rng(args.seed)
    for name in names:
        raw = read_scene(args.scannet_root / "scans" / name, label_map)
        gt, mesh_count = gt_ids(raw), num_segments(raw.segment)
        print(f"{name}: {len(gt):,} vertices, mesh segments {mesh_count} (purity {purity(raw.segment, gt):.4f})",
              flush=True)
        for cloud, idx in resampled(len(gt), raw.coords, rng).items():
            xyz = raw.coords[idx]
            normals = estimate_normals(xyz)
            for method, cfg in methods.items():
                t0 = time.perf_counter()
                seg = segment_cloud(xyz, normals, cfg, raw.colors[idx])
                sec = time.perf_counter() - t0
                print(f"  {cloud}, {method}: purity {purity(seg, gt[idx]):.4f}, {num_segments(seg)} segments",
                      flush=True)
                rows.setdefault((cloud, method), []).append(
                    (purity(seg, gt[idx]), purity(seg, gt[idx], annotated_only=False),
                     num_segments(seg) / mesh_count, sec))
    print(f"\n{len(names)} rooms of {args.scannet_root} ({args.split}); segments as a multiple of the mesh's\n")
    print("| cloud | segmentator | purity mean | purity min | strict purity | segments / mesh's (max) | s per room |")
    print("|---|---|---|---|---|---|---|")
    for (cloud, method), values in rows.items():
        v = np.asarray(values)
        print(f"| {cloud} | {method} | {v[:, 0].mean():.4f} | {v[:, 0].min():.4f} | {v[:, 1].mean():.4f} | "
              f"{v[:, 2].mean():.2f}x ({v[:, 2].max():.2f}x) | {v[:, 3].mean():.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
