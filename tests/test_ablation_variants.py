"""The two Table 4 rows added for ablations: the 6-D deterministic embedding
("ExtDim") and Neven et al.'s MSE score loss ("Loss"), against loop
references, closed forms and the greedy clustering's definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scene_pe.labels.label_set import IGNORE_LABEL, SCANNET20
from scene_pe.method.clustering import ClusteringConfig, cluster_probabilistic, cluster_probabilistic_scene
from scene_pe.method.kernels import (
    instance_centres,
    log_bhattacharyya,
    log_kappa_to_instances,
    log_rbf,
    rbf_logvar,
)
from scene_pe.method.losses_probabilistic import ProbabilisticLossConfig, probabilistic_loss
from scene_pe.model.heads import HeadConfig, ProbabilisticHead
from scene_pe.model.outputs import ProbabilisticOutput
from scene_pe.model.build import instance_classes

IS_INST = SCANNET20.train_is_instance
INST_CLASSES = instance_classes(SCANNET20)  # what a head output carries

D64 = torch.float64
L = SCANNET20.num_classes
STUFF = int(np.flatnonzero(~SCANNET20.train_is_instance)[0])  # wall
CLS_A, CLS_B = (int(c) for c in SCANNET20.instance_train_ids[:2])


# ---------------------------------------------------------------- kernel
def ref_log_rbf(a: list[float], b: list[float], s: float) -> float:
    return -sum((x - y) ** 2 for x, y in zip(a, b)) / (8 * s * s)


def test_6d_rbf_kernel_forms_equal_loop_reference():
    g = torch.Generator().manual_seed(0)
    mu, c, s = torch.randn(9, 6, generator=g, dtype=D64), torch.randn(4, 6, generator=g, dtype=D64), 0.7
    lv, clv = rbf_logvar(9, s, mu), rbf_logvar(4, s, c)
    table = log_kappa_to_instances(mu, lv, c, clv)
    pair = log_bhattacharyya(mu[:, None], lv[:, None], c[None], clv[None])
    for i in range(9):
        for k in range(4):
            ref = ref_log_rbf(mu[i].tolist(), c[k].tolist(), s)
            assert float(table[i, k]) == pytest.approx(ref, abs=1e-12, rel=1e-12)
            assert float(pair[i, k]) == pytest.approx(ref, abs=1e-12, rel=1e-12)
            assert float(log_rbf(mu[i], c[k], s)) == pytest.approx(ref, abs=1e-12, rel=1e-12)
    # the extra dims are in the sum: the first 3 alone give a different kernel
    assert not torch.allclose(table, log_kappa_to_instances(mu[:, :3], lv, c[:, :3], clv))
    # centres of 6-D embeddings: the mean over all 6 dims, the fixed variance kept
    idx = torch.tensor([0, 1, 1, 0, 2, 2, 2, 1, 0])
    c_mu, c_lv, counts = instance_centres(mu, lv, idx, 3)
    for k in range(3):
        assert torch.allclose(c_mu[k], mu[idx == k].mean(0), rtol=0, atol=1e-15)
    assert torch.allclose(c_lv, torch.full((3, 1), 2 * math.log(s), dtype=D64), rtol=0, atol=1e-14)


# ---------------------------------------------------------------- losses
def targets():
    """Two scenes: instances of two classes, a wall voxel, an unlabelled voxel,
    an instance-class voxel without instance. Every instance has one class."""
    batch = torch.tensor([0] * 7 + [1] * 6)
    semantic = torch.tensor([CLS_A, CLS_A, CLS_A, CLS_B, CLS_B, STUFF, IGNORE_LABEL,
                             CLS_A, CLS_A, CLS_A, CLS_A, CLS_B, STUFF])
    instance = torch.tensor([3, 3, 3, 5, 5, -1, -1, 8, 8, 8, 8, -1, -1])
    return batch, semantic, instance


def ref_rbf_loss(mu, logits, batch, semantic, instance, cfg: ProbabilisticLossConfig) -> float:
    """The deterministic embedding's loss in any dimension, by loops over the equations:
    eq. 5 (BCE), per-instance -log Dice, eq. 11 targets, eq. 12 or Neven's MSE, plain CE."""
    mu, logits = mu.tolist(), logits.tolist()
    s2 = cfg.rbf_sigma**2
    ce_l, dice_l, score_l, sem_l = [], [], [], []
    for s in sorted(set(batch.tolist())):
        pts = [i for i in range(len(batch)) if batch[i] == s and semantic[i] != IGNORE_LABEL]
        groups: dict[int, list[int]] = {}
        for i in pts:
            if instance[i] >= 0:
                groups.setdefault(int(instance[i]), []).append(i)
        q = {i: [0.0] * L for i in pts}
        if groups:
            ce, dices = 0.0, []
            for members in groups.values():
                cls = int(semantic[members[0]])
                c = [sum(mu[i][d] for i in members) / len(members) for d in range(len(mu[0]))]
                inter, tot = 0.0, 0.0
                for i in pts:
                    kap = math.exp(-sum((mu[i][d] - c[d]) ** 2 for d in range(len(c))) / (8 * s2))
                    ce += -math.log(kap) if i in members else -math.log(1 - kap)
                    if i in members:
                        inter += kap
                        q[i][cls] = kap
                    tot += kap + (i in members)
                dices.append(-math.log(2 * inter / tot))
            ce_l.append(ce / (len(pts) * len(groups)))
            dice_l.append(sum(dices) / len(dices))
        score, sem = 0.0, 0.0
        for i in pts:
            y = int(semantic[i])
            if not SCANNET20.train_is_instance[y]:
                q[i][y] = 1.0
            lse = math.log(sum(math.exp(x) for x in logits[i]))
            p = [math.exp(x - lse) for x in logits[i]]
            if cfg.score_loss == "mse":
                score += sum((p[c] - q[i][c]) ** 2 for c in range(L))
            else:
                score += sum(-q[i][c] * math.log(p[c]) for c in range(L))
            sem += -math.log(p[y])
        score_l.append(score / (len(pts) * L))
        sem_l.append(sem / len(pts))
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    return (cfg.w_ins * (mean(ce_l) + mean(dice_l)) + cfg.w_score * mean(score_l)
            + cfg.w_sem * mean(sem_l))


