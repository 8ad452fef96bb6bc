"""The training loop: data, model, losses, optimiser, validation, checkpoints, logs.

One run directory per experiment (``<run_dir>/<name>/``): the resolved
config.yaml, train.log, TensorBoard scalars (tb/), checkpoints (last.pth after
every epoch and every ``checkpoint_every`` steps, best.pth by validation mAP on
the select half of val). At the end ``train.fit`` fits the inference values on
the same select half, for last.pth's weights and for best.pth's, and stores
each in its checkpoint: the report half of val played no part in any choice.
``resume=True`` continues from last.pth exactly: model, optimiser, scheduler,
AMP scaler, epoch, step within the epoch and RNG states; the sampler order
depends only on (seed, epoch), so the remaining batches of the epoch are the
ones the killed run would have seen. The training time spent so far
(``elapsed_s``, validation excluded) is in the checkpoint too, so a resumed run
continues the same ``train.max_minutes`` budget.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import MinkowskiEngine as ME
import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from scene_pe.config import Config, dump_config, with_recorded_classes
from scene_pe.data.dataset import ResumableSampler, SceneDataset, VoxelCollate, preprocessed_split, worker_init
from scene_pe.data.provenance import CHECKPOINT_KEY, training_record
from scene_pe.data.transforms import build_transforms
from scene_pe.util import distributed as D
from scene_pe.train.checkpoint import fit_best, load_latest, model_state, rng_state, save_checkpoint, set_rng_state
from scene_pe.inference.evaluate import evaluate_loader
from scene_pe.inference.fitting import RECORD_KEY, TuningError, fit_summary, fit_thresholds, selection_scenes
from scene_pe.train.faults import (WORKER_DEATH_ERRORS, BufferSnapshot, FaultLog, SkippingCollate, SkippingDataset, WorkerDeathDeferral, backward_scene_by_scene, free_memory, gradients_finite, is_worker_death, shut_down)
from scene_pe.method.losses import LossResult
from scene_pe.model.build import build_model
from scene_pe.model.precision import amp_dtype, autocast, needs_scaler
from scene_pe.sparse.voxelize import VoxelBatch
from scene_pe.train.loss import compute_loss
from scene_pe.util.errors import RunError, SceneError
from scene_pe.util.io import write_text_atomic

log = logging.getLogger("scene_pe.train")


def setup_logging(run_path: Path | None) -> None:
    handlers = [logging.StreamHandler()]
    if run_path is not None:
        handlers.append(logging.FileHandler(run_path / "train.log"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        handlers=handlers, force=True)


class Trainer:
    def __init__(self, cfg: Config, resume: bool = False, checkpoint_every: int = 0,
                 progress: bool = True):
        cfg = with_recorded_classes(cfg)  # ScanNet++: the run's config and checkpoints carry the classes
        self.cfg = cfg
        self.rank, self.world, self.device = D.init_distributed()
        self.main = self.rank == 0
        self.run_path = cfg.run_path
        if self.main:
            self.run_path.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.run_path / "config.yaml", dump_config(cfg))
        setup_logging(self.run_path if self.main else None)
        self.checkpoint_every = checkpoint_every
        self.progress = progress and self.main
        torch.manual_seed(cfg.train.seed)
        np.random.seed(cfg.train.seed)
        if cfg.train.deterministic:
            # On the CPU, MinkowskiEngine's OpenMP kernels also accumulate in thread
            # order: bitwise-repeatable runs need OMP_NUM_THREADS=1 in the environment.
            torch.use_deterministic_algorithms(True)

        t = cfg.train
        self.train_set = SceneDataset(cfg.data.root, preprocessed_split(Path(cfg.data.root), cfg.data.train_split),
                                      build_transforms(cfg.data.train_transforms), seed=t.seed,
                                      repeat=cfg.data.repeat, label_set=cfg.data.label_set)
        self.sampler = ResumableSampler(self.train_set, self.world, self.rank, t.seed, cfg.data.batch_size)
        self.collate = VoxelCollate(cfg.data.voxel)
        model = build_model(cfg).to(self.device)
        if self.world > 1:
            model = ME.MinkowskiSyncBatchNorm.convert_sync_batchnorm(model)
            model = DistributedDataParallel(model, device_ids=[self.device] if self.device.type == "cuda" else None)
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        self.steps_per_epoch = len(self.sampler) // cfg.data.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{cfg.data.root}: fewer training scenes than batch_size x GPUs")
        # milestones are in epochs; the scheduler steps once per epoch
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, t.lr_milestones, t.lr_gamma)
        # heads in amp_dtype, backbone in float32 (model/precision.py); loss scaling for float16 only
        self.amp_dtype = amp_dtype(t, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=needs_scaler(self.amp_dtype))
        self.epoch, self.step, self.best = 0, 0, -math.inf
        self.faults = FaultLog(t.max_bad_steps)  # skipped steps and scenes (train/faults.py)
        self.worker_deaths = WorkerDeathDeferral()
        # training seconds over this run and the ones it resumed; _since: start of the
        # interval being counted (None outside fit and during validation)
        self.elapsed, self._since = 0.0, None
        self.writer, self.fitted = None, None  # fitted: the train.fit record (inference/fitting.py)
        if self.main:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.run_path / "tb"))
        if resume:
            self.resume(self.run_path / "last.pth")

    # -- checkpoints ---------------------------------------------------------
    def state(self) -> dict:
        return {"model": model_state(self.model), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "epoch": self.epoch, "step": self.step, "best": self.best, "rng": rng_state(),
                "elapsed_s": self.clock(), "config": dump_config(self.cfg), CHECKPOINT_KEY: training_record(self.cfg.data.root),
                **({RECORD_KEY: self.fitted} if self.fitted else {})}

    def save(self, name: str) -> None:
        if self.main:
            # last.pth: the one it replaces stays as last.prev.pth (resume falls back to it)
            save_checkpoint(self.run_path / name, self.state(), keep_previous=name == "last.pth")

    def resume(self, path: Path) -> None:
        # CPU first: torch.set_rng_state needs a CPU tensor; load_state_dict moves the rest
        found = load_latest(path, "cpu")
        if found is None:  # killed before its first checkpoint: the same command starts over
            log.warning("%s: no checkpoint to resume from; starting from the beginning", path)
            return
        ck, used = found
        if used != path and self.main and path.exists():
            # set the damaged file aside, or the next save would keep it as the previous one
            os.replace(path, path.with_name(path.name + ".damaged"))
        getattr(self.model, "module", self.model).load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        self.scaler.load_state_dict(ck["scaler"])
        self.epoch, self.step, self.best = ck["epoch"], ck["step"], ck["best"]
        self.elapsed = float(ck.get("elapsed_s", 0.0))  # checkpoints from before the budget: none spent
        self.fitted = ck.get(RECORD_KEY)
        set_rng_state(ck["rng"])
        log.info("resumed from %s at epoch %d, step %d", used, self.epoch, self.step)

    # -- loop ----------------------------------------------------------------
    def loader(self, start_batch: int) -> DataLoader:
        self.sampler.set_epoch(self.epoch)
        self.sampler.start_batch = start_batch
        self.train_set.set_epoch(self.epoch)
        # yields (voxels or None, samples, unreadable scenes): a scene file that cannot be read
        # is left out of its batch instead of ending the run (train/faults.py)
        return DataLoader(SkippingDataset(self.train_set), batch_size=self.cfg.data.batch_size,
                          sampler=self.sampler, num_workers=self.cfg.data.num_workers,
                          collate_fn=SkippingCollate(self.collate), drop_last=True, worker_init_fn=worker_init)

    def batch_indices(self, step: int) -> list[int]:
        """Dataset indices of this rank's batch at ``step`` (of the current epoch)."""
        order = list(DistributedSampler.__iter__(self.sampler))  # the epoch's order, from its start
        b, bs = step - self.epoch * self.steps_per_epoch, self.cfg.data.batch_size
        return order[b * bs:(b + 1) * bs]

    def batch_scenes(self, step: int) -> list[str]:
        """The scenes of this rank's batch at ``step`` (of the current epoch)."""
        return [self.train_set.scenes[i % len(self.train_set.scenes)] for i in self.batch_indices(step)]

    def load_alone(self, step: int):
        """Batch ``step`` loaded by one fresh worker; (None, [], []) if that worker dies too."""
        alone = DataLoader(SkippingDataset(self.train_set), batch_size=self.cfg.data.batch_size,
                           sampler=self.batch_indices(step), num_workers=1, collate_fn=SkippingCollate(self.collate),
                           worker_init_fn=worker_init)
        try:
            return next(iter(alone))
        except WORKER_DEATH_ERRORS as e:
            if not is_worker_death(e):
                raise
            return None, [], []

    def _backward(self, voxels: VoxelBatch, weight: float = 1.0) -> LossResult:
        with autocast(self.device, self.amp_dtype):
            out = self.model(voxels)
        loss = compute_loss(out, voxels, self.cfg)
        self.scaler.scale(loss.total if weight == 1.0 else loss.total * weight).backward()
        return loss

    def _scene_out_of_memory(self, scene: str) -> None:
        self.optimizer.zero_grad(set_to_none=True)  # a partial backward's gradients
        free_memory(self.device)
        self.faults.oom_scene(self.step, scene)

    def train_step(self, voxels: VoxelBatch, samples: list[dict] | None = None) -> dict[str, float] | None:
        """One optimiser step; None when the step was skipped (train/faults.py)."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        # BatchNorm statistics move in the forward pass: a skipped step puts them back (a NaN
        # batch would otherwise poison them), and so does a retry after out of memory
        buffers = BufferSnapshot(self.model)
        try:
            loss = self._backward(voxels)
        except torch.OutOfMemoryError:
            if samples is None or self.world > 1:
                raise
            loss = None
        if loss is None:  # out of memory: retry one scene at a time
            self.optimizer.zero_grad(set_to_none=True)
            buffers.restore()
            free_memory(self.device)
            log.warning("step %d: out of memory on scenes %s: retrying one scene at a time", self.step,
                        ", ".join(voxels.scenes))
            loss = backward_scene_by_scene(
                self.model, samples, lambda sample: self._backward(self.collate([sample])[0], 1.0 / len(samples)),
                buffers, self._scene_out_of_memory)
            if loss is None:
                buffers.restore()
                return None
        # a GradScaler (float16) skips steps with non-finite gradients itself
        finite = bool(torch.isfinite(loss.total.detach())) and (self.scaler.is_enabled()
                                                                 or gradients_finite(self.model.parameters()))
        if self.world > 1:  # every rank skips, or none does
            finite = D.mean_across_ranks({"finite": float(finite)}, self.device)["finite"] == 1.0
        if not finite:
            self.optimizer.zero_grad(set_to_none=True)
            buffers.restore()
            self.faults.bad_step(self.step, list(voxels.scenes), "non-finite loss or gradient")
            return None
        if self.cfg.train.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.faults.step_done()
        return {"loss": float(loss.total.detach()), **{k: float(v) for k, v in loss.terms.items()}}

    def next_batch(self, batches):
        """(voxels or None, samples, the iterator to go on with); None at the end of the epoch."""
        try:
            voxels, samples, unreadable = next(batches)
        except StopIteration:
            return None
        except WORKER_DEATH_ERRORS as e:
            if not is_worker_death(e):
                raise
            if self.world > 1:
                raise RunError(f"step {self.step}: {e} (DDP: the ranks cannot skip a batch apart)") from None
            shut_down(batches)  # its remaining workers
            del batches
            voxels, samples, unreadable = self.load_alone(self.step)
            scenes = self.batch_scenes(self.step)
            self.faults.worker_died(self.step, scenes, lost=voxels is None and not unreadable)
            batches = iter(self.loader(self.step + 1 - self.epoch * self.steps_per_epoch))
        for u in unreadable:
            self.faults.scene_unreadable(u.scene, u.message)
        if voxels is None and self.world > 1:
            raise RunError(f"step {self.step}: no scene of the batch could be read (DDP: the ranks cannot "
                           "skip a batch apart)")
        return voxels, samples, batches

    def fit(self) -> dict:
        t = self.cfg.train
        metrics: dict = {}
        values = {"loss": math.nan}  # the last step's; a skipped step keeps the previous ones
        data_wait = compute = 0.0
        self._since = time.perf_counter()
        while self.epoch < t.epochs and not self.done():
            start_batch = self.step - self.epoch * self.steps_per_epoch
            loader = self.loader(start_batch)
            bar = None
            if self.progress:
                from tqdm import tqdm
                bar = tqdm(total=self.steps_per_epoch, initial=start_batch, desc=f"epoch {self.epoch}",
                           leave=False, dynamic_ncols=True)
            tick = time.perf_counter()
            batches = iter(loader)
            # a worker's death is found where next_batch waits for its batch (the DataLoader's
            # liveness check), not by SIGCHLD half way through a step or a checkpoint write
            self.worker_deaths.start()
            while (batch := self.next_batch(batches)) is not None:
                voxels, samples, batches = batch
                got = time.perf_counter()
                values = (self.train_step(voxels, samples) if voxels is not None else None) or values
                self.step += 1
                done = time.perf_counter()
                data_wait, compute = data_wait + got - tick, compute + done - got
                tick = done
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{values['loss']:.3f}")
                if self.step % self.cfg.train.log_every == 0:
                    self.log_scalars("train", D.mean_across_ranks(values, self.device))
                    self.log_scalars("train", {"lr": self.optimizer.param_groups[0]["lr"],
                                               "data_wait_share": data_wait / max(data_wait + compute, 1e-9)})
                if self.device.type == "cuda" and t.empty_cache_every and self.step % t.empty_cache_every == 0:
                    torch.cuda.empty_cache()
                if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                    self.save("last.pth")
                if self.done():
                    break
            shut_down(batches)  # now, also when max_steps ends the epoch early
            if bar is not None:
                bar.close()
            if self.step % self.steps_per_epoch == 0:  # the epoch finished
                self.epoch += 1
                self.scheduler.step()
                log.info("epoch %d done (step %d, loss %.4f)", self.epoch, self.step, values["loss"])
                if t.val_every and (self.epoch % t.val_every == 0 or self.epoch == t.epochs):
                    self.clock()
                    self._since = None  # validation is not training time
                    metrics = self.validate()
                    self._since = time.perf_counter()
            self.save("last.pth")
        self.clock()
        self._since = None
        if self.main and t.fit.enabled and self.fitted is None:
            self.fit_inference()
        self.throughput = {"data_wait_s": data_wait, "compute_s": compute}
        for line in self.faults.report():
            log.warning("this run skipped: %s", line)
        return metrics

    def fit_inference(self) -> None:
        """train.fit: inference values fitted on val's select half for last.pth's weights and for
        best.pth's, each stored in its checkpoint (inference/fitting.py, train/checkpoint.py)."""
        f = self.cfg.train.fit
        grid = f.probabilistic if self.cfg.model.head.type == "probabilistic" else f.margin

        def fit(model: torch.nn.Module) -> dict:
            return fit_thresholds(model, self.cfg, grid, f.max_scenes, self.progress, calibrate=f.uncertainty)

        try:
            self.fitted = fit(getattr(self.model, "module", self.model))
            for line in fit_summary(self.fitted):
                log.info(line)
            self.save("last.pth")
            best = fit_best(self.run_path, self.cfg, self.step, self.fitted, fit, self.device)
        except (TuningError, FileNotFoundError, SceneError) as e:  # the trained weights stand without them
            log.warning("no fitted inference thresholds: %s", e)
            return
        if best is not None and best is not self.fitted:
            for line in fit_summary(best):
                log.info("best.pth: %s", line)

    def clock(self) -> float:
        """Training seconds so far, this process and the runs it resumed."""
        if self._since is not None:
            now = time.perf_counter()
            self.elapsed += now - self._since
            self._since = now
        return self.elapsed

    def done(self) -> bool:
        t = self.cfg.train
        if t.max_steps and self.step >= t.max_steps:
            return True
        if not t.max_minutes:
            return False
        # Every DDP rank must stop at the same step: stop when any rank is over.
        over = float(self.clock() >= 60.0 * t.max_minutes)
        return D.mean_across_ranks({"over": over}, self.device)["over"] > 0.0

    def validate(self) -> dict:
        cfg = self.cfg
        try:
            scenes = selection_scenes(cfg)  # best.pth is chosen where the thresholds are: not the report half
        except FileNotFoundError as e:
            log.warning("no validation: %s", e)
            return {}
        result = evaluate_loader(self.model, cfg, scenes, self.device, rank=self.rank, world=self.world,
                                 progress=self.progress, amp_dtype=self.amp_dtype)
        if self.main:
            unc = [result.get(k, math.nan) for k in ("unc_auroc", "unc_auroc_instances", "unc_auroc_object_or_assigned")]
            log.info("validation epoch %d (%d scenes, the select half): AP %.3f AP50 %.3f AP25 %.3f mIoU %.3f uncertainty AUROC: all %.3f / "
                     "GT instance %.3f / object or assigned %.3f", self.epoch, len(scenes), result["ap"], result["ap50"],
                     result["ap25"], result["miou"], *unc)
            self.log_scalars("val", result)  # every float: AP..., mIoU, unc_auroc, unc_err_high10, ...
            score = -1.0 if math.isnan(result["ap"]) else result["ap"]
            if score > self.best:
                self.best = score
                self.save("best.pth")
        return result

    def log_scalars(self, prefix: str, values: dict[str, float]) -> None:
        if self.writer is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not math.isnan(v):
                    self.writer.add_scalar(f"{prefix}/{k}", v, self.step)

    def close(self, barrier: bool = True) -> None:
        """Close the logs, leave the process group (no ``barrier`` after a failure); the DDP
        wrapper holds the group, so it goes first: destroying the group then frees its threads."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.model = getattr(self.model, "module", self.model)
        self.worker_deaths.stop()
        D.cleanup(barrier=barrier)
