"""tools/predict.py time per stage on a ScanNet-size mesh, on the CPU, at 1 and 2 threads.

    python bench/bench_predict.py [--vertices 150000] [--threads 1,2] [--repeats 2]
                                  [--checkpoint CKPT] [--align floor] [--work DIR]
                                  [--sizes 50000,150000,500000]

The scan: a generated ScanNet-like room (scene_pe.synthetic, seed 0) of about
``--vertices`` vertices, given as a plain mesh .ply in its raw (unaligned)
frame, so ``--align floor`` does real work. The model: ``--checkpoint``, or by
default Res16UNet34C at 2 cm with the probabilistic head
(configs/scannet_probabilistic.yaml), randomly initialised (seed 0) and saved
as a checkpoint: the network's cost does not depend on its weights, but an
untrained head's clustering stops early, so pass a trained checkpoint to time
clustering as it will be. Each run is a fresh ``tools/predict.py`` process
(``--overwrite``); stage times come from its NAME.json, the process's peak
resident memory from the OS. The table gives, per thread count, the fastest
of ``--repeats`` runs. ``--sizes``: then one run per scan size at the default
thread count (every idle core), the scan being the room cropped or tiled to
that many vertices at the same density, and the exponent b of a
least-squares fit time ~ vertices^b, for the sum of the stages and for the
network.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("read", "align", "superpoints", "voxelize", "network", "clustering", "devoxelize", "write", "render", "html")


def make_mesh(work: Path, vertices: int) -> Path:
    from scene_pe.synthetic.scenes import generate_scene, write_scene

    mesh = work / ("bench_scan.ply" if vertices == 150_000 else f"bench_scan_{vertices}.ply")
    if not mesh.exists():
        scene = generate_scene("scene0999_00", 0, num_vertices_target=vertices)
        folder = write_scene(scene, work / "scans")
        (folder / "scene0999_00_vh_clean_2.ply").rename(mesh)
    return mesh


def scaled_mesh(work: Path, base: Path, vertices: int) -> Path:
    """The base room's mesh cropped or tiled to ``vertices`` vertices at the same density.

    Copies of the room side by side along x (1 m apart), then the vertices of
    lowest x kept, with the faces among them: voxels grow with vertices, as
    in a larger scan (a denser mesh of one room would add vertices, not voxels).
    """
    from plyfile import PlyData, PlyElement

    out = work / f"bench_scan_tiled_{vertices}.ply"
    if out.exists():
        return out
    ply = PlyData.read(str(base))
    vert, faces = ply["vertex"].data, np.stack(ply["face"].data["vertex_indices"])
    n = len(vert)
    copies = -(-vertices // n)
    step = float(vert["x"].max() - vert["x"].min()) + 1.0
    tiled = np.concatenate([vert] * copies)
    tiled["x"] += np.repeat(np.arange(copies, dtype=np.float32) * step, n)
    tri = np.concatenate([faces + k * n for k in range(copies)])
    keep = np.sort(np.argsort(tiled["x"], kind="stable")[:vertices])
    new_index = np.full(len(tiled), -1, np.int64)
    new_index[keep] = np.arange(len(keep))
    tri = new_index[tri]
    tri = tri[(tri >= 0).all(axis=1)]
    face = np.empty(len(tri), dtype=[("vertex_indices", "i4", (3,))])
    face["vertex_indices"] = tri
    PlyData([PlyElement.describe(tiled[keep], "vertex"), PlyElement.describe(face, "face")]).write(str(out))
    return out


def make_checkpoint(work: Path) -> Path:
    import torch

    from scene_pe.config import dump_config, load_config
    from scene_pe.train.checkpoint import save_checkpoint
    from scene_pe.model.build import build_model

    path = work / "res16unet34c_random.pth"
    if not path.exists():
        cfg = load_config(ROOT / "configs" / "scannet_probabilistic.yaml")
        torch.manual_seed(0)
        save_checkpoint(path, {"model": build_model(cfg).state_dict(), "config": dump_config(cfg)})
    return path


def run_once(mesh: Path, ckpt: Path, out: Path, threads: int, align: str) -> tuple[dict, float, float]:
    """One tools/predict.py process (threads 0: its default, every core)."""
    cmd = [sys.executable, str(ROOT / "tools" / "predict.py"), str(mesh), "--checkpoint", str(ckpt),
           "--out", str(out), "--threads", str(threads), "--device", "cpu", "--align", align,
           "--overwrite", "--no-progress"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS (not the max over children)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    record = json.loads((out / f"{mesh.stem}.json").read_text())
    return record, wall, usage.ru_maxrss / 1024.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vertices", type=int, default=150_000)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--align", default="floor", choices=("none", "floor"))
    ap.add_argument("--work", type=Path, help="keep the scan and checkpoint here (default: a temp folder)")
    ap.add_argument("--sizes", help="comma-separated vertex counts: time growth with scene size")
    args = ap.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min)")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_predict_"))
    work.mkdir(parents=True, exist_ok=True)
    mesh = make_mesh(work, args.vertices)
    ckpt = args.checkpoint or make_checkpoint(work)
    rows = []
    for threads in map(int, args.threads.split(",")):
        runs = [run_once(mesh, ckpt, work / "out", threads, args.align) for _ in range(args.repeats)]
        record, wall, peak = min(runs, key=lambda r: sum(r[0]["seconds"].values()))
        rows.append((threads, record, wall, peak))
    record = rows[0][1]
    print(f"scan: {record['num_vertices']:,} vertices ({record['kind']}), model: {record['head']} head, "
          f"voxel {record['voxel_size']} m, checkpoint {ckpt.name}; machine: {os.cpu_count()} cores; "
          f"fastest of {args.repeats}")
    print(f"{'threads':>7} " + " ".join(f"{s:>10}" for s in STAGES) + f" {'sum':>8} {'process':>8} {'peak MiB':>9}")
    for threads, rec, wall, peak in rows:
        sec = rec["seconds"]
        print(f"{threads:>7} " + " ".join(f"{sec.get(s, 0.0):>10.2f}" for s in STAGES)
              + f" {sum(sec.values()):>8.2f} {wall:>8.2f} {peak:>9.0f}")
    print("(seconds; 'process' includes starting Python and importing torch / MinkowskiEngine / open3d)")
    if args.sizes:
        scaling(work, ckpt, [int(v) for v in args.sizes.split(",")], args.align)
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")
    return 0


def scaling(work: Path, ckpt: Path, sizes: list[int], align: str) -> None:
    """Time per stage against scan size (every idle core), and the fitted exponents."""
    from plyfile import PlyData

    rows = []
    base = make_mesh(work, 150_000)
    for v in sizes:
        mesh = scaled_mesh(work, base, v)
        record, wall, peak = run_once(mesh, ckpt, work / "out", 0, align)
        xyz = np.stack([PlyData.read(str(mesh))["vertex"][a] for a in "xyz"], axis=1)
        voxels = len(np.unique(np.floor(xyz / record["voxel_size"]).astype(np.int64), axis=0))
        rows.append((record["num_vertices"], record["seconds"], peak, record["threads"], voxels))
    print(f"growth with scene size ({rows[0][3]} threads, one run each; the 150k-vertex room "
          "cropped or tiled, same density):")
    print(f"{'vertices':>9} {'voxels':>8} " + " ".join(f"{s:>10}" for s in STAGES)
          + f" {'sum':>8} {'peak MiB':>9}")
    for n, sec, peak, _, voxels in rows:
        print(f"{n:>9,} {voxels:>8,} " + " ".join(f"{sec.get(s, 0.0):>10.2f}" for s in STAGES)
              + f" {sum(sec.values()):>8.2f} {peak:>9.0f}")
    logn = np.log([r[0] for r in rows])
    for name, pick in (("sum of stages", lambda s: sum(s.values())), ("network", lambda s: s["network"])):
        b = np.polyfit(logn, np.log([pick(r[1]) for r in rows]), 1)[0]
        print(f"  {name}: time ~ vertices^{b:.2f}")
    b = np.polyfit(np.log([r[4] for r in rows]), np.log([r[1]["network"] for r in rows]), 1)[0]
    print(f"  network: time ~ voxels^{b:.2f}")


if __name__ == "__main__":
    sys.exit(main())
