"""Superpoint segmentation time (scene_pe/superpoints/segmentator.py) on generated meshes.

    python bench/bench_segment.py [--vertices 50000,150000,500000] [--repeats 3] [--cloud]

Meshes: generated rooms (scene_pe.synthetic, seed 0) of about each vertex
count. Times: the fastest of ``--repeats`` runs after one warm-up (which also
compiles the numba pass, cached on disk afterwards), split into normals +
edge weights (numpy) and the sorted union-find (numba), on one thread.
``--cloud`` also times the point-cloud variant (k-NN graph, open3d normals).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from timing import timed  # noqa: E402  (bench/, beside this file)


def best_of(fn, repeats: int) -> tuple[float, object]:
    """Fastest of ``repeats`` runs after a warm-up, and the result."""
    times, out = timed(fn, repeats)
    return min(times), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vertices", default="50000,150000,500000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cloud", action="store_true")
    args = ap.parse_args(argv)

    from scene_pe.geometry.normals import running_mean_normals
    from scene_pe.superpoints.segmentator import (edge_weights, mesh_edges, segment_cloud,
                                                  segment_graph, segment_mesh)
    from scene_pe.synthetic.scenes import generate_scene

    print(f"{'vertices':>9} {'faces':>9} {'segments':>8} {'normals+weights s':>17} {'union-find s':>12} "
          f"{'total s':>8}" + (f" {'cloud s':>8}" if args.cloud else ""))
    for target in map(int, args.vertices.split(",")):
        scene = generate_scene("scene0998_00", 0, num_vertices_target=target)
        xyz, faces = scene.vertices.astype(np.float32), scene.faces.astype(np.int64)

        def geometry():
            normals = running_mean_normals(xyz, faces)
            edges = mesh_edges(faces)
            return edges, edge_weights(xyz, normals, edges)

        t_geo, (edges, weights) = best_of(geometry, args.repeats)
        t_uf, _ = best_of(lambda: segment_graph(len(xyz), edges, weights), args.repeats)
        t_all, seg = best_of(lambda: segment_mesh(xyz, faces), args.repeats)
        row = (f"{len(xyz):>9,} {len(faces):>9,} {len(np.unique(seg)):>8} {t_geo:>17.3f} {t_uf:>12.3f} "
               f"{t_all:>8.3f}")
        if args.cloud:
            t_cloud, _ = best_of(lambda: segment_cloud(xyz), 1)
            row += f" {t_cloud:>8.3f}"
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
