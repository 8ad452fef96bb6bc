"""Purity and segment counts of the point-cloud superpoints (scene_pe/superpoints/): real scans beside generated rooms.

    python bench/bench_superpoints.py [--scannet-root data/scannetlike/scannet] [--scenes 6] [--split val]
                                      [--real-root ../shared/real_scans/scannet] [--clouds vertices,half]

Real scans: every scene under ``--real-root``/scans (default: the shared
folder beside the repository, ``../shared/real_scans/scannet``; a note when it
is absent, and the real rows are skipped). Generated rooms: the first
``--scenes`` rooms of ``--split`` of ``--scannet-root`` (tools/make_synthetic.py
--profile scannet: sensor noise, holes, clutter), when given.

Each scan's vertices are given as a bare cloud (no faces, no normals: the
segmentator estimates its own), at the vertex density and resampled: random
halves and quarters of the vertices and one vertex per 2 cm voxel. Two
segmentators: the defaults (normals + colour vetoes) and normals only.

Purity (scene_pe/superpoints/purity.py): the share of the annotated vertices
(GT > 0) that lie in a segment whose most common annotated GT id is their own,
i.e. vertex-weighted; "strict" also counts the unannotated as one object. GT:
instances (aggregation + segs.json) where the scan has them; else the NYU40
labels of labels.ply ("semantic" purity: two touching objects of one class
count as one, so it is the weaker check). The mesh's segment count is the
reference: segs.json, else the built-in mesh segmentator on the scan's faces.
Real scans are reported one row per scene (two scans are a check, not a
benchmark); generated rooms as mean and minimum over the rooms.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL_ROOT = ROOT.parent / "shared" / "real_scans" / "scannet"
CLOUDS = ("vertices", "half", "quarter", "2 cm grid")


def resampled(n: int, xyz: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Vertex indices of each cloud: all, random half, random quarter, one per 2 cm voxel."""
    grid = np.floor(xyz / 0.02).astype(np.int64)
    _, first = np.unique(grid, axis=0, return_index=True)
    return {"vertices": np.arange(n), "half": np.sort(rng.choice(n, n // 2, replace=False)),
            "quarter": np.sort(rng.choice(n, n // 4, replace=False)), "2 cm grid": np.sort(first)}


def real_scan(scene_dir: Path, tsv: Path):
    """(xyz, rgb, GT per vertex, GT kind, mesh segment count, where that count comes from) of a real scan."""
    from plyfile import PlyData

    from scene_pe.data.scannet import gt_ids, load_label_map, read_mesh, read_scene
    from scene_pe.superpoints.purity import num_segments
    from scene_pe.superpoints.segmentator import segment_mesh

    name = scene_dir.name
    with warnings.catch_warnings():  # the README lists what these scans lack (alignment, categories)
        warnings.simplefilter("ignore")
        if (scene_dir / f"{name}.aggregation.json").is_file():
            raw = read_scene(scene_dir, load_label_map(tsv))
            return raw.coords, raw.colors, gt_ids(raw), "instances", num_segments(raw.segment), "segs.json"
        xyz, rgb, faces = read_mesh(scene_dir / f"{name}_vh_clean_2.ply", name)
    labels = np.asarray(PlyData.read(str(scene_dir / f"{name}_vh_clean_2.labels.ply"))["vertex"]["label"])
    return xyz, rgb, labels.astype(np.int64), "semantics", num_segments(segment_mesh(xyz, faces)), "built-in"


def measure(xyz, rgb, gt, mesh_count, clouds, rng, methods, rows, key, verbose=True):
    from scene_pe.superpoints.purity import num_segments, purity
    from scene_pe.superpoints.segmentator import segment_cloud

    for cloud, idx in resampled(len(gt), xyz, rng).items():
        if cloud not in clouds:
            continue
        for method, cfg in methods.items():
            t0 = time.perf_counter()
            seg = segment_cloud(xyz[idx], None, cfg, rgb[idx])
            sec = time.perf_counter() - t0
            p, count = purity(seg, gt[idx]), num_segments(seg)
            if verbose:
                print(f"  {cloud}, {method}: purity {p:.4f}, {count} segments", flush=True)
            rows.setdefault((key, cloud, method), []).append(
                (p, purity(seg, gt[idx], annotated_only=False), count, count / mesh_count, sec))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scannet-root", type=Path, help="generated rooms (tools/make_synthetic.py layout)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--real-root", type=Path, default=REAL_ROOT)
    ap.add_argument("--clouds", default=",".join(CLOUDS), help=f"which of {', '.join(CLOUDS)}")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from scene_pe.data.scannet import LABEL_MAP_NAME, gt_ids, load_label_map, read_scene
    from scene_pe.superpoints.purity import num_segments
    from scene_pe.superpoints.segmentator import SegmentatorConfig

    clouds = set(args.clouds.split(","))
    methods = {"defaults (normals + colour vetoes)": SegmentatorConfig(),
               "normals only": SegmentatorConfig(color_weight=0.0, color_veto=float("inf"))}
    rows: dict[tuple[str, str, str], list[tuple[float, ...]]] = {}
    rng = np.random.default_rng(args.seed)
    real = sorted(p for p in (args.real_root / "scans").glob("scene*") if p.is_dir()) \
        if (args.real_root / "scans").is_dir() else []
    if not real:
        print(f"note: no real scans at {args.real_root} (see ../shared/real_scans/README.md); real rows skipped")
    for scene_dir in real:
        xyz, rgb, gt, kind, mesh_count, source = real_scan(scene_dir, args.real_root / LABEL_MAP_NAME)
        print(f"{scene_dir.name} (real, GT {kind}): {len(gt):,} vertices, mesh segments {mesh_count} ({source})",
              flush=True)
        measure(xyz, rgb, gt, mesh_count, clouds, rng, methods, rows, f"{scene_dir.name} (real, {kind})")
    names = []
    if args.scannet_root is not None:
        names = (args.scannet_root / f"scannetv2_{args.split}.txt").read_text().split()[:args.scenes]
        label_map = load_label_map(args.scannet_root / LABEL_MAP_NAME)
    for name in names:
        raw = read_scene(args.scannet_root / "scans" / name, label_map)
        gt, mesh_count = gt_ids(raw), num_segments(raw.segment)
        print(f"{name} (generated): {len(gt):,} vertices, mesh segments {mesh_count}", flush=True)
        measure(raw.coords, raw.colors, gt, mesh_count, clouds, rng, methods, rows,
                f"{len(names)} generated rooms ({args.split})")

    print("\n| scan | cloud | segmentator | purity (min) | strict purity | segments | segments / mesh's (max) | s |")
    print("|---|---|---|---|---|---|---|---|")
    for (key, cloud, method), values in rows.items():
        v = np.asarray(values)
        print(f"| {key} | {cloud} | {method} | {v[:, 0].mean():.4f} ({v[:, 0].min():.4f}) | {v[:, 1].mean():.4f} | "
              f"{v[:, 2].mean():.0f} | {v[:, 3].mean():.2f}x ({v[:, 3].max():.2f}x) | {v[:, 4].mean():.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
