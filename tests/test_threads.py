"""CPU threads: one by default (bitwise repeatable), 0 for every core shared among torchrun's local ranks."""

import argparse
import os

import pytest
import torch

from scene_pe.util import threads
from scene_pe.util.threads import DEFAULT_THREADS, add_threads_argument, available_cores, set_cpu_threads


@pytest.fixture
def restore_threads(monkeypatch):
    before = torch.get_num_threads()
    for key in (*threads.THREAD_VARIABLES, "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    yield monkeypatch
    torch.set_num_threads(before)


def test_the_tools_default_is_one_thread_in_torch_and_every_thread_variable(restore_threads):
    ap = argparse.ArgumentParser()
    add_threads_argument(ap)
    assert ap.parse_args([]).threads == DEFAULT_THREADS == 1
    restore_threads.setattr(threads, "available_cores", lambda: 8)  # however many cores there are
    assert set_cpu_threads(ap.parse_args([]).threads) == 1 and torch.get_num_threads() == 1
    assert all(os.environ[k] == "1" for k in threads.THREAD_VARIABLES)


def test_zero_is_every_core_whatever_the_load(restore_threads):
    restore_threads.setattr(threads.os, "getloadavg", lambda: (9.0, 0.0, 0.0))  # the load does not count
    n = set_cpu_threads(0)
    assert n == available_cores() == len(os.sched_getaffinity(0))
    assert torch.get_num_threads() == n
    assert all(os.environ[k] == str(n) for k in threads.THREAD_VARIABLES)


def test_local_ranks_share_the_cores_and_explicit_count_wins(restore_threads):
    restore_threads.setenv("LOCAL_WORLD_SIZE", str(2 * available_cores()))
    assert set_cpu_threads(0) == 1  # never 0
    restore_threads.setenv("LOCAL_WORLD_SIZE", "1")
    assert set_cpu_threads(3) == 3 and torch.get_num_threads() == 3
    with pytest.raises(ValueError, match=">= 0"):
        set_cpu_threads(-1)


def test_cores_are_split_among_local_ranks(restore_threads):
    restore_threads.setattr(threads, "available_cores", lambda: 8)
    restore_threads.setenv("LOCAL_WORLD_SIZE", "3")
    assert set_cpu_threads(0) == 2
