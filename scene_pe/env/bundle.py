"""The GPU check as one folder for a machine that has a CUDA torch and nothing else.

``tools/gpu_bundle.py`` writes it: the MinkowskiEngine wheel built for the target
(Python version, torch version, GPU architecture: checked against the wheel's name, its
cache folder and the fat binaries in its library), a saved ScanNet-size scene, scene_pe's
sources (the package, configs, tools/gpu_check.py) and ``run.sh``, the one command to run
there. ``run.sh`` needs Python and the torch the wheel was built against, plus numpy,
SciPy, PyYAML and tqdm (what scene_pe's gpu-check path imports; it names any that is missing): it unpacks
the wheel into a temporary folder (no pip needed) and runs tools/gpu_check.py --scene.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from scene_pe.util import cuda_arch
from scene_pe.util.errors import RunError

ME_VERSION = "0.5.4"
LIMIT_MIB = 60  # a device run carries 64 MiB with the working tree


@dataclass(frozen=True)
class Target:
    """The machine the bundle is for. Defaults: the lent GPU machines (device/KINDS.md: Python
    3.12.3, torch 2.11.0+cu130, H100 / H200)."""

    python: str = "3.12"
    torch: str = "2.11.0+cu130"
    arch: str = "9.0"

    def __post_init__(self):
        if not re.fullmatch(r"\d+\.\d+", self.python):
            raise ValueError(f"--python {self.python!r}: give X.Y, e.g. 3.12")
        if not re.fullmatch(r"\d+\.\d", self.arch):
            raise ValueError(f"--arch {self.arch!r}: give the GPU's compute capability X.Y, e.g. 9.0")

    @property
    def cp(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def cc(self) -> tuple[int, int]:
        a = cuda_arch.Arch.parse(self.arch)
        return a.major, a.minor

    def key_prefix(self) -> str:
        """The start of tools/minkowski/build_wheel.py's cache folder for this target."""
        return f"me{ME_VERSION}-py{self.python.replace('.', '')}-torch{self.torch.replace('+', '_')}-cuda"


def wheel_python(name: str) -> str:
    """``MinkowskiEngine-0.5.4-cp312-cp312-linux_x86_64.whl`` -> ``cp312``."""
    m = re.fullmatch(r"MinkowskiEngine-[\w.]+-(cp\d+)-[\w]+-[\w.]+\.whl", name)
    if not m:
        raise RunError(f"{name}: not a MinkowskiEngine wheel name")
    return m.group(1)


def wheel_compiled(wheel: Path) -> cuda_arch.Compiled:
    """The architectures in the wheel's compiled backend (MinkowskiEngineBackend/_C*.so)."""
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if re.fullmatch(r"MinkowskiEngineBackend/_C[^/]*\.so", n)]
        if len(names) != 1:
            raise RunError(f"{wheel}: expected one MinkowskiEngineBackend/_C*.so, found {names}")
        return cuda_arch.Compiled.from_bytes(z.read(names[0]))


def check_wheel(wheel: Path, target: Target) -> cuda_arch.Compiled:
    """The wheel's architectures when it fits the target; RunError saying why not otherwise."""
    if wheel_python(wheel.name) != target.cp:
        raise RunError(f"{wheel.name} is for {wheel_python(wheel.name)}, the target runs Python {target.python}")
    compiled = wheel_compiled(wheel)
    if not compiled:
        raise RunError(f"{wheel}: a CPU build (no CUDA code in its library)")
    if cuda_arch.runs_on(compiled, target.cc) is None:
        raise RunError(f"{wheel} holds {compiled.describe()}: nothing that runs on compute capability "
                       f"{target.arch}; build it with TORCH_CUDA_ARCH_LIST containing {target.arch}")
    return compiled


def find_wheel(cache_dir: Path, target: Target) -> Path | None:
    """The smallest cached wheel (build_wheel.py's cache) for the target's Python and torch whose
    code runs on its architecture; None if there is none."""
    found = []
    for folder in sorted((cache_dir / "wheels").glob(target.key_prefix() + "*")):
        for wheel in folder.glob("MinkowskiEngine-*.whl"):
            try:
                check_wheel(wheel, target)
            except (RunError, zipfile.BadZipFile, OSError):
                continue
            found.append(wheel)
    return min(found, key=lambda w: w.stat().st_size) if found else None


