"""Greedy clustering of both heads: exact recovery from ideal outputs, rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scene_pe.labels.label_set import IGNORE_LABEL, SCANNET20
from scene_pe.synthetic.scenes import generate_scene
from scene_pe.method.clustering import (
    ClusteringConfig,
    MarginClusteringConfig,
    cluster_margin,
    cluster_margin_scene,
    cluster_probabilistic,
    cluster_probabilistic_scene,
)
from scene_pe.model.outputs import MarginOutput, ProbabilisticOutput
from scene_pe.model.build import instance_classes

IS_INST = SCANNET20.train_is_instance
INST_CLASSES = instance_classes(SCANNET20)  # what a head output carries

L = SCANNET20.num_classes
WALL, CHAIR, TABLE = 0, 4, 6


def onehot_scores(cls: np.ndarray) -> torch.Tensor:
    p = torch.full((len(cls), L), 1e-4)
    p[torch.arange(len(cls)), torch.as_tensor(cls)] = 1.0
    return p / p.sum(1, keepdim=True)


def ideal_outputs(coords: np.ndarray, semantic: np.ndarray, instance: np.ndarray, seed: int = 0):
    """mu / embedding at the instance centroid (+ 2 mm noise); stuff and
    unlabelled voxels keep their coordinate; unlabelled voxels score as wall."""
    rng = np.random.default_rng(seed)
    mu = coords.copy()
    for k in np.unique(instance[instance >= 0]):
        m = instance == k
        mu[m] = coords[m].mean(0)
    mu += rng.normal(0, 0.002, mu.shape)
    cls = np.where(semantic == IGNORE_LABEL, WALL, semantic)
    seed_map = (instance >= 0).astype(np.float64)
    return torch.as_tensor(mu, dtype=torch.float32), onehot_scores(cls), torch.as_tensor(seed_map, dtype=torch.float32)


def assert_same_partition(pred: torch.Tensor, gt: np.ndarray) -> None:
    pred = pred.numpy()
    assert np.array_equal(pred >= 0, gt >= 0)
    pairs = np.unique(np.stack([pred[gt >= 0], gt[gt >= 0]], 1), axis=0)
    # A bijection between predicted and ground-truth ids.
    assert len(pairs) == len(np.unique(pairs[:, 0])) == len(np.unique(pairs[:, 1])) == len(np.unique(gt[gt >= 0]))


def toy_scene():
    """Three objects (chair, chair, table) 1 m apart, a wall strip next to one chair."""
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0, 0.5], [1.0, 0.0, 0.5], [0.0, 1.0, 0.4]])
    sizes = [120, 90, 150]
    coords = np.concatenate([c + rng.uniform(-0.2, 0.2, (n, 3)) for c, n in zip(centres, sizes)]
                            + [np.c_[rng.uniform(-1, 2, 80), np.full(80, -0.25), rng.uniform(0, 2, 80)]])
    instance = np.repeat([0, 1, 2, -1], sizes + [80])
    semantic = np.repeat([CHAIR, CHAIR, TABLE, WALL], sizes + [80])
    return coords, semantic, instance


def gt_classes(pred: torch.Tensor, classes: torch.Tensor, semantic: np.ndarray) -> None:
    for k, c in enumerate(classes.tolist()):
        assert set(semantic[pred.numpy() == k].tolist()) == {c}


@pytest.mark.parametrize("iso", [True, False])
def test_probabilistic_recovers_ideal_toy_scene(iso):
    coords, semantic, instance = toy_scene()
    mu, scores, _ = ideal_outputs(coords, semantic, instance)
    sigma = torch.full((len(mu), 1 if iso else 3), 0.01)
    res = cluster_probabilistic_scene(mu, sigma, scores, ClusteringConfig(min_size=1, class_from="anchor"),
                                      instance_classes=IS_INST)
    assert_same_partition(res.instance, instance)
    gt_classes(res.instance, res.classes, semantic)
    assert torch.allclose(res.confidence, scores.max(1).values[0].expand(3) ** 2)
    again = cluster_probabilistic_scene(mu, sigma, scores, ClusteringConfig(min_size=1, class_from="anchor"),
                                        instance_classes=IS_INST)
    assert torch.equal(res.instance, again.instance) and torch.equal(res.anchors, again.anchors)


def test_margin_recovers_ideal_toy_scene():
    coords, semantic, instance = toy_scene()
    emb, scores, seed = ideal_outputs(coords, semantic, instance)
    res = cluster_margin_scene(emb, torch.full((len(emb), 3), 0.05), seed, scores,
                               MarginClusteringConfig(min_size=1), instance_classes=IS_INST)
    assert_same_partition(res.instance, instance)
    gt_classes(res.instance, res.classes, semantic)
    assert torch.allclose(res.confidence, scores.max(1).values[0].expand(3))


@pytest.mark.parametrize("head", ["probabilistic", "deterministic", "margin"])
def test_recovers_generated_scene(head):
    scene = generate_scene("scene0000_00", 3, num_vertices_target=15000)
    semantic, instance = scene.training_labels()
    assert len(np.unique(instance)) > 5
    mu, scores, seed = ideal_outputs(scene.aligned_vertices(), semantic, instance)
    batch = torch.zeros(len(mu), dtype=torch.long)
    if head == "margin":
        out = MarginOutput(mu, torch.full((len(mu), 1), 0.05), seed, scores.log(), mu, batch,
                           instance_classes=INST_CLASSES)
        (res,) = cluster_margin(out, MarginClusteringConfig(min_size=1))
    else:
        sigma = torch.full((len(mu), 3), 0.01) if head == "probabilistic" else None
        out = ProbabilisticOutput(mu, sigma, scores.log(), mu, batch, instance_classes=INST_CLASSES)
        (res,) = cluster_probabilistic(out, ClusteringConfig(min_size=1, rbf_sigma=0.01))
    assert_same_partition(res.instance, instance)
    gt_classes(res.instance, res.classes, semantic)


def test_ties_lowest_index_and_per_scene_batch():
    # Two identical scenes in one batch; every voxel has the same score.
    coords, semantic, instance = toy_scene()
    mu, _, _ = ideal_outputs(coords, semantic, instance)
    n = len(mu)
    scores = onehot_scores(np.full(n, CHAIR))
    out = ProbabilisticOutput(torch.cat([mu, mu]), torch.full((2 * n, 1), 0.01), torch.cat([scores, scores]).log(),
                              torch.cat([mu, mu]), torch.repeat_interleave(torch.arange(2), n),
                              instance_classes=INST_CLASSES)
    a, b = cluster_probabilistic(out, ClusteringConfig(min_size=1))
    assert torch.equal(a.instance, b.instance)
    # Anchors are the lowest index of each successive remaining set: 0, then the first voxel of object 1, ...
    # Wall voxels (chair scores here) keep distinct embeddings: one cluster each, in index order.
    assert a.anchors.tolist() == [0, 120, 210] + list(range(360, 440))
    assert int(a.instance[0]) == 0


def test_threshold_min_size_and_stuff_exclusion():
    coords, semantic, instance = toy_scene()
    mu, scores, _ = ideal_outputs(coords, semantic, instance)
    sigma = torch.full((len(mu), 1), 0.01)
    # Object 1 (90 voxels) is dropped by min_size 100; its voxels are not re-seeded.
    res = cluster_probabilistic_scene(mu, sigma, scores, ClusteringConfig(min_size=100), instance_classes=IS_INST)
    assert res.num_instances == 2 and bool((res.instance[120:210] == -1).all())
    # Object 2 scores below the threshold: never an anchor.
    low = scores.clone()
    low[210:360] = onehot_scores(np.full(150, TABLE))[0] * 0 + 1.0 / L
    res = cluster_probabilistic_scene(mu, sigma, low, ClusteringConfig(min_size=1, score_threshold=0.2),
                                      instance_classes=IS_INST)
    assert res.num_instances == 2 and bool((res.instance[210:] == -1).all())
    # Wall voxels sharing an embedding with chair 0: excluded by default, absorbed otherwise.
    mu2 = mu.clone()
    mu2[360:370] = mu[0]
    res = cluster_probabilistic_scene(mu2, sigma, scores, ClusteringConfig(min_size=1), instance_classes=IS_INST)
    assert bool((res.instance[360:] == -1).all())
    res = cluster_probabilistic_scene(mu2, sigma, scores, ClusteringConfig(min_size=1, exclude_stuff=False),
                                      instance_classes=IS_INST)
    assert bool((res.instance[360:370] == res.instance[0]).all())
    # max_steps bounds the loop.
    assert cluster_probabilistic_scene(mu, sigma, scores, ClusteringConfig(min_size=1, max_steps=2),
                                       instance_classes=IS_INST).num_instances == 2


def test_confidence_and_margin_class_rules():
    coords, semantic, instance = toy_scene()
    emb, scores, seed = ideal_outputs(coords, semantic, instance)
    g = torch.Generator().manual_seed(0)
    soft = torch.softmax(torch.randn(len(emb), L, generator=g) + 6 * scores.log().clamp(min=-1), 1)
    sigma = torch.full((len(emb), 3), 0.01)
    res = cluster_probabilistic_scene(emb, sigma, soft, ClusteringConfig(min_size=1, class_from="anchor"),
                                      instance_classes=IS_INST)
    for k, (a, c) in enumerate(zip(res.anchors.tolist(), res.classes.tolist())):
        members = res.instance == k
        assert float(res.confidence[k]) == pytest.approx(float(soft[a, c] * soft[members, c].mean()), rel=1e-6)
    # class_from="members": the members' mean-score vote, confidence = that mean; a wrong
    # class on the anchor (the highest-scored voxel) does not relabel its instance.
    wrong = soft.clone()
    a0 = int(res.anchors[0])
    true_cls = int(res.classes[0])
    other = next(c for c in np.flatnonzero(SCANNET20.train_is_instance).tolist() if c != true_cls)
    wrong[a0] = 0.0
    wrong[a0, other] = 1.0  # now the most confident voxel of the scene, in another class
    anchor_mode = cluster_probabilistic_scene(emb, sigma, wrong, ClusteringConfig(min_size=1, class_from="anchor"),
                                              instance_classes=IS_INST)
    members_mode = cluster_probabilistic_scene(emb, sigma, wrong, ClusteringConfig(min_size=1),
                                               instance_classes=IS_INST)
    assert int(anchor_mode.anchors[0]) == int(members_mode.anchors[0]) == a0
    assert int(anchor_mode.classes[0]) == other and int(members_mode.classes[0]) == true_cls
    inst_cols = torch.as_tensor(np.flatnonzero(SCANNET20.train_is_instance))
    for k, c in enumerate(members_mode.classes.tolist()):
        mean = wrong[members_mode.instance == k][:, inst_cols].mean(0)
        assert c == int(inst_cols[mean.argmax()])
        assert float(members_mode.confidence[k]) == pytest.approx(float(mean.max()), rel=1e-6)
    seed = seed * 0.9
    res = cluster_margin_scene(emb, torch.full((len(emb), 1), 0.05), seed, soft, MarginClusteringConfig(min_size=1),
                               instance_classes=IS_INST)
    for k, c in enumerate(res.classes.tolist()):
        members = res.instance == k
        mean = soft[members][:, inst_cols].mean(0)
        assert c == int(inst_cols[mean.argmax()])
        assert float(res.confidence[k]) == pytest.approx(0.9 * float(mean.max()), rel=1e-6)
    # Seeds below the threshold give no instance.
    res = cluster_margin_scene(emb, torch.full((len(emb), 1), 0.05), seed * 0.5, soft, MarginClusteringConfig(),
                               instance_classes=IS_INST)
    assert res.num_instances == 0 and bool((res.instance == -1).all())


def random_outputs(n: int, d: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(12, 3, generator=g, dtype=torch.float64) * 3
    mu = centres[torch.randint(0, 12, (n,), generator=g)] + torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.08
    sigma = torch.exp(torch.randn(n, d, generator=g, dtype=torch.float64) * 0.5 + np.log(0.05))
    scores = torch.softmax(torch.randn(n, L, generator=g, dtype=torch.float64) * 2, 1)
    seed_map = torch.rand(n, generator=g, dtype=torch.float64)
    return mu, sigma, scores, seed_map


def ref_greedy(score, candidate, row_fn, threshold, min_size):
    """The definition: full kernel rows, argmax over the remaining voxels each step."""
    alive = candidate.clone()
    instance = torch.full((len(score),), -1)
    anchors = []
    while bool(alive.any()):
        a = int(torch.argmax(torch.where(alive, score, torch.full_like(score, -1.0))))
        if float(score[a]) < threshold:
            break
        sel = alive & row_fn(a)
        sel[a] = True
        alive &= ~sel
        if int(sel.sum()) >= min_size:
            instance[sel] = len(anchors)
            anchors.append(a)
    return instance, anchors


@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("exclude_stuff", [True, False])
def test_probabilistic_equals_full_row_definition(d, exclude_stuff):
    from scene_pe.method.kernels import log_bhattacharyya

    mu, sigma, scores, _ = random_outputs(800, d, seed=d)
    cfg = ClusteringConfig(min_size=3, score_threshold=0.15, exclude_stuff=exclude_stuff, class_from="anchor")
    lv = 2 * torch.log(sigma)
    inst_cols = torch.as_tensor(np.flatnonzero(SCANNET20.train_is_instance))
    best, arg = scores[:, inst_cols].max(1)
    cand = torch.as_tensor(IS_INST)[scores.argmax(1)] if exclude_stuff else torch.ones(800, dtype=torch.bool)
    ref_inst, ref_anchors = ref_greedy(
        best, cand, lambda a: log_bhattacharyya(mu, lv, mu[a], lv[a]) >= math.log(cfg.tau),
        cfg.score_threshold, cfg.min_size)
    res = cluster_probabilistic_scene(mu, sigma, scores, cfg, instance_classes=IS_INST)
    assert len(ref_anchors) > 10
    assert torch.equal(res.instance, ref_inst) and res.anchors.tolist() == ref_anchors
    assert res.classes.tolist() == inst_cols[arg[ref_anchors]].tolist()


def test_margin_equals_full_row_definition():
    emb, sigma, scores, seed = random_outputs(800, 3, seed=5)
    cfg = MarginClusteringConfig(min_size=3, seed_threshold=0.3, exclude_stuff=False)

    def row(a):
        return torch.exp(-((emb - emb[a]) ** 2 / (2 * sigma[a] ** 2)).sum(1)) >= cfg.phi_threshold

    ref_inst, ref_anchors = ref_greedy(seed, torch.ones(800, dtype=torch.bool), row, cfg.seed_threshold, cfg.min_size)
    res = cluster_margin_scene(emb, sigma, seed, scores, cfg, instance_classes=IS_INST)
    assert len(ref_anchors) > 10
    assert torch.equal(res.instance, ref_inst) and res.anchors.tolist() == ref_anchors


def test_empty_scene():
    z3, z20 = torch.zeros(0, 3), torch.zeros(0, L)
    for res in (cluster_probabilistic_scene(z3, torch.zeros(0, 3), z20, instance_classes=IS_INST),
                cluster_margin_scene(z3, torch.zeros(0, 1), torch.zeros(0), z20, instance_classes=IS_INST)):
        assert res.num_instances == 0 and res.instance.shape == (0,) and res.confidence.shape == (0,)


def noisy_scene(noise: int = 2500):
    """The toy scene's three objects (scored 0.9) after ``noise`` isolated voxels scored higher (0.95):
    each noise voxel is an anchor whose cluster is itself, dropped by min_size (a poor network's
    scattered confident voxels). The objects are reached only after every noise anchor."""
    coords, semantic, instance = toy_scene()
    obj = instance >= 0
    rng = np.random.default_rng(3)
    noise_xyz = np.c_[np.arange(noise) * 0.5 + 10.0, rng.uniform(0, 1, (noise, 2))]  # 0.5 m apart
    mu = torch.as_tensor(np.concatenate([ideal_outputs(coords, semantic, instance)[0][obj].numpy(), noise_xyz]),
                         dtype=torch.float32)
    cls = np.r_[semantic[obj], np.full(noise, TABLE)]
    p = np.full((len(cls), L), 0.0)
    p[np.arange(len(cls)), cls] = np.r_[np.full(obj.sum(), 0.9), np.full(noise, 0.95)]
    p += (1.0 - p.sum(1, keepdims=True)) / L
    return mu, torch.full((len(cls), 1), 0.01), torch.as_tensor(p, dtype=torch.float32), instance[obj]


def test_dropped_clusters_do_not_starve_the_objects():
    """2,500 dropped anchors before the objects: the old single bound (2,000 steps) ended the loop
    with no object found and no word; the default bounds cluster all three."""
    mu, sigma, scores, gt = noisy_scene()
    res = cluster_probabilistic_scene(mu, sigma, scores, ClusteringConfig(min_size=20), instance_classes=IS_INST)
    assert res.limit == ""
    assert_same_partition(res.instance[: gt.size], gt)
    assert bool((res.instance[gt.size:] == -1).all())


@pytest.mark.parametrize("head", ["probabilistic", "margin"])
def test_bound_hit_is_reported_with_counts(head, caplog):
    mu, sigma, scores, gt = noisy_scene(noise=30)
    if head == "probabilistic":
        run = lambda **kw: cluster_probabilistic_scene(mu, sigma, scores, ClusteringConfig(min_size=20, **kw),  # noqa: E731
                                                       instance_classes=IS_INST)
    else:
        seed = scores.max(1).values
        run = lambda **kw: cluster_margin_scene(mu, torch.full((len(mu), 3), 0.05), seed, scores,  # noqa: E731
                                                MarginClusteringConfig(min_size=20, seed_threshold=0.2, **kw),
                                                instance_classes=IS_INST)
    # 30 dropped anchors, then 3 objects: 32 steps stop before the third object.
    res = run(max_steps=32)
    assert res.num_instances == 2
    assert res.limit.startswith("greedy clustering stopped at max_steps=32: 2 clusters kept, 30 dropped")
    left = int((res.instance[: gt.size] == -1).sum())
    assert left == int((gt == 2).sum()) and f"{left} candidate voxels" in res.limit
    res = run(max_clusters=1)
    assert res.num_instances == 1 and "stopped at max_clusters=1: 1 clusters kept, 30 dropped" in res.limit
    assert run(max_steps=33).limit == "" and run(max_clusters=3).limit == ""  # exactly enough: no word


def test_bound_hit_warns_once_per_scene(caplog):
    """The inference path (tools/test.py, predict) logs a stopped scene by name, once."""
    import logging

    from scene_pe.config import InferenceConfig
    from scene_pe.inference.vertices import scene_prediction

    mu, sigma, scores, gt = noisy_scene(noise=30)
    out = ProbabilisticOutput(mu, sigma, scores.log(), mu, torch.zeros(len(mu), dtype=torch.long),
                              instance_classes=INST_CLASSES)
    cfg = InferenceConfig()
    cfg = type(cfg)(**{**cfg.__dict__, "probabilistic": ClusteringConfig(min_size=20, max_steps=32),
                       "min_vertices": 1})
    local = np.arange(len(mu))
    with caplog.at_level(logging.WARNING, logger="scene_pe.inference"):
        scene_prediction(out, "scene0042_00", local, np.zeros(len(mu), dtype=np.int64), None, None, cfg, SCANNET20)
    lines = [r.getMessage() for r in caplog.records if "greedy clustering stopped" in r.getMessage()]
    assert lines == [f"scene0042_00: {lines[0].split(': ', 1)[1]}"] and "max_steps=32" in lines[0]
