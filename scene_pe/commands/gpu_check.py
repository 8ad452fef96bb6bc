"""tools/gpu_check.py (`make gpu-check`): the checks of scene_pe/env run in order, each printed
as ok / FAIL with its figures, the report optionally written as JSON."""

from __future__ import annotations

import json
import sys
import tempfile

RTOL = 1e-4  # float32 sums in another order: differences ~1e-6 of the largest value


def run(args) -> int:
    """tools/gpu_check.py's arguments -> exit status (0 every check passed, 1 one failed, 2 usage)."""
    import torch

    from scene_pe.config import load_config
    from scene_pe.env import gpu_check as G
    from scene_pe.env import minkowski as M
    from scene_pe.model.precision import amp_dtype
    from scene_pe.util.typed_config import ConfigError

    try:
        cfg = load_config(args.config, args.overrides)
    except (ConfigError, OSError) as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    report, failed = {}, []
    if args.save_scene:
        G.save_sample(args.save_scene, G.scannet_sample(args.vertices))
        print(f"wrote {args.save_scene}")
        return 0

    def scene(seed: int) -> dict:
        # generating needs open3d (scanning); a saved scene does not
        return G.load_sample(args.scene) if args.scene else G.scannet_sample(args.vertices, seed)

    def check(name: str, ok: bool, detail: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
        report.setdefault("checks", {})[name] = {"ok": ok, "detail": detail}
        if not ok:
            failed.append(name)

    env = M.environment()
    report["environment"] = env
    gpus = [f"{g} ({c[0]}.{c[1]})" for g, c in zip(env["gpus"], env["compute_capabilities"])]
    print(f"torch {env['torch']} (CUDA {env['torch_cuda']}), MinkowskiEngine {env['minkowski']} "
          f"(CUDA architectures: {env['minkowski_archs'] or 'none'}); GPUs: {', '.join(gpus) or 'none'}")
    if env["cuda_available"]:
        check("MinkowskiEngine built with CUDA", env["minkowski_cuda"],
              "yes" if env["minkowski_cuda"] else "no: rebuild it (docs/gpu.md)")
    arch = M.arch_checks(env)
    for name, ok, detail in arch:
        check(name, ok, detail)
    data = M.random_points(seed=0)
    cpu = M.sparse_conv(*data, "cpu")
    d = M.compare(cpu, M.dense_conv(*data))
    check("CPU sparse conv = dense conv3d", d.ok(RTOL), f"{d}")
    # a GPU the build has no code for would stop at the first kernel ("no kernel image"): not run
    cuda = env["cuda_available"] and env["minkowski_cuda"] and all(ok for _, ok, _ in arch)
    if cuda:
        d = M.compare(cpu, M.sparse_conv(*data, "cuda"))
        check("CUDA sparse conv = CPU sparse conv", d.ok(RTOL), f"{d}")
    elif not env["cuda_available"]:
        print("no CUDA device: the GPU checks are skipped (CPU part done)")
    if cuda or args.cpu_timings:
        device = torch.device("cuda" if cuda else "cpu")
        sample = scene(0)
        # float32, and beside it the config's AMP (on CUDA: the heads in bfloat16 / float16, the
        # backbone in float32 either way: model/precision.py)
        amp = amp_dtype(cfg.train, device)
        runs = {"training": None, **({"training_amp": amp} if amp is not None else {})}
        for key, dtype in runs.items():
            t = report[key] = G.training_check(cfg, sample, device, steps=args.steps, batch=args.batch,
                                               amp_dtype=dtype)
            finite = all(abs(v) < float("inf") for v in t["losses"])
            check(f"training steps, {t['precision']}", finite, f"{cfg.model.backbone.name}, batch {t['batch']} "
                  f"({t['voxels']:,} voxels): forward {t['forward']:.3f} s, backward "
                  f"{t['backward']:.3f} s, step {t['step']:.3f} s, peak GPU memory "
                  f"{t['peak_gpu_gib']:.2f} GiB; losses {', '.join(f'{v:.3f}' for v in t['losses'])}")
        if amp is not None:
            full, mixed = (sum(report[k][p] for p in ("forward", "backward", "step")) for k in runs)
            print(f"step: float32 {full:.3f} s, AMP ({report['training_amp']['precision']} heads) "
                  f"{mixed:.3f} s: {full / mixed:.2f}x")
        i = G.inference_check(cfg, sample, device, repeats=args.repeats, amp_dtype=amp)
        report["inference"] = i
        check("inference", i["vertices"] == len(sample["coords"]),
              f"{i['vertices']:,} vertices ({i['voxels']:,} voxels): network {i['network']:.3f} s, "
              f"with clustering {i['total']:.3f} s per scene")
    if (cuda and torch.cuda.device_count() >= 2) or args.ddp_on_cpu:
        backend = "nccl" if cuda and torch.cuda.device_count() >= 2 else "gloo"
        with tempfile.TemporaryDirectory() as tmp:
            r = G.ddp_check(cfg, scene(1), backend, f"{tmp}/ddp.pt")
        report["ddp"] = r
        check(f"2-process DDP step ({backend})", r["same_weights"],
              f"{r['step_seconds']:.3f} s per step; ranks hold the same weights: {r['same_weights']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(f"{len(failed)} checks failed: {', '.join(failed)}" if failed else "all checks passed")
    return 1 if failed else 0