def build_command(target: Target, cache_dir: Path) -> str:
    """How to build the wheel here (docs/gpu.md), for the message when none is cached."""
    py = target.python
    return (f"python{py} -m venv /tmp/me-gpu && /tmp/me-gpu/bin/python -m pip install "
            f"torch=={target.torch.split('+')[0]} 'setuptools<80' wheel numpy && "
            f"CUDA_HOME=/usr/local/cuda TORCH_CUDA_ARCH_LIST={target.arch} MAX_JOBS=2 /tmp/me-gpu/bin/python "
            f"tools/minkowski/build_wheel.py --cuda --no-install --cache-dir {cache_dir}")


def source_files(root: Path) -> list[Path]:
    """scene_pe's files the check needs, relative to ``root``: git's tracked files of the package
    and configs, and tools/gpu_check.py (outside git: the .py / .yaml files there)."""
    parts = ["scene_pe", "configs", "tools/gpu_check.py"]
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", *parts], cwd=root, capture_output=True, check=True).stdout
        files = [Path(p) for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        files = []
    if not files:
        files = [p.relative_to(root) for part in parts for p in sorted((root / part).rglob("*") if
                 (root / part).is_dir() else [root / part]) if p.suffix in (".py", ".yaml")]
    return [f for f in files if (root / f).is_file() and "__pycache__" not in f.parts]


RUN_SH = """#!/bin/sh
# scene_pe's GPU check (docs/gpu.md), for {target}.
# Run it there as:  sh run.sh [more tools/gpu_check.py arguments]
# It needs python3 with torch {torch}, numpy, SciPy, PyYAML and tqdm; it unpacks MinkowskiEngine into a
# temporary folder (no pip, nothing installed) and writes gpu_check.json to $OUT, else here.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
py=${{PYTHON:-python3}}
"$py" - <<'EOF'
import importlib.util, sys
want_py, want_torch = "{python}", "{torch}"
have_py = "%d.%d" % sys.version_info[:2]
missing = [m for m in ("torch", "numpy", "scipy", "yaml", "tqdm") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit("run.sh: missing Python packages: %s (PyYAML for yaml)" % ", ".join(missing))
import torch
if have_py != want_py or torch.__version__ != want_torch:
    sys.exit("run.sh: this bundle's MinkowskiEngine is for Python %s and torch %s; here: Python %s, torch %s "
             "(build one for this machine: python tools/gpu_bundle.py --python %s --torch %s)"
             % (want_py, want_torch, have_py, torch.__version__, have_py, torch.__version__))
EOF
site=$(mktemp -d "${{TMPDIR:-/tmp}}/scene_pe_gpu.XXXXXX")
"$py" -m zipfile -e "$here/{wheel}" "$site"
out=${{OUT:-$here}}
PYTHONPATH="$site:$here/src" "$py" "$here/src/tools/gpu_check.py" --scene "$here/scene.npz" --json "$out/gpu_check.json" "$@"
"""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def folder_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def make_bundle(out: Path, wheel: Path, scene: Path, target: Target, root: Path,
                limit_mib: float = LIMIT_MIB) -> dict:
    """Write the bundle to ``out`` (replaced if it exists); its manifest. RunError when the wheel
    does not fit the target or the folder would exceed ``limit_mib``."""
    compiled = check_wheel(wheel, target)
    if out.exists():
        if not (out / "MANIFEST.json").exists():
            raise RunError(f"{out} exists and is not a bundle: choose another folder")
        shutil.rmtree(out)
    (out / "src").mkdir(parents=True)
    shutil.copy2(wheel, out / wheel.name)
    shutil.copy2(scene, out / "scene.npz")
    for f in source_files(root):
        (out / "src" / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / f, out / "src" / f)
    (out / "run.sh").write_text(RUN_SH.format(target=f"Python {target.python}, torch {target.torch}, "
                                              f"compute capability {target.arch}", python=target.python,
                                              torch=target.torch, wheel=wheel.name))
    (out / "run.sh").chmod(0o755)
    manifest = {"target": asdict(target), "wheel": wheel.name, "wheel_sha256": _sha256(out / wheel.name),
                "wheel_mib": round((out / wheel.name).stat().st_size / 2**20, 2),
                "architectures": compiled.arch_list(), "served": cuda_arch.served_note(
                    cuda_arch.runs_on(compiled, target.cc), target.cc),
                "scene_mib": round((out / "scene.npz").stat().st_size / 2**20, 2), "command": "sh run.sh"}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    size = folder_mib(out)
    manifest["total_mib"] = round(size, 2)
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    if size > limit_mib:
        raise RunError(f"{out} is {size:.1f} MiB, over {limit_mib} MiB: a smaller scene (--vertices), or "
                       f"a wheel with fewer architectures")
    return manifest
