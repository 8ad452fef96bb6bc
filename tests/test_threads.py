"""CPU threads: one by default (bitwise repeatable), 0 for every core shared among torchrun's local ranks."""

import argparse
import os

import pytest
import torch

from scene_pe.util import threads
from scene_pe.util.threads import DEFAULT_THREADS, add_threads_argument, available_cores, set_cpu_threads


pytestmark = pytest.mark.filterwarnings("ignore:.*after MinkowskiEngine loaded:RuntimeWarning")


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


def test_importing_a_tool_loads_neither_torch_nor_minkowski_so_its_thread_count_applies():
    """The thread count reaches MinkowskiEngine's OpenMP runtime and OpenBLAS only if it is set before
    they load: each tool with --threads sets it in main(), so importing the tool must not load them."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = ("import importlib.util, sys\n"
            "for name in ('train', 'test', 'predict', 'tune_inference', 'diagnose'):\n"
            "    spec = importlib.util.spec_from_file_location('tool_' + name, f'tools/{name}.py')\n"
            "    spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
            "print(sorted(m for m in ('torch', 'MinkowskiEngine', 'numpy') if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "torch" not in r.stdout and "MinkowskiEngine" not in r.stdout, r.stdout


def test_a_count_asked_after_minkowski_loaded_with_another_is_a_warning(restore_threads):
    import MinkowskiEngine  # noqa: F401  (loaded: its OpenMP thread count is fixed)

    restore_threads.setenv("OMP_NUM_THREADS", "1")
    with pytest.warns(RuntimeWarning, match="after MinkowskiEngine loaded with OMP_NUM_THREADS=1"):
        set_cpu_threads(3)
