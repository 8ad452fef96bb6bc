"""Which GPUs can a CUDA build of MinkowskiEngine run on? Its compiled architectures vs the device.

A CUDA library carries machine code (SASS, ``sm_XY`` cubins) for some architectures and
optionally PTX (``compute_XY``), which the driver compiles (JIT) for the device at first
use. CUDA's rules, applied by :func:`runs_on`:

- SASS ``sm_XY`` runs on devices of the same major version X with minor >= Y (sm_86 on
  8.9, sm_100 on 10.3, sm_120 on 12.1; not sm_90 on 10.0, not sm_100 on 11.0 or 12.0);
  the family variant ``sm_XYf`` likewise; the arch-specific ``sm_XYa`` on X.Y only;
- PTX ``compute_XY`` is JIT-compiled for any device of compute capability >= X.Y
  (compute_120 serves 12.1 and later majors, not 10.0 or 11.0); ``compute_XYf`` only
  within major X; ``compute_XYa`` only on X.Y.

Without any of them CUDA fails at the first kernel with "no kernel image is available
for execution on the device"; :func:`check_device` says instead which
TORCH_CUDA_ARCH_LIST to rebuild with. The architectures are read off the built
library (``cuobjdump --list-elf/--list-ptx`` when found, else ``fatbin.py``'s reader).
It lives in util/ (no scene_pe import but errors and fatbin) so that device set-up
(util/distributed.py) and prediction can call it.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from scene_pe.util import fatbin
from scene_pe.util.errors import RunError

log = logging.getLogger(__name__)

# What scene_pe builds for when TORCH_CUDA_ARCH_LIST is not set (tools/minkowski/build_wheel.py,
# docker/Dockerfile): A100, RTX 30xx/A40, RTX 40xx/L4/L40, H100/H200, B200/GB200, RTX 50xx/RTX PRO
# 6000 Blackwell; PTX of the newest, so that a later GPU JIT-compiles it instead of failing.
DEFAULT_ARCH_LIST = "8.0;8.6;8.9;9.0;10.0;12.0+PTX"


class Arch(NamedTuple):
    major: int
    minor: int
    variant: str = ""  # "" | "a" (arch-specific) | "f" (family-specific)

    @classmethod
    def parse(cls, text: str) -> "Arch":
        """``sm_90``, ``compute_100a``, ``sm_120f``, ``9.0``, ``10.0a`` -> Arch."""
        m = re.fullmatch(r"(?:sm_|compute_)(\d+)(\d)([af]?)|(\d+)\.(\d)([af]?)", text.strip())
        if not m:
            raise ValueError(f"not a CUDA architecture: {text!r}")
        g = m.groups()
        major, minor, variant = (g[0], g[1], g[2]) if g[0] is not None else (g[3], g[4], g[5])
        return cls(int(major), int(minor), variant)

    @property
    def cc(self) -> str:
        return f"{self.major}.{self.minor}{self.variant}"

    def sm(self, prefix: str = "sm") -> str:
        return f"{prefix}_{self.major}{self.minor}{self.variant}"


@dataclass(frozen=True)
class Compiled:
    """The architectures in a build: machine code (SASS) and PTX."""

    sass: tuple[Arch, ...] = ()
    ptx: tuple[Arch, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "sass", tuple(sorted(set(self.sass))))
        object.__setattr__(self, "ptx", tuple(sorted(set(self.ptx))))

    def __bool__(self) -> bool:
        return bool(self.sass or self.ptx)

    def describe(self) -> str:
        sass = ", ".join(a.sm() for a in self.sass) or "none"
        ptx = ", ".join(a.sm("compute") for a in self.ptx) or "none"
        return f"SASS {sass}; PTX {ptx}"

    @classmethod
    def from_bytes(cls, data: bytes) -> "Compiled":
        """The fat binaries in a library's bytes (util/fatbin.py)."""
        found = fatbin.read_bytes(data)
        return cls(tuple(Arch(*a) for a in found.sass), tuple(Arch(*a) for a in found.ptx))

    def arch_list(self) -> str:
        """As TORCH_CUDA_ARCH_LIST writes it (``9.0;12.0+PTX``); PTX alone as ``X.Y+PTX`` too."""
        out = [a.cc + ("+PTX" if a in self.ptx else "") for a in self.sass]
        out += [a.cc + "+PTX" for a in self.ptx if a not in self.sass]
        return ";".join(sorted(out, key=lambda s: Arch.parse(s.removesuffix("+PTX"))))


def from_arch_list(text: str) -> Compiled:
    """What ``TORCH_CUDA_ARCH_LIST=text`` compiles (torch's format: ``;`` or spaces between
    entries, ``X.Y`` SASS, ``X.Y+PTX`` SASS and PTX)."""
    sass, ptx = [], []
    for item in filter(None, re.split(r"[;\s]+", text.strip())):
        name, plus = (item[:-4], True) if item.upper().endswith("+PTX") else (item, False)
        arch = Arch.parse(name)
        sass.append(arch)
        if plus:
            ptx.append(arch)
    return Compiled(tuple(sass), tuple(ptx))


class Served(NamedTuple):
    kind: str  # "sass" | "ptx"
    arch: Arch


def _sass_runs(a: Arch, major: int, minor: int) -> bool:
    if a.variant == "a":
        return (a.major, a.minor) == (major, minor)
    return a.major == major and minor >= a.minor


def _ptx_runs(a: Arch, major: int, minor: int) -> bool:
    if a.variant == "a":
        return (a.major, a.minor) == (major, minor)
    if a.variant == "f":
        return a.major == major and minor >= a.minor
    return (major, minor) >= (a.major, a.minor)


