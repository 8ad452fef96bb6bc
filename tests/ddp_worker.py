"""Run under torchrun by test_engine: train a few steps, save this rank's parameters."""

import sys
from pathlib import Path

import torch

from scene_pe.config import load_config
from scene_pe.train.trainer import Trainer


def parameters(model) -> dict[str, torch.Tensor]:
    """Learnable parameters (BN running statistics are buffers, local to each rank on the CPU)."""
    return {k: v.detach().clone() for k, v in getattr(model, "module", model).named_parameters()}


def main() -> None:
    config, out, overrides = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    trainer = Trainer(load_config(config, overrides), progress=False)
    ok = False
    try:
        initial = parameters(trainer.model)
        scenes = [trainer.train_set.scenes[i % len(trainer.train_set.scenes)] for i in trainer.sampler]
        trainer.fit()
        out.mkdir(parents=True, exist_ok=True)
        torch.save({"model": parameters(trainer.model), "initial": initial, "step": trainer.step,
                    "scenes": scenes}, out / f"rank{trainer.rank}.pt")
        ok = True
    finally:  # the exception, if any, still ends this rank with a non-zero status (torchrun reports it)
        trainer.close(barrier=ok)


if __name__ == "__main__":
    main()
