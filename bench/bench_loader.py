#!/usr/bin/env python
"""Can the CPU loader feed a GPU? Per-stage time of one loader worker at ScanNet scale.

Generates ScanNet-profile synthetic scenes of ~150k vertices, preprocesses
them, then in this process with one thread (as a loader worker runs) times
each stage per scene: load (npz), each transform of the ScanNet training list
(SCANNET_TRAIN_SPECS, as configs/scannet_probabilistic.yaml uses), voxelize
(2 cm, one scene) and collate (a batch of --batch: the batch's voxelize time
minus its scenes' own); then scenes/s of one worker, and of a real
DataLoader with one worker process for comparison.
  python bench/bench_loader.py [--scenes 4] [--vertices 150000] [--repeats 3] [--data DIR]
--data keeps the generated + preprocessed scenes in DIR for the next run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scene_pe.data.dataset import SceneDataset, VoxelCollate, load_scene, worker_init  # noqa: E402
from scene_pe.data.preprocess import run_preprocess  # noqa: E402
from scene_pe.data.scannet import load_label_map  # noqa: E402
from scene_pe.data.transforms import SCANNET_TRAIN_SPECS, build_transforms  # noqa: E402
from scene_pe.sparse.voxelize import VoxelizeConfig, voxelize  # noqa: E402
from scene_pe.synthetic.scenes import generate_dataset  # noqa: E402


def prepare(root: Path, n_scenes: int, vertices: int) -> list[str]:
    """Generated (ScanNet profile) and preprocessed scenes under ``root``; their names."""
    pre = root / "pre"
    if not (pre / "splits" / "train.txt").exists():
        t = time.perf_counter()
        splits = generate_dataset(root / "raw", n_scenes, 0, 0, seed=0, profile="scannet",
                                  num_vertices=(int(vertices * 0.97), int(vertices * 1.03)))
        run_preprocess(root / "raw", pre, splits,
                       load_label_map(root / "raw" / "scannetv2-labels.combined.tsv"),
                       workers=1, progress=False)
        print(f"generated and preprocessed {n_scenes} scenes in {time.perf_counter() - t:.0f} s")
    return (pre / "splits" / "train.txt").read_text().split()


def stage_times(pre: Path, scenes: list[str], repeats: int, batch: int) -> dict[str, float]:
    """Mean seconds per scene of every stage (one thread, this process)."""
    pipeline = build_transforms(SCANNET_TRAIN_SPECS)
    cfg = VoxelizeConfig(0.02, ("colors",))
    times: dict[str, list[float]] = defaultdict(list)
    vertices, voxels = [], []
    for r in range(repeats):
        samples = []
        for i, scene in enumerate(scenes):
            t = time.perf_counter()
            sample = load_scene(pre, scene)
            times["load (npz)"].append(time.perf_counter() - t)
            rng = np.random.default_rng([0, r, i])  # as SceneDataset: (seed, epoch, index)
            for transform in pipeline.transforms:
                t = time.perf_counter()
                sample = transform(sample, rng)
                times[type(transform).__name__].append(time.perf_counter() - t)
            t = time.perf_counter()
            vb = voxelize([sample], cfg)
            times["voxelize (one scene)"].append(time.perf_counter() - t)
            vertices.append(len(sample["coords"]))
            voxels.append(len(vb.coordinates))
            samples.append(sample)
        for start in range(0, len(samples) - batch + 1, batch):
            group = samples[start:start + batch]
            t = time.perf_counter()
            voxelize(group, cfg)
            whole = time.perf_counter() - t
            own = sum(times["voxelize (one scene)"][-len(samples) + start:][:batch])
            times["collate (per scene)"].append((whole - own) / batch)
    out = {k: float(np.mean(v)) for k, v in times.items()}
    out["_vertices"], out["_voxels"] = float(np.mean(vertices)), float(np.mean(voxels))
    return out


def dataloader_rate(pre: Path, scenes: list[str], repeats: int, batch: int) -> float:
    """Scenes/s of a DataLoader with one worker process (what training runs, per worker)."""
    ds = SceneDataset(pre, scenes, build_transforms(SCANNET_TRAIN_SPECS), repeat=repeats)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=1,
                                         collate_fn=VoxelCollate(VoxelizeConfig(0.02, ("colors",))),
                                         worker_init_fn=worker_init, prefetch_factor=2)
    it = iter(loader)
    next(it)  # worker start-up and the first batch are not the steady state
    t, n = time.perf_counter(), 0
    for vb, _ in it:
        n += len(vb.scenes)
    return n / (time.perf_counter() - t) if n else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=4)
    p.add_argument("--vertices", type=int, default=150_000)
    p.add_argument("--repeats", type=int, default=3, help="epochs over the scenes")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--data", type=Path, default=None, help="keep the scenes here (reused)")
    args = p.parse_args()
    torch.set_num_threads(1)  # a loader worker's setting (dataset.worker_init)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or Path(tmp)
        scenes = prepare(root, args.scenes, args.vertices)
        print(f"load average before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores, "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
        st = stage_times(root / "pre", scenes, args.repeats, args.batch)
        total = sum(v for k, v in st.items() if not k.startswith("_"))
        print(f"{len(scenes)} scenes x {args.repeats} epochs, {st['_vertices'] / 1e3:.0f}k vertices, "
              f"{st['_voxels'] / 1e3:.0f}k voxels at 2 cm; ms per scene, one thread:")
        for k, v in st.items():
            if not k.startswith("_"):
                print(f"  {k:<24} {v * 1e3:8.1f} ms  {100 * v / total:5.1f}%")
        print(f"  {'total':<24} {total * 1e3:8.1f} ms  -> {1 / total:.2f} scenes/s per worker")
        rate = dataloader_rate(root / "pre", scenes, args.repeats, args.batch)
        print(f"DataLoader, 1 worker process, batch {args.batch}: {rate:.2f} scenes/s")
        print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
