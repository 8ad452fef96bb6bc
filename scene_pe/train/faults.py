"""Faults during training that must not end a run: bad steps, out of memory, bad scenes.

- A step whose loss or gradient is not finite changes nothing (no optimiser step,
  so neither parameters nor Adam's moments or step count move); it is logged with
  its scenes, and ``max_bad_steps`` such steps in a row end the run with a RunError
  (the run has diverged, skipping cannot help). With AMP, non-finite *gradients*
  are the GradScaler's business (it skips the step and lowers the scale); a
  non-finite loss is still a bad step.
- Out of memory on a batch: the batch is retried one scene at a time, gradients
  accumulated as in the batch (each scene weighted 1/n), and a scene that alone
  does not fit is left out (logged); the step goes on with the others.
- A scene file that cannot be read (missing, truncated, changed mid-run) is left
  out of its batch (``SkippingDataset`` / ``SkippingCollate``) and reported at the
  end of the run. A loader worker that dies: which batch killed it is unknown
  (workers load ahead), so the batch the trainer waits for is loaded alone by a
  fresh worker; if that worker dies too, the batch is skipped (logged), otherwise
  it is used; the loader restarts after it.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import traceback
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
import torch.utils.data

from scene_pe.util.errors import RunError, SceneError

log = logging.getLogger("scene_pe.train")


def gradients_finite(parameters: Iterable[torch.nn.Parameter]) -> bool:
    """True when every gradient is finite (one reduction per parameter tensor)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return True
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


