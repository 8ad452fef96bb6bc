"""Timing of the bench scripts: a warm-up run, then the timed ones."""

from __future__ import annotations

import time


def timed(fn, repeats: int) -> tuple[list[float], object]:
    """Run ``fn`` once to warm up, then ``repeats`` times; (seconds of each timed run, last result)."""
    out = fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return times, out
