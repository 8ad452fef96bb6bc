"""Checkpoints load with weights_only=True: code-running pickles, truncated and foreign files are refused."""

import random

import numpy as np
import pytest
import torch

from scene_pe.engine.checkpoint import (CheckpointError, load_checkpoint, load_model_weights, rng_state,
                                        save_checkpoint, set_rng_state)

RAN = []


def _record(value):
    RAN.append(value)


class CodeOnLoad:
    """Unpickling this calls _record: what a hostile checkpoint would do."""

    def __reduce__(self):
        return (_record, ("ran",))


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "c.pth", {"model": {}, "rng": rng_state()})
    expected = (np.random.rand(4), random.random(), torch.rand(3))
    np.random.rand(7), random.random(), torch.rand(5)  # move every generator on
    set_rng_state(load_checkpoint(tmp_path / "c.pth")["rng"])
    np.testing.assert_array_equal(np.random.rand(4), expected[0])
    assert random.random() == expected[1]
    assert torch.equal(torch.rand(3), expected[2])


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    torch.save({"model": {}, "payload": CodeOnLoad()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="evil.pth: refused"):
        load_checkpoint(tmp_path / "evil.pth")
    assert RAN == []


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing", "not_ours"])
def test_unusable_files_get_a_checkpoint_error_naming_them(tmp_path, damage):
    path = tmp_path / "c.pth"
    save_checkpoint(path, {"model": {"w": torch.ones(3)}})
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:300])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 10)
    elif damage == "missing":
        path.unlink()
    else:
        torch.save({"weights": torch.ones(3)}, path)
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


def test_weights_of_another_model_get_a_checkpoint_error(tmp_path):
    path = tmp_path / "c.pth"
    save_checkpoint(path, {"model": torch.nn.Linear(3, 2).state_dict()})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model_weights(torch.nn.Linear(4, 2), load_checkpoint(path), path)
