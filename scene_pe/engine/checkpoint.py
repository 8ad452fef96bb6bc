"""Checkpoints: everything needed to continue a run exactly, written atomically."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scene_pe.util.io import atomic_open


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save to a temp file in the same folder, then rename: never a partial file."""
    with atomic_open(path, "wb") as fh:
        torch.save(state, fh)

def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    # our own files: they hold numpy RNG state and the config dict, not only tensors
    return torch.load(path, map_location=map_location, weights_only=False)


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict without DDP's ``module.`` prefix."""
    return getattr(model, "module", model).state_dict()


def load_trained_run(run_path: Path, device: str | torch.device = "cpu"):
    """(config, model in eval mode on ``device``, checkpoint) of a training run folder.

    The folder is ours (tools/train.py wrote config.yaml and last.pth): the
    checkpoint is read whole, RNG states included (load_checkpoint).
    """
    from scene_pe.config import load_config
    from scene_pe.engine.trainer import build_model  # trainer imports this module

    run_path = Path(run_path)
    cfg = load_config(run_path / "config.yaml")
    ck = load_checkpoint(run_path / "last.pth", "cpu")
    model = build_model(cfg).to(device)
    model.load_state_dict(ck["model"])
    model.eval()
    return cfg, model, ck
