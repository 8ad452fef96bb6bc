"""Kill anywhere: preprocess, train (also inside a checkpoint write), test, export and predict are killed
with SIGKILL at seeded random moments and run again (training with --resume). The result equals
an uninterrupted run (training bitwise, the other outputs file by file), and after every kill each
output under its final name is complete: the one of the uninterrupted run, or for a checkpoint a
loadable one. A kill moment counts from the killed run's own first output, and a run that ended
before its moment is run again with half the delay: every kill point hits a running process
(asserted). SCENE_PE_KILL_POINTS (default 2) kill moments per command; SCENE_PE_KILL_SEED."""

import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from scene_pe.train.checkpoint import CheckpointError, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "synthetic_probabilistic.yaml"
POINTS = int(os.environ.get("SCENE_PE_KILL_POINTS", "2"))
SEED = int(os.environ.get("SCENE_PE_KILL_SEED", "0"))
# every core in the environment: the tools' own default (one thread) is what makes reruns bitwise equal
ENV = dict(os.environ, OMP_NUM_THREADS=str(os.cpu_count()), PYTHONPATH=str(ROOT))
# what a run says about itself (appended to, or this run's counts): not results
LOGS = {"train.log", "preprocess_report.txt"}
KILLS: list[tuple[str, float, bool]] = []  # command, moment, whether it was still running then


def train_overrides(data: Path, run_dir: Path) -> list[str]:
    return [f"data.root={data}", f"run_dir={run_dir}", "name=run", "data.num_workers=0", "data.batch_size=1",
            "data.repeat=2", "data.voxel.voxel_size=0.08", "train.epochs=100", "train.val_every=1000",
            "train.max_steps=4", "train.deterministic=true", "train.lr_milestones=[1]"]


def commands(small_dataset: Path, out: Path, ckpt: Path) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "preprocess": [py, "tools/preprocess.py", "--scannet-root", str(small_dataset.parent / "raw"),
                       "--out", str(out / "pre"), "--split", "val", "test", "--workers", "1", "--no-progress"],
        "train": [py, "tools/train.py", str(CONFIG), *train_overrides(small_dataset, out), "--no-progress",
                  "--checkpoint-every=1"],
        "test": [py, "tools/test.py", str(CONFIG), *train_overrides(small_dataset, out), "--checkpoint", str(ckpt),
                 "--split", "val", "--out", str(out / "pred"), "--export", str(out / "sub"), "--no-progress"],
        "predict": [py, "tools/predict.py", *[str(p) for p in sorted((small_dataset.parent / "raw" / "scans").glob(
                    "*/*_vh_clean_2.ply"))][:2], "--checkpoint", str(ckpt), "--out", str(out / "predict"),
                    "--no-render", "--no-progress", "--scannet-format"],  # default threads: bitwise repeatable
    }


def run(cmd, kill_after: float | None = None, watch: Path | None = None) -> tuple[int, float, float]:
    """(exit status, seconds, seconds until the first output appeared in ``watch``).

    ``kill_after``: SIGKILL that many seconds after the first output appeared in ``watch``, so that
    the kill lands while this run writes its outputs however fast the machine runs it."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = None
    while p.poll() is None:
        now = time.perf_counter() - start
        if first is None and watch is not None and watch.is_dir() and any(watch.rglob("*.*")):
            first = now
        if kill_after is not None and first is not None and now >= first + kill_after:
            p.send_signal(signal.SIGKILL)
            break
        if now > 600:
            p.kill()
            raise AssertionError(f"{shlex.join(cmd)} ran past 600 s")
        time.sleep(0.01)
    err = p.communicate()[1]
    if kill_after is None:
        assert p.returncode == 0, err[-3000:]
    elapsed = time.perf_counter() - start
    return p.returncode, elapsed, first if first is not None else 0.0


def kill_while_running(name: str, cmd, out: Path, delay: float, watch: Path) -> float:
    """Run ``cmd`` and kill it ``delay`` s after its first output; when it ended before that (a faster
    run than the reference), again with half the delay. Returns the delay of the kill that hit it."""
    for _ in range(6):
        shutil.rmtree(out, ignore_errors=True)
        code, _, _ = run(cmd, kill_after=delay, watch=watch)
        KILLS.append((name, delay, code == -signal.SIGKILL))
        if code == -signal.SIGKILL:
            return delay
        assert code == 0, f"{name}: exit status {code}"
        delay /= 2
    raise AssertionError(f"{name}: six runs ended before their kill (last {delay:.3f} s after the first output)")


def outputs(folder: Path) -> dict[str, Path]:
    """Files a reader would take as finished: not the hidden temporaries of atomic writes."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and p.name not in LOGS and "tb" not in p.parts}


def content(path: Path):
    """What a file holds, independent of the timestamps zip writers put in .npz and .zip headers."""
    if path.suffix == ".npz":
        with np.load(path) as z:
            return {k: z[k].tobytes() + str(z[k].dtype).encode() for k in z.files}
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            assert zf.testzip() is None
            return {n: zf.read(n) for n in zf.namelist()}
    if path.suffix == ".pth":
        ck = load_checkpoint(path)
        return {k: v.numpy().tobytes() for k, v in ck["model"].items()}
    if path.suffix == ".json" and b'"seconds"' in path.read_bytes():  # tools/predict.py's stage timings
        return {k: v for k, v in json.loads(path.read_text()).items() if k != "seconds"}
    return path.read_bytes()


