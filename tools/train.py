#!/usr/bin/env python
"""Train a model: tools/train.py CONFIG [key.sub=value ...] [--resume].

Single GPU or CPU:  python tools/train.py configs/scannet_probabilistic.yaml
Several GPUs:       torchrun --nproc_per_node=4 tools/train.py configs/scannet_probabilistic.yaml
Outputs go to <run_dir>/<name>/ (config.yaml, train.log, tb/, last.pth, best.pth).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scene_pe.util import cli  # noqa: E402
from scene_pe.util.threads import add_threads_argument, set_cpu_threads  # noqa: E402


def main(argv=None) -> int:
    ap = cli.ArgumentParser(description=__doc__)
    ap.add_argument("config", type=Path)
    ap.add_argument("overrides", nargs="*", help="key.sub=value overrides of the config")
    ap.add_argument("--resume", action="store_true", help="continue from <run>/last.pth")
    ap.add_argument("--checkpoint-every", type=int, default=0,
                    help="also write last.pth every N steps (default: once per epoch)")
    ap.add_argument("--no-progress", action="store_true")
    add_threads_argument(ap)
    args = ap.parse_args(argv)
    # before torch / MinkowskiEngine load (their OpenMP runtimes read the count then): with one
    # thread a resumed run equals an uninterrupted one bit for bit
    set_cpu_threads(args.threads)
    from scene_pe.config import load_config
    from scene_pe.util.typed_config import ConfigError

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    from scene_pe.train.trainer import Trainer

    trainer = Trainer(cfg, resume=args.resume, checkpoint_every=args.checkpoint_every,
                      progress=not args.no_progress)
    ok = False
    try:
        metrics = trainer.fit()
        if trainer.main:
            print(f"run directory: {cfg.run_path.resolve()}")
            if metrics:
                print(f"final validation: AP {metrics['ap']:.3f}  AP50 {metrics['ap50']:.3f}  "
                      f"AP25 {metrics['ap25']:.3f}  mIoU {metrics['miou']:.3f}")
        ok = True
    finally:
        trainer.close(barrier=ok)  # after a failure no barrier: the other ranks may never reach it
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
