"""Mixed precision (``train.amp``): what runs in which dtype, chosen in one place.

MinkowskiEngine 0.5.4 compiles its convolution, pooling and broadcast kernels for
float32 and float64 only, and its ops are custom autograd functions that
``torch.autocast`` does not touch: a half tensor reaching one fails (ME issue 392).
So AMP here means:

- the backbone (every ME op) runs in float32, under ``autocast(enabled=False)``
  (``InstanceSegmentationNet.forward``), whatever the caller asked for;
- the heads (``nn.Linear``s on the voxels' features) run in the AMP dtype;
- the losses, the Bhattacharyya kernels and clustering take the heads' outputs
  and compute in float32 where precision matters (``as_float32``).

The AMP dtype: bfloat16 on GPUs that have it (Ampere and newer: float32's range,
no loss scaling), float16 with a GradScaler otherwise. On the CPU AMP is off
unless ``train.amp_dtype: bfloat16`` is asked for (the tests do; ME's float32
kernels dominate a CPU step, so it brings nothing there).
"""

from __future__ import annotations

import contextlib

import torch

AMP_DTYPES = ("auto", "bfloat16", "float16")


def amp_dtype(train, device: torch.device) -> torch.dtype | None:
    """The dtype the heads run in on ``device`` for a ``TrainConfig`` (its ``amp``, ``amp_dtype``);
    None: AMP off (float32)."""
    enabled, name = train.amp, train.amp_dtype
    if name not in AMP_DTYPES:
        raise ValueError(f"train.amp_dtype must be one of {AMP_DTYPES}, not {name!r}")
    if not enabled:
        return None
    if device.type == "cuda":
        if name == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return getattr(torch, name)
    if name == "bfloat16":
        return torch.bfloat16
    if name == "float16":
        raise ValueError("train.amp_dtype float16 needs CUDA (CPU autocast: bfloat16)")
    return None  # auto on the CPU: off


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype`` on ``device``; a no-op context for None (float32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def full_precision(device: torch.device):
    """Autocast off inside (the backbone: ME's kernels exist for float32 and float64 only)."""
    return torch.autocast(device.type, enabled=False)


def needs_scaler(dtype: torch.dtype | None) -> bool:
    """float16 gradients underflow without loss scaling; bfloat16 and float32 do not."""
    return dtype == torch.float16
