"""Read and score the scenes of a submission in a process pool.

Reading and parsing the text files is most of an evaluation's time, and the
scenes are independent, so each worker process opens the submission itself
(a zip's file offset must not be shared across processes) and returns the
small per-scene result. Results come back in the order of the scenes, so the
numbers are the same as a serial run's; the first failing scene (in that
order) raises its ``SceneError``, as in a serial run.
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterator, Sequence

from scene_pe.util.errors import SceneError
from scene_pe.util.threads import available_cores

_SOURCE = None  # the worker process's own SubmissionSource


def _open_source(source_type, path, names) -> None:
    global _SOURCE
    _SOURCE = source_type.from_listing(path, names)


def _run(job):
    fn, scene, args = job
    try:
        return True, fn(_SOURCE, scene, *args)
    except SceneError as e:  # its constructor differs from ValueError's: not picklable as is
        return False, (e.scene, e.path, e.message)


def map_scenes(fn: Callable, source, jobs: Sequence[tuple[str, tuple]],
               workers: int | None = None) -> Iterator:
    """``fn(source, scene, *args)`` for each ``(scene, args)`` of ``jobs``, in order.

    ``fn`` must be a module-level function. ``workers``: processes (default:
    every core this process may use); 1, or a single job, runs in this process.
    """
    workers = min(available_cores() if workers is None else workers, len(jobs))
    if workers <= 1:
        for scene, args in jobs:
            yield fn(source, scene, *args)
        return
    # fork: the workers start in milliseconds with everything imported; the pool's
    # initializer then reopens the submission in each of them.
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_open_source,
                               initargs=(type(source), source.path, source.names()))
    try:
        chunk = max(1, len(jobs) // (workers * 8))
        for ok, result in pool.map(_run, [(fn, s, a) for s, a in jobs], chunksize=chunk):
            if not ok:
                raise SceneError(*result)
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
