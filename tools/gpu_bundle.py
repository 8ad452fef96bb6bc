#!/usr/bin/env python
"""Write the GPU check as one folder for a machine with a CUDA torch and nothing else.

    python tools/gpu_bundle.py [--out .gpu] [--python 3.12] [--torch 2.11.0+cu130] [--arch 9.0]
                               [--wheel WHEEL | --cache-dir DIR] [--scene NPZ | --vertices 150000]
    make gpu-bundle [GPU_BUNDLE_ARGS="..."]

The folder (under 60 MiB) holds the MinkowskiEngine wheel for the target (Python
version, torch version, GPU architecture: taken from build_wheel.py's cache, or
--wheel, and checked against all three), a saved ScanNet-size scene, scene_pe's
sources and run.sh; there, `sh run.sh` runs tools/gpu_check.py on the scene. The
defaults are the lent GPU machines (Python 3.12, torch 2.11.0+cu130, H100/H200:
9.0). Without a fitting wheel it prints the command that builds one (docs/gpu.md).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from scene_pe.util import cli  # noqa: E402


def default_cache() -> Path:
    xdg = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(os.environ.get("SCENE_PE_CACHE", xdg / "scene_pe"))


def parse_args(argv):
    from scene_pe.env.bundle import Target

    t = Target()
    ap = cli.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=ROOT / ".gpu", help="the bundle's folder (replaced)")
    ap.add_argument("--python", default=t.python, help="the target's Python version (X.Y)")
    ap.add_argument("--torch", default=t.torch, help="the target's torch version, as torch.__version__")
    ap.add_argument("--arch", default=t.arch, help="the target GPU's compute capability (X.Y)")
    ap.add_argument("--wheel", type=Path, help="this wheel instead of the cache's")
    ap.add_argument("--cache-dir", type=Path, default=default_cache(), help="build_wheel.py's cache")
    ap.add_argument("--scene", type=Path, help="a scene saved by tools/gpu_check.py --save-scene")
    ap.add_argument("--vertices", type=int, default=150_000, help="else generate one this size (needs open3d)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    import tempfile

    from scene_pe.env import bundle as B
    from scene_pe.env.gpu_check import save_sample, scannet_sample

    args = parse_args(argv)
    target = B.Target(args.python, args.torch, args.arch)  # ValueError (one line, status 2) if malformed
    wheel = args.wheel or B.find_wheel(args.cache_dir, target)
    if wheel is None:
        print(f"no MinkowskiEngine wheel for Python {target.python}, torch {target.torch}, compute capability "
              f"{target.arch} in {args.cache_dir / 'wheels'}; build one (about 15 min per architecture on 2 cores):"
              f"\n  {B.build_command(target, args.cache_dir)}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        scene = args.scene
        if scene is None:
            scene = Path(tmp) / "scene.npz"
            print(f"generating a ScanNet-profile scene of {args.vertices:,} vertices")
            save_sample(scene, scannet_sample(args.vertices))
        m = B.make_bundle(args.out, wheel, scene, target, ROOT)
    print(f"wrote {args.out} ({m['total_mib']:.1f} MiB): {m['wheel']} ({m['wheel_mib']:.1f} MiB; "
          f"{m['architectures']}: {m['served']}), scene {m['scene_mib']:.1f} MiB")
    print(f"there: sh {args.out.name}/run.sh")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
