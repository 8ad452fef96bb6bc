#!/usr/bin/env python
"""CPU training throughput (scenes/s) and the share of step time spent waiting for data.

Generates synthetic ScanNet-format scenes, preprocesses them, and trains the
given config for --steps steps (no validation), then prints the figures.
    python bench/bench_train.py [--config configs/synthetic_probabilistic.yaml]
        [--scenes 8] [--steps 20] [--workers 1] [key.sub=value ...]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scene_pe.config import load_config  # noqa: E402
from scene_pe.data.preprocess import run_preprocess  # noqa: E402
from scene_pe.data.scannet import load_label_map  # noqa: E402
from scene_pe.synthetic.scenes import generate_dataset  # noqa: E402
from scene_pe.train.trainer import Trainer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/synthetic_probabilistic.yaml")
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        splits = generate_dataset(tmp / "raw", args.scenes, 0, 0, seed=0, num_vertices=(20000, 60000))
        run_preprocess(tmp / "raw", tmp / "pre", splits, load_label_map(tmp / "raw" / "scannetv2-labels.combined.tsv"),
                       progress=False)
        cfg = load_config(args.config, [f"data.root={tmp / 'pre'}", f"run_dir={tmp / 'runs'}",
                                        f"data.num_workers={args.workers}", f"train.max_steps={args.steps}",
                                        "train.val_every=100000", "train.epochs=100000", *args.overrides])
        trainer = Trainer(cfg, progress=False)
        start = time.perf_counter()
        trainer.fit()
        wall = time.perf_counter() - start
        trainer.close()
        t = trainer.throughput
        scenes = trainer.step * cfg.data.batch_size
        print(f"config {args.config}: backbone {cfg.model.backbone.name}, head {cfg.model.head.type}, "
              f"voxel {cfg.data.voxel.voxel_size} m, batch {cfg.data.batch_size}, workers {args.workers}, "
              f"torch threads {__import__('torch').get_num_threads()}, load avg {os.getloadavg()[0]:.1f}")
        print(f"steps {trainer.step}: {scenes / wall:.2f} scenes/s ({wall / trainer.step:.2f} s/step, wall incl. loader start)")
        total = t["data_wait_s"] + t["compute_s"]
        print(f"step time: compute {t['compute_s']:.1f} s, waiting for data {t['data_wait_s']:.1f} s "
              f"({100 * t['data_wait_s'] / total:.1f}% of step time)")


if __name__ == "__main__":
    main()
