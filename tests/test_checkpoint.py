"""Checkpoints load with weights_only=True: code-running pickles, truncated and foreign files are refused."""

import random

import numpy as np
import pytest
import torch

from scene_pe.train.checkpoint import (CheckpointError, load_checkpoint, load_model_weights, rng_state, save_checkpoint, set_rng_state)

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


def test_the_previous_checkpoint_is_kept_and_resume_falls_back_to_it(tmp_path, caplog):
    from scene_pe.train.checkpoint import load_latest, previous_path

    path = tmp_path / "last.pth"
    assert load_latest(path) is None  # nothing saved yet: nothing to resume
    for step in (1, 2, 3):
        save_checkpoint(path, {"model": {}, "step": step}, keep_previous=True)
    assert previous_path(path) == tmp_path / "last.prev.pth"
    assert load_checkpoint(path)["step"] == 3 and load_checkpoint(previous_path(path))["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.prev.pth", "last.pth"]  # no temp left
    ck, used = load_latest(path)
    assert (ck["step"], used) == (3, path)
    path.write_bytes(path.read_bytes()[:200])  # truncated after the fact (disk, copy, ...)
    with caplog.at_level("WARNING"):
        ck, used = load_latest(path)
    assert (ck["step"], used) == (2, previous_path(path))
    assert "previous checkpoint" in caplog.text and "truncated or corrupt" in caplog.text
    path.unlink()
    assert load_latest(path)[0]["step"] == 2  # a last.pth that is gone: the previous one too
    previous_path(path).write_bytes(b"junk")
    path.write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="and so is the previous one"):
        load_latest(path)


def test_a_save_that_fails_midway_leaves_both_checkpoints_untouched(tmp_path, monkeypatch):
    from scene_pe.train.checkpoint import previous_path

    path = tmp_path / "last.pth"
    save_checkpoint(path, {"model": {}, "step": 1}, keep_previous=True)
    save_checkpoint(path, {"model": {}, "step": 2}, keep_previous=True)

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(OSError):
        save_checkpoint(path, {"model": {}, "step": 3}, keep_previous=True)
    assert load_checkpoint(path)["step"] == 2 and load_checkpoint(previous_path(path))["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.prev.pth", "last.pth"]


def test_every_torch_load_in_the_repository_is_weights_only():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    calls = []
    for py in [*root.glob("scene_pe/**/*.py"), *root.glob("tools/**/*.py"), *root.glob("tests/*.py"),
               *root.glob("bench/*.py")]:
        text = py.read_text()
        for m in re.finditer(r"torch\.load\((?:[^()]|\([^()]*\))*\)", text):
            calls.append((py.name, m.group(0)))
    assert len(calls) >= 2  # the checkpoint loader and the DDP test at least
    assert all("weights_only=True" in call for _, call in calls), [c for c in calls if "weights_only=True" not in c[1]]
