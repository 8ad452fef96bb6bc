"""tools/tune_inference.py: inference thresholds of trained runs searched with the network run once
per scene (chosen on one half of the val scenes, reported on the other), or fitted and stored in a run."""

from __future__ import annotations

import json
import sys


def run(args) -> int:
    """tools/tune_inference.py's arguments (thread count set) -> exit status (2: bad runs or grid)."""
    for run in args.runs or [args.write]:
        if not (run / "config.yaml").is_file() or not (run / "last.pth").is_file():
            print(f"tune_inference: {run}: no config.yaml and last.pth (not a training run folder)",
                  file=sys.stderr)
            return 2
    from scene_pe.experiments.tuning import (TuningError, format_all_table, format_fitted, format_table, tune,
                                             write_fitted)
    from scene_pe.inference.fitting import describe_overrides, fit_summary
    from scene_pe.util.io import write_text_atomic

    if args.write:
        try:
            record = write_fitted(args.write, args.grid, args.max_scenes, progress=not args.no_progress)
        except TuningError as e:
            print(f"tune_inference: error: {e}", file=sys.stderr)
            return 2
        print(format_fitted(record))
        for line in fit_summary(record)[1:]:  # the calibrated uncertainty's figures
            print(line)
        print(f"stored in {args.write / 'last.pth'}: {describe_overrides(record['overrides'])}")
        if (args.write / "best.pth").is_file():
            print(f"and in {args.write / 'best.pth'}: the values fitted for its own weights")
        return 0
    try:
        result = tune(args.runs, args.grid, args.max_scenes, progress=not args.no_progress)
    except TuningError as e:
        print(f"tune_inference: error: {e}", file=sys.stderr)
        return 2
    table = format_table(result)
    chosen = result["rows"][result["chosen"]]
    summary = (f"chosen on the select half: {' '.join(chosen['overrides']) or '(config values)'}; "
               f"report half AP {chosen['report_ap'][0]:.3f}"
               + (f" ± {chosen['report_ap'][1]:.3f}" if len(result["runs"]) > 1 else "")
               + f" over {len(result['runs'])} run(s)")
    print(table)
    print(summary)
    all_table = format_all_table(result) if args.all_scenes else ""
    if all_table:
        print(f"\nall {result['rows'][0]['runs'][0]['all']['scenes']} val scenes:\n{all_table}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out / "tuning.json", json.dumps(result, indent=1) + "\n")
        write_text_atomic(args.out / "tuning.md", table + "\n\n" + summary + "\n" + (f"\n{all_table}\n" if all_table else ""))
    return 0
