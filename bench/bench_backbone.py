"""CPU forward / forward+backward time and peak memory of the Res16UNet backbones.

Scene: a synthetic ScanNet-like room (scene_pe.synthetic.scenes) meshed densely
enough that every 2 cm voxel of its surfaces is hit, cropped along x to
``--voxels`` voxels (a room has ~180k; the actual count is printed). Each
(backbone, mode) runs in a fresh subprocess so its peak memory is its own:

  eval   model.eval(), torch.no_grad(): backbone and probabilistic head forward,
         then clustering (scene_pe.method.clustering.cluster_probabilistic) and
         devoxelization (scene_pe.inference.vertices.scene_prediction: the small
         instances dropped, the shipped per-voxel uncertainty, which needs the
         final instances' centre kernels, and the per-vertex gathers), timed against the
         backbone forward. The clustering runs on (a) the network's own
         untrained output and (b) a "half-trained" output built from the
         ground truth (mu at the instance centroid + 3 cm noise, sigma ~ 5 cm,
         logits peaked at the true class, unlabelled voxels as wall): an
         untrained network's scores are flat, so (a) stops at once and only
         (b) measures the real cost. Post-processing is timed with
         ``--threads`` and with 1 thread: its small ops suffer most from
         OpenMP threads contending for busy cores.
  train  model.train(): forward + cross-entropy-style surrogate loss + backward.

Times: median (and min) over ``--repeats`` runs after one warm-up run.
Memory: ``peak RSS`` is the subprocess's ru_maxrss (the largest resident set it
ever had: Python + torch + ME + data + model + the run's transient tensors);
``run delta`` is that peak minus the resident set just before the warm-up
(data, model and libraries loaded), i.e. the memory the forward (eval) or
forward + backward (train) itself needs at its peak. torch's CPU allocator
returns large blocks to the OS, so RSS tracks live tensors closely.

    python bench/bench_backbone.py [--voxels 100000] [--repeats 3] [--threads 2]
                                   [--archs Res16UNet34C,Res16UNet14A,Res16UNet14S]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
from timing import timed  # noqa: E402  (bench/, beside this file)

VOXEL_SIZE = 0.02


# ------------------------------------------------------------------ scene (parent)
def make_sample(num_voxels: int, seed: int) -> dict:
    """A synthetic room cropped along x to ``num_voxels`` 2 cm voxels (fewer if the room is smaller)."""
    from scene_pe.synthetic.scenes import generate_scene

    # 600k vertices: ~3 per occupied 2 cm voxel of a whole room (~180k voxels), so the
    # surfaces are (nearly) fully occupied, as on a ScanNet mesh. A room holds at most
    # ~200k voxels; larger targets give the whole room (the count is printed).
    scene = generate_scene("bench_scene", seed, num_vertices_target=max(600_000, 3 * num_voxels))
    xyz = scene.aligned_vertices().astype(np.float32)
    grid = np.floor(xyz / VOXEL_SIZE).astype(np.int64)
    # np.unique sorts voxels by (x, y, z): the first num_voxels are a crop at the
    # room's low-x end; keep the vertices of exactly those voxels.
    _, inverse = np.unique(grid, axis=0, return_inverse=True)
    keep = inverse.reshape(-1) < num_voxels
    semantic, instance = scene.training_labels()
    return {"coords": xyz[keep], "colors": scene.colors[keep, :3].astype(np.float32) / 255.0,
            "semantic": semantic[keep], "instance": instance[keep]}


# ------------------------------------------------------------------ worker (subprocess)
def rss_mib() -> float:
    """Current resident set size of this process (Linux /proc), MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def half_trained_output(voxels, rng: np.random.Generator):
    """A plausible trained ProbabilisticOutput from the voxels' ground truth."""
    import torch

    from scene_pe.labels.label_set import SCANNET20
    from scene_pe.model.build import instance_classes
    from scene_pe.model.outputs import ProbabilisticOutput

    centres = voxels.centres.double()
    inst = voxels.instance
    k = int(inst.max()) + 1
    has = inst >= 0
    sums = torch.zeros(k, 3, dtype=torch.float64).index_add_(0, inst[has], centres[has])
    counts = torch.bincount(inst[has], minlength=k).clamp_min(1)
    mu = centres.clone()
    mu[has] = (sums / counts[:, None])[inst[has]]
    n = len(mu)
    mu = (mu + torch.from_numpy(rng.normal(0, 0.03, (n, 3)))).float()
    sigma = torch.from_numpy(np.exp(rng.normal(np.log(0.05), 0.2, (n, 3)))).float()
    logits = torch.from_numpy(rng.normal(0, 1, (n, SCANNET20.num_classes))).float()
    # Voxels without a benchmark label (non-benchmark objects, unannotated surfaces)
    # are taken as confidently wall: otherwise their flat random scores would seed
    # thousands of tiny clusters, the untrained worst case that bench_method.py times.
    target = torch.where(voxels.semantic >= 0, voxels.semantic, torch.zeros_like(voxels.semantic))
    logits[torch.arange(n), target] += 6.0
    return ProbabilisticOutput(mu=mu, sigma=sigma, logits=logits, coords=voxels.centres, batch=voxels.batch,
                               instance_classes=instance_classes(SCANNET20))


