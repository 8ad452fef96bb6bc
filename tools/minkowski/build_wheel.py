#!/usr/bin/env python
"""Build (or take from the cache) and install MinkowskiEngine 0.5.4 with scene_pe's patches.

PyPI only has the 2021 sdist of MinkowskiEngine 0.5.4, which no longer builds
or imports on current Python/torch/CUDA. This script:

1. downloads that sdist from the package index (sha256-checked),
2. applies the patches in ``tools/minkowski/patches`` (see their headers),
3. builds a wheel: CPU (``--cpu_only --blas=openblas``) or CUDA
   (``--force_cuda``, NVTX off, CUDA 12/13 include paths),
4. caches the wheel under a key of Python, torch, ME version, CPU/CUDA (+ CUDA
   version and architectures) and the patches' hash, and
5. installs it into the running interpreter's environment.

Run it with the Python of the target environment (which must have torch):
    python tools/minkowski/build_wheel.py [--cuda] [--cache-dir DIR] [--force]
It is idempotent: with ME already importable at the right version it does
nothing; with a cached wheel it only installs (seconds).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

ME_VERSION = "0.5.4"
SDIST_NAME = f"MinkowskiEngine-{ME_VERSION}.tar.gz"
SDIST_SHA256 = "b1879c00d0b0b1d30ba622cce239886a7e3c78ee9da1064cdfe2f64c2ab15f94"
PATCH_DIR = Path(__file__).resolve().parent / "patches"
# GPU architectures built when TORCH_CUDA_ARCH_LIST is unset (as scene_pe/util/cuda_arch.py and
# docker/Dockerfile): A100, RTX 30xx/A40, RTX 40xx/L4/L40, H100/H200, B200/GB200, RTX 50xx/RTX PRO
# 6000; PTX of the newest, which the driver JIT-compiles for a later GPU. 10.0 and 12.0 need nvcc >= 12.8.
DEFAULT_CUDA_ARCH_LIST = "8.0;8.6;8.9;9.0;10.0;12.0+PTX"
DEFAULT_INDEX = "https://pypi.org/simple"


def say(msg: str) -> None:
    print(f"[build_wheel] {msg}", flush=True)


def die(msg: str) -> None:
    print(f"[build_wheel] ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def patch_files() -> list[Path]:
    return sorted(PATCH_DIR.glob("*.patch"))


def patches_hash() -> str:
    h = hashlib.sha256()
    for p in patch_files():
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:10]


def pypi_cuda_home() -> Path | None:
    """The CUDA root of PyPI's toolkit wheels in this environment (CUDA 13 layout: nvidia/cu13/bin/nvcc)."""
    import torch

    site = Path(torch.__file__).resolve().parent.parent / "nvidia"
    found = sorted(site.glob("cu*/bin/nvcc"))
    return found[-1].parent.parent if found else None


def pypi_toolkit_requirement() -> str:
    """The compiler parts (nvcc, thrust/cub) of the cuda-toolkit release this torch depends on.

    Taking torch's own release keeps compiler, headers and runtime libraries at one CUDA version.
    """
    from importlib.metadata import requires

    for req in requires("torch") or []:
        m = re.match(r"cuda-toolkit\[[^\]]*\]\s*==\s*([\w.]+)", req)
        if m:
            return f"cuda-toolkit[nvcc,cccl,cudart]=={m.group(1)}"
    die("this torch does not depend on PyPI's cuda-toolkit (a CPU build, or a CUDA 12 build with the "
        "split nvidia-*-cu12 wheels): install a CUDA toolkit and set CUDA_HOME")


def choose_cuda_home(install_pypi: bool) -> None:
    """CUDA_HOME for the build: the variable if set, else PyPI's toolkit here (installed first with
    ``install_pypi`` when no toolkit is found), else torch's own search (/usr/local/cuda, nvcc on PATH)."""
    if os.environ.get("CUDA_HOME"):
        return
    home = pypi_cuda_home()
    if home is None and install_pypi and shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").exists():
        req = pypi_toolkit_requirement()
        say(f"no CUDA toolkit found: installing {req} from the package index")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", req], check=True)
        home = pypi_cuda_home()
    if home is not None:
        os.environ["CUDA_HOME"] = str(home)


