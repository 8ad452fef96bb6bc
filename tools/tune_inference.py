#!/usr/bin/env python
"""Tune inference thresholds of trained runs on their val split, the network run once per scene.

    python tools/tune_inference.py RUN_DIR [RUN_DIR ...] --grid inference.key=v1,v2,... [...]
                                   [--max-scenes N] [--out DIR]

RUN_DIR holds config.yaml and last.pth (tools/train.py, tools/ablate.py runs);
give the seeds of one config together: a grid point's score is the mean over
them. The sorted val scenes are halved by position: the point with the best
mean AP on the even half ("select") is chosen, and its figures on the odd half
("report") are the ones to quote (scene_pe/experiments/tuning.py). Prints a markdown
table; --out also writes tuning.json and tuning.md there. Examples:

    tools/tune_inference.py runs/ablate/runs/full_aniso_hetero/seed{0,1,2} \\
        --grid inference.probabilistic.tau=0.25,0.35,0.5 inference.probabilistic.min_size=20,50
    tools/tune_inference.py runs/ablate/runs/margin_baseline/seed{0,1,2} \\
        --grid inference.margin.seed_threshold=0.3,0.5,0.7 inference.margin.phi_threshold=0.3,0.5,0.7
    tools/tune_inference.py runs/ablate/runs/full_aniso_hetero/seed{0,1,2} \\
        --grid inference.superpoints=none,vote,cluster --all-scenes

With --write RUN, the thresholds of that one run are fitted (its config's
train.fit grid unless --grid is given) and stored in RUN/last.pth, as training
does at its end; tools/test.py and tools/predict.py then use them:

    tools/tune_inference.py --write runs/scannetlike/scannetlike_probabilistic

Exit status 2 on a bad grid or a missing run.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scene_pe.util import cli  # noqa: E402
from scene_pe.util.threads import add_threads_argument, set_cpu_threads  # noqa: E402


def main(argv=None) -> int:
    ap = cli.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="*", type=Path, help="training run folders (config.yaml, last.pth)")
    ap.add_argument("--write", type=Path, metavar="RUN",
                    help="fit RUN's thresholds and store them in RUN/last.pth (test and predict use them)")
    ap.add_argument("--grid", nargs="+", default=[], help="inference.key=v1,v2,... (cartesian product)")
    ap.add_argument("--max-scenes", type=int, default=0, help="first N val scenes with GT (0: all)")
    ap.add_argument("--out", type=Path, help="write tuning.json and tuning.md here")
    ap.add_argument("--all-scenes", action="store_true",
                    help="also print every point on all val scenes (a comparison: nothing is chosen from it)")
    ap.add_argument("--no-progress", action="store_true")
    add_threads_argument(ap)
    args = ap.parse_args(argv)
    set_cpu_threads(args.threads)  # before torch / MinkowskiEngine load
    if bool(args.runs) == bool(args.write):
        ap.error("give either run folders to tune or --write RUN")
    from scene_pe.commands.tune_inference import run

    return run(args)


if __name__ == "__main__":
    sys.exit(cli.run(main))
