"""CPU threads of an inference process: every core by default.

Training keeps one thread per process (the Makefile's OMP_NUM_THREADS=1):
its loader workers take the other cores. One inference process (tools/test.py,
tools/predict.py) uses every core it may run on. The count is fixed, not taken
from the machine's load: the thread count changes the order of ME's float
sums, so a load-dependent default would make the same command give different
bits on a busy machine. On cores other jobs keep busy, OpenMP and OpenBLAS
threads spin waiting for each other (2-6x slower with 2 threads than with 1
measured on a loaded 2-core machine, README "Speed"): pass ``--threads 1``
there. MinkowskiEngine's CPU convolutions multiply with OpenBLAS, whose thread
count is read from the environment when the library loads, and torch's
intra-op pool is set at run time; so the environment is set before torch /
MinkowskiEngine are imported, and torch's pool too if it already is.
"""

from __future__ import annotations

import os
import sys


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_inference_threads(requested: int = 0) -> int:
    """Use ``requested`` threads, or (0) every core, shared among torchrun's local ranks.

    Returns the thread count. Call before importing torch / MinkowskiEngine for
    the BLAS threads to follow.
    """
    if requested < 0:
        raise ValueError(f"threads must be >= 0 (0: every core), got {requested}")
    local_ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    n = requested or max(1, available_cores() // local_ranks)
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ["OPENBLAS_NUM_THREADS"] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    return n
