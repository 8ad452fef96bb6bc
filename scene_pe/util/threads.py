"""CPU threads of a process: one by default, so that the same command gives the same bits.

MinkowskiEngine's CPU forward is bitwise repeatable only with one OpenMP
thread: with two, four forwards of the demo network on the same input differed
by up to 2.4e-7 (the order of its float sums follows the thread schedule). A
resumed or killed-and-rerun ``tools/test.py`` is promised to write the bytes an
uninterrupted run writes, so every tool defaults to one thread. One thread
costs little: a second one made CPU inference of a 150k-vertex room 1.03x
faster on an idle 2-core machine, no faster with one core busy and 0.67x as
fast with both busy (docs/results.md, "Speed"), because OpenMP and OpenBLAS threads spin
waiting for each other on shared cores. ``--threads 0`` (every core, shared
among torchrun's local ranks) or ``--threads N`` trade that promise for speed
on large idle machines.

MinkowskiEngine's CPU kernels run on its own OpenMP runtime (not torch's) and
multiply with OpenBLAS; both read their thread count from the environment when
the library loads, and ``torch.set_num_threads`` reaches neither. So a tool
sets the count before torch / MinkowskiEngine are imported (tests/test_threads.py
checks that importing a tool loads neither), and torch's pool too if it already
is. Loader workers get one thread each from torch's DataLoader.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

DEFAULT_THREADS = 1  # bitwise repeatable (module docstring)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def add_threads_argument(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                    help="CPU threads (default 1: bitwise repeatable results; 0: every core, shared among "
                         "torchrun's local ranks, faster on large idle machines but not bitwise repeatable)")


def set_cpu_threads(requested: int = DEFAULT_THREADS) -> int:
    """Use ``requested`` threads, or (0) every core, shared among torchrun's local ranks.

    Returns the thread count. Call before importing torch / MinkowskiEngine for
    the BLAS threads to follow.
    """
    if requested < 0:
        raise ValueError(f"threads must be >= 0 (0: every core), got {requested}")
    local_ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    n = requested or max(1, available_cores() // local_ranks)
    if "MinkowskiEngine" in sys.modules and os.environ.get("OMP_NUM_THREADS") != str(n):
        # its OpenMP runtime read the count when it loaded (in-process callers, e.g. the tests,
        # set the environment first)
        warnings.warn(f"{n} CPU threads asked after MinkowskiEngine loaded with OMP_NUM_THREADS="
                      f"{os.environ.get('OMP_NUM_THREADS')}: its kernels keep that count", RuntimeWarning,
                      stacklevel=2)
    for name in THREAD_VARIABLES:
        os.environ[name] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    return n
