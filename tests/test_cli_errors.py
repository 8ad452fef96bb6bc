"""Every tool answers a wrong path, a missing split list or checkpoint, or a bad option with
one line on stderr and a non-zero exit, never a traceback (scene_pe/util/cli.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scene_pe.util import cli

ROOT = Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "configs" / "synthetic_margin.yaml")


def fake_root(tmp: Path) -> Path:
    """A preprocessed-data root with split lists but no scene files (nothing gets that far),
    and a training run whose last.pth is damaged."""
    (tmp / "run").mkdir()
    (tmp / "run" / "last.pth").write_bytes(b"PK\x03\x04 truncated")  # a damaged checkpoint
    for split in ("train", "val"):
        (tmp / "data" / "splits").mkdir(parents=True, exist_ok=True)
        (tmp / "data" / "splits" / f"{split}.txt").write_text("".join(f"scene{i:04d}_00\n" for i in range(4)))
    return tmp / "data"


# (tool, arguments with {tmp} / {data} / {config} placeholders, text the error line must hold)
CASES = [
    ("train", ["{config}", "data.root={tmp}/nowhere", "run_dir={tmp}/runs"], "{tmp}/nowhere"),
    ("train", ["{tmp}/missing.yaml"], "missing.yaml"),
    ("train", ["{config}", "data.root={data}", "run_dir={tmp}", "name=run", "--resume", "--no-progress"],
     "{tmp}/run/last.pth"),
    ("train", ["{config}", "--checkpoint-every", "soon"], "--checkpoint-every"),
    ("test", ["{config}", "data.root={data}", "--checkpoint", "{tmp}/none.pth"], "none.pth"),
    ("test", ["{config}", "data.root={data}", "--checkpoint", "{tmp}/none.pth", "--split", "holdout"],
     "holdout.txt"),
    ("evaluate", ["--pred", "{tmp}/pred", "--gt", "{tmp}/gt"], "{tmp}/gt"),
    ("validate_submission", ["{tmp}/sub.zip", "--vertex-counts", "{tmp}", "--split-file", "{tmp}/split.txt"],
     "split.txt"),
    ("preprocess", ["--scannet-root", "{tmp}/scannet", "--out", "{tmp}/out", "--split", "val"], "scannetv2_val.txt"),
    ("predict", ["{tmp}/scan.ply", "--checkpoint", "{tmp}/none.pth", "--out", "{tmp}/out"], "none.pth"),
    ("segment", ["{tmp}/mesh.ply", "--out", "{tmp}/segs.json"], "mesh.ply"),
    ("diagnose", ["{tmp}/run"], "{tmp}/run"),
    ("tune_inference", ["{tmp}/run"], "{tmp}/run"),
    ("make_synthetic", ["--out", "{tmp}/syn", "--profile", "castle"], "castle"),
    ("ablate", ["--configs", "{tmp}/none.yaml", "--seeds", "1", "--epochs", "1", "--out", "{tmp}/o"], "none.yaml"),
    ("demo", ["--train-scenes", "many"], "many"),
    ("gpu_check", ["--config", "{tmp}/none.yaml"], "none.yaml"),
]


def run_tool(tool: str, args: list[str], extra_env=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", **(extra_env or {}))
    return subprocess.run([sys.executable, str(ROOT / "tools" / f"{tool}.py"), *args], capture_output=True,
                          text=True, timeout=300, env=env, cwd=ROOT)


@pytest.mark.parametrize("tool,args,expected", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path, tool, args, expected):
    subs = {"{tmp}": str(tmp_path), "{config}": CONFIG}
    if any("{data}" in a for a in args):
        subs["{data}"] = str(fake_root(tmp_path))
    fill = lambda s: [s := s.replace(k, v) for k, v in subs.items()][-1]  # noqa: E731
    r = run_tool(tool, [fill(a) for a in args])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1 and fill(expected) in lines[0], r.stderr


def test_debug_shows_the_traceback(tmp_path):
    # an error that reaches cli.run: one line without --debug; with --debug (or SCENE_PE_DEBUG=1)
    # Python's traceback, ending in the exception that the line describes
    args = [CONFIG, f"data.root={tmp_path}/nowhere", f"run_dir={tmp_path}/runs"]
    message = f"{tmp_path}/nowhere/splits/train.txt: no split list"
    plain = run_tool("train", args)
    assert plain.returncode == 2 and plain.stderr.startswith(f"train: error: {message}")
    assert plain.stderr.count("\n") == 1 and "Traceback" not in plain.stderr
    for r in (run_tool("train", [*args, "--debug"]), run_tool("train", args, {"SCENE_PE_DEBUG": "1"})):
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and lines[0] == "Traceback (most recent call last):", r.stderr
        assert lines[-1].startswith(f"FileNotFoundError: {message}") and "preprocessed_split" in r.stderr
    # a tool that answers the error itself: --debug changes nothing, there is no traceback to show
    for tool, tool_args in (("diagnose", [str(tmp_path / "run")]),
                            ("evaluate", ["--pred", str(tmp_path / "p"), "--gt", str(tmp_path / "g")])):
        plain, debug = run_tool(tool, tool_args), run_tool(tool, [*tool_args, "--debug"])
        assert plain.returncode == debug.returncode != 0 and plain.stderr == debug.stderr, tool
        assert "Traceback" not in debug.stderr and str(tmp_path) in debug.stderr, tool


def test_run_sorts_user_errors_from_bugs(capsys, tmp_path):
    def missing(argv):
        open(tmp_path / "absent.txt")

    def bug(argv):
        return {}["key"]

    def fine(argv):
        return None

    assert cli.run(missing, [], prog="t") == 2
    assert capsys.readouterr().err == f"t: error: {tmp_path / 'absent.txt'}: No such file or directory\n"
    assert cli.run(bug, [], prog="t") == 1
    err = capsys.readouterr().err
    assert err.startswith("t: internal error: KeyError: 'key'") and "--debug" in err and err.count("\n") == 1
    assert cli.run(fine, [], prog="t") == 0
    with pytest.raises(KeyError):
        cli.run(bug, ["--debug"], prog="t")


def test_the_traceback_goes_to_the_log_file(tmp_path, capsys):
    import logging

    handler = logging.FileHandler(tmp_path / "train.log")
    logging.getLogger().addHandler(handler)
    try:
        assert cli.run(lambda argv: int("x"), [], prog="t") == 2
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    log = (tmp_path / "train.log").read_text()
    assert "Traceback" in log and "ValueError" in log and "Traceback" not in capsys.readouterr().err


def test_every_tool_uses_the_shared_wrapper():
    tools = sorted((ROOT / "tools").glob("*.py"))
    assert len(tools) >= 12
    for tool in tools:
        text = tool.read_text()
        assert "sys.exit(cli.run(main))" in text and "cli.ArgumentParser(" in text, tool.name