def free_memory(device: torch.device) -> None:
    """Give back what the failed attempt held (the caller has dropped its references)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def backward_scene_by_scene(model: torch.nn.Module, samples: list[dict], backward: Callable[[dict], object],
                            buffers: "BufferSnapshot", on_oom: Callable[[str], object]):
    """The batch's gradient from one scene at a time (after out of memory on the whole batch).

    ``backward(sample)``: forward and backward of one scene, its loss weighted 1/len(samples),
    returning its LossResult; ``on_oom(scene)``: drop the gradients of a failed attempt, free
    memory, log. Gradients of the scenes that fit are summed outside the parameters (a failed
    scene's partial backward must not mix in) and scaled to stand for the whole batch. Returns
    the mean LossResult, or None when no scene fit.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    summed: list[torch.Tensor | None] = [None] * len(params)
    losses = []
    for sample in samples:
        try:
            loss = backward(sample)
        except torch.OutOfMemoryError:
            loss = None
        if loss is None:  # outside the except block: its traceback no longer holds the tensors
            buffers.restore()  # the failed forward's BatchNorm updates
            on_oom(sample["scene"])
            continue
        losses.append(loss)
        buffers.take()  # this scene's BatchNorm updates stay
        for i, p in enumerate(params):
            if p.grad is not None:
                summed[i] = p.grad if summed[i] is None else summed[i] + p.grad
            p.grad = None
    if not losses:
        return None
    scale = len(samples) / len(losses)  # the scenes that fit stand for the batch
    for p, g in zip(params, summed):
        p.grad = g if g is None or scale == 1.0 else g * scale
    return type(losses[0])(torch.stack([lo.total.detach() for lo in losses]).mean(),
                           {k: torch.stack([lo.terms[k] for lo in losses]).mean() for k in losses[0].terms})


# what a DataLoader raises when a worker died (is_worker_death tells them from other errors)
WORKER_DEATH_ERRORS = (RuntimeError, ConnectionError, EOFError)


def is_worker_death(error: BaseException) -> bool:
    """The DataLoader's error when one of its worker processes ended abnormally: its own report, or
    a batch whose tensors could not be fetched from the worker that sent it (torch passes them as
    file descriptors through the worker's resource sharer, gone with the worker)."""
    text = str(error)
    if isinstance(error, (ConnectionError, EOFError)):
        return any(frame.f_code.co_filename.endswith(("resource_sharer.py", "reductions.py"))
                   for frame, _ in traceback.walk_tb(error.__traceback__))
    return isinstance(error, RuntimeError) and "DataLoader worker" in text and (
        "exited unexpectedly" in text or "killed by signal" in text)


class BufferSnapshot:
    """A copy of a module's buffers (BatchNorm statistics) to put back after a failed attempt."""

    def __init__(self, module: torch.nn.Module):
        self.buffers = list(module.buffers())
        self.take()

    def take(self) -> None:
        self.saved = [b.detach().clone() for b in self.buffers]

    def restore(self) -> None:
        with torch.no_grad():
            for b, s in zip(self.buffers, self.saved):
                b.copy_(s)


class WorkerDeathDeferral:
    """Keep the DataLoader's SIGCHLD check (a dead worker) out of the trainer's code and everyone else's.

    The DataLoader raises its error from a SIGCHLD handler, i.e. at whatever line the
    main process is at: half way through an optimiser step, in a log call, or, after
    the run, in the caller's code (seen: inside pytest-xdist's reporting, which ended
    the test worker). ``start()``, called once the run's first DataLoader iterator has
    installed that handler, sets SIGCHLD back to its default for the rest of the run;
    the DataLoader's own liveness check (every 5 s while it waits for a batch) then
    reports the dead worker where the trainer waits for a batch it cannot get, after
    the batches finished before the death have been used. ``stop()`` puts the handler
    back (Trainer.close).
    """

    def __init__(self) -> None:
        self._saved = None

    def start(self) -> None:
        if self._saved is not None or not hasattr(signal, "SIGCHLD"):
            return
        installed = signal.getsignal(signal.SIGCHLD)
        if callable(installed) and threading.current_thread() is threading.main_thread():
            self._saved = installed  # (no DataLoader workers, or not the main thread: nothing to do)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    def stop(self) -> None:
        if self._saved is not None:
            signal.signal(signal.SIGCHLD, self._saved)
            self._saved = None


def shut_down(batches) -> None:
    """End a DataLoader iterator's worker processes now (not when it is garbage collected: a traceback
    that holds it would keep dead and live workers registered with the DataLoader's SIGCHLD check)."""
    stop = getattr(batches, "_shutdown_workers", None)
    if stop is not None:
        stop()


@dataclass
class FaultLog:
    """What the run left out, for the log lines and the end-of-run report."""

    max_bad_steps: int
    bad_in_a_row: int = 0
    bad_steps: list[tuple[int, list[str]]] = field(default_factory=list)
    oom_scenes: list[tuple[int, str]] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    lost_batches: list[tuple[int, list[str]]] = field(default_factory=list)
    worker_deaths: list[int] = field(default_factory=list)  # the step of each

    def step_done(self) -> None:
        self.bad_in_a_row = 0

    def bad_step(self, step: int, scenes: list[str], what: str) -> None:
        self.bad_in_a_row += 1
        self.bad_steps.append((step, list(scenes)))
        log.warning("step %d: %s on scenes %s: step skipped (%d in a row, limit %d)", step, what,
                    ", ".join(scenes), self.bad_in_a_row, self.max_bad_steps)
        if self.bad_in_a_row >= self.max_bad_steps:
            raise RunError(f"{self.bad_in_a_row} training steps in a row had a non-finite loss or gradient "
                           f"(last at step {step}, scenes {', '.join(scenes)}): the run has diverged; "
                           "lower train.lr, set train.grad_clip, or resume from an earlier checkpoint")

    def oom_scene(self, step: int, scene: str) -> None:
        self.oom_scenes.append((step, scene))
        log.warning("step %d: scene %s alone does not fit in memory: left out of the step", step, scene)

    def scene_unreadable(self, scene: str, message: str) -> None:
        if scene not in self.unreadable:
            log.warning("scene %s skipped: %s", scene, message)
        self.unreadable[scene] = message

    def worker_died(self, step: int, scenes: list[str], lost: bool) -> None:
        self.worker_deaths.append(step)
        if lost:
            self.lost_batches.append((step, list(scenes)))
            log.warning("step %d: a loader worker died loading scenes %s, also alone: batch skipped",
                        step, ", ".join(scenes))
        else:
            log.warning("step %d: a loader worker died (not on this batch, scenes %s, which loaded alone); "
                        "loader restarted", step, ", ".join(scenes))

    def report(self) -> list[str]:
        """One line per kind of fault, empty when the run had none."""
        lines = []
        if self.bad_steps:
            lines.append(f"{len(self.bad_steps)} steps skipped for a non-finite loss or gradient "
                         f"(steps {', '.join(str(s) for s, _ in self.bad_steps[:10])})")
        if self.oom_scenes:
            lines.append(f"{len(self.oom_scenes)} times a scene alone did not fit in memory: "
                         f"{', '.join(sorted({s for _, s in self.oom_scenes}))}")
        if self.unreadable:
            lines.append(f"{len(self.unreadable)} unreadable scenes skipped: " +
                         "; ".join(f"{m}" for m in self.unreadable.values()))
        if self.worker_deaths:
            lines.append(f"{len(self.worker_deaths)} loader workers died; {len(self.lost_batches)} batches "
                         "skipped for it: " + "; ".join(f"step {s}: {', '.join(sc)}" for s, sc in self.lost_batches))
        return lines


@dataclass(frozen=True)
class Unreadable:
    """Stands in a batch for a scene whose file could not be read."""

    scene: str
    message: str


class SkippingDataset(torch.utils.data.Dataset):
    """A SceneDataset whose unreadable scenes come out as ``Unreadable`` instead of raising."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        try:
            return self.dataset[index]
        except (SceneError, OSError) as e:
            scene = self.dataset.scenes[index % len(self.dataset.scenes)]
            return Unreadable(scene, str(e))


class SkippingCollate:
    """collate_fn over SkippingDataset: (voxels or None when no scene was readable, samples, unreadable)."""

    def __init__(self, collate: Callable):
        self.collate = collate

    def __call__(self, items: list):
        bad = [s for s in items if isinstance(s, Unreadable)]
        good = [s for s in items if not isinstance(s, Unreadable)]
        voxels, samples = self.collate(good) if good else (None, [])
        return voxels, samples, bad
