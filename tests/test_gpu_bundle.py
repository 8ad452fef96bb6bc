"""tools/gpu_bundle.py: the wheel chosen for a target (Python, torch, GPU architecture), the folder
written, and its run.sh run for real on this CPU machine."""

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from scene_pe.env import bundle as B
from scene_pe.util import cuda_arch as C
from scene_pe.env.gpu_check import save_sample
from scene_pe.util.errors import RunError

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "tests" / "data" / "fatbin" / "probe.o"  # SASS sm_90, sm_100a, sm_120; PTX compute_120, _100f
LENT = B.Target()  # Python 3.12, torch 2.11.0+cu130, 9.0


def fake_wheel(folder: Path, library: bytes, cp: str = "cp312") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"MinkowskiEngine-0.5.4-{cp}-{cp}-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(f"MinkowskiEngineBackend/_C.cpython-{cp[2:]}-x86_64-linux-gnu.so", library)
        z.writestr("MinkowskiEngine/__init__.py", "")
    return wheel


def cache_folder(cache: Path, py="312", torch_version="2.11.0_cu130", arch="9.0_10.0a_12.0+PTX") -> Path:
    return cache / "wheels" / f"me0.5.4-py{py}-torch{torch_version}-cuda13.0.88-arch{arch}-p0123456789"


def test_the_cached_wheel_is_found_only_for_its_python_torch_and_a_gpu_its_code_runs_on(tmp_path):
    wheel = fake_wheel(cache_folder(tmp_path), PROBE.read_bytes())
    fake_wheel(cache_folder(tmp_path, torch_version="2.13.0_cu130"), PROBE.read_bytes())
    assert B.check_wheel(wheel, LENT) == C.read_compiled(PROBE, cuobjdump=None)[0]
    assert B.find_wheel(tmp_path, LENT) == wheel
    for arch in ("10.0", "12.1", "13.0"):  # sm_100a; sm_120 on 12.1; compute_120 PTX for a later GPU
        assert B.find_wheel(tmp_path, B.Target(arch=arch)) == wheel
    for other in (B.Target(arch="8.0"), B.Target(arch="11.0"), B.Target(python="3.11"),
                  B.Target(torch="2.10.0+cu130")):
        assert B.find_wheel(tmp_path, other) is None
    # a smaller wheel with code for the target is preferred; a CPU build never is
    small = fake_wheel(cache_folder(tmp_path, arch="9.0"), fatbin_section())
    fake_wheel(cache_folder(tmp_path, arch="cpu"), Path(torch._C.__file__).read_bytes()[:4096])
    assert B.find_wheel(tmp_path, LENT) == small


def fatbin_section() -> bytes:
    from scene_pe.util import fatbin

    return fatbin.elf_section(PROBE.read_bytes(), ".nv_fatbin")


def test_a_wheel_that_cannot_serve_the_target_is_refused_with_the_reason(tmp_path):
    wheel = fake_wheel(tmp_path / "a", PROBE.read_bytes())
    with pytest.raises(RunError, match=r"nothing that runs on compute capability 8\.6.*containing 8\.6"):
        B.check_wheel(wheel, B.Target(arch="8.6"))
    with pytest.raises(RunError, match=r"is for cp311, the target runs Python 3\.12"):
        B.check_wheel(fake_wheel(tmp_path / "b", PROBE.read_bytes(), "cp311"), LENT)
    with pytest.raises(RunError, match="a CPU build"):
        B.check_wheel(fake_wheel(tmp_path / "c", Path(torch._C.__file__).read_bytes()), LENT)
    for bad in ({"python": "312"}, {"arch": "sm_90"}, {"arch": "9"}):
        with pytest.raises(ValueError):
            B.Target(**bad)


