#!/usr/bin/env bash
# Write requirements.lock: the exact versions that requirements.txt resolves to today, which
# tools/setup_env.sh then installs (as pip constraints) on every machine, so a fresh machine gets
# what CI tested. Run it after changing requirements.txt or to take newer releases, run `make test`,
# and commit both files:
#
#     tools/lock_requirements.sh          (or: make lock)
#
# It resolves in a new, temporary virtual environment (torch by TORCH_SPEC, as setup does), so what
# is installed in .venv does not leak in. torch itself is not locked (TORCH_SPEC pins it, and a CUDA
# build brings other packages); MinkowskiEngine is built by tools/minkowski/build_wheel.py; scene_pe
# is the checkout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m venv "$tmp/venv"
pip() { "$tmp/venv/bin/python" -m pip --disable-pip-version-check -q "$@"; }
pip install "$TORCH_SPEC"
pip install -r "$here/requirements.txt"
{
  echo "# Exact versions of the requirements (and what they pull in) that CI tested; installed by"
  echo "# tools/setup_env.sh as pip constraints. Written by tools/lock_requirements.sh, do not edit:"
  echo "# $("$tmp/venv/bin/python" -c 'import platform, sys; print(f"Python {platform.python_version()} on {sys.platform} {platform.machine()}")'), $TORCH_SPEC."
  "$tmp/venv/bin/python" -m pip freeze --all --exclude-editable --disable-pip-version-check \
    | grep -v -i -E '^(pip|torch|minkowskiengine|scene[-_]pe)( @|==)' | LC_ALL=C sort -f
} > "$here/requirements.lock.tmp"
mv "$here/requirements.lock.tmp" "$here/requirements.lock"
echo "wrote $here/requirements.lock ($(grep -vc '^#' "$here/requirements.lock") packages)"
