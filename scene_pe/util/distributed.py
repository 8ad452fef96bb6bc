"""torch.distributed helpers: the process group from torchrun's environment.

Launch with torchrun (single node: ``torchrun --nproc_per_node=N tools/train.py
...``; multi-node: add --nnodes/--node_rank/--rdzv_endpoint). Without torchrun
everything runs in one process. Backend: NCCL on GPUs, gloo on the CPU (tests).

Leaving a group: ``cleanup()`` (every rank meets at a barrier, then the group
is destroyed) on the normal path, ``cleanup(barrier=False)`` when this rank
failed (its peers may be inside another collective: a barrier would hang or
pair with the wrong call). A process that exits with a group still alive
destroys its gloo threads during interpreter finalisation, which aborts
(SIGABRT, "terminate called without an active exception"): so the group is
destroyed at exit too (atexit) when a code path returned without cleanup, and
``process_group()`` wraps a spawned worker's whole life in one.
"""

from __future__ import annotations

import atexit
import datetime
import gc
import os
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.distributed as dist


def init_distributed() -> tuple[int, int, torch.device]:
    """Initialise from torchrun's env vars if present; returns (rank, world_size, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        from scene_pe.util.cuda_arch import check_device

        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        check_device(device)  # a MinkowskiEngine built for other GPUs: say what to rebuild with, now
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        _destroy_at_exit()
    return rank, world, device


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def all_gather_objects(obj) -> list:
    """Every rank's ``obj`` (picklable), in rank order; [obj] without a process group."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def mean_across_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    if not dist.is_initialized() or not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(values, (t / dist.get_world_size()).tolist()))


def cleanup(barrier: bool = True) -> None:
    """Leave the process group, if any: a barrier (``barrier``: every rank got here), then destroy it.

    The group is destroyed even when the barrier fails (a peer died). Objects that hold
    it (a DistributedDataParallel wrapper and its reducer) should be released first;
    what is only held by reference cycles is collected here, before the group goes.
    """
    if not dist.is_initialized():
        return
    try:
        if barrier:
            dist.barrier()
    finally:
        gc.collect()
        dist.destroy_process_group()


_exit_hook = False


def _destroy_at_exit() -> None:
    """Destroy a group still alive when the interpreter exits (a path that returned early or raised)."""
    global _exit_hook
    if not _exit_hook:
        atexit.register(cleanup, barrier=False)
        _exit_hook = True


@contextmanager
def process_group(backend: str, rank: int, world: int, store: dist.Store,
                  timeout: datetime.timedelta = datetime.timedelta(minutes=5)) -> Iterator[None]:
    """A process group for the body of a spawned worker; left by ``cleanup`` however the body ends.

    ``store``: a client of a TCPStore the launching process hosts (``host_store``), so that
    no rank hosts it: a rank that exits first never takes the store from the others.
    ``timeout``: a collective waiting longer for a dead peer raises instead of hanging.
    """
    dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)
    _destroy_at_exit()
    ok = False
    try:
        yield
        ok = True
    finally:
        cleanup(barrier=ok)


def host_store(world: int, timeout: datetime.timedelta = datetime.timedelta(minutes=5)) -> dist.TCPStore:
    """A TCPStore server on a free port of 127.0.0.1, for ``world`` ranks that connect as clients
    (``store.port``). The OS picks the port as the server binds it: no other process can take it
    between choosing and binding, as it can with a port probed first and bound later."""
    return dist.TCPStore("127.0.0.1", 0, world + 1, is_master=True, timeout=timeout,  # + 1: this process
                         wait_for_workers=False)


def store_client(port: int, world: int, timeout: datetime.timedelta = datetime.timedelta(minutes=5)
                 ) -> dist.TCPStore:
    return dist.TCPStore("127.0.0.1", port, world + 1, is_master=False, timeout=timeout)