@pytest.mark.parametrize("dim", [3, 6])
@pytest.mark.parametrize("kind", ["centre_aware", "mse"])
def test_deterministic_loss_in_any_dim_equals_loop_reference(dim, kind):
    batch, semantic, instance = targets()
    g = torch.Generator().manual_seed(dim)
    mu = torch.randn(len(batch), dim, generator=g, dtype=D64) * 0.5
    logits = torch.randn(len(batch), L, generator=g, dtype=D64)
    cfg = ProbabilisticLossConfig(rbf_sigma=0.4, w_sem=0.5, w_score=2.0, score_loss=kind, max_pairs=7)
    got = probabilistic_loss(ProbabilisticOutput(mu, None, logits, mu[:, :3], batch,
                                                 instance_classes=INST_CLASSES), semantic, instance, cfg)
    ref = ref_rbf_loss(mu, logits, batch, semantic, instance, cfg)
    assert float(got.total) == pytest.approx(ref, abs=1e-12, rel=1e-10)
    assert float(got.terms["reg"]) == 0.0  # no sigma, no entropy term


def test_mse_score_loss_equals_hand_computed_value():
    """Two voxels of one instance, 6-D embeddings apart only in extra dim 4, placed
    so that kappa to their centre is exactly 1/2; a wall voxel; an unlabelled one."""
    s = 0.1
    half = s * math.sqrt(8 * math.log(2))  # distance to the centre where exp(-d^2 / (8 s^2)) = 1/2
    mu = torch.zeros(4, 6, dtype=D64)
    mu[0, 4], mu[1, 4], mu[2, 0] = half, -half, 5.0
    logits = torch.zeros(4, L, dtype=D64)
    logits[0, CLS_A] = logits[2, STUFF] = math.log(3.0)  # P = 3 / (L + 2) there, 1 / (L + 2) elsewhere
    semantic = torch.tensor([CLS_A, CLS_A, STUFF, IGNORE_LABEL])
    instance = torch.tensor([0, 0, -1, -1])
    batch = torch.zeros(4, dtype=torch.long)
    hi, lo, flat = 3 / (L + 2), 1 / (L + 2), 1 / L
    # Q: 1/2 in class A for voxels 0 and 1, 1 in the wall channel for voxel 2
    mse = ((hi - 0.5) ** 2 + (L - 1) * lo**2 + (flat - 0.5) ** 2 + (L - 1) * flat**2
           + (hi - 1.0) ** 2 + (L - 1) * lo**2) / (3 * L)
    centre_aware = -(0.5 * math.log(hi) + 0.5 * math.log(flat) + math.log(hi)) / (3 * L)
    for kind, expected in (("mse", mse), ("centre_aware", centre_aware)):
        cfg = ProbabilisticLossConfig(rbf_sigma=s, score_loss=kind)
        res = probabilistic_loss(ProbabilisticOutput(mu, None, logits, mu[:, :3], batch,
                                                     instance_classes=INST_CLASSES), semantic, instance, cfg)
        assert float(res.terms["score"]) == pytest.approx(expected, rel=1e-12)


