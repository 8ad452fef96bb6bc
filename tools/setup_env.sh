#!/usr/bin/env bash
# One-command setup of scene_pe from nothing: Debian prerequisites, a virtual
# environment, torch, the patched MinkowskiEngine wheel (built or cached), the
# other requirements and scene_pe itself. Idempotent: a second run takes seconds.
#
# Environment knobs:
#   VENV=.venv                 where the virtual environment lives
#   PYTHON=python3             interpreter used to create it (>= 3.10)
#   TORCH_SPEC=torch==2.13.0   torch requirement (CPU wheel here; set a CUDA one in Docker)
#   ME_CUDA=0                  1 builds MinkowskiEngine with CUDA (needs nvcc)
#   SCENE_PE_CACHE=~/.cache/scene_pe   where the built ME wheel is cached
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
ME_CUDA="${ME_CUDA:-0}"

say() { echo "[setup] $*"; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }

# 1. Debian prerequisites: OpenBLAS headers (ME's CPU kernels), libusb, libGL,
#    libEGL (open3d loads them), patch and a C++ compiler (ME build).
need=()
# ldconfig's cache read once: `ldconfig -p | grep -q` fails under pipefail when
# grep exits early and ldconfig gets SIGPIPE.
ld_cache="$(ldconfig -p 2>/dev/null || true)"
has_lib() { grep -qF "$1" <<<"$ld_cache"; }
[ -e /usr/include/x86_64-linux-gnu/cblas.h ] || [ -e /usr/include/cblas.h ] \
  || [ -e /usr/include/aarch64-linux-gnu/cblas.h ] || need+=(libopenblas-dev)
has_lib 'libusb-1.0.so.0' || need+=(libusb-1.0-0)
# open3d's library also loads libGL/libEGL (present on most machines, not on minimal images)
has_lib 'libGL.so.1' || need+=(libgl1)
has_lib 'libEGL.so.1' || need+=(libegl1)
command -v patch >/dev/null || need+=(patch)
command -v g++ >/dev/null || need+=(g++)
# apt_install WHAT PACKAGE...: installs them when root (fails setup if apt-get does); status 1 when not root
apt_install() {
  local what="$1"
  shift
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  say "installing Debian packages${what}: $*"
  apt-get update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
    || die "apt-get install $* failed; install them by hand"
}
if [ ${#need[@]} -gt 0 ]; then
  apt_install "" "${need[@]}" \
    || die "missing system packages: ${need[*]}. Install them (e.g. sudo apt-get install ${need[*]}) and rerun."
else
  say "Debian prerequisites present"
fi

# 1b. The HTML viewer (scene_pe/viewer): Node.js and npm build its three.js bundle from the npm
#     registry; Debian's Chromium and ChromeDriver run its browser tests. Installed when root; else
#     setup says what is missing and what follows (no viewer pages; the browser tests skipped).
#     SCENE_PE_NO_BROWSER=1 leaves Chromium out (an image that never runs the tests).
optional=()
command -v npm >/dev/null || optional+=(nodejs npm)
if [ "${SCENE_PE_NO_BROWSER:-0}" != 1 ]; then
  [ -x /usr/bin/chromium ] || optional+=(chromium)
  [ -x /usr/bin/chromedriver ] || optional+=(chromium-driver)
fi
if [ ${#optional[@]} -gt 0 ]; then
  if ! apt_install " for the HTML viewer and its browser tests" "${optional[@]}"; then
    command -v npm >/dev/null \
      || say "not root and no npm: the HTML viewer's bundle cannot be built, so tools/predict.py and tools/test.py --html write no pages (install nodejs npm)"
    [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] \
      || say "not root and no /usr/bin/chromium or /usr/bin/chromedriver: the viewer's browser tests will be skipped (install chromium chromium-driver)"
  fi
fi

# 2. The virtual environment.
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "$PYTHON is older than Python 3.10"
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
else
  say "using virtual environment $VENV"
fi
py="$(cd "$VENV" && pwd)/bin/python"  # absolute: some checks run from /
pip() { "$py" -m pip --disable-pip-version-check -q "$@"; }

# 3. torch first (the ME build compiles against it), then ME, then the rest, each
#    at the exact version CI tested (requirements.lock, written by
#    tools/lock_requirements.sh; torch itself is pinned by TORCH_SPEC).
lock=()
[ -f requirements.lock ] && lock=(-c requirements.lock)
if ! "$py" -c "import torch" 2>/dev/null; then
  say "installing $TORCH_SPEC"
  pip install "$TORCH_SPEC" "${lock[@]}" || die "could not install $TORCH_SPEC"
fi
# ME 0.5.4's setup.py imports setuptools features removed after 80 only via
# `setup.py install`, which we do not use; wheel is needed for bdist_wheel.
pip install -r requirements.txt "${lock[@]}"
cuda_flag=()
[ "$ME_CUDA" = 1 ] && cuda_flag=(--cuda)
"$py" tools/minkowski/build_wheel.py "${cuda_flag[@]}"
# Checked from / so that the checkout's own folder on sys.path cannot hide a
# missing install (subprocesses such as torchrun workers need the real one).
if ! (cd / && "$py" -c "import scene_pe, sys; sys.exit(not scene_pe.__file__.startswith('$here/'))") 2>/dev/null; then
  say "installing scene_pe (editable)"
  pip install --no-deps --no-build-isolation -e .
fi
# 4. The viewer's three.js bundle (seconds, once; skipped while its sources are unchanged).
if command -v npm >/dev/null; then
  "$py" scene_pe/viewer/build.py --quiet || die "could not build the viewer's three.js bundle (npm ci)"
fi
say "ready: $("$py" -c 'import scene_pe, torch, MinkowskiEngine as ME; print(f"torch {torch.__version__}, MinkowskiEngine {ME.__version__}, scene_pe {scene_pe.__version__}")')"
