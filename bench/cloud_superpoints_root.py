"""A preprocessed root whose scenes carry point-cloud superpoints instead of their mesh's segs.json.

    python bench/cloud_superpoints_root.py --src data/scannetlike/preprocessed --out data/scannetlike/cloud \\
        [--split val] [--color-veto 0.1] [--color-weight 0]

Every scene of the split is the same scan (the network's input, colours, is
unchanged) given as a bare point cloud: its ``segment`` array is remade by the
built-in point-cloud segmentator (its own normals, colour vetoes
``--color-veto``, inf with ``--color-weight`` 0: normals only). splits/, gt/ and label_set.txt are
linked. Run a trained model on it with ``data.root=<out>`` (e.g. a copy of the
run's config.yaml for tools/tune_inference.py --grid inference.superpoints=none,vote,cluster)
to measure superpoint modes on point-cloud input (docs/results.md, "Point-cloud superpoints").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--color-veto", type=float, default=0.10)
    ap.add_argument("--color-weight", type=float, default=0.0)
    args = ap.parse_args(argv)

    from scene_pe.superpoints.segmentator import SegmentatorConfig, segment_cloud

    cfg = SegmentatorConfig(color_weight=args.color_weight, color_veto=args.color_veto)
    (args.out / "scenes").mkdir(parents=True, exist_ok=True)
    for sub in ("splits", "gt", "label_set.txt"):
        if not (args.out / sub).exists():
            (args.out / sub).symlink_to((args.src / sub).resolve())
    for scene in (args.src / "splits" / f"{args.split}.txt").read_text().split():
        dst = args.out / "scenes" / f"{scene}.npz"
        if dst.exists():
            continue
        with np.load(args.src / "scenes" / f"{scene}.npz") as z:
            arrays = {k: z[k] for k in z.files}
        xyz = arrays["coords"].astype(np.float32)
        arrays["segment"] = segment_cloud(xyz, None, cfg, arrays["colors"]).astype(np.int32)
        tmp = dst.with_name(f".{dst.stem}.tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(dst)
        print(f"{scene}: {len(np.unique(arrays['segment']))} cloud segments", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