def test_mse_score_loss_gradients():
    """The MSE score term reaches the logits with the analytic softmax gradient and,
    its target being detached, not the embedding; the 6-D instance terms reach mu."""
    batch, semantic, instance = targets()
    g = torch.Generator().manual_seed(4)
    mu = torch.randn(len(batch), 6, generator=g, dtype=D64) * 0.5
    logits = torch.randn(len(batch), L, generator=g, dtype=D64)
    score_only = ProbabilisticLossConfig(w_ins=0.0, w_score=1.0, score_loss="mse", rbf_sigma=0.4)
    rest = ProbabilisticLossConfig(w_score=0.0, w_sem=0.3, rbf_sigma=0.4, max_pairs=5)

    def score(m, lg):
        return probabilistic_loss(ProbabilisticOutput(m, None, lg, m[:, :3], batch,
                                                      instance_classes=INST_CLASSES), semantic, instance,
                                  score_only).total

    def full(m, lg):
        return probabilistic_loss(ProbabilisticOutput(m, None, lg, m[:, :3], batch,
                                                      instance_classes=INST_CLASSES), semantic, instance, rest).total

    assert torch.autograd.gradcheck(lambda lg: score(mu, lg), (logits.clone().requires_grad_(),))
    assert torch.autograd.gradcheck(full, (mu.clone().requires_grad_(), logits.clone().requires_grad_()),
                                    fast_mode=True)
    m = mu.clone().requires_grad_()
    score(m, logits).backward()
    assert torch.equal(m.grad, torch.zeros_like(m))
    m.grad = None
    full(m, logits).backward()
    assert bool((m.grad[:, 3:].abs() > 0).any())  # the extra dims are trained


def test_score_loss_is_validated():
    from scene_pe.config import load_config
    from scene_pe.util.typed_config import ConfigError

    with pytest.raises(ValueError, match="score_loss"):
        ProbabilisticLossConfig(score_loss="l2")
    with pytest.raises(ConfigError, match="loss.probabilistic.score_loss"):
        load_config(None, ["loss.probabilistic.score_loss=l2"])
    assert load_config(None, ["loss.probabilistic.score_loss=mse"]).loss.probabilistic.score_loss == "mse"
    assert load_config(None).loss.probabilistic.score_loss == "centre_aware"


# ---------------------------------------------------------------- head
def test_extdim_head_outputs_a_bounded_6d_embedding():
    cfg = HeadConfig(embedding="deterministic_6d", hidden=8, centre_scale=1.5, num_classes=L)
    torch.manual_seed(0)
    head = ProbabilisticHead(5, cfg, instance_classes(SCANNET20)).double()
    feats = torch.randn(30, 5, dtype=D64) * 3
    coords = torch.randn(30, 3, dtype=D64) * 4
    batch = torch.zeros(30, dtype=torch.long)
    out = head(feats, coords, batch)
    assert out.mu.shape == (30, 6) and out.sigma is None and out.logits.shape == (30, L)
    o = head.offset(feats)
    assert torch.equal(out.mu[:, :3], coords + 1.5 * torch.tanh(o[:, :3]))
    assert torch.equal(out.mu[:, 3:], 1.5 * torch.tanh(o[:, 3:]))  # free dims: not offset from x
    moved = head(feats, coords + 1.0, batch)
    assert torch.allclose(moved.mu[:, :3], out.mu[:, :3] + 1.0, rtol=0, atol=1e-12)
    assert torch.equal(moved.mu[:, 3:], out.mu[:, 3:])
    out.mu[:, 3:].sum().backward()
    w = head.offset[-1].weight.grad
    assert bool((w[3:].abs() > 0).all()) and torch.equal(w[:3], torch.zeros_like(w[:3]))
    # the 3-D deterministic head keeps 3 outputs
    assert ProbabilisticHead(5, HeadConfig(embedding="deterministic", hidden=8, num_classes=L),
                             instance_classes(SCANNET20)).offset[-1].out_features == 3


