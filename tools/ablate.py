#!/usr/bin/env python
"""Ablations: train every config x seed on the same data and budget, evaluate, tabulate.

    tools/ablate.py --configs A.yaml B.yaml ... --seeds N (--epochs E | --minutes M) --out DIR
                    [--jobs J] [key.sub=value ...]

Each run (seeds 0..N-1) trains in its own subprocess (tools/train.py) under
DIR/runs/<config stem>/seed<k>; its final model (last.pth) is then evaluated on
data.val_split. --epochs E sets train.epochs and scales the LR milestones by
E / the config's epochs; --minutes M is a training-time budget per run
(train.max_minutes; the config's epochs stay an upper bound). key.sub=value
overrides apply to every config. Writes DIR/results.json, results.md and
results.png. Rerunning resumes: finished runs are reused, killed ones continue
from last.pth. Exit status 1 if a run failed (the others still complete),
2 for a bad request. Rules: docs/method.md, "Ablations".
"""

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scene_pe.util import cli  # noqa: E402

OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
        return value
    return parse


def parse_args(argv):
    ap = cli.ArgumentParser(description=__doc__)
    ap.add_argument("--configs", nargs="+", required=True, help="config files, one table row each")
    ap.add_argument("--seeds", type=positive(int), required=True, help="runs per config (train.seed 0..N-1)")
    budget = ap.add_mutually_exclusive_group(required=True)
    budget.add_argument("--epochs", type=positive(int), help="epochs per run")
    budget.add_argument("--minutes", type=positive(float), help="training minutes per run")
    ap.add_argument("--out", type=Path, required=True, help="output folder (runs, results)")
    ap.add_argument("--jobs", type=positive(int), default=1, help="runs in parallel (default 1)")
    ap.add_argument("overrides", nargs="*", help="key.sub=value overrides for every config")
    args = ap.parse_args(argv)
    # "--configs a.yaml b.yaml x.y=1": argparse gives the overrides to --configs
    configs = [c for c in args.configs if Path(c).exists() or not OVERRIDE.match(c)]
    args.overrides = [c for c in args.configs if c not in configs] + args.overrides
    args.configs = [Path(c) for c in configs]
    if not args.configs:
        ap.error("--configs needs at least one config file")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from scene_pe.experiments.ablation import AblationError, run_ablation

    try:
        return run_ablation(args.configs, args.seeds, args.out, args.overrides, epochs=args.epochs,
                            minutes=args.minutes, jobs=args.jobs)
    except AblationError as e:
        print(f"ablate: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ablate: interrupted; the same command resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(cli.run(main))
