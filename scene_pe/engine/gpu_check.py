"""Is this machine ready to train? MinkowskiEngine's CUDA build, its convolution, and timings.

Parts (tools/gpu_check.py runs them in this order):

1. environment: torch, CUDA, GPUs, MinkowskiEngine and whether it was built with CUDA;
2. convolution on the CPU against a closed form: a MinkowskiEngine 3x3x3 sparse
   convolution on random points equals torch's dense ``conv3d`` of the same
   features placed on a grid (zero where no point), forward and backward (the
   gradients of the features and of the kernel). MinkowskiEngine's kernel index
   of each neighbour offset is read off the convolution itself (probing), not assumed;
3. with CUDA: the same convolution on the GPU equals the CPU one (forward, backward);
4. with CUDA: training steps (AMP) of the configured network on a generated
   ScanNet-size scene, timed per phase, peak GPU memory, and inference time per
   scene (network + clustering, as tools/test.py runs it);
5. with 2+ GPUs: a 2-process NCCL DistributedDataParallel step whose ranks end
   with the same weights.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ConvDiff:
    """Largest absolute differences, and the scale they compare against."""

    forward: float
    grad_features: float
    grad_kernel: float
    scale: float

    def ok(self, rtol: float) -> bool:
        return max(self.forward, self.grad_features, self.grad_kernel) <= rtol * self.scale


def environment() -> dict:
    import MinkowskiEngine as ME

    cuda = torch.cuda.is_available()
    return {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "cuda_available": cuda,
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if cuda else [],
            "minkowski": ME.__version__, "minkowski_cuda": bool(ME.is_cuda_available())}


# ------------------------------------------------------------------ convolution
def _conv(in_ch: int, out_ch: int):
    import MinkowskiEngine as ME

    return ME.MinkowskiConvolution(in_ch, out_ch, kernel_size=3, stride=1, bias=False, dimension=3)


def _sparse(coords: torch.Tensor, feats: torch.Tensor, device):
    import MinkowskiEngine as ME

    return ME.SparseTensor(feats.to(device), coords.to(device), device=str(device))


def kernel_offsets() -> np.ndarray:
    """(27, 3): the neighbour offset q that kernel index k multiplies (input at c + q -> output c)."""
    conv = _conv(1, 1)
    with torch.no_grad():
        conv.kernel.copy_(torch.arange(1.0, 28.0).view(27, 1, 1))
    offsets = np.array(list(itertools.product((-1, 0, 1), repeat=3)))
    coords = torch.from_numpy(np.c_[np.zeros(27, int), offsets]).int()
    found = np.zeros((27, 3), int)
    origin = torch.zeros(1, 4)
    for j, q in enumerate(offsets):
        feats = torch.zeros(27, 1)
        feats[j] = 1.0
        with torch.no_grad():
            value = conv(_sparse(coords, feats, "cpu")).features_at_coordinates(origin)
        found[int(round(float(value))) - 1] = q
    if len({tuple(q) for q in found}) != 27:
        raise RuntimeError("MinkowskiEngine's 3x3x3 kernel does not map one index per offset")
    return found


def random_points(seed: int, n: int = 1500, extent: int = 14, channels: tuple = (8, 16)):
    """Unique random voxel coordinates of 2 scenes, features, kernel and output weights."""
    rng = np.random.default_rng(seed)
    xyz = rng.integers(0, extent, (n, 3))
    batch = rng.integers(0, 2, n)
    coords = np.unique(np.c_[batch, xyz], axis=0)
    c_in, c_out = channels
    return (torch.from_numpy(coords).int(), torch.from_numpy(rng.standard_normal((len(coords), c_in))).float(),
            torch.from_numpy(rng.standard_normal((27, c_in, c_out)) / 10).float(),
            torch.from_numpy(rng.standard_normal((len(coords), c_out))).float())


def sparse_conv(coords, feats, kernel, out_weight, device):
    """Output features (at ``coords``), grad of features and of the kernel, on ``device``."""
    conv = _conv(kernel.shape[1], kernel.shape[2]).to(device)
    with torch.no_grad():
        conv.kernel.copy_(kernel.to(device))
    x = feats.detach().clone().to(device).requires_grad_(True)  # a copy: feats stays as given
    out = conv(_sparse(coords, x, device)).features_at_coordinates(coords.float().to(device))
    (out * out_weight.to(device)).sum().backward()
    return out.detach().cpu(), x.grad.cpu(), conv.kernel.grad.cpu()


def dense_conv(coords, feats, kernel, out_weight):
    """The same with torch's dense conv3d on a zero-filled grid (the closed form)."""
    b, xyz = coords[:, 0].long(), coords[:, 1:].long() + 1  # one voxel of zero padding
    size = int(xyz.max()) + 2
    x = feats.detach().clone().requires_grad_(True)
    grid = torch.zeros(int(b.max()) + 1, feats.shape[1], size, size, size)
    grid[b, :, xyz[:, 0], xyz[:, 1], xyz[:, 2]] = x
    w = kernel.detach().clone().requires_grad_(True)
    # conv3d's weight (out, in, 3, 3, 3) at [q + 1] is ME's kernel of offset q, transposed
    index = {tuple(q): k for k, q in enumerate(kernel_offsets())}
    order = [index[q] for q in itertools.product((-1, 0, 1), repeat=3)]
    w3 = w[order].reshape(3, 3, 3, kernel.shape[1], kernel.shape[2]).permute(4, 3, 0, 1, 2)
    out = torch.nn.functional.conv3d(grid, w3, padding=1)[b, :, xyz[:, 0], xyz[:, 1], xyz[:, 2]]
    (out * out_weight).sum().backward()
    return out.detach(), x.grad, w.grad


def compare(a, b) -> ConvDiff:
    diffs = [float((x - y).abs().max()) for x, y in zip(a, b)]
    return ConvDiff(*diffs, scale=max(float(x.abs().max()) for x in a))


# ------------------------------------------------------------------ training and inference
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
    from scene_pe.engine.trainer import build_model, compute_loss
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
    from scene_pe.engine.infer import network_outputs, predictions_from_outputs
    from scene_pe.engine.trainer import build_model
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

    The group is left however the steps end (engine/distributed.process_group): after a
    barrier when they succeeded, without one when they raised (the exception then reaches
    the launcher, which ends the other ranks).
    """
    from scene_pe.engine import distributed as D

    with D.process_group(backend, rank, world, D.store_client(store_port, world)):
        _ddp_steps(rank, world, backend, cfg, sample, result_path)


def _ddp_steps(rank: int, world: int, backend: str, cfg, sample: dict, result_path: str) -> None:
    """DDP-wrapped model, one warm-up and one timed step; rank 0 saves what the ranks hold.

    Its own function: the DDP wrapper and its reducer, which hold the process group, are
    freed when it returns, before the group is destroyed."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from scene_pe.engine.trainer import build_model, compute_loss

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

    from scene_pe.engine import distributed as D

    store = D.host_store(world)  # held until spawn returned: every rank has exited
    mp.spawn(ddp_worker, args=(world, store.port, backend, cfg, sample, result_path), nprocs=world)
    return torch.load(result_path, weights_only=True)