def assert_complete(folder: Path, reference: dict[str, object], where: str) -> None:
    for name, path in outputs(folder).items():
        if path.suffix == ".pth":  # an earlier checkpoint than the final one: must load
            try:
                load_checkpoint(path)
            except CheckpointError as e:
                raise AssertionError(f"{where}: partial checkpoint {name}: {e}") from None
            continue
        assert name in reference, f"{where}: unexpected file {name}"
        assert content(path) == reference[name], f"{where}: {name} differs from the uninterrupted run's"


def kill_and_rerun(name, cmd, resume_cmd, out: Path, reference, span, rng: random.Random, folder):
    for _ in range(POINTS):
        moment = kill_while_running(name, cmd, out, rng.uniform(0.0, 0.9) * span, watch=out)
        where = f"{name} killed {moment:.2f} s after its first output"
        assert_complete(folder(out), reference, where)
        run(resume_cmd)
        got = {k: content(p) for k, p in outputs(folder(out)).items()}
        assert got.keys() == reference.keys(), f"{where}: files differ"
        for k in reference:
            assert got[k] == reference[k], f"{where}, then rerun: {k} differs"


@pytest.fixture(scope="module")
def trained(small_dataset, tmp_path_factory) -> Path:
    """A checkpoint for the test/export command (the train test makes its own)."""
    out = tmp_path_factory.mktemp("ckpt")
    run(commands(small_dataset, out, out)["train"])
    return out / "run" / "last.pth"


@pytest.mark.parametrize("name", ["preprocess", "test", "predict"])
def test_killed_anywhere_then_rerun_equals_an_uninterrupted_run(small_dataset, tmp_path, trained, name):
    ref_out, out = tmp_path / "ref", tmp_path / "killed"
    folder = (lambda o: o / "pre") if name == "preprocess" else (lambda o: o)
    _, duration, first = run(commands(small_dataset, ref_out, trained)[name], watch=ref_out)
    reference = {k: content(p) for k, p in outputs(folder(ref_out)).items()}
    assert len(reference) >= 3
    cmd = commands(small_dataset, out, trained)[name]
    # kill moments from the first output file to 90 % of the way to the end: while outputs are written
    kill_and_rerun(name, cmd, cmd, out, reference, duration - first, random.Random(f"{SEED}-{name}"), folder)


def train_reference(small_dataset, out: Path) -> tuple[dict, float]:
    """The uninterrupted run's checkpoint, and its seconds from config.yaml written (model built) to the end."""
    _, duration, first = run(commands(small_dataset, out, out)["train"], watch=out / "run")
    return load_checkpoint(out / "run" / "last.pth"), duration - first


def assert_same_training(a: dict, b: dict, where: str) -> None:
    assert a["step"] == b["step"] == 4, where
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), f"{where}: parameter {k} differs"
    assert a["scheduler"] == b["scheduler"], where


def test_training_killed_anywhere_resumes_bitwise(small_dataset, tmp_path):
    reference, span = train_reference(small_dataset, tmp_path / "ref")
    rng = random.Random(f"{SEED}-train")
    for i in range(POINTS):
        out = tmp_path / f"killed{i}"
        cmd = commands(small_dataset, out, out)["train"]
        moment = kill_while_running("train", cmd, out, rng.uniform(0.0, 0.9) * span, watch=out / "run")
        for path in outputs(out / "run").values():
            if path.suffix == ".pth":
                load_checkpoint(path)  # never a partial checkpoint under its final name
        run(cmd + ["--resume"])
        assert_same_training(reference, load_checkpoint(out / "run" / "last.pth"),
                             f"killed {moment:.2f} s after config.yaml")


KILL_IN_SAVE = """
import io, os, signal, sys, runpy, torch
real, calls, at = torch.save, [0], int(os.environ["KILL_AT_SAVE"])
def save(obj, f, *a, **k):
    calls[0] += 1
    if calls[0] != at:
        return real(obj, f, *a, **k)
    buf = io.BytesIO(); real(obj, buf, *a, **k); data = buf.getvalue()
    f.write(data[:len(data) // 2]); f.flush()  # half the checkpoint is on disk: killed here
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = save
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_training_killed_inside_a_checkpoint_write_and_a_damaged_last_checkpoint(small_dataset, tmp_path):
    reference, _ = train_reference(small_dataset, tmp_path / "ref")
    at = random.Random(f"{SEED}-save").randint(2, 4)
    out = tmp_path / "killed"
    cmd = commands(small_dataset, out, out)["train"]
    r = subprocess.run([sys.executable, "-c", KILL_IN_SAVE, *cmd[1:]], cwd=ROOT, env=dict(ENV, KILL_AT_SAVE=str(at)),
                       capture_output=True, timeout=600)
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    KILLS.append((f"train in checkpoint write {at}", 0.0, True))
    run_dir = out / "run"
    assert [p.name for p in run_dir.glob(".last.pth.*.tmp")], "the cut write left its temporary file"
    assert load_checkpoint(run_dir / "last.pth")["step"] == at - 1  # the previous one, complete
    # and the complete last.pth damaged afterwards: --resume falls back to last.prev.pth
    (run_dir / "last.pth").write_bytes((run_dir / "last.pth").read_bytes()[:4096])
    r = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming from the previous checkpoint" in r.stderr
    assert (run_dir / "last.pth.damaged").exists()
    assert_same_training(reference, load_checkpoint(run_dir / "last.pth"), f"killed in save {at}")


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    killed = [k for k in KILLS if k[2]]
    print(f"\nkill points: {len(killed)} hit a running process ({len(KILLS) - len(killed)} runs ended before "
          "their moment and were run again with half the delay): "
          + ", ".join(f"{n}@{t:.2f}s{'' if k else ' (had finished)'}" for n, t, k in KILLS))