def postprocess(out, voxels, min_vertices: int):
    """Clustering + devoxelization of one scene, as scene_pe.inference.vertices.predict_batch does."""
    from scene_pe.config import InferenceConfig
    from scene_pe.labels.label_set import SCANNET20
    from scene_pe.inference.vertices import scene_prediction
    from scene_pe.method.clustering import cluster_probabilistic

    t0 = time.perf_counter()
    clusters = cluster_probabilistic(out)[0]
    t1 = time.perf_counter()
    p2v = voxels.point_to_voxel[0].numpy()
    semantic = SCANNET20.train_to_id[out.logits.argmax(dim=1).numpy()][p2v]
    # voxel clustering (no segments); the shipped per-voxel uncertainty is part of it
    pred = scene_prediction(out, voxels.scenes[0], p2v, semantic, (clusters, None), None,
                            InferenceConfig(min_vertices=min_vertices), SCANNET20)
    t2 = time.perf_counter()
    assert len(pred.instance) == len(pred.uncertainty) == len(p2v)
    return t1 - t0, t2 - t1, clusters.num_instances, int(pred.instance.max()) + 1


def worker(data: Path, arch: str, mode: str, repeats: int, threads: int) -> dict:
    import torch

    from scene_pe.labels.label_set import SCANNET20
    from scene_pe.model.build import instance_classes
    from scene_pe.model.heads import HeadConfig
    from scene_pe.model.network import InstanceSegmentationNet
    from scene_pe.model.outputs import as_float32
    from scene_pe.model.unet import BackboneConfig
    from scene_pe.sparse.voxelize import VoxelizeConfig, voxelize

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with np.load(data) as z:
        sample = {k: z[k] for k in z.files}
    t = time.perf_counter()
    voxels = voxelize([sample], VoxelizeConfig(voxel_size=VOXEL_SIZE))
    t_voxelize = time.perf_counter() - t
    net = InstanceSegmentationNet(3, BackboneConfig(name=arch), HeadConfig(num_classes=SCANNET20.num_classes),
                                  instance_classes(SCANNET20))
    res = {"arch": arch, "mode": mode, "voxels": len(voxels.features), "vertices": len(sample["coords"]),
           "params_M": sum(p.numel() for p in net.parameters()) / 1e6, "voxelize_s": t_voxelize,
           "rss_before_MiB": rss_mib(), "maxrss_before_MiB": maxrss_mib(), "load_start": os.getloadavg()[0]}
    if mode == "eval":
        net.eval()
        split = {}

        @torch.no_grad()
        def forward():
            t0 = time.perf_counter()
            feats = net.backbone(voxels.sparse_tensor())
            t1 = time.perf_counter()
            out = net.head(feats.F, voxels.centres, voxels.batch)
            split.setdefault("backbone", []).append(t1 - t0)
            split.setdefault("head", []).append(time.perf_counter() - t1)
            return out

        times, out = timed(forward, repeats)
        res["forward_s"] = times
        res["backbone_s"], res["head_s"] = split["backbone"][1:], split["head"][1:]  # drop the warm-up
        res["peak_maxrss_MiB"] = maxrss_mib()
        # post-processing: best of `repeats` runs (no warm-up effects to speak of)
        outputs = {"net": as_float32(out), "half_trained": half_trained_output(voxels, np.random.default_rng(0))}
        # Post-processing is many small ops: on a busy machine their OpenMP threads
        # contend for the cores, so time it with the run's threads and with one.
        res["post_threads"] = sorted({threads, 1})
        for th in res["post_threads"]:
            torch.set_num_threads(th)
            for name, o in outputs.items():
                runs = [postprocess(o, voxels, min_vertices=100) for _ in range(repeats)]
                res[f"cluster_{name}_{th}_s"] = [r[0] for r in runs]
                res[f"devox_{name}_{th}_s"] = [r[1] for r in runs]
                res[f"instances_{name}"] = runs[0][2:]
        torch.set_num_threads(threads)
    else:
        net.train()

        def step():
            out = net(voxels)
            target = voxels.semantic
            loss = (torch.nn.functional.cross_entropy(out.logits, target, ignore_index=-100)
                    + (out.mu - out.coords).square().mean() + out.sigma.log().square().mean())
            loss.backward()
            net.zero_grad(set_to_none=True)
            return float(loss)

        times, _ = timed(step, repeats)
        res["forward_backward_s"] = times
        res["peak_maxrss_MiB"] = maxrss_mib()
    res["load_end"] = os.getloadavg()[0]
    return res


