"""Mixed precision as model/precision.py states it: MinkowskiEngine's ops always get float32, the
heads run in the AMP dtype, and a training step under CPU autocast (bfloat16) is finite and close
to the float32 one."""

import copy
import math

import MinkowskiEngine as ME
import pytest
import torch

from scene_pe.model.precision import amp_dtype, needs_scaler
from test_trainer_steps import make_trainer


class Train:  # the two TrainConfig fields amp_dtype reads
    def __init__(self, amp, name):
        self.amp, self.amp_dtype = amp, name


CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_amp_dtype_choice():
    assert amp_dtype(Train(True, "auto"), CPU) is None  # nothing to gain on the CPU: off
    assert amp_dtype(Train(True, "bfloat16"), CPU) is torch.bfloat16
    assert amp_dtype(Train(False, "bfloat16"), CPU) is None
    assert amp_dtype(Train(True, "float16"), CUDA) is torch.float16
    assert amp_dtype(Train(False, "auto"), CUDA) is None
    with pytest.raises(ValueError, match="needs CUDA"):
        amp_dtype(Train(True, "float16"), CPU)
    with pytest.raises(ValueError, match="must be one of"):
        amp_dtype(Train(True, "half"), CPU)
    assert needs_scaler(torch.float16) and not needs_scaler(torch.bfloat16) and not needs_scaler(None)


def test_minkowski_convolution_refuses_half_precision_features():
    """Why the backbone must stay in float32: ME 0.5.4 has no bfloat16 / float16 kernels."""
    conv = ME.MinkowskiConvolution(4, 4, kernel_size=3, dimension=3)
    coords = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.int32)
    x = ME.SparseTensor(torch.ones(3, 4), coordinates=coords)
    assert conv(x).F.dtype == torch.float32
    for dtype in (torch.bfloat16, torch.float16):
        half = ME.SparseTensor(torch.ones(3, 4, dtype=dtype), coordinates=coords)
        with pytest.raises((RuntimeError, TypeError)):
            conv.to(dtype)(half)
        conv.float()


def record_dtypes(model):
    """Forward hooks: (ME module, input dtype, output dtype) and the output dtype of each nn.Linear."""
    seen = {"me": [], "linear": []}
    hooks = []
    for m in model.modules():
        if type(m).__module__.startswith("Minkowski"):  # ME names its modules MinkowskiConvolution, ...
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out: seen["me"].append((type(mod).__name__, inp[0].F.dtype, out.F.dtype))))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(lambda mod, inp, out: seen["linear"].append(out.dtype)))
    return seen, hooks


def test_training_step_under_cpu_autocast_keeps_minkowski_in_float32(small_dataset, tmp_path):
    trainer = make_trainer(small_dataset, tmp_path / "amp", "train.amp=true", "train.amp_dtype=bfloat16")
    try:
        assert trainer.amp_dtype is torch.bfloat16 and not trainer.scaler.is_enabled()
        voxels = next(iter(trainer.loader(0)))[0]
        # the same step in float32 first, for comparison (the model put back afterwards)
        state = copy.deepcopy(trainer.model.state_dict())
        trainer.amp_dtype = None
        full = float(trainer._backward(voxels).total.detach())
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.model.load_state_dict(state)
        trainer.amp_dtype = torch.bfloat16

        seen, hooks = record_dtypes(trainer.model)
        before = [p.detach().clone() for p in trainer.model.parameters()]
        result = trainer.train_step(voxels)
        for h in hooks:
            h.remove()
    finally:
        trainer.close()
    assert result is not None and math.isfinite(result["loss"])  # the step was taken
    convolutions = [s for s in seen["me"] if "Convolution" in s[0]]
    assert len(convolutions) >= 10  # the whole UNet ran through the hooks
    assert all(i == o == torch.float32 for _, i, o in seen["me"]), {s for s in seen["me"] if s[1:] != (torch.float32,) * 2}
    assert seen["linear"] and set(seen["linear"]) == {torch.bfloat16}  # the heads did run in bfloat16
    # bfloat16 heads change the loss by rounding only (8 bits of mantissa): 2 % is far above that
    assert result["loss"] == pytest.approx(full, rel=0.02)
    after = list(trainer.model.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(b, a.detach()) for b, a in zip(before, after))  # Adam stepped
