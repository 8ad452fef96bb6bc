"""Checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint holds only tensors, numbers, strings and plain containers (the
numpy RNG state is stored as a tensor), so every load uses
``torch.load(..., weights_only=True)``: a checkpoint is a file from elsewhere
as soon as someone shares it, and a pickle that would import or run code is
refused (``CheckpointError``). Checkpoints written before this format hold the
numpy state as an ndarray; the loader allows exactly numpy's array and dtype
reconstruction for them (``LEGACY_NUMPY_GLOBALS``), nothing else.

Training keeps the checkpoint each save replaces (last.pth -> last.prev.pth) until
the new one is complete, and ``load_latest`` falls back to it, with a warning,
when last.pth turns out truncated or corrupt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scene_pe.config import load_config
from scene_pe.model.build import build_model
from scene_pe.util.io import atomic_open

log = logging.getLogger("scene_pe.checkpoint")


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


def previous_path(path: Path) -> Path:
    """Where the checkpoint ``path`` replaced is kept: last.pth -> last.prev.pth."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _keep_as_previous(path: Path) -> None:
    """``path`` (complete) also under previous_path(path), atomically: a hard link, else a copy."""
    prev = previous_path(path)
    tmp = prev.with_name(f".{prev.name}.link.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(path, tmp)
    except OSError:  # a filesystem without hard links
        shutil.copyfile(path, tmp)
    os.replace(tmp, prev)


def save_checkpoint(path: Path, state: dict[str, Any], keep_previous: bool = False) -> None:
    """torch.save to a temp file in the same folder, then rename: never a partial file.

    ``keep_previous``: the checkpoint being replaced stays as ``previous_path(path)``
    (linked there once the new file is fully written, before the rename), so a kill at
    any moment leaves a complete ``path`` and, from the second save on, a complete
    previous one for ``load_latest`` to fall back to if ``path`` is damaged later.
    """
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        torch.save(state, fh)
        if keep_previous and path.is_file():
            _keep_as_previous(path)


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
    except Exception as e:  # noqa: BLE001 - torch.load's errors on damaged bytes are of many types (struct.error, ...)
        raise CheckpointError(path, f"not a readable torch checkpoint (truncated or corrupt?): "
                                    f"{type(e).__name__}: {e}") from None
    if not isinstance(ck, dict) or not isinstance(ck.get("model"), dict):
        raise CheckpointError(path, "not a scene_pe checkpoint (no 'model' state dict)")
    return ck


def load_latest(path: Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], Path] | None:
    """``path``, or its previous version with a warning when ``path`` is damaged or missing.

    None when neither exists (nothing to resume); CheckpointError naming both files when
    neither is usable.
    """
    path, prev = Path(path), previous_path(path)
    if not path.exists() and not prev.exists():
        return None
    try:
        return load_checkpoint(path, map_location), path
    except CheckpointError as e:
        if not prev.exists():
            raise
        try:
            ck = load_checkpoint(prev, map_location)
        except CheckpointError as e2:
            raise CheckpointError(path, f"unusable ({e}), and so is the previous one ({e2})") from None
        log.warning("%s; resuming from the previous checkpoint %s instead", e, prev)
        return ck, prev


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

    run_path = Path(run_path)
    cfg = load_config(run_path / "config.yaml")
    ck = load_checkpoint(run_path / "last.pth", "cpu")
    model = build_model(cfg).to(device)
    load_model_weights(model, ck, run_path / "last.pth")
    model.eval()
    return cfg, model, ck


def fit_best(run_path: Path, cfg, step: int, last_record: dict | None, fit, device="cpu") -> dict | None:
    """Store in the run's best.pth the fitted inference values of its own weights; the record (None: no best.pth).

    ``fit(model) -> record`` (inference/fitting.py). When best.pth holds the step
    last.pth was fitted at (``step``, ``last_record``), the weights are the same and
    so is the record; else best.pth's weights are loaded into a fresh model and fitted.
    """
    from scene_pe.inference.fitting import RECORD_KEY

    path = Path(run_path) / "best.pth"
    if not path.is_file():
        return None
    ck = load_checkpoint(path, "cpu")
    if last_record is not None and ck.get("step") == step:
        record = last_record
    else:
        model = build_model(cfg).to(device)
        load_model_weights(model, ck, path)
        record = fit(model)
    ck[RECORD_KEY] = record
    save_checkpoint(path, ck)
    return record
