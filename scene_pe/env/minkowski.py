"""Is MinkowskiEngine built and right on this machine? Its build, and its convolution checked.

Parts 1-3 of ``make gpu-check`` (``gpu_check.py`` holds the timed parts 4-5):

1. environment: torch, CUDA, GPUs, MinkowskiEngine and whether it was built with CUDA;
2. convolution on the CPU against a closed form: a MinkowskiEngine 3x3x3 sparse
   convolution on random points equals torch's dense ``conv3d`` of the same
   features placed on a grid (zero where no point), forward and backward (the
   gradients of the features and of the kernel). MinkowskiEngine's kernel index
   of each neighbour offset is read off the convolution itself (probing), not assumed;
3. with CUDA: the same convolution on the GPU equals the CPU one (forward, backward).
"""

from __future__ import annotations

import itertools
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
    """Versions, GPUs (name, compute capability), and the CUDA architectures compiled into
    MinkowskiEngine (read off its library: util/cuda_arch.py; "" for a CPU build)."""
    import MinkowskiEngine as ME

    from scene_pe.util import cuda_arch

    cuda = torch.cuda.is_available()
    library = cuda_arch.minkowski_library()
    compiled, how = cuda_arch.read_compiled(library) if library else (cuda_arch.Compiled(), "")
    return {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "cuda_available": cuda,
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if cuda else [],
            "compute_capabilities": [list(torch.cuda.get_device_capability(i))
                                     for i in range(torch.cuda.device_count())] if cuda else [],
            "minkowski": ME.__version__, "minkowski_cuda": bool(ME.is_cuda_available()),
            "minkowski_library": str(library or ""), "minkowski_archs": compiled.arch_list(),
            "minkowski_archs_read_by": how if compiled else ""}


def arch_checks(env: dict) -> list[tuple[str, bool, str]]:
    """Per GPU: can MinkowskiEngine's compiled code run on it (cuda_arch.runs_on)? (name, ok, detail)."""
    from scene_pe.util import cuda_arch

    if not (env["cuda_available"] and env["minkowski_cuda"] and env["minkowski_archs"]):
        return []
    compiled = cuda_arch.from_arch_list(env["minkowski_archs"])
    out = []
    for i, (gpu, cc) in enumerate(zip(env["gpus"], map(tuple, env["compute_capabilities"]))):
        served = cuda_arch.runs_on(compiled, cc)
        detail = (cuda_arch.served_note(served, cc) if served else
                  cuda_arch.mismatch_message(compiled, cc, gpu, env["minkowski_library"]))
        out.append((f"MinkowskiEngine has code for GPU {i}", served is not None, detail))
    return out


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