def cuda_version() -> str:
    import torch.utils.cpp_extension as ext

    home = ext.CUDA_HOME
    if not home or not Path(home, "bin", "nvcc").exists():
        die("--cuda needs nvcc: set CUDA_HOME to a CUDA toolkit (e.g. /usr/local/cuda)")
    out = subprocess.run([str(Path(home, "bin", "nvcc")), "--version"], capture_output=True,
                         text=True, check=True).stdout
    # "Cuda compilation tools, release 13.0, V13.0.88" -> "13.0.88" (the last line is the
    # "Build cuda_13.0.r13.0/compiler..." tag, whose "/" would split the cache key).
    m = re.search(r"release [\d.]+, V(\d+(?:\.\d+)+)", out)
    if not m:
        die(f"cannot read the CUDA version from nvcc --version:\n{out}")
    return m.group(1)


def nvcc_archs() -> set[str]:
    """The virtual architectures this nvcc compiles for, as "X.Y" (``nvcc --list-gpu-arch``)."""
    import torch.utils.cpp_extension as ext

    out = subprocess.run([str(Path(ext.CUDA_HOME, "bin", "nvcc")), "--list-gpu-arch"], capture_output=True,
                         text=True).stdout
    return {f"{m.group(1)}.{m.group(2)}" for m in re.finditer(r"compute_(\d+)(\d)\b", out)}


def unknown_archs(arch_list: str, known: set[str]) -> list[str]:
    """Entries of a TORCH_CUDA_ARCH_LIST (``8.0;9.0a;12.0+PTX``) that nvcc does not know."""
    wanted = [re.sub(r"(\+PTX|[af])$", "", a, flags=re.I) for a in re.split(r"[;\s]+", arch_list.strip()) if a]
    return [a for a in wanted if a not in known]


def choose_arch_list() -> str:
    """TORCH_CUDA_ARCH_LIST for a CUDA build: the variable, else DEFAULT_CUDA_ARCH_LIST (torch's own
    default is the GPUs it sees, none on a build machine); checked against nvcc."""
    arch_list = os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_CUDA_ARCH_LIST)
    known = nvcc_archs()
    missing = unknown_archs(arch_list, known) if known else []
    if missing:
        die(f"nvcc {cuda_version()} cannot compile for {', '.join(missing)} (it knows "
            f"{', '.join(sorted(known, key=lambda a: tuple(map(int, a.split('.')))))}): use a toolkit that has "
            f"them (10.0 and 12.0: CUDA >= 12.8; 7.0 and older: CUDA 12) or leave them out of TORCH_CUDA_ARCH_LIST")
    return arch_list


def cache_key(cuda: bool) -> str:
    import torch

    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    device = "cpu"
    if cuda:
        arch = os.environ.get("TORCH_CUDA_ARCH_LIST", DEFAULT_CUDA_ARCH_LIST).replace(" ", "_").replace(";", "_")
        device = f"cuda{cuda_version()}-arch{arch}"
    return f"me{ME_VERSION}-{py}-torch{torch.__version__.replace('+', '_')}-{device}-p{patches_hash()}"


def installed_me_matches() -> bool:
    """True when MinkowskiEngine imports here at the right version (its backend loads)."""
    probe = "import MinkowskiEngine as ME; print(ME.__version__)"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return r.returncode == 0 and r.stdout.strip() == ME_VERSION


