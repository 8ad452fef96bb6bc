"""The three.js bundle that every viewer page embeds, built from the npm registry by tools/setup_env.sh.

    python -m scene_pe.viewer.build [--force]

``js/package.json`` and ``js/package-lock.json`` pin three.js and esbuild;
``js/three_entry.js`` names the parts of three.js the viewer uses. ``npm ci``
installs them into a cache folder (``$SCENE_PE_CACHE/viewer-npm``, default
``~/.cache/scene_pe``), esbuild bundles and minifies them into one script,
``js/three.bundle.js`` (not in git; three.js's licence comment kept), which sets
``window.SCENE_PE_THREE``. A stamp beside it holds the sha256 of the lock and
the entry, so setup's next run skips the build. Needs Node.js and npm (setup
installs Debian's when root).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

JS = Path(__file__).resolve().parent / "js"
BUNDLE = JS / "three.bundle.js"
STAMP = JS / "three.bundle.sha256"
SOURCES = ("package.json", "package-lock.json", "three_entry.js")


class ViewerBundleMissing(RuntimeError):
    """The three.js bundle has not been built on this machine."""


def sources_digest() -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        h.update(name.encode() + b"\0" + (JS / name).read_bytes())
    return h.hexdigest()


def bundle_is_current() -> bool:
    return BUNDLE.is_file() and STAMP.is_file() and STAMP.read_text().strip() == sources_digest()


def read_bundle() -> str:
    """The bundle's text; ViewerBundleMissing (saying how to build it) when it is not built."""
    if not BUNDLE.is_file():
        raise ViewerBundleMissing(f"the viewer's three.js bundle {BUNDLE} is not built: run `python -m "
                                  "scene_pe.viewer.build` (tools/setup_env.sh does; it needs Node.js and npm)")
    return BUNDLE.read_text(encoding="utf-8")


def cache_dir() -> Path:
    root = Path(os.environ.get("SCENE_PE_CACHE", Path.home() / ".cache" / "scene_pe"))
    return root / "viewer-npm" / sources_digest()[:16]


def build_bundle(force: bool = False, quiet: bool = False) -> Path:
    """Build ``js/three.bundle.js`` unless it is current; returns its path."""
    if bundle_is_current() and not force:
        return BUNDLE
    npm = shutil.which("npm")
    if npm is None:
        raise ViewerBundleMissing("npm is not installed: the viewer's three.js bundle cannot be built "
                                  "(install Node.js and npm, e.g. apt-get install nodejs npm)")
    work = cache_dir()
    work.mkdir(parents=True, exist_ok=True)
    out = subprocess.DEVNULL if quiet else None
    tmp = BUNDLE.with_name(BUNDLE.name + ".tmp")
    # Two setups at once (two clones on one machine) share the npm folder: npm ci empties
    # node_modules first, so the other would find no esbuild. One at a time.
    with open(work.with_name(work.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in SOURCES:
            shutil.copyfile(JS / name, work / name)
        # install scripts are not run: esbuild's binary comes in its platform package
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=work, check=True, stdout=out)
        subprocess.run([str(work / "node_modules" / ".bin" / "esbuild"), "three_entry.js", "--bundle", "--minify",
                        "--format=iife", "--legal-comments=inline", "--log-level=warning", f"--outfile={tmp}"],
                       cwd=work, check=True, stdout=out)
    if "</script" in tmp.read_text(encoding="utf-8").lower():
        raise RuntimeError(f"{tmp}: the bundle holds '</script' and cannot be embedded in a page")
    tmp.replace(BUNDLE)
    STAMP.write_text(sources_digest() + "\n")
    return BUNDLE


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true", help="build even if the bundle is current")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    current = bundle_is_current() and not args.force
    try:
        path = build_bundle(args.force, args.quiet)
    except (ViewerBundleMissing, subprocess.CalledProcessError) as e:
        print(f"viewer bundle: {e}", file=sys.stderr)
        return 1
    print(f"viewer bundle: {path} ({path.stat().st_size / 1e6:.2f} MB{', current' if current else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
