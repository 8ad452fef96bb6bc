"""Inference threads: every core by default, shared among torchrun's local ranks."""

import os

import pytest
import torch

from scene_pe.util import threads
from scene_pe.util.threads import available_cores, set_inference_threads


@pytest.fixture
def restore_threads(monkeypatch):
    before = torch.get_num_threads()
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    yield monkeypatch
    torch.set_num_threads(before)


def test_default_is_every_core_and_set_in_torch_and_environment(restore_threads):
    restore_threads.setattr(threads.os, "getloadavg", lambda: (9.0, 0.0, 0.0))  # the load does not count
    n = set_inference_threads(0)
    assert n == available_cores() == len(os.sched_getaffinity(0))
    assert torch.get_num_threads() == n
    assert os.environ["OMP_NUM_THREADS"] == os.environ["OPENBLAS_NUM_THREADS"] == str(n)


def test_local_ranks_share_the_cores_and_explicit_count_wins(restore_threads):
    restore_threads.setenv("LOCAL_WORLD_SIZE", str(2 * available_cores()))
    assert set_inference_threads(0) == 1  # never 0
    restore_threads.setenv("LOCAL_WORLD_SIZE", "1")
    assert set_inference_threads(3) == 3 and torch.get_num_threads() == 3
    with pytest.raises(ValueError, match=">= 0"):
        set_inference_threads(-1)


def test_cores_are_split_among_local_ranks(restore_threads):
    restore_threads.setattr(threads, "available_cores", lambda: 8)
    restore_threads.setenv("LOCAL_WORLD_SIZE", "3")
    assert set_inference_threads(0) == 2
