#!/usr/bin/env python
"""The whole job on the embedded default, on the CPU: `make demo` runs this.

1. generate synthetic ScanNet-format scenes  (tools/make_synthetic.py)
2. preprocess them                            (tools/preprocess.py)
3. train                                      (tools/train.py CONFIG)
4. evaluate on the held-out val scenes, write coloured PLYs (tools/test.py --split val --ply)
5. predict the test scenes, export and validate a benchmark submission
                                              (tools/test.py --split test --export)
6. segment a scan given as a plain point cloud (one test scene's vertices
   and colours in its raw, unaligned frame), with a picture
                                              (tools/predict.py --align floor)
Each step is the command a user would run (printed before it runs) and each
is resumable: generated scenes, preprocessed files, a finished training run
and saved predictions are reused. --config configs/synthetic_margin.yaml
trains the learnable-margin baseline instead; --config
configs/synthetic200_probabilistic.yaml runs it all with the ScanNet200 label set
(rooms with extra ScanNet200 categories, in <out>/scannet200 and <out>/preprocessed200).
"""

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scene_pe.util import cli  # noqa: E402


def run(cmd: list[str]) -> None:
    print(f"\n$ {shlex.join(cmd)}", flush=True)
    # one OpenMP thread per process (see the Makefile): the loader worker and
    # the trainer each take a core instead of spinning against each other
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    r = subprocess.run(cmd, cwd=ROOT, env=env)
    if r.returncode != 0:
        sys.exit(f"demo: step failed (exit {r.returncode}): {shlex.join(cmd)}")


def own_scan(raw: Path, folder: Path) -> Path:
    """One generated test scene as a user's scan: a point cloud .ply (vertices and colours, no
    faces, no labels) in the scan's raw frame, which tools/predict.py must level and turn itself."""
    from scene_pe.data.scannet import read_mesh
    from scene_pe.viz import write_colored_ply

    scene = (raw / "scannetv2_test.txt").read_text().split()[0]
    xyz, rgb, _ = read_mesh(raw / "scans_test" / scene / f"{scene}_vh_clean_2.ply", scene)
    path = folder / f"{scene}_points.ply"
    write_colored_ply(path, xyz, rgb)
    return path


def main(argv=None) -> int:
    ap = cli.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/synthetic_probabilistic.yaml")
    ap.add_argument("--out", type=Path, default=Path("demo_output"))
    ap.add_argument("--train-scenes", type=int, default=16)
    ap.add_argument("--val-scenes", type=int, default=6)
    ap.add_argument("--test-scenes", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("overrides", nargs="*", help="key.sub=value config overrides for training/testing")
    args = ap.parse_args(argv)
    py = sys.executable
    out = args.out if args.out.is_absolute() else ROOT / args.out
    from scene_pe.config import load_config

    # the label set decides the generated rooms and the folders (one label set per folder)
    label_set = load_config(ROOT / args.config, args.overrides).data.label_set
    scannet20 = label_set == "scannet20"
    suffix, profile = ("", "basic") if scannet20 else ("200", "basic200")
    raw, pre = out / f"scannet{suffix}", out / f"preprocessed{suffix}"
    start = time.time()

    if not (raw / "scannetv2_test.txt").exists():
        run([py, "tools/make_synthetic.py", "--out", str(raw), "--train", str(args.train_scenes),
             "--val", str(args.val_scenes), "--test", str(args.test_scenes), "--seed", str(args.seed),
             "--min-vertices", "20000", "--max-vertices", "60000", "--profile", profile])
    run([py, "tools/preprocess.py", "--scannet-root", str(raw), "--out", str(pre), "--split", "all",
         "--workers", str(args.workers), "--label-set", label_set])

    overrides = [f"data.root={pre}", f"run_dir={out / 'runs'}", *args.overrides]
    cfg = load_config(ROOT / args.config, overrides)
    run_path = cfg.run_path
    last = run_path / "last.pth"
    resume = ["--resume"] if last.exists() else []
    run([py, "tools/train.py", args.config, *overrides, *resume])

    ckpt = run_path / "last.pth"
    val_out, test_out = run_path / "test_val", run_path / "test_test"
    run([py, "tools/test.py", args.config, *overrides, "--checkpoint", str(ckpt), "--split", "val",
         "--out", str(val_out), "--ply", "--scannet-root", str(raw)])
    run([py, "tools/test.py", args.config, *overrides, "--checkpoint", str(ckpt), "--split", "test",
         "--out", str(test_out), "--export", str(run_path / "submission"), "--ply", "--scannet-root", str(raw)])

    scan = own_scan(raw, out / "own_scan")
    own_out = out / "predict"
    run([py, "tools/predict.py", str(scan), "--checkpoint", str(ckpt), "--out", str(own_out), "--align", "floor",
         "--overwrite"])

    metrics = json.loads((val_out / "metrics.json").read_text())
    m = metrics["instance"]["mean"]
    print("\n=== scene_pe demo finished in %.1f min ===" % ((time.time() - start) / 60))
    print(f"head: {cfg.model.head.type}   held-out val scenes: {metrics['instance']['num_scenes']}")
    print(f"AP {m['ap']:.3f}  AP50 {m['ap50']:.3f}  AP25 {m['ap25']:.3f}  "
          f"mIoU {metrics['semantic']['miou']:.3f}   (label set {label_set})")
    for split, s in metrics["instance"].get("splits", {}).items():
        fmt3 = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731  (None: no GT in the split)
        print(f"  {split:<7} AP {fmt3(s['ap'])}  AP50 {fmt3(s['ap50'])}  AP25 {fmt3(s['ap25'])}")
    u = metrics["uncertainty"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731  (None: no wrong or no right vertex)
    print(f"uncertainty ({u['definition']}) flags wrongly assigned vertices: AUROC {fmt(u['auroc'])} "
          f"(among assigned {fmt(u['auroc_assigned'])})")
    print("outputs:")
    for what, path in [("generated ScanNet-format scenes", raw), ("preprocessed scenes", pre),
                       ("training run (config, log, TensorBoard, checkpoints)", run_path),
                       ("val predictions + metrics.json", val_out), ("val coloured PLYs", val_out / "ply"),
                       ("test predictions", test_out), ("test coloured PLYs", test_out / "ply"),
                       ("benchmark submission zips", run_path / "submission"),
                       ("a plain point cloud segmented (tools/predict.py)", own_out),
                       ("  its picture", own_out / f"{scan.stem}.png")]:
        print(f"  {what:<55} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
