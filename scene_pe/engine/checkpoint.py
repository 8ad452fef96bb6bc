"""Checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint holds only tensors, numbers, strings and plain containers (the
numpy RNG state is stored as a tensor), so every load uses
``torch.load(..., weights_only=True)``: a checkpoint is a file from elsewhere
as soon as someone shares it, and a pickle that would import or run code is
refused (``CheckpointError``). Checkpoints written before this format hold the
numpy state as an ndarray; the loader allows exactly numpy's array and dtype
reconstruction for them (``LEGACY_NUMPY_GLOBALS``), nothing else.
"""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scene_pe.util.io import atomic_open


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: names the file and why."""

    def __init__(self, path, message: str):
        self.path = str(path)
        super().__init__(f"{path}: {message}")


def _numpy_state() -> dict[str, Any]:
    name, key, pos, has_gauss, gauss = np.random.get_state()
    return {"name": name, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _set_numpy_state(state) -> None:
    if isinstance(state, dict):
        state = (state["name"], state["key"].numpy().astype(np.uint32), state["pos"],
                 state["has_gauss"], state["gauss"])
    np.random.set_state(state)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": _numpy_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    _set_numpy_state(state["numpy"])
    # weights_only loading gives lists where random.getstate() had tuples
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save to a temp file in the same folder, then rename: never a partial file."""
    with atomic_open(path, "wb") as fh:
        torch.save(state, fh)


def _legacy_numpy_globals() -> list:
    from numpy.core.multiarray import _reconstruct  # noqa: PLC0415 - numpy<2 location
    return [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; every failure is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file does not exist")
    try:
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            ck = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln]
        first = lines[0] if lines else type(e).__name__
        raise CheckpointError(path, "refused: it holds objects other than tensors, numbers, strings and "
                                    f"plain containers (loading it could run code): {first}") from None
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError) as e:
        raise CheckpointError(path, f"not a readable torch checkpoint (truncated or corrupt?): "
                                    f"{type(e).__name__}: {e}") from None
    if not isinstance(ck, dict) or not isinstance(ck.get("model"), dict):
        raise CheckpointError(path, "not a scene_pe checkpoint (no 'model' state dict)")
    return ck


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict without DDP's ``module.`` prefix."""
    return getattr(model, "module", model).state_dict()


def load_model_weights(model: torch.nn.Module, ck: dict[str, Any], path: Path) -> None:
    """``model.load_state_dict`` with a CheckpointError when the weights do not fit the model."""
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise CheckpointError(path, "its weights do not fit the model of this config "
                                    f"({' '.join(lines[:3])[:400]})") from None


def load_trained_run(run_path: Path, device: str | torch.device = "cpu"):
    """(config, model in eval mode on ``device``, checkpoint) of a training run folder."""
    from scene_pe.config import load_config
    from scene_pe.engine.trainer import build_model  # trainer imports this module

    run_path = Path(run_path)
    cfg = load_config(run_path / "config.yaml")
    ck = load_checkpoint(run_path / "last.pth", "cpu")
    model = build_model(cfg).to(device)
    load_model_weights(model, ck, run_path / "last.pth")
    model.eval()
    return cfg, model, ck
