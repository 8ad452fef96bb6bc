"""Time the method core on the CPU: losses (forward + backward) and clustering.

A synthetic 100k-voxel scene with 50 box-shaped objects (~1200 voxels each) on
a floor/wall background. Outputs are "half-trained": mu / embedding near the
object centroid (3 cm noise), sigma ~ 5 cm, class scores and seeds peaked at
the true class / highest near the centre. Also times clustering of "untrained" outputs (mu = voxel coordinate,
random scores), the worst case bounded by ``max_steps``.

    python bench/bench_method.py [--voxels 100000] [--instances 50] [--threads 1]

One thread by default: on a shared 2-core machine, 2 threads make small ops
wait on busy cores (e.g. torch.unique 70x slower), which the figures would show.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from scene_pe.labels.label_set import SCANNET20
from scene_pe.method.clustering import (
    ClusteringConfig,
    MarginClusteringConfig,
    cluster_margin_scene,
    cluster_probabilistic_scene,
)
from scene_pe.method.losses_margin import MarginLossConfig, margin_loss
from scene_pe.method.losses_probabilistic import ProbabilisticLossConfig, probabilistic_loss
from scene_pe.model.build import instance_classes
from scene_pe.model.outputs import MarginOutput, ProbabilisticOutput

INST_CLASSES = instance_classes(SCANNET20)  # what a head output carries


def make_scene(n: int, k: int, rng: np.random.Generator):
    """coords (n, 3), semantic (n,), instance (n,): k boxes + 40% floor/wall voxels."""
    n_obj = int(n * 0.6)
    sizes = np.full(k, n_obj // k)
    sizes[: n_obj - sizes.sum()] += 1
    side = int(np.ceil(np.sqrt(k)))
    centres = np.stack([(np.arange(k) % side) * 1.2, (np.arange(k) // side) * 1.2, np.full(k, 0.5)], 1)
    obj = np.concatenate([c + rng.uniform(-0.35, 0.35, (s, 3)) for c, s in zip(centres, sizes)])
    n_bg = n - n_obj
    bg = np.c_[rng.uniform(-1, side * 1.2, (n_bg, 2)), np.zeros(n_bg)]
    coords = np.concatenate([obj, bg])
    cls = rng.choice(SCANNET20.instance_train_ids, k)
    semantic = np.concatenate([np.repeat(cls, sizes), np.ones(n_bg, dtype=np.int64)])
    instance = np.concatenate([np.repeat(np.arange(k), sizes), np.full(n_bg, -1)])
    return coords, semantic, instance


def trained_outputs(coords, semantic, instance, rng):
    """mu near the centroid (3 cm noise), sigma ~ 5 cm, centre-aware class scores
    and seeds (highest where mu is closest to the instance centre)."""
    mu = coords.copy()
    for j in np.unique(instance[instance >= 0]):
        mu[instance == j] = coords[instance == j].mean(0)
    centre = mu.copy()
    mu = mu + rng.normal(0, 0.03, mu.shape)
    near = np.exp(-((mu - centre) ** 2).sum(1) / (2 * 0.05**2))
    near[instance < 0] = 1.0
    sigma = torch.as_tensor(np.exp(rng.normal(np.log(0.05), 0.2, (len(mu), 3))), dtype=torch.float32)
    logits = torch.as_tensor(rng.normal(0, 1, (len(mu), 20)), dtype=torch.float32)
    logits[torch.arange(len(mu)), torch.as_tensor(semantic)] += torch.as_tensor(2.0 + 4.0 * near, dtype=torch.float32)
    seed = torch.as_tensor(np.where(instance >= 0, near, 0.05), dtype=torch.float32)
    return torch.as_tensor(mu, dtype=torch.float32), sigma, logits, seed


def timed(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--voxels", type=int, default=100_000)
    ap.add_argument("--instances", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    coords, semantic, instance = make_scene(args.voxels, args.instances, rng)
    mu, sigma, logits, seed = trained_outputs(coords, semantic, instance, rng)
    n = len(mu)
    batch = torch.zeros(n, dtype=torch.long)
    sem_t, inst_t = torch.as_tensor(semantic), torch.as_tensor(instance)
    coords_t = torch.as_tensor(coords, dtype=torch.float32)
    print(f"scene: {n} voxels, {args.instances} instances, {args.threads} threads (best of {args.repeat})")

    def prob_step(cfg):
        m, s, lg = (x.clone().requires_grad_() for x in (mu, sigma, logits))
        res = probabilistic_loss(ProbabilisticOutput(m, s, lg, coords_t, batch,
                                                     instance_classes=INST_CLASSES), sem_t, inst_t, cfg)
        res.total.backward()
        return res

    def margin_step():
        e, s, sd, lg = (x.clone().requires_grad_() for x in (mu, sigma, seed, logits))
        res = margin_loss(MarginOutput(e, s, sd, lg, coords_t, batch,
                                       instance_classes=INST_CLASSES), sem_t, inst_t, MarginLossConfig())
        res.total.backward()
        return res

    for name, cfg in (("checkpointed", ProbabilisticLossConfig()),
                      ("no checkpoint", ProbabilisticLossConfig(checkpoint=False))):
        t, res = timed(lambda: prob_step(cfg), args.repeat)
        terms = ", ".join(f"{k}={float(v):.3f}" for k, v in res.terms.items())
        print(f"probabilistic loss fwd+bwd ({name}): {t:.3f} s   [{terms}]")
    t, res = timed(margin_step, args.repeat)
    print(f"margin loss fwd+bwd: {t:.3f} s   [" + ", ".join(f"{k}={float(v):.3f}" for k, v in res.terms.items()) + "]")

    scores = logits.softmax(1)
    t, cl = timed(lambda: cluster_probabilistic_scene(mu, sigma, scores, ClusteringConfig(),
                                                      instance_classes=SCANNET20.train_is_instance), args.repeat)
    print(f"probabilistic clustering: {t:.3f} s, {cl.num_instances} instances")
    margin_sigma = sigma * 2.0  # the margin head learns sigma as the cluster radius
    t, cl = timed(lambda: cluster_margin_scene(mu, margin_sigma, seed, scores, MarginClusteringConfig(),
                                               instance_classes=SCANNET20.train_is_instance), args.repeat)
    print(f"margin clustering: {t:.3f} s, {cl.num_instances} instances")

    # Untrained outputs: every voxel its own Gaussian, random classes; bounded by max_steps.
    raw_scores = torch.as_tensor(rng.normal(0, 1, (n, 20)), dtype=torch.float32).softmax(1)
    cfg = ClusteringConfig()
    t, cl = timed(lambda: cluster_probabilistic_scene(coords_t, sigma, raw_scores, cfg,
                                                      instance_classes=SCANNET20.train_is_instance), 1)
    print(f"probabilistic clustering, untrained outputs: {t:.3f} s, {cl.num_instances} instances "
          f"(max_steps={cfg.max_steps})")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
