"""Is this machine ready to train? Timed training and inference, and DDP, on its devices.

Parts 1-3 of ``make gpu-check`` (the environment, MinkowskiEngine's convolution
on the CPU and on the GPU against closed forms) live in ``minkowski.py``; this
module holds the rest (tools/gpu_check.py runs them in this order):

4. with CUDA: training steps (float32 and AMP) of the configured network on a
   generated ScanNet-size scene, timed per phase, peak GPU memory, and inference
   time per scene (network + clustering, as tools/test.py runs it);
5. with 2+ GPUs: a 2-process NCCL DistributedDataParallel step whose ranks end
   with the same weights.
"""

from __future__ import annotations

import time

import numpy as np
import torch


def scannet_sample(vertices: int, seed: int = 0) -> dict:
    """A generated ScanNet-profile room as a training sample (aligned frame, ScanNet v2 training
    labels: the generator's rooms are labelled in NYU40 ids)."""
    from scene_pe.synthetic.scenes import generate_scene

    scene = generate_scene("scene0999_00", seed, num_vertices_target=vertices, profile="scannet")
    semantic, instance = scene.training_labels()
    return {"scene": scene.scene_id, "coords": scene.aligned_vertices().astype(np.float32),
            "colors": scene.colors[:, :3].astype(np.float32) / 255.0, "semantic": semantic, "instance": instance}


SAMPLE_KEYS = ("coords", "colors", "semantic", "instance")


def save_sample(path, sample: dict) -> None:
    from scene_pe.util.io import save_npz_atomic

    save_npz_atomic(path, **{k: sample[k] for k in SAMPLE_KEYS})


def load_sample(path) -> dict:
    with np.load(path) as z:
        missing = [k for k in SAMPLE_KEYS if k not in z.files]
        if missing:
            raise ValueError(f"{path}: not a scene saved by tools/gpu_check.py --save-scene "
                             f"(missing {missing})")
        return {"scene": "scene0999_00", **{k: z[k] for k in SAMPLE_KEYS}}


def _batch(cfg, sample: dict, size: int, seed: int):
    from scene_pe.data.transforms import build_transforms
    from scene_pe.sparse.voxelize import voxelize

    augment = build_transforms(cfg.data.train_transforms)
    samples = [augment(sample, np.random.default_rng([seed, i])) for i in range(size)]
    return voxelize(samples, cfg.data.voxel)


def _sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def training_check(cfg, sample: dict, device: torch.device, steps: int = 3, batch: int = 4,
                   amp_dtype: torch.dtype | None = None) -> dict:
    """Seconds per phase (mean over ``steps`` after one warm-up step), peak GPU memory; the heads in
    ``amp_dtype`` (None: float32), the backbone in float32 either way (model/precision.py)."""
    from scene_pe.model.build import build_model
    from scene_pe.train.loss import compute_loss
    from scene_pe.model.precision import autocast, needs_scaler

    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=needs_scaler(amp_dtype))
    voxels = _batch(cfg, sample, batch, 0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = {"forward": [], "backward": [], "step": []}
    losses = []
    for i in range(steps + 1):
        t0 = _sync(device)
        with autocast(device, amp_dtype):
            out = model(voxels)
        loss = compute_loss(out, voxels, cfg).total
        t1 = _sync(device)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        t2 = _sync(device)
        scaler.step(opt)
        scaler.update()
        t3 = _sync(device)
        losses.append(float(loss.detach()))
        if i:  # the first step builds kernels and caches
            for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
                times[k].append(v)
    result = {k: float(np.mean(v)) for k, v in times.items()}
    precision = "float32" if amp_dtype is None else str(amp_dtype).removeprefix("torch.")
    result.update(voxels=len(voxels.coordinates), batch=batch, losses=losses, precision=precision,
                  peak_gpu_gib=torch.cuda.max_memory_allocated(device) / 2**30
                  if device.type == "cuda" else float("nan"))
    return result


def inference_check(cfg, sample: dict, device: torch.device, repeats: int = 3,
                    amp_dtype: torch.dtype | None = None) -> dict:
    """Seconds per scene of the network and of network + clustering (eval, no grad)."""
    from scene_pe.inference.vertices import network_outputs, predictions_from_outputs
    from scene_pe.model.build import build_model
    from scene_pe.sparse.voxelize import voxelize

    torch.manual_seed(0)
    model = build_model(cfg).to(device).eval()
    voxels = voxelize([sample], cfg.data.voxel)
    net, total = [], []
    with torch.no_grad():
        for i in range(repeats + 1):
            t0 = _sync(device)
            out = network_outputs(model, voxels, amp_dtype)
            t1 = _sync(device)
            preds = predictions_from_outputs(out, voxels, cfg.inference, label_set=cfg.data.labels)
            t2 = _sync(device)
            if i:
                net.append(t1 - t0)
                total.append(t2 - t0)
    return {"network": float(np.mean(net)), "total": float(np.mean(total)),
            "vertices": len(preds[0].semantic), "voxels": len(voxels.coordinates)}


# ------------------------------------------------------------------ DDP
def ddp_worker(rank: int, world: int, store_port: int, backend: str, cfg, sample: dict, result_path: str) -> None:
    """One rank (``torch.multiprocessing.spawn``): joins the group, runs ``_ddp_steps``, leaves it.

    The group is left however the steps end (util/distributed.process_group): after a
    barrier when they succeeded, without one when they raised (the exception then reaches
    the launcher, which ends the other ranks).
    """
    from scene_pe.util import distributed as D

    with D.process_group(backend, rank, world, D.store_client(store_port, world)):
        _ddp_steps(rank, world, backend, cfg, sample, result_path)


def _ddp_steps(rank: int, world: int, backend: str, cfg, sample: dict, result_path: str) -> None:
    """DDP-wrapped model, one warm-up and one timed step; rank 0 saves what the ranks hold.

    Its own function: the DDP wrapper and its reducer, which hold the process group, are
    freed when it returns, before the group is destroyed."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from scene_pe.model.build import build_model
    from scene_pe.train.loss import compute_loss

    device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.manual_seed(0)  # same initial weights on every rank
    model = build_model(cfg).to(device)
    ddp = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    opt = torch.optim.Adam(ddp.parameters(), lr=cfg.train.lr)
    voxels = _batch(cfg, sample, 1, seed=rank)  # each rank its own augmentation
    seconds = 0.0
    for i in range(2):
        t0 = _sync(device)
        loss = compute_loss(ddp(voxels), voxels, cfg).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seconds = _sync(device) - t0
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    if rank == 0:
        same = all(torch.equal(gathered[0], g) for g in gathered[1:])
        torch.save({"same_weights": same, "step_seconds": seconds, "backend": backend}, result_path)


def ddp_check(cfg, sample: dict, backend: str, result_path: str, world: int = 2) -> dict:
    """Run ``world`` DDP ranks (processes) for two steps; whether they end with equal weights.

    This process hosts the ranks' TCPStore (none of them does) until every rank has exited;
    a rank that raised makes ``spawn`` raise (ProcessRaisedException) after ending the others."""
    import torch.multiprocessing as mp

    from scene_pe.util import distributed as D

    store = D.host_store(world)  # held until spawn returned: every rank has exited
    mp.spawn(ddp_worker, args=(world, store.port, backend, cfg, sample, result_path), nprocs=world)
    return torch.load(result_path, weights_only=True)