# ------------------------------------------------------------------ report (parent)
def med(values: list[float]) -> float:
    return float(np.median(values))


def report(r: dict) -> None:
    delta = r["peak_maxrss_MiB"] - r["rss_before_MiB"]
    mem = f"peak RSS {r['peak_maxrss_MiB']:7.0f} MiB, run delta {delta:6.0f} MiB"
    load = f"load {r['load_start']:.1f}->{r['load_end']:.1f}"
    if r["mode"] == "eval":
        fwd, bb = r["forward_s"], r["backbone_s"]
        print(f"  {r['arch']:13s} eval   forward {med(fwd):7.2f} s (min {min(fwd):6.2f}; backbone "
              f"{med(bb):6.2f}, head {med(r['head_s']):5.3f})  {mem}  {load}")
        for name in ("net", "half_trained"):
            k_vox, k_vert = r[f"instances_{name}"]
            print(f"      {name} output: {k_vox} voxel instances, {k_vert} kept on vertices")
            for th in r["post_threads"]:
                c, d = min(r[f"cluster_{name}_{th}_s"]), min(r[f"devox_{name}_{th}_s"])
                print(f"        {th} thread(s): clustering {c:6.3f} s + devoxelization {d:6.3f} s = "
                      f"{100 * (c + d) / med(bb):5.1f} % of the backbone forward")
    else:
        fb = r["forward_backward_s"]
        print(f"  {r['arch']:13s} train  forward+backward {med(fb):7.2f} s (min {min(fb):6.2f})  {mem}  {load}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--voxels", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--archs", default="Res16UNet34C,Res16UNet14A,Res16UNet14S")
    ap.add_argument("--modes", default="eval,train")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", nargs=3, metavar=("DATA", "ARCH", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        data, arch, mode = args.worker
        print(json.dumps(worker(Path(data), arch, mode, args.repeats, args.threads)))
        return

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} CPUs); threads per run: {args.threads}")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "scene.npz"
        sample = make_sample(args.voxels, args.seed)
        np.savez(data, **sample)
        header = False
        for arch in args.archs.split(","):
            for mode in args.modes.split(","):
                cmd = [sys.executable, __file__, "--worker", str(data), arch, mode,
                       "--repeats", str(args.repeats), "--threads", str(args.threads)]
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(f"  {arch} {mode}: FAILED\n{proc.stderr[-3000:]}")
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                if not header:
                    print(f"scene: {r['vertices']} vertices -> {r['voxels']} voxels at {VOXEL_SIZE * 100:.0f} cm "
                          f"(voxelize {r['voxelize_s']:.2f} s); repeats {args.repeats} after 1 warm-up")
                    header = True
                if mode == modes_first(args.modes):
                    print(f"{arch}: {r['params_M']:.1f} M parameters")
                report(r)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def modes_first(modes: str) -> str:
    return modes.split(",")[0]


if __name__ == "__main__":
    main()