def runs_on(compiled: Compiled, cc: tuple[int, int]) -> Served | None:
    """How a device of compute capability ``cc`` runs this build: the newest SASS it can load,
    else the newest PTX it can JIT-compile, else None (CUDA's "no kernel image")."""
    major, minor = cc
    sass = [a for a in compiled.sass if _sass_runs(a, major, minor)]
    if sass:
        return Served("sass", max(sass))
    ptx = [a for a in compiled.ptx if _ptx_runs(a, major, minor)]
    return Served("ptx", max(ptx)) if ptx else None


def rebuild_list(compiled: Compiled, cc: tuple[int, int]) -> str:
    """A TORCH_CUDA_ARCH_LIST that serves ``cc`` with machine code and keeps what ``compiled``
    served: its SASS architectures (as plain ``X.Y``) plus the device's, PTX of the newest."""
    archs = sorted({Arch(a.major, a.minor) for a in compiled.sass} | {Arch(*cc)})
    return ";".join([a.cc for a in archs[:-1]] + [archs[-1].cc + "+PTX"])


class ArchMismatchError(RunError):
    """The build has neither machine code nor PTX that this GPU can run."""


def mismatch_message(compiled: Compiled, cc: tuple[int, int], gpu: str, library: str) -> str:
    """What is wrong and what to do, within one error line (util/cli.py: 600 characters)."""
    return (f"MinkowskiEngine has no code for this GPU ({gpu}, compute capability {cc[0]}.{cc[1]}): "
            f"its library holds {compiled.describe()}, so CUDA would stop with \"no kernel image is "
            f"available\". Rebuild it with TORCH_CUDA_ARCH_LIST=\"{rebuild_list(compiled, cc)}\" "
            f"(docs/gpu.md). Library: {library}")


def served_note(served: Served, cc: tuple[int, int]) -> str:
    if served.kind == "sass":
        return f"compute capability {cc[0]}.{cc[1]} runs its {served.arch.sm()} machine code"
    return (f"compute capability {cc[0]}.{cc[1]} has no machine code in it: the driver JIT-compiles its "
            f"{served.arch.sm('compute')} PTX at the first use (minutes; cached under ~/.nv/ComputeCache, "
            f"raise CUDA_CACHE_MAXSIZE to keep it); rebuild with TORCH_CUDA_ARCH_LIST containing "
            f"{cc[0]}.{cc[1]} to skip that")


# ------------------------------------------------------------------ reading a built library
_LISTING = re.compile(r"^(ELF|PTX) file\s+\d+:\s*\S*?\.(sm_\d+[af]?)\.(?:cubin|ptx)\s*$", re.M)


def parse_cuobjdump(elf_listing: str, ptx_listing: str) -> Compiled:
    """``cuobjdump --list-elf`` and ``--list-ptx`` output -> Compiled (PTX files are named
    ``<name>.<n>.sm_XY.ptx`` there, for compute_XY)."""
    sass = [Arch.parse(m.group(2)) for m in _LISTING.finditer(elf_listing) if m.group(1) == "ELF"]
    ptx = [Arch.parse(m.group(2)) for m in _LISTING.finditer(ptx_listing) if m.group(1) == "PTX"]
    return Compiled(tuple(sass), tuple(ptx))


def find_cuobjdump() -> str | None:
    found = shutil.which("cuobjdump")
    if found:
        return found
    for home in filter(None, (os.environ.get("CUDA_HOME"), "/usr/local/cuda")):
        candidate = Path(home, "bin", "cuobjdump")
        if candidate.is_file():
            return str(candidate)
    return None


def read_with_cuobjdump(path: str | Path, exe: str) -> Compiled:
    listings = []
    for flag in ("--list-elf", "--list-ptx"):
        r = subprocess.run([exe, flag, str(path)], capture_output=True, text=True, timeout=120)
        # cuobjdump exits 255 with "does not contain device code" for a library without any
        listings.append(r.stdout if r.returncode == 0 else "")
    return parse_cuobjdump(*listings)


def read_compiled(path: str | Path, cuobjdump: str | None = "auto") -> tuple[Compiled, str]:
    """The architectures in a library file, and how they were read ("cuobjdump" / "fatbin")."""
    exe = find_cuobjdump() if cuobjdump == "auto" else cuobjdump
    if exe:
        try:
            found = read_with_cuobjdump(path, exe)
        except (OSError, subprocess.SubprocessError) as e:
            log.debug("cuobjdump failed on %s (%s); reading the fatbin", path, e)
        else:
            if found:  # nothing listed: no device code, or a cuobjdump too old for it: read it here
                return found, "cuobjdump"
    return Compiled.from_bytes(Path(path).read_bytes()), "fatbin"


def minkowski_library() -> Path | None:
    """The file of MinkowskiEngine's compiled backend (MinkowskiEngineBackend._C), if installed."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("MinkowskiEngineBackend._C")
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec and spec.origin else None


@functools.lru_cache(maxsize=4)
def _minkowski_compiled(path: str) -> Compiled:
    return read_compiled(path)[0]


def check_device(device) -> Served | None:
    """Before the first CUDA use of MinkowskiEngine on ``device``: raise ArchMismatchError (what
    to rebuild with) when its build cannot run there; log when only PTX serves it (a JIT
    compile). Nothing for a CPU device, a CPU build, or a library whose code cannot be read."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return None
    library = minkowski_library()
    compiled = _minkowski_compiled(str(library)) if library else Compiled()
    if not compiled:
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    cc = tuple(torch.cuda.get_device_capability(index))
    served = runs_on(compiled, cc)
    if served is None:
        raise ArchMismatchError(mismatch_message(compiled, cc, torch.cuda.get_device_name(index), str(library)))
    if served.kind == "ptx":
        log.warning("MinkowskiEngine: %s", served_note(served, cc))
    return served