def download_sdist(dest: Path) -> Path:
    """Fetch the sdist from the index (PEP 691 JSON), verifying its sha256."""
    target = dest / SDIST_NAME
    index = os.environ.get("PIP_INDEX_URL", DEFAULT_INDEX).rstrip("/")
    url_json = f"{index}/minkowskiengine/"
    say(f"downloading {SDIST_NAME} from {index}")
    req = urllib.request.Request(url_json, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            files = json.load(r)["files"]
        url = next(f["url"] for f in files if f["filename"] == SDIST_NAME)
        with urllib.request.urlopen(url, timeout=300) as r:
            target.write_bytes(r.read())
    except (OSError, StopIteration, KeyError, ValueError) as e:
        die(f"could not download {SDIST_NAME} from {index}: {e!r}. "
            f"Put the file in the cache directory by hand to build offline.")
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        die(f"sha256 mismatch for {SDIST_NAME}: {digest} != {SDIST_SHA256}")
    return target


def cuda_env(env: dict[str, str], work: Path) -> dict[str, str]:
    """Include/library paths CUDA >= 12.x needs that the sdist does not know about.

    Links made for the linker go under ``work`` (the build's temporary folder).
    """
    import torch.utils.cpp_extension as ext

    home = Path(ext.CUDA_HOME)
    incs, libs = [], []
    cccl = home / "include" / "cccl"  # CUDA 13 keeps thrust/cub here
    if cccl.is_dir():
        incs.append(str(cccl))
    # cuBLAS/cuSPARSE headers and libs from the nvidia-* wheels torch installs,
    # only for toolkits (e.g. minimal images) that lack them: a full toolkit's
    # own headers and libraries must not be mixed with the wheels' versions.
    site = Path(__import__("torch").__file__).resolve().parent.parent / "nvidia"
    has_own = all((home / "include" / h).exists() for h in ("cusparse.h", "cublas_v2.h"))
    for sub in [] if has_own else sorted(site.glob("*")):
        if (sub / "include" / "cusparse.h").exists() or (sub / "include" / "cublas_v2.h").exists():
            incs.append(str(sub / "include"))
            libs.append(str(sub / "lib"))
    # The linker wants unversioned names (libcudart.so, libcusparse.so); wheels (and a toolkit
    # made of wheels, as in docker/Dockerfile) ship only libX.so.N: link those under `work`.
    link_dir = work / "cudalibs"
    for lib in [d for d in (home / "lib64", home / "lib") if d.is_dir()] + [Path(d) for d in libs]:
        for so in sorted(lib.glob("lib*.so.*")):
            plain = so.name.split(".so")[0] + ".so"
            if not (lib / plain).exists() and not (link_dir / plain).exists():
                link_dir.mkdir(exist_ok=True)
                (link_dir / plain).symlink_to(so)
    if link_dir.is_dir():
        libs.insert(0, str(link_dir))
    for var, paths in (("CPATH", incs), ("LIBRARY_PATH", libs)):
        if paths:
            env[var] = os.pathsep.join(paths + ([env[var]] if env.get(var) else []))
    say(f"CUDA {cuda_version()} at {home}; TORCH_CUDA_ARCH_LIST={env.get('TORCH_CUDA_ARCH_LIST', '(torch default)')}")
    return env


def extract_checked(sdist: Path, dest: Path) -> None:
    """Unpack the sdist after checking every member: a plain file or folder, named inside
    ``dest`` (no absolute name, no ``..`` out). Nothing is written when one fails. tarfile's
    "data" filter (Python >= 3.11.4 / 3.10.12, not Debian 12's 3.11.2) is applied on top."""
    with tarfile.open(sdist) as tar:
        root = dest.resolve()
        for m in tar.getmembers():
            target = (dest / m.name).resolve()
            if Path(m.name).is_absolute() or not (m.isfile() or m.isdir()) \
                    or (target != root and root not in target.parents):
                die(f"{sdist}: refusing archive member {m.name!r} (outside the folder, or not a plain file)")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)


