"""tools/segment.py: each input scan over-segmented and written as a ScanNet segs.json; one bad
input is reported and the others go on."""

from __future__ import annotations

import sys
import time

from scene_pe.data.scannet_files import write_segs_json
from scene_pe.predict.scan import is_scannet_folder, output_names, read_scan
from scene_pe.superpoints.segmentator import SegmentatorConfig, segment_scan
from scene_pe.util.errors import SceneError


def run(args, paths) -> int:
    """tools/segment.py's arguments and its expanded inputs -> exit status (1 if an input failed)."""
    cfg = SegmentatorConfig(args.k_thresh, args.min_vertices, args.knn, args.color_weight, args.color_veto)
    failures = 0
    for path, name in zip(paths, output_names(paths)):
        try:
            t0 = time.perf_counter()
            scan = read_scan(path, name)
            seg = segment_scan(scan.coords, scan.faces, scan.normals, cfg, scan.colors)
            stem = scan.path.stem if is_scannet_folder(path) else name
            out = args.out or (args.out_dir or scan.path.parent) / f"{stem}.{args.k_thresh:f}.segs.json"
            if out.exists() and not args.overwrite:
                raise SceneError(name, out, "exists; not replaced (--overwrite, or --out / --out-dir elsewhere)")
            write_segs_json(out, name, seg, params=cfg.params(cloud=not scan.is_mesh), mesh_name=stem)
            kind = "mesh" if scan.is_mesh else "point cloud"
            print(f"{name}: {len(set(seg.tolist()))} segments over {len(seg):,} vertices ({kind}), "
                  f"{time.perf_counter() - t0:.2f} s -> {out}")
        except (SceneError, ValueError, OSError) as e:
            failures += 1
            print(f"FAILED {e}", file=sys.stderr)
    return 1 if failures else 0
