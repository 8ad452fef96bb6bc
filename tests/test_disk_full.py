"""A disk that fills up while an output is written (a fault-injecting file object): a clear
DiskFullError naming the output, no partial or temporary file left, the previous version intact."""

import errno
import gc
import os
import zipfile

import numpy as np
import pytest
import torch

from scene_pe.train.checkpoint import load_checkpoint, save_checkpoint
from scene_pe.export.submission import write_instance_submission, zip_submission
from scene_pe.util import cli
from scene_pe.util.errors import DiskFullError
from scene_pe.util.io import save_npz_atomic, write_text_atomic


class FillingFile:
    """A file object that accepts ``budget`` bytes, writes part of the next chunk, then raises ENOSPC."""

    def __init__(self, f, budget: int):
        self.f, self.left = f, budget

    def write(self, data):
        n = len(data)
        if n > self.left:
            self.f.write(bytes(data[:self.left]) if isinstance(data, (bytes, bytearray, memoryview))
                         else data[:self.left])
            self.left = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.left -= n
        return self.f.write(data)

    def __getattr__(self, name):  # only for names not set in __init__
        if name in ("f", "left"):
            raise AttributeError(name)
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.f.__exit__(*exc)


@pytest.fixture
def disk_with(monkeypatch):
    """disk_with(budget): from now on every file opened by an atomic writer fills up after budget bytes."""
    real = os.fdopen

    def install(budget: int):
        monkeypatch.setattr(os, "fdopen", lambda *a, **k: FillingFile(real(*a, **k), budget))
    return install


WRITERS = {
    "text": (lambda p: write_text_atomic(p, "line\n" * 50_000), lambda p: p.read_text()),
    "npz": (lambda p: save_npz_atomic(p, a=np.arange(100_000)), lambda p: np.load(p)["a"].sum()),
    "checkpoint": (lambda p: save_checkpoint(p, {"model": {"w": torch.zeros(100_000)}}),
                   lambda p: float(load_checkpoint(p)["model"]["w"].sum())),
}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # np.savez's ZipFile, see below
@pytest.mark.parametrize("kind", sorted(WRITERS))
@pytest.mark.parametrize("budget", [0, 1000, 150_000])
def test_a_full_disk_leaves_nothing_partial_and_the_previous_version(tmp_path, disk_with, kind, budget):
    write, read = WRITERS[kind]
    path = tmp_path / f"out.{kind}"
    write(path)
    previous = read(path)
    before = path.read_bytes()
    disk_with(budget)
    with pytest.raises(DiskFullError) as e:
        write(path)
    # np.savez leaves its ZipFile open on an error; collect it here, not inside a later compile()
    # (its __del__ running there trips CPython 3.11.7's "AST constructor recursion depth" check)
    gc.collect()
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(path)
    assert path.read_bytes() == before and read(path) == previous
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_fsync_failing_for_space_is_a_disk_full_error(tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(DiskFullError, match="nothing was written"):
        write_text_atomic(tmp_path / "a.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_export_and_zip_on_a_full_disk(tmp_path, disk_with):
    masks = np.zeros((3, 2000), bool)
    masks[0, :500] = masks[1, 500:900] = masks[2, 900:] = True
    write_instance_submission(tmp_path / "sub", "scene0000_00", masks, np.array([3, 5, 7]), np.array([.9, .8, .7]))
    zip_submission(tmp_path / "sub", tmp_path / "sub.zip")
    good = (tmp_path / "sub.zip").read_bytes()
    disk_with(500)
    with pytest.raises(DiskFullError, match="sub.zip"):
        zip_submission(tmp_path / "sub", tmp_path / "sub.zip")
    gc.collect()
    assert (tmp_path / "sub.zip").read_bytes() == good and zipfile.ZipFile(tmp_path / "sub.zip").testzip() is None
    with pytest.raises(DiskFullError):
        write_instance_submission(tmp_path / "sub2", "scene0000_00", masks, np.array([3, 5, 7]),
                                  np.array([.9, .8, .7]))
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))


def test_a_tool_reports_a_full_disk_in_one_line(tmp_path, monkeypatch, capsys):
    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    assert cli.run(lambda argv: write_text_atomic(tmp_path / "metrics.json", "{}"), [], prog="test") == 2
    err = capsys.readouterr().err
    assert err == f"test: error: {tmp_path / 'metrics.json'}: no space left on device while writing it; " \
                  "nothing was written (any previous version is unchanged)\n"
