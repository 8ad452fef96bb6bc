#!/usr/bin/env python
"""Preprocessing throughput and peak memory on synthetic ~80k-vertex ScanNet-format scenes.

Generates scenes with scene_pe.synthetic.scenes into a temp dir, then preprocesses them once
per worker count, each run in a fresh subprocess so that its peak RSS (ru_maxrss of the
run itself; pool workers report theirs with each scene) is its own.

  python bench/bench_preprocess.py [--scenes 6] [--vertices 80000] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_once(raw: Path, out: Path, workers: int) -> dict:
    """Child mode: preprocess the train split of ``raw`` into ``out``; report time and RSS."""
    import warnings

    from scene_pe.data.preprocess import run_preprocess
    from scene_pe.util.io import read_lines
    from scene_pe.data.scannet import LABEL_MAP_NAME, load_label_map

    warnings.simplefilter("ignore")
    splits = {"train": read_lines(raw / "scannetv2_train.txt")}
    t0 = time.perf_counter()
    summary = run_preprocess(raw, out, splits, load_label_map(raw / LABEL_MAP_NAME),
                             workers=workers, overwrite=True, progress=False)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "written": len(summary.of("written")), "failed": len(summary.of("failed")),
            "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            # pool workers are forkserver children, not ours: they report their own peak
            "worker_maxrss_mb": max(r.maxrss_mb for r in summary.results),
            "scene_seconds": sum(r.seconds for r in summary.results) / max(1, len(summary.results))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=6)
    p.add_argument("--vertices", type=int, default=80000)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--child", nargs=3, metavar=("RAW", "OUT", "WORKERS"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(run_once(Path(a.child[0]), Path(a.child[1]), int(a.child[2]))))
        return

    from scene_pe.synthetic.scenes import generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        t0 = time.perf_counter()
        v = a.vertices
        generate_dataset(raw, a.scenes, 0, 0, seed=0, num_vertices=(int(v * 0.97), int(v * 1.03)))
        size = sum(f.stat().st_size for f in raw.rglob("*") if f.is_file()) / 2**20
        print(f"generated {a.scenes} scenes of ~{v} vertices ({size:.0f} MiB raw) in "
              f"{time.perf_counter() - t0:.1f} s")
        for w in a.workers:
            out = Path(tmp) / f"out{w}"
            res = subprocess.run([sys.executable, __file__, "--child", str(raw), str(out), str(w)],
                                 check=True, capture_output=True, text=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            outsize = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
            print(f"workers={w}: {r['written']} written, {r['failed']} failed, {r['seconds']:.2f} s, "
                  f"{a.scenes / r['seconds']:.2f} scenes/s, {r['scene_seconds']:.3f} s/scene in worker; "
                  f"peak RSS main {r['self_maxrss_mb']:.0f} MiB, "
                  f"process running scenes {r['worker_maxrss_mb']:.0f} MiB; output {outsize:.0f} MiB")


if __name__ == "__main__":
    main()
