"""A checkpoint and the package's own stages on real ScanNet scans, one row per scan.

    python bench/real_scans.py CHECKPOINT [FOLDER] [--out DIR] [--json PATH]

FOLDER: real scans in ScanNet's layout (default ../shared/real_scans; exit status 3 with a
message when there are none). Their terms forbid committing them or anything derived from them:
the outputs go to --out (default a temporary folder), never into the repository. For every
scan, whatever its files allow:

* preprocessing (scene_pe.data.preprocess.preprocess_scene, as tools/preprocess.py): the npz,
  and the GT txt where there is an aggregation;
* the built-in mesh segmentator (scene_pe/superpoints) against ScanNet's segs.json: segment
  counts, the share of vertices whose segment is the same vertex set in both, and purity;
* the point-cloud segmentator on the scan's vertices as a bare cloud (normals estimated,
  colours): purity against the objects (aggregation) and against the classes (labels.ply);
* tools/predict.py with CHECKPOINT (``--align floor``, as a user would run it) on the scene
  folder and on its vertices as a bare point cloud (a .ply without faces);
* where instance GT exists: AP / AP50 / AP25 over the 18 classes and class-agnostic
  (evaluation.instance.class_agnostic), with the package's evaluator; semantic mIoU where
  semantics exist (labels.ply's NYU40 ids; scans without an aggregation have no instance GT).
What cannot be measured is reported with the reason. Two scans are a check, not a benchmark.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.real_scan_folder import find_or_exit  # noqa: E402


def same_segments(a: np.ndarray, b: np.ndarray) -> float:
    """Share of vertices whose segment is the same vertex set in both partitions."""
    _, ia, ca = np.unique(a, return_inverse=True, return_counts=True)
    _, ib, cb = np.unique(b, return_inverse=True, return_counts=True)
    ia, ib = ia.reshape(-1), ib.reshape(-1)
    pair, inverse, cp = np.unique(ia.astype(np.int64) * len(cb) + ib, return_inverse=True, return_counts=True)
    same = (cp == ca[pair // len(cb)]) & (cp == cb[pair % len(cb)])
    return float(same[inverse.reshape(-1)].mean())


def segmentation(scene_dir: Path, gt: np.ndarray | None, nyu40: np.ndarray | None) -> dict:
    from scene_pe.data.scannet import ScenePaths, read_mesh, read_segments
    from scene_pe.geometry.normals import estimate_normals
    from scene_pe.superpoints.purity import num_segments, purity
    from scene_pe.superpoints.segmentator import SegmentatorConfig, segment_cloud, segment_mesh

    p = ScenePaths.of(scene_dir)
    xyz, rgb, faces = read_mesh(p.mesh, p.scene)
    out: dict = {}
    t0 = time.perf_counter()
    mesh = segment_mesh(xyz, faces)
    out["mesh"] = {"segments": num_segments(mesh), "seconds": round(time.perf_counter() - t0, 1)}
    if p.segs.is_file():
        scannet = read_segments(p.segs, p.scene, len(xyz))
        out["mesh"].update(scannet_segments=num_segments(scannet), same_as_scannet=same_segments(mesh, scannet))
        if gt is not None:
            out["mesh"]["purity_scannet_segments"] = purity(scannet, gt)
    else:
        out["mesh"]["same_as_scannet"] = f"not measured: no {p.segs.name}"
    t0 = time.perf_counter()
    cloud = segment_cloud(xyz, estimate_normals(xyz), SegmentatorConfig(), rgb)
    out["cloud"] = {"segments": num_segments(cloud), "seconds": round(time.perf_counter() - t0, 1)}
    for name, seg in (("mesh", mesh), ("cloud", cloud)):
        out[name]["purity"] = purity(seg, gt) if gt is not None else "not measured: no aggregation (no objects)"
        if nyu40 is not None:
            out[name]["class_purity"] = purity(seg, nyu40)
    return out


def predict(checkpoint: Path, inputs: dict[str, Path], out: Path, threads: int) -> dict:
    """tools/predict.py on each input (name -> path); name -> its output folder or the failure."""
    done = {}
    for kind, path in inputs.items():
        folder = out / kind
        cmd = [sys.executable, str(ROOT / "tools" / "predict.py"), str(path), "--checkpoint", str(checkpoint),
               "--out", str(folder), "--align", "floor", "--no-html", "--no-render", "--no-progress", "--overwrite",
               "--threads", str(threads)]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        notes = [ln for ln in r.stdout.splitlines() if ln.startswith(("trained on:", "note:"))]
        done[kind] = {"folder": str(folder), "status": r.returncode, "seconds": round(time.perf_counter() - t0, 1),
                      "notes": notes, **({"stderr": r.stderr[-2000:]} if r.returncode else {})}
    return done


def scores(npz: Path, gt: np.ndarray | None, semantic_gt: np.ndarray | None) -> dict:
    from scene_pe.evaluation.instance import class_agnostic, evaluate_instances
    from scene_pe.evaluation.semantic import evaluate_semantic

    with np.load(npz) as z:
        inst, labels, conf, cls = z["instance"], z["instance_class"], z["instance_confidence"], z["class"]
    masks = inst[None, :] == np.arange(len(labels))[:, None]
    out: dict = {"instances_predicted": int(len(labels))}
    if gt is None:
        out["ap"] = "not measured: no aggregation (no instance GT)"
    else:
        r = evaluate_instances({"s": (masks, labels, conf)}, {"s": gt})
        g, lab = class_agnostic(gt, labels)
        a = evaluate_instances({"s": (masks, lab, conf)}, {"s": g})
        out.update(ap=r.mean_ap, ap50=r.mean_ap50, ap25=r.mean_ap25, gt_instances=int(np.nansum(r.num_gt)),
                   agnostic_ap=a.mean_ap, agnostic_ap50=a.mean_ap50, agnostic_ap25=a.mean_ap25)
    if semantic_gt is not None:
        out["miou"] = evaluate_semantic({"s": cls}, {"s": semantic_gt}, gt_format="semantic").miou
    return out


def one_scan(scene_dir: Path, label_map, checkpoint: Path, out: Path, threads: int) -> dict:
    from scene_pe.data.preprocess import preprocess_scene
    from scene_pe.data.scannet import ScenePaths, gt_ids, read_labels_ply, read_mesh, read_scene
    from scene_pe.viz import write_colored_ply

    p = ScenePaths.of(scene_dir)
    have = [f.name for f in (p.mesh, p.labels, p.segs, p.aggregation, p.meta) if f.is_file()]
    row: dict = {"scene": p.scene, "files": have}
    pre = preprocess_scene(scene_dir, out / "preprocessed", label_map)
    row["preprocess"] = {"status": pre.status, "reason": pre.reason, "warnings": pre.warnings,
                         "gt_txt": (out / "preprocessed" / "gt" / f"{p.scene}.txt").is_file()}
    gt = None
    if p.annotated:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gt = gt_ids(read_scene(scene_dir, label_map, align=False))
    xyz, rgb, _ = read_mesh(p.mesh, p.scene)
    nyu40 = read_labels_ply(p.labels, p.scene, len(xyz)) if p.labels.is_file() else None
    row["segmentation"] = segmentation(scene_dir, gt, nyu40)
    cloud = out / "clouds" / f"{p.scene}_points.ply"
    cloud.parent.mkdir(parents=True, exist_ok=True)
    write_colored_ply(cloud, xyz, rgb)
    runs = predict(checkpoint, {"scannet folder": scene_dir, "bare cloud": cloud}, out / "predict" / p.scene, threads)
    for kind, run in runs.items():
        name = p.scene if kind == "scannet folder" else cloud.stem
        npz = Path(run["folder"]) / f"{name}.npz"
        if run["status"] == 0 and npz.is_file():
            run.update(scores(npz, gt, nyu40))
    row["predict"] = runs
    return row


def fmt(v, spec=".3f") -> str:
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else "n/a"


def table(rows: list[dict]) -> str:
    lines = ["| scene | input | AP | AP50 | AP25 | class-agnostic AP / AP50 / AP25 | mIoU | instances (GT) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for kind, s in r["predict"].items():
            if s["status"]:
                lines.append(f"| {r['scene']} | {kind} | predict failed (exit {s['status']}) |||||")
                continue
            gt = s.get("gt_instances")
            lines.append(f"| {r['scene']} | {kind} | {fmt(s.get('ap'))} | {fmt(s.get('ap50'))} | {fmt(s.get('ap25'))} | "
                         f"{fmt(s.get('agnostic_ap'))} / {fmt(s.get('agnostic_ap50'))} / {fmt(s.get('agnostic_ap25'))} | "
                         f"{fmt(s.get('miou'))} | {s.get('instances_predicted', 'n/a')} ({gt if gt is not None else 'n/a'}) |")
    lines += ["", "| scene | preprocess | mesh segments (ScanNet's) | same segments as ScanNet | purity: ScanNet / "
              "mesh / cloud segments | class purity: mesh / cloud | cloud segments |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        m, c = r["segmentation"]["mesh"], r["segmentation"]["cloud"]
        pre = r["preprocess"]["status"] + (" (GT txt)" if r["preprocess"]["gt_txt"] else " (no GT: no aggregation)")
        lines.append(f"| {r['scene']} | {pre} | {m['segments']} ({m.get('scannet_segments', 'n/a')}) | "
                     f"{fmt(m.get('same_as_scannet'))} | {fmt(m.get('purity_scannet_segments'))} / "
                     f"{fmt(m.get('purity'))} / {fmt(c.get('purity'))} | {fmt(m.get('class_purity'))} / "
                     f"{fmt(c.get('class_purity'))} | {c['segments']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("folder", nargs="?", type=Path, help="real scans (default ../shared/real_scans)")
    ap.add_argument("--out", type=Path, help="working folder (default: a temporary one, removed at the end)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if not args.checkpoint.is_file():
        print(f"error: {args.checkpoint}: no such checkpoint", file=sys.stderr)
        return 2
    root, dirs = find_or_exit(args.folder)
    from scene_pe.data.scannet import LABEL_MAP_NAME, load_label_map
    from scene_pe.util.errors import SceneError

    label_map = load_label_map(root / LABEL_MAP_NAME)
    t0, load = time.time(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="real_scans_") as tmp:
        out = args.out or Path(tmp)
        rows, failed = [], []
        for d in dirs:
            print(f"{d.name} ...", flush=True)
            try:
                rows.append(one_scan(d, label_map, args.checkpoint.resolve(), out, args.threads))
            except (SceneError, OSError, ValueError) as e:  # a broken scan: the others still run
                failed.append(f"{d.name}: {e}")
    notes = sorted({n for r in rows for s in r["predict"].values() for n in s["notes"]})
    print(f"\n{table(rows)}\n")
    print(f"checkpoint {args.checkpoint}; scans {root} ({len(rows)}): a few scans are a check, not a benchmark")
    for n in notes:
        print(f"  {n}")
    print(f"{time.time() - t0:.0f} s; load average at the start {' '.join(f'{v:.2f}' for v in load)}")
    for f in failed:
        print(f"FAILED {f}", file=sys.stderr)
    if args.json:
        record = {"command": " ".join(sys.argv), "checkpoint": str(args.checkpoint), "scans": str(root),
                  "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                  "load_average_start": load, "rows": rows, "failed": failed}
        args.json.write_text(json.dumps(record, indent=1, default=float) + "\n")
        print(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
