"""Trainer paths the other tests do not reach: gradient clipping (``train.grad_clip``) and the
choice of best.pth (the best validation AP so far, replaced only on improvement)."""

import copy
import math
from pathlib import Path

import pytest
import torch

from scene_pe.config import load_config
from scene_pe.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "synthetic_probabilistic.yaml"
LR = 0.002


def make_trainer(data_root, run_dir, *overrides):
    from scene_pe.train.trainer import Trainer

    cfg = load_config(CONFIG, [f"data.root={data_root}", f"run_dir={run_dir}", "name=t", "data.num_workers=0",
                               "data.batch_size=1", "data.voxel.voxel_size=0.1", "model.backbone.stem_channels=8",
                               "model.head.hidden=16", f"train.lr={LR}",
                               *overrides])
    return Trainer(cfg, progress=False)


def raw_gradients(trainer, voxels) -> list[torch.Tensor]:
    """The gradients of one step before any clipping; the model is left as it was (BN statistics too)."""
    state = copy.deepcopy(trainer.model.state_dict())
    trainer.model.train()
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer._backward(voxels)
    grads = [p.grad.detach().clone() for p in trainer.model.parameters()]
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.model.load_state_dict(state)
    return grads


def total_norm(tensors) -> float:
    return math.sqrt(sum(float(t.double().pow(2).sum()) for t in tensors))


@pytest.mark.parametrize("ratio", [1e-3, 10.0])  # clip far below the gradient's norm, and above it
def test_grad_clip_scales_the_gradient_to_the_clip_value_and_adam_steps_with_it(small_dataset, tmp_path, ratio):
    probe = make_trainer(small_dataset, tmp_path / "probe")
    voxels = next(iter(probe.loader(0)))[0]
    norm = total_norm(raw_gradients(probe, voxels))
    probe.close()
    assert norm > 0
    clip = float(f"{ratio * norm:.6e}")  # as the config reads it back
    trainer = make_trainer(small_dataset, tmp_path / "clip", f"train.grad_clip={clip:.6e}")
    raw = raw_gradients(trainer, voxels)
    assert total_norm(raw) == pytest.approx(norm, rel=1e-4)  # the same model and batch
    before = [p.detach().clone() for p in trainer.model.parameters()]
    assert trainer.train_step(voxels) is not None
    params = list(trainer.model.parameters())
    clipped = [p.grad for p in params]  # zero_grad runs at the start of the next step
    # torch's clip_grad_norm_: g * clip / (norm + 1e-6) when that factor is below 1, else g unchanged
    factor = min(1.0, clip / (norm + 1e-6))
    assert total_norm(clipped) == pytest.approx(min(clip, norm), rel=1e-4)
    for g, r in zip(clipped, raw):
        # float32 gradients of the same computation, summed again: 1e-4 of the largest entry
        torch.testing.assert_close(g, r * factor, rtol=1e-4, atol=1e-4 * float(r.abs().max()) * factor)
    # Adam's first step (bias-corrected, no weight decay): p1 = p0 - lr * g / (|g| + eps), g the clipped
    # gradient; its float32 value is known exactly, so the only errors are the step's roundings
    for p0, p1, g in zip(before, params, clipped):
        want = p0.double() - LR * g.double() / (g.double().abs() + 1e-8)
        # p1 is float32: one rounding of p0 plus the step's own float32 rounding
        tol = 8 * torch.finfo(torch.float32).eps * (p0.double().abs() + LR)
        assert bool(((p1.detach().double() - want).abs() <= tol).all())
    trainer.close()


def test_best_checkpoint_is_the_best_validation_ap_replaced_only_on_improvement(small_dataset, tmp_path,
                                                                               monkeypatch):
    import scene_pe.train.trainer as T

    trainer = make_trainer(small_dataset, tmp_path)
    aps = iter([float("nan"), 0.2, 0.1, 0.5, 0.5, 0.3, 0.7])
    monkeypatch.setattr(T, "evaluate_loader", lambda *a, **k: {"ap": next(aps), "ap50": 0.0, "ap25": 0.0,
                                                               "miou": 0.0, "unc_auroc": 0.0})
    name, first = next(iter(trainer.model.named_parameters()))
    best_path = tmp_path / "t" / "best.pth"
    # epoch -> (the epoch best.pth holds after that validation, its score)
    expected = {0: (0, -1.0), 1: (1, 0.2), 2: (1, 0.2), 3: (3, 0.5), 4: (3, 0.5), 5: (3, 0.5), 6: (6, 0.7)}
    for epoch, (held, score) in expected.items():
        trainer.epoch = epoch
        with torch.no_grad():
            first.fill_(float(epoch))  # which weights best.pth holds
        trainer.validate()
        ck = load_checkpoint(best_path)
        assert ck["epoch"] == held and ck["best"] == score == trainer.best, epoch
        assert bool((ck["model"][name] == float(held)).all()), epoch
    assert not (tmp_path / "t" / "last.pth").exists()  # validation writes best.pth only
    trainer.close()


def test_a_fit_that_cannot_score_a_scene_leaves_the_run_without_fitted_values(small_dataset, tmp_path, monkeypatch):
    """A collapsed model (sigma underflowed to 0: the entropy regulariser at w_reg >= 1) gives a val scene
    a non-finite uncertainty, which the evaluator refuses with a SceneError. The trained run stays a
    success: last.pth without fitted values, and the log says why."""
    import logging

    import scene_pe.train.trainer as T
    from scene_pe.inference.fitting import RECORD_KEY
    from scene_pe.util.errors import SceneError

    def refuse(*a, **k):
        raise SceneError("scene0065_00", "predictions", "non-finite uncertainty")

    monkeypatch.setattr(T, "fit_thresholds", refuse)
    trainer = make_trainer(small_dataset, tmp_path, "data.val_split=train")
    seen: list[str] = []  # the trainer's own logging set-up replaces the root handlers (caplog's too)
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger("scene_pe.train").addHandler(handler)
    try:
        trainer.fit_inference()
    finally:
        logging.getLogger("scene_pe.train").removeHandler(handler)
        trainer.close()
    assert trainer.fitted is None and not (tmp_path / "t" / "last.pth").exists()
    assert "no fitted inference thresholds: scene0065_00: predictions: non-finite uncertainty" in seen