def build(sdist: Path, out_dir: Path, cuda: bool) -> Path:
    work = Path(tempfile.mkdtemp(prefix="me-build-"))
    try:
        extract_checked(sdist, work)
        src = work / f"MinkowskiEngine-{ME_VERSION}"
        for p in patch_files():
            say(f"applying {p.name}")
            r = subprocess.run(["patch", "-p1", "--forward", "-i", str(p)], cwd=src,
                               capture_output=True, text=True)
            if r.returncode != 0:
                die(f"patch {p.name} failed:\n{r.stdout}\n{r.stderr}")
        env = dict(os.environ)
        env.setdefault("MAX_JOBS", str(os.cpu_count() or 2))
        args = [sys.executable, "setup.py", "bdist_wheel", "--blas=openblas"]
        if cuda:
            env = cuda_env(env, work)
            args.append("--force_cuda")
        else:
            args.append("--cpu_only")
        say(f"compiling ({'CUDA' if cuda else 'CPU'}, MAX_JOBS={env['MAX_JOBS']}); this takes minutes")
        log = out_dir / "build.log"
        with open(log, "w") as fh:
            r = subprocess.run(args, cwd=src, env=env, stdout=fh, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            tail = "".join(log.read_text(errors="replace").splitlines(True)[-40:])
            die(f"MinkowskiEngine build failed (full log: {log}):\n{tail}")
        wheels = list((src / "dist").glob("*.whl"))
        if len(wheels) != 1:
            die(f"expected one wheel in {src / 'dist'}, found {wheels}")
        final = out_dir / wheels[0].name
        shutil.move(str(wheels[0]), final.with_suffix(".tmp"))
        os.replace(final.with_suffix(".tmp"), final)  # the cache never holds a partial wheel
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_prerequisites(cuda: bool) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        die("torch is not installed in this environment; install it first (pip install torch==2.13.0)")
    if shutil.which("patch") is None:
        die("the 'patch' program is missing: apt-get install patch")
    if not any(Path(d, "cblas.h").exists() for d in ("/usr/include", "/usr/include/x86_64-linux-gnu",
                                                      "/usr/include/aarch64-linux-gnu",
                                                      "/usr/include/openblas")):
        die("OpenBLAS headers are missing: apt-get install libopenblas-dev")
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        die("a C++ compiler is missing: apt-get install g++")


def dry_run(args: argparse.Namespace, key: str) -> None:
    """What a build would use: interpreter, torch, CUDA, flags, and the wheel's cache folder."""
    import torch

    wheel_dir = args.cache_dir / "wheels" / key
    cached = sorted(wheel_dir.glob("*.whl")) if wheel_dir.is_dir() else []
    say(f"python {sys.executable} ({sys.version.split()[0]}), torch {torch.__version__} "
        f"(built for CUDA {torch.version.cuda})")
    if args.cuda:
        say(f"nvcc: CUDA {cuda_version()}; TORCH_CUDA_ARCH_LIST={os.environ['TORCH_CUDA_ARCH_LIST']}"
            f"{' (the default)' if os.environ['TORCH_CUDA_ARCH_LIST'] == DEFAULT_CUDA_ARCH_LIST else ''}")
    say(f"MAX_JOBS={os.environ.get('MAX_JOBS', os.cpu_count() or 2)}; setup.py bdist_wheel --blas=openblas "
        f"{'--force_cuda' if args.cuda else '--cpu_only'}; patches: "
        f"{', '.join(p.name for p in patch_files())}")
    say(f"wheel folder: {wheel_dir} ({'cached: ' + cached[0].name if cached else 'nothing cached yet'})")
    sdist = args.cache_dir / SDIST_NAME
    say(f"sdist: {sdist} ({'present' if sdist.exists() else 'would be downloaded'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cuda", action="store_true", help="build the CUDA extension (needs nvcc)")
    ap.add_argument("--cache-dir", type=Path,
                    default=Path(os.environ.get("SCENE_PE_CACHE",
                                                Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                                                / "scene_pe")))
    ap.add_argument("--pypi-toolkit", action="store_true",
                    help="with --cuda and no CUDA toolkit found (CUDA_HOME, nvcc on PATH, /usr/local/cuda): "
                         "install nvcc and thrust/cub from PyPI, the cuda-toolkit release torch depends on")
    ap.add_argument("--force", action="store_true", help="rebuild even if a cached wheel exists")
    ap.add_argument("--no-install", action="store_true", help="only build/cache the wheel")
    ap.add_argument("--dry-run", action="store_true",
                    help="check the prerequisites and print what would be built where; build nothing")
    args = ap.parse_args()

    check_prerequisites(args.cuda)
    if args.cuda:
        choose_cuda_home(args.pypi_toolkit)
        cuda_version()  # nvcc is there (else: what to set)
        choose_arch_list()
    key = cache_key(args.cuda)
    if args.dry_run:
        dry_run(args, key)
        return
    if not args.force and not args.no_install and installed_me_matches():
        say(f"MinkowskiEngine {ME_VERSION} already installed and importable; nothing to do")
        return
    wheel_dir = args.cache_dir / "wheels" / key
    wheel_dir.mkdir(parents=True, exist_ok=True)
    # Two setups at once (make test and make demo in two clones) share the cache: the second
    # waits here for the first one's wheel instead of building beside it into the same files.
    with open(wheel_dir.with_name(wheel_dir.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = sorted(wheel_dir.glob("*.whl"))
        if cached and not args.force:
            wheel = cached[0]
            say(f"using cached wheel {wheel}")
        else:
            sdist = args.cache_dir / SDIST_NAME
            if not sdist.exists() or hashlib.sha256(sdist.read_bytes()).hexdigest() != SDIST_SHA256:
                sdist = download_sdist(args.cache_dir)
            wheel = build(sdist, wheel_dir, args.cuda)
            say(f"built and cached {wheel}")
    if args.no_install:
        return
    say(f"installing {wheel.name}")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--force-reinstall", "-q",
                    str(wheel)], check=True)
    if not installed_me_matches():
        die("MinkowskiEngine was installed but does not import; rerun with --force to rebuild")
    say(f"MinkowskiEngine {ME_VERSION} ready")


if __name__ == "__main__":
    main()
