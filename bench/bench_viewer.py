"""The HTML viewer on bench rooms: time to write a page, its size, and headless Chromium's time to draw it.

    python bench/bench_viewer.py [--vertices 150000,1000000] [--repeats 3] [--no-browser] [--keep DIR]

The room: bench/bench_predict.py's generated room (scene_pe.synthetic, seed 0)
of about ``--vertices`` vertices, in its aligned frame, with its GT and a
prediction made from the GT with one error of each kind
(scene_pe.synthetic.predictions), so every layer is there (input colours,
instances, classes, uncertainty, GT instances, errors). "write": building the
page's arrays and writing the file (scene_pe.viewer.write_viewer), fastest of
``--repeats``; "draw": Debian's chromium, headless, WebGL on the CPU
(SwiftShader), from navigation to the first frame drawn (the page's ready
flag), fastest of ``--repeats`` loads in one browser; "switch": one layer
switch (instances -> classes) drawn. Rooms above the point budget are drawn
subsampled (the page says so).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bench_room(vertices: int, folder: Path, repeats: int, browser) -> dict:
    from scene_pe.labels.label_set import SCANNET20
    from scene_pe.evaluation.matching import gt_from_training_labels
    from scene_pe.predict.outputs import instance_records
    from scene_pe.synthetic.predictions import prediction_with_errors
    from scene_pe.synthetic.scenes import generate_scene
    from scene_pe.viewer import SceneView, write_viewer

    scene = generate_scene("scene0999_00", 0, num_vertices_target=vertices)
    xyz, (semantic, instance) = scene.aligned_vertices(), scene.training_labels()
    pred = prediction_with_errors(scene.scene_id, xyz, semantic, instance).pred
    view = SceneView(f"bench_{vertices}", xyz, pred, SCANNET20, instance_records(pred, xyz, SCANNET20),
                     colors=scene.colors[:, :3], gt=gt_from_training_labels(semantic, instance),
                     uncertainty_definition="made")
    path = folder / f"bench_{vertices}.html"
    pages = [write_viewer(path, view) for _ in range(repeats)]
    row = {"vertices": len(xyz), "instances": len(pred.labels), "drawn": pages[0].num_drawn,
           "bytes": pages[0].bytes, "write": min(p.seconds for p in pages)}
    if browser is not None:
        loads = [browser.open(path) for _ in range(repeats)]
        assert browser.console() == [], browser.console()
        row["draw"] = min(loads)
        row["page"] = browser.js("return window.scenePe.timings")
        t = time.perf_counter()
        browser.set_layer("classes")
        row["switch"] = time.perf_counter() - t
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vertices", default="150000,1000000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--keep", type=Path, help="write the pages here (default: a temporary folder)")
    args = ap.parse_args(argv)
    from scene_pe.viewer import browser as B

    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min); {os.cpu_count()} cores")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_viewer_"))
    folder.mkdir(parents=True, exist_ok=True)
    why = "--no-browser" if args.no_browser else B.missing()
    browser = None if why else B.Browser()
    try:
        rows = [bench_room(int(v), folder, args.repeats, browser) for v in args.vertices.split(",")]
    finally:
        if browser is not None:
            browser.close()
    print(f"{'vertices':>9} {'instances':>9} {'drawn':>8} {'MB':>6} {'write s':>8} {'draw s':>7} {'switch s':>8}"
          "  page: decode / first frame ms")
    for r in rows:
        draw = f"{r['draw']:>7.2f} {r['switch']:>8.2f}  {r['page']['decode_ms']:.0f} / " \
               f"{r['page']['first_frame_ms']:.0f}" if "draw" in r else f"{'-':>7} {'-':>8}  ({why})"
        print(f"{r['vertices']:>9,} {r['instances']:>9} {r['drawn']:>8,} {r['bytes'] / 1e6:>6.2f} "
              f"{r['write']:>8.3f} {draw}")
    print(f"pages: {folder}; load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
