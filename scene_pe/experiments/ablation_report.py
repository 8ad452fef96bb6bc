"""Ablation tables: results.json (every run and the aggregates), results.md and results.png.

Per config, over its finished seeds: the mean and the sample standard deviation
(ddof = 1: the seeds are a sample of training randomness; null with one seed)
of every scalar the evaluation returned and of the training time. Failed runs
are listed in results.json and left out of the aggregates; ``n`` says how many
seeds a row stands on. Everything is rebuilt from the runs' metrics.json files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from scene_pe.util.io import atomic_open, write_text_atomic

MAIN = (("ap", "AP"), ("ap50", "AP50"), ("ap25", "AP25"), ("miou", "mIoU"))


def _clean(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


def aggregate(values: list[float | None]) -> dict:
    """mean, sample std (None for fewer than 2 values) and n; None values count as NaN."""
    a = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    mean = float(a.mean()) if a.size else None
    std = float(a.std(ddof=1)) if a.size > 1 else None
    return {"mean": _clean(mean), "std": _clean(std), "n": int(a.size)}


def summarise(order: list[str], records: list[dict]) -> dict[str, dict]:
    """Aggregates per config name, in ``order``."""
    out = {}
    for name in order:
        done = [r for r in records if r["name"] == name and r.get("status") == "done"]
        keys = sorted({k for r in done for k in r["metrics"]})
        out[name] = {
            "n": len(done),
            "seeds": [r["seed"] for r in done],
            "metrics": {k: aggregate([r["metrics"].get(k) for r in done]) for k in keys},
            "train_minutes": aggregate([r.get("train_minutes") for r in done]),
            "steps": aggregate([r.get("steps") for r in done]),
        }
    return out


def _cell(agg: dict | None) -> str:
    if not agg or agg["mean"] is None:
        return "n/a"
    return f"{agg['mean']:.3f}" + (f" ± {agg['std']:.3f}" if agg["std"] is not None else "")


def budget_text(budget: dict) -> str:
    if "epochs" in budget:
        return f"{budget['epochs']} epoch(s) per run"
    return f"{budget['minutes']} min of training time per run (or the config's epochs if fewer)"


def markdown(summary: dict[str, dict], meta: dict) -> str:
    main = [k for k, _ in MAIN]
    extra = sorted({k for s in summary.values() for k in s["metrics"]} - set(main))
    head = ["config", *(label for _, label in MAIN), *extra, "train time (min)", "seeds"]
    seeds = f"seeds 0..{meta['seeds'] - 1}" if meta["seeds"] > 1 else "seed 0"
    lines = [
        "# Ablation results", "",
        f"Budget: {budget_text(meta['budget'])}; {seeds}; the final model (last.pth) of each run "
        "evaluated on the held-out split; mean ± sample std over seeds.", "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" + "---:|" * (len(head) - 1),
    ]
    for name, s in summary.items():
        cells = [_cell(s["metrics"].get(k)) for k in main + extra]
        lines.append("| " + " | ".join([name, *cells, _cell(s["train_minutes"]), str(s["n"])]) + " |")
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, dict], path: Path) -> None:
    """Grouped bars (one group per main metric, one bar per config), std as error bars."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    names = [n for n, s in summary.items() if s["n"]]
    x = np.arange(len(MAIN))
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(7 + 0.3 * len(names), 4))
    for i, name in enumerate(names):
        aggs = [summary[name]["metrics"].get(k) or {} for k, _ in MAIN]
        means = [np.nan if a.get("mean") is None else a["mean"] for a in aggs]
        stds = [0.0 if a.get("std") is None else a["std"] for a in aggs]
        ax.bar(x + (i - (len(names) - 1) / 2) * width, means, width, yerr=stds, capsize=3,
               label=f"{name} (n={summary[name]['n']})")
    ax.set_xticks(x)
    ax.set_xticklabels([label for _, label in MAIN])
    ax.set_ylim(0, 1)
    ax.set_ylabel("score (mean ± std over seeds)")
    if names:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def write_results(out: Path, order: list[str], records: list[dict], meta: dict) -> list[Path]:
    """Write DIR/results.json, results.md, results.png; returns their paths."""
    summary = summarise(order, records)
    paths = [out / "results.json", out / "results.md", out / "results.png"]
    write_text_atomic(paths[0], json.dumps({**meta, "runs": records, "configs": summary}, indent=1) + "\n")
    write_text_atomic(paths[1], markdown(summary, meta))
    plot(summary, paths[2])
    return paths