# ---------------------------------------------------------------- clustering
def onehot_scores(cls: np.ndarray) -> torch.Tensor:
    p = torch.full((len(cls), L), 1e-4)
    p[torch.arange(len(cls)), torch.as_tensor(cls)] = 1.0
    return p / p.sum(1, keepdim=True)


def test_clustering_recovers_instances_separated_only_by_extra_dims():
    """Instances 0 and 1 share their spatial centre and differ in the extra dims
    only: the 6-D clustering separates them exactly, the first 3 dims alone cannot."""
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0.5, 0, 0, 0], [0, 0, 0.5, 0, 0.6, 0], [1.5, 0, 0.5, 0.2, 0, 0]])
    sizes = [60, 45, 70]
    mu = np.concatenate([c + rng.normal(0, 0.002, (n, 6)) for c, n in zip(centres, sizes)]
                        + [np.c_[rng.uniform(-1, 2, (30, 3)), np.zeros((30, 3))]])
    instance = np.repeat([0, 1, 2, -1], sizes + [30])
    cls = np.repeat([CLS_A, CLS_A, CLS_B, STUFF], sizes + [30])
    scores = onehot_scores(cls)
    cfg = ClusteringConfig(min_size=1, rbf_sigma=0.01)
    out = ProbabilisticOutput(torch.as_tensor(mu), None, scores.log(), torch.as_tensor(mu[:, :3]),
                              torch.zeros(len(mu), dtype=torch.long), instance_classes=INST_CLASSES)
    (res,) = cluster_probabilistic(out, cfg)
    pred = res.instance.numpy()
    assert np.array_equal(pred >= 0, instance >= 0)
    for k in range(3):  # a bijection: each GT instance is exactly one predicted instance
        assert len(np.unique(pred[instance == k])) == 1
    assert len(np.unique(pred[instance >= 0])) == 3
    assert sorted(res.classes.tolist()) == sorted([CLS_A, CLS_A, CLS_B])
    merged = cluster_probabilistic_scene(torch.as_tensor(mu[:, :3]), None, scores, cfg, instance_classes=IS_INST)
    together = merged.instance.numpy()[(instance == 0) | (instance == 1)]
    assert merged.num_instances == 2 and len(np.unique(together)) == 1 and together[0] >= 0


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


def test_6d_clustering_equals_full_row_definition():
    """The x-slab prefilter stays exact in 6-D: same instances and anchors as
    evaluating the whole 6-D kernel row at every step."""
    g = torch.Generator().manual_seed(3)
    n = 900
    centres = torch.rand(14, 6, generator=g, dtype=D64) * 2
    centres[7:, :3] = centres[:7, :3]  # pairs of clusters that only the extra dims tell apart
    mu = centres[torch.randint(0, 14, (n,), generator=g)] + torch.randn(n, 6, generator=g, dtype=D64) * 0.04
    scores = torch.softmax(torch.randn(n, L, generator=g, dtype=D64) * 2, 1)
    cfg = ClusteringConfig(min_size=3, score_threshold=0.15, rbf_sigma=0.03, exclude_stuff=False,
                           class_from="anchor")
    inst_cols = torch.as_tensor(SCANNET20.instance_train_ids)
    best, arg = scores[:, inst_cols].max(1)
    ref_inst, ref_anchors = ref_greedy(best, torch.ones(n, dtype=torch.bool),
                                       lambda a: log_rbf(mu, mu[a], cfg.rbf_sigma) >= math.log(cfg.tau),
                                       cfg.score_threshold, cfg.min_size)
    res = cluster_probabilistic_scene(mu, None, scores, cfg, instance_classes=IS_INST)
    assert len(ref_anchors) > 10
    assert torch.equal(res.instance, ref_inst) and res.anchors.tolist() == ref_anchors
    assert res.classes.tolist() == inst_cols[arg[ref_anchors]].tolist()
