#!/usr/bin/env python
"""Diagnose a trained head's embeddings on its held-out split, independent of clustering thresholds.

    python tools/diagnose.py RUN_DIR [RUN_DIR ...] [--max-scenes N] [--json OUT.json]

RUN_DIR holds config.yaml and last.pth (tools/train.py, tools/ablate.py runs).
Prints, per run: the share of instance voxels whose own GT instance's kernel
beats every other instance's ("separable"), the median own kernel, the shares
with own < tau and with another instance >= tau, and sigma quantiles on
instance and on other voxels (scene_pe/experiments/diagnose.py says how each is
computed). Exit status 2 on a missing run.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scene_pe.util import cli  # noqa: E402
from scene_pe.util.threads import add_threads_argument, set_cpu_threads  # noqa: E402
from scene_pe.util.io import write_text_atomic  # noqa: E402


def main(argv=None) -> int:
    ap = cli.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--max-scenes", type=int, default=0, help="first N val scenes (0: all)")
    ap.add_argument("--json", type=Path, help="also write the statistics here")
    add_threads_argument(ap)
    args = ap.parse_args(argv)
    set_cpu_threads(args.threads)  # before torch / MinkowskiEngine load
    for run in args.runs:
        if not (run / "config.yaml").is_file() or not (run / "last.pth").is_file():
            print(f"diagnose: {run}: no config.yaml and last.pth (not a training run folder)", file=sys.stderr)
            return 2
    from scene_pe.experiments.diagnose import diagnose_run

    def fmt(v):
        return "-" if v is None else f"{v:.3f}"

    results = {}
    for run in args.runs:
        r = diagnose_run(run, args.max_scenes)
        results[str(run)] = r
        sig = " ".join(f"{v:.3f}" for v in r["sigma_instance_q10_50_90"])
        rest = " ".join(f"{v:.3f}" for v in (r["sigma_other_q10_50_90"] or []))
        print(f"{run}: {r['head']}/{r['embedding']} {r['voxels']} voxels of {r['scenes']} scenes: "
              f"separable {r['separable']:.3f}  own median {r['own_median']:.3f}  "
              f"own<tau {r['own_below_tau']:.3f}  other>=tau {r['other_above_tau']:.3f} (tau {r['tau']})  "
              f"sigma q10/50/90 instance {sig}  other {rest or '-'}  log sigma {fmt(r['log_sigma_mean'])} +- "
              f"{fmt(r['log_sigma_std'])}  negative pairs kappa>0.9 {fmt(r['neg_pairs_above'])}")
    if args.json:
        write_text_atomic(args.json, json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