def small_scene(path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 400
    save_sample(path, {"coords": rng.random((n, 3), dtype=np.float32) * 3,
                       "colors": rng.random((n, 3), dtype=np.float32),
                       "semantic": rng.integers(0, 20, n), "instance": rng.integers(0, 5, n)})
    return path


def test_the_bundle_holds_wheel_scene_sources_and_the_command_and_keeps_to_its_size(tmp_path):
    wheel = fake_wheel(tmp_path / "w", PROBE.read_bytes())
    out = tmp_path / "bundle"
    m = B.make_bundle(out, wheel, small_scene(tmp_path / "s.npz"), LENT, ROOT)
    assert (out / wheel.name).read_bytes() == wheel.read_bytes() and (out / "scene.npz").is_file()
    for f in ("scene_pe/util/cuda_arch.py", "scene_pe/config.py", "configs/scannet_probabilistic.yaml",
              "tools/gpu_check.py"):
        assert (out / "src" / f).is_file(), f
    assert not list((out / "src").rglob("__pycache__"))
    run = (out / "run.sh").read_text()
    assert f'"$here/{wheel.name}"' in run and 'want_py, want_torch = "3.12", "2.11.0+cu130"' in run
    assert m["command"] == "sh run.sh" and m["architectures"] == "9.0;10.0a;10.0f+PTX;12.0+PTX"
    assert "runs its sm_90 machine code" in m["served"] and 0 < m["total_mib"] < B.LIMIT_MIB
    assert json.loads((out / "MANIFEST.json").read_text()) == m
    B.make_bundle(out, wheel, tmp_path / "s.npz", LENT, ROOT)  # a bundle folder is replaced
    with pytest.raises(RunError, match=r"over 0\.5 MiB"):
        B.make_bundle(out, wheel, tmp_path / "s.npz", LENT, ROOT, limit_mib=0.5)
    (tmp_path / "mine").mkdir()
    with pytest.raises(RunError, match="not a bundle"):  # never deletes a folder it did not write
        B.make_bundle(tmp_path / "mine", wheel, tmp_path / "s.npz", LENT, ROOT)


def installed_minkowski_wheel(folder: Path) -> Path:
    """A wheel of the MinkowskiEngine installed here (the CPU build), named for this Python."""
    me = Path(importlib.util.find_spec("MinkowskiEngine").origin).parent
    backend = C.minkowski_library()
    cp = f"cp{sys.version_info.major}{sys.version_info.minor}"
    folder.mkdir()
    wheel = folder / f"MinkowskiEngine-0.5.4-{cp}-{cp}-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for f in me.rglob("*.py"):
            z.write(f, f"MinkowskiEngine/{f.relative_to(me)}")
        z.write(backend, f"MinkowskiEngineBackend/{backend.name}")
    return wheel


def test_run_sh_runs_the_check_here_and_refuses_another_python_or_torch(tmp_path, monkeypatch):
    here = B.Target(f"{sys.version_info.major}.{sys.version_info.minor}", torch.__version__, "9.0")
    wheel = installed_minkowski_wheel(tmp_path / "w")
    # the CPU build has no CUDA code: let it stand in for one that serves 9.0
    monkeypatch.setattr(B, "wheel_compiled", lambda w: C.from_arch_list("9.0"))
    out = tmp_path / "bundle"
    B.make_bundle(out, wheel, small_scene(tmp_path / "s.npz"), here, ROOT)
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path), "PYTHONPATH": "", "TMPDIR": str(tmp_path)}
    r = subprocess.run(["sh", str(out / "run.sh"), "--vertices", "400"], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["checks"]["CPU sparse conv = dense conv3d"]["ok"]
    assert "no CUDA device" in r.stdout and "all checks passed" in r.stdout
    # the MinkowskiEngine unpacked from the bundle's wheel ran, not the one installed here
    assert Path(report["environment"]["minkowski_library"]).parent.parent.parent == tmp_path
    B.make_bundle(out, wheel, tmp_path / "s.npz", B.Target(here.python, "2.0.0+cu999", "9.0"), ROOT)
    r = subprocess.run(["sh", str(out / "run.sh")], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0 and "for Python" in r.stderr and "torch 2.0.0+cu999" in r.stderr


def test_the_tool_prints_the_build_command_without_a_wheel_and_writes_the_bundle_with_one(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_bundle_tool", ROOT / "tools" / "gpu_bundle.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    scene = small_scene(tmp_path / "s.npz")
    args = ["--cache-dir", str(tmp_path / "cache"), "--scene", str(scene), "--out", str(tmp_path / "b")]
    assert tool.main(args + ["--arch", "12.0"]) == 1
    err = capsys.readouterr().err
    assert "no MinkowskiEngine wheel for Python 3.12, torch 2.11.0+cu130, compute capability 12.0" in err
    assert "TORCH_CUDA_ARCH_LIST=12.0 MAX_JOBS=2" in err and "build_wheel.py --cuda --no-install" in err
    fake_wheel(cache_folder(tmp_path / "cache"), PROBE.read_bytes())
    assert tool.main(args + ["--arch", "12.0"]) == 0
    out = capsys.readouterr().out
    assert "runs its sm_120 machine code" in out and "there: sh b/run.sh" in out
    assert json.loads((tmp_path / "b" / "MANIFEST.json").read_text())["target"]["arch"] == "12.0"
