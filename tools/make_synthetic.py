#!/usr/bin/env python
"""Write synthetic ScanNet v2 scenes (seeded, deterministic) laid out like the download.

Example:
  python tools/make_synthetic.py --out data/synthetic --train 16 --val 4 --test 2 --seed 0
writes <out>/scans/sceneXXXX_00/ (train, val: mesh, labels.ply, segs.json,
aggregation.json, .txt), <out>/scans_test/ (test: mesh and .txt only),
<out>/scannetv2-labels.combined.tsv and <out>/scannetv2_{train,val,test}.txt.
--profile scannet makes the harder, ScanNet-like benchmark (scene_pe/synthetic/profiles.py):
  python tools/make_synthetic.py --profile scannet --out data/scannetlike/scannet --train 120 --val 40 --test 40
Scenes already written are kept, so an interrupted run resumes. Exit status 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scene_pe.synthetic.profiles import PROFILES  # noqa: E402
from scene_pe.synthetic.scenes import generate_dataset  # noqa: E402
from scene_pe.util import cli  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--train", type=int, default=8, help="number of training scenes")
    p.add_argument("--val", type=int, default=2, help="number of validation scenes")
    p.add_argument("--test", type=int, default=2, help="number of test scenes (no labels)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", choices=sorted(PROFILES), default="basic",
                   help="basic (demo, tests) or scannet (the harder ScanNet-like benchmark)")
    p.add_argument("--min-vertices", type=int, help="default: the profile's (basic 20000, scannet 100000)")
    p.add_argument("--max-vertices", type=int, help="default: the profile's (basic 120000, scannet 300000)")
    p.add_argument("--workers", type=int, default=1, help="processes generating scenes in parallel")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if min(a.train, a.val, a.test) < 0:
        print("error: scene counts must be >= 0", file=sys.stderr)
        return 2
    lo, hi = PROFILES[a.profile].num_vertices
    a.min_vertices = lo if a.min_vertices is None else a.min_vertices
    a.max_vertices = hi if a.max_vertices is None else a.max_vertices
    if not 0 < a.min_vertices <= a.max_vertices:
        print("error: need 0 < --min-vertices <= --max-vertices", file=sys.stderr)
        return 2
    total = a.train + a.val + a.test
    with tqdm(total=total, unit="scene", disable=a.no_progress) as bar:
        splits = generate_dataset(a.out, a.train, a.val, a.test, seed=a.seed,
                                  num_vertices=(a.min_vertices, a.max_vertices), profile=a.profile,
                                  workers=max(1, a.workers),
                                  on_scene=lambda name: bar.update(1))
    counts = ", ".join(f"{k} {len(v)}" for k, v in splits.items())
    print(f"wrote {total} scenes ({counts}) to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
