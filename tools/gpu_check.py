#!/usr/bin/env python
"""Check a machine for training: MinkowskiEngine's CUDA build and convolution, and GPU timings.

    python tools/gpu_check.py [--config CONFIG] [--vertices 150000] [--batch 4] [--steps 3]
                              [--json FILE] [key.sub=value ...]
    make gpu-check [GPU_CHECK_ARGS="..."]

Always (CPU): versions, whether MinkowskiEngine was built with CUDA, and a
3x3x3 sparse convolution against torch's dense conv3d (forward, backward).
With CUDA: the CUDA convolution against the CPU one; training steps with AMP
of CONFIG's network (default configs/scannet_probabilistic.yaml: Res16UNet34C,
2 cm) on a generated ScanNet-size scene (forward, backward, optimizer step,
peak GPU memory) and inference per scene (network, + clustering); with 2+
GPUs a 2-process NCCL DDP step. Without CUDA it says so and stops after the
CPU part (--cpu-timings runs the timings on the CPU instead: slow at
ScanNet size; for small sizes and tests). Exit status 0 when every check
that ran passed, 1 when one failed, 2 on a usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scene_pe.util import cli  # noqa: E402


def parse_args(argv):
    ap = cli.ArgumentParser(description=__doc__)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "scannet_probabilistic.yaml")
    ap.add_argument("overrides", nargs="*", help="key.sub=value overrides of the config")
    ap.add_argument("--vertices", type=int, default=150_000, help="vertices of the generated scene")
    ap.add_argument("--batch", type=int, default=4, help="scenes per training step")
    ap.add_argument("--steps", type=int, default=3, help="timed training steps (after a warm-up)")
    ap.add_argument("--repeats", type=int, default=3, help="timed inference runs (after a warm-up)")
    ap.add_argument("--cpu-timings", action="store_true", help="without CUDA, time on the CPU")
    ap.add_argument("--ddp-on-cpu", action="store_true", help="without 2 GPUs, the DDP step with gloo")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--save-scene", type=Path, metavar="NPZ",
                    help="only generate the scene and save it (for a machine without open3d)")
    ap.add_argument("--scene", type=Path, metavar="NPZ", help="use a scene saved by --save-scene")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from scene_pe.commands.gpu_check import run

    return run(args)


if __name__ == "__main__":
    sys.exit(cli.run(main))
