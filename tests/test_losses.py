"""Both heads' losses against loop-based references written from the equations."""

from __future__ import annotations

import math

import pytest
import torch

from scene_pe.labels.label_set import IGNORE_LABEL, SCANNET20
from scene_pe.method.losses import split_scenes
from scene_pe.method.losses_margin import MarginLossConfig, margin_loss
from scene_pe.method.lovasz import lovasz_hinge_rows
from scene_pe.method.losses_probabilistic import ProbabilisticLossConfig, probabilistic_loss
from scene_pe.model.outputs import MarginOutput, ProbabilisticOutput
from scene_pe.model.build import instance_classes

INST_CLASSES = instance_classes(SCANNET20)  # what a head output carries

D64 = torch.float64
L = SCANNET20.num_classes


def make_targets(seed: int = 0):
    """Two scenes (14 + 11 voxels) with instances, stuff, unlabelled voxels,
    an instance-class voxel without instance and a stuff 'instance'."""
    batch = torch.tensor([0] * 14 + [1] * 11)
    semantic = torch.tensor([4, 4, 4, 4, 6, 6, 6, 0, 0, 1, IGNORE_LABEL, 4, 6, 19,
                             19, 19, 19, 8, 8, 8, 1, 1, 0, IGNORE_LABEL, 8])
    instance = torch.tensor([10, 10, 10, 10, 3, 3, 3, -1, -1, -1, 10, -1, 3, 9,
                             7, 7, 7, 20, 20, 20, 40, 40, -1, -1, 20])
    # voxel 11: chair class without instance; 13: a one-voxel instance; 40: a floor "instance".
    return batch, semantic, instance


def rand_inputs(n: int, d: int, seed: int, dtype=D64):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, 3, generator=g, dtype=dtype) * 0.5
    raw = torch.randn(n, d, generator=g, dtype=dtype) * 0.5 - 0.5
    logits = torch.randn(n, L, generator=g, dtype=dtype)
    seed_map = torch.rand(n, generator=g, dtype=dtype)
    return mu, raw, logits, seed_map


# ---------------------------------------------------------------- references
def ref_groups(batch, semantic, instance):
    """scene -> (labelled voxel list, {instance id: (class, voxel list)}) by plain loops."""
    out = {}
    for s in sorted(set(batch.tolist())):
        pts = [i for i in range(len(batch)) if batch[i] == s and semantic[i] != IGNORE_LABEL]
        inst = {}
        for i in pts:
            if instance[i] >= 0:
                inst.setdefault(int(instance[i]), []).append(i)
        groups = {}
        for z, members in inst.items():
            votes = [int(semantic[i]) for i in members]
            cls = max(range(L), key=lambda c: (votes.count(c), -c))
            if SCANNET20.train_is_instance[cls]:
                groups[z] = (cls, members)
        out[s] = (pts, groups)
    return out


def ref_kappa(mu_i, s_i, mu_k, var_k):
    """Eq. 1 with the square, per axis; s_i sigma (3,), var_k variance (3,)."""
    val = 1.0
    for d in range(3):
        s_k = math.sqrt(var_k[d])
        beta = ((s_i[d] / s_k + s_k / s_i[d]) / 2) ** -0.5
        val *= beta * math.exp(-((mu_i[d] - mu_k[d]) ** 2) / (4 * (s_i[d] ** 2 + var_k[d])))
    return val


def ref_probabilistic(mu, sigma, logits, batch, semantic, instance, cfg: ProbabilisticLossConfig):
    mu, logits = mu.tolist(), logits.tolist()
    sig = [[row[0]] * 3 if len(row) == 1 else row for row in sigma.tolist()]
    ce_l, dice_l, score_l, sem_l, reg_l = [], [], [], [], []
    for s, (pts, groups) in ref_groups(batch, semantic, instance).items():
        allpts = [i for i in range(len(batch)) if batch[i] == s]
        ents = [1.5 * math.log(2 * math.pi * math.e) + 0.5 * math.log(math.prod(sig[i]) ** 2) for i in allpts]
        reg_l.append(sum(ents) / (len(ents) if cfg.reg_reduction == "mean" else 1))
        q = {i: [0.0] * L for i in pts}
        if groups:
            ce, dices, num, den = 0.0, [], 0.0, 0.0
            for cls, members in groups.values():
                c = [sum(mu[i][d] for i in members) / len(members) for d in range(3)]
                v = [sum(sig[i][d] ** 2 for i in members) / len(members) for d in range(3)]
                inter, tot = 0.0, 0.0
                for i in pts:
                    kap = ref_kappa(mu[i], sig[i], c, v)
                    ce += -math.log(kap) if i in members else -math.log(1 - kap)
                    if i in members:
                        inter += kap
                        q[i][cls] = max(q[i][cls], kap)
                    tot += kap + (i in members)
                dices.append(-math.log(2 * inter / tot))
                num, den = num + inter, den + tot
            ce_l.append(ce / (len(pts) * len(groups)))
            dice_l.append(sum(dices) / len(dices) if cfg.dice == "per_instance" else -math.log(2 * num / den))
        if not pts:
            continue
        score, sem = 0.0, 0.0
        for i in pts:
            y = int(semantic[i])
            if cfg.stuff_target == "onehot" and not SCANNET20.train_is_instance[y]:
                q[i][y] = 1.0
            lse = math.log(sum(math.exp(x) for x in logits[i]))
            score += sum(-q[i][c] * (logits[i][c] - lse) for c in range(L))
            sem += -(logits[i][y] - lse)
        score_l.append(score / (len(pts) * L))
        sem_l.append(sem / len(pts))
    mean = lambda v: sum(v) / len(v) if v else 0.0  # noqa: E731
    ins = mean(ce_l) + mean(dice_l)
    return cfg.w_ins * ins + cfg.w_score * mean(score_l) + cfg.w_reg * mean(reg_l) + cfg.w_sem * mean(sem_l)


def ref_lovasz_extension(errors, labels):
    """Lovasz extension of the Jaccard loss by its threshold-integral definition:
    integral over t >= 0 of Delta({i: m_i >= t}), m = max(errors, 0)."""
    m = [max(e, 0.0) for e in errors]
    pos = {i for i, g in enumerate(labels) if g}

    def delta(mis):
        union = pos | mis
        return len(mis) / len(union) if union else 0.0

    levels = sorted(set(m), reverse=True) + [0.0]
    return sum((hi - lo) * delta({i for i, v in enumerate(m) if v >= hi}) for hi, lo in zip(levels[:-1], levels[1:]))


def ref_margin(emb, sigma, seed, logits, batch, semantic, instance, cfg: MarginLossConfig):
    emb, seed, logits = emb.tolist(), seed.tolist(), logits.tolist()
    sig = [[row[0]] * 3 if len(row) == 1 else row for row in sigma.tolist()]
    lov_l, smooth_l, seed_l, sem_l = [], [], [], []
    for s, (pts, groups) in ref_groups(batch, semantic, instance).items():
        if not pts:
            continue
        target = {i: (0.0, 1.0) for i in pts}
        lovs, smooths = [], []
        for _, members in groups.values():
            c = [sum(emb[i][d] for i in members) / len(members) for d in range(3)]
            sk = [sum(sig[i][d] for i in members) / len(members) for d in range(3)]
            phi = {i: math.exp(-sum((emb[i][d] - c[d]) ** 2 / (2 * sk[d] ** 2) for d in range(3))) for i in pts}
            errors = [1 - (2 * phi[i] - 1) * (1 if i in members else -1) for i in pts]
            lovs.append(ref_lovasz_extension(errors, [i in members for i in pts]))
            smooths.append(sum(sum((math.log(sig[i][d]) - math.log(sk[d])) ** 2 for d in range(3)) / 3
                               for i in members) / len(members))
            for i in members:
                target[i] = (phi[i], cfg.seed_fg_weight)
        if groups:
            lov_l.append(sum(lovs) / len(lovs))
            smooth_l.append(sum(smooths) / len(smooths))
        seed_l.append(sum(w * (seed[i] - t) ** 2 for i, (t, w) in target.items()) / len(pts))
        sem = 0.0
        for i in pts:
            lse = math.log(sum(math.exp(x) for x in logits[i]))
            sem += -(logits[i][int(semantic[i])] - lse)
        sem_l.append(sem / len(pts))
    mean = lambda v: sum(v) / len(v) if v else 0.0  # noqa: E731
    return (cfg.w_lovasz * mean(lov_l) + cfg.w_smooth * mean(smooth_l) + cfg.w_seed * mean(seed_l)
            + cfg.w_sem * mean(sem_l))


# ---------------------------------------------------------------- lovasz
def test_lovasz_hinge_matches_extension_definition():
    g = torch.Generator().manual_seed(11)
    scores = torch.randn(40, 9, generator=g, dtype=D64)
    scores[:5, :4] = 0.25  # ties
    labels = torch.rand(40, 9, generator=g) < 0.4
    labels[0] = False  # no positive
    labels[1] = True  # all positive
    got = lovasz_hinge_rows(scores, labels)
    for r in range(40):
        signs = [1 if b else -1 for b in labels[r].tolist()]
        errors = [1 - s * sg for s, sg in zip(scores[r].tolist(), signs)]
        assert float(got[r]) == pytest.approx(ref_lovasz_extension(errors, labels[r].tolist()), abs=1e-12)


def test_lovasz_extension_equals_jaccard_loss_on_indicator_errors():
    """On a 0/1 error vector 1_M the extension is the set function |M| / |G u M|."""
    g = torch.Generator().manual_seed(12)
    for _ in range(30):
        labels = torch.rand(8, generator=g) < 0.5
        mis = torch.rand(8, generator=g) < 0.5
        signs = labels.double() * 2 - 1
        scores = (1 - mis.double()) * signs  # error = 1 - s * sign = 1 on M, 0 elsewhere
        union = int((labels | mis).sum())
        expected = int(mis.sum()) / union if union else 0.0
        assert float(lovasz_hinge_rows(scores[None], labels[None])[0]) == pytest.approx(expected, abs=1e-12)


def test_lovasz_gradcheck():
    g = torch.Generator().manual_seed(13)
    scores = torch.randn(3, 7, generator=g, dtype=D64, requires_grad=True)
    labels = torch.rand(3, 7, generator=g) < 0.5
    assert torch.autograd.gradcheck(lambda s: lovasz_hinge_rows(s, labels), (scores,))


# ---------------------------------------------------------------- probabilistic
PROB_CONFIGS = [
    ProbabilisticLossConfig(w_reg=0.01, w_sem=0.5),
    ProbabilisticLossConfig(dice="global", stuff_target="none", reg_reduction="sum", w_reg=0.001,
                            max_pairs=13, w_score=2.0),
]


@pytest.mark.parametrize("d", [3, 1])
@pytest.mark.parametrize("cfg", PROB_CONFIGS)
def test_probabilistic_matches_reference(d, cfg):
    batch, semantic, instance = make_targets()
    mu, raw, logits, _ = rand_inputs(len(batch), d, seed=d)
    out = ProbabilisticOutput(mu, torch.exp(raw), logits, mu, batch, instance_classes=INST_CLASSES)
    got = probabilistic_loss(out, semantic, instance, cfg).total
    ref = ref_probabilistic(mu, torch.exp(raw), logits, batch, semantic, instance, cfg)
    assert float(got) == pytest.approx(ref, abs=1e-6, rel=1e-9)


def test_deterministic_is_rbf_with_fixed_sigma():
    batch, semantic, instance = make_targets()
    mu, _, logits, _ = rand_inputs(len(batch), 1, seed=3)
    cfg = ProbabilisticLossConfig(rbf_sigma=0.3)
    got = probabilistic_loss(ProbabilisticOutput(mu, None, logits, mu, batch,
                                                 instance_classes=INST_CLASSES), semantic, instance, cfg).total
    fixed = torch.full((len(batch), 1), 0.3, dtype=D64)
    ref = ref_probabilistic(mu, fixed, logits, batch, semantic, instance, cfg)
    ref -= cfg.w_reg * (1.5 * math.log(2 * math.pi * math.e) + 3 * math.log(0.3))  # no L_Reg without sigma
    assert float(got) == pytest.approx(ref, abs=1e-6, rel=1e-9)


def test_probabilistic_chunking_does_not_change_value_or_gradient():
    batch, semantic, instance = make_targets()
    mu, raw, logits, _ = rand_inputs(len(batch), 3, seed=4)
    grads = []
    for cfg in (ProbabilisticLossConfig(max_pairs=1, checkpoint=True), ProbabilisticLossConfig(checkpoint=False)):
        m, r = mu.clone().requires_grad_(), raw.clone().requires_grad_()
        loss = probabilistic_loss(ProbabilisticOutput(m, torch.exp(r), logits, m, batch,
                                                      instance_classes=INST_CLASSES), semantic, instance, cfg)
        loss.total.backward()
        grads.append((loss.total.detach(), m.grad, r.grad))
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("d", [3, 1])
def test_probabilistic_gradcheck(d):
    """Q is a detached target, so the full gradient is checked with w_score = 0 and
    the score term separately with respect to the logits (Q does not depend on them)."""
    batch, semantic, instance = make_targets()
    mu, raw, logits, _ = rand_inputs(len(batch), d, seed=5)
    cfg = ProbabilisticLossConfig(w_reg=0.1, w_sem=0.3, w_score=0.0, max_pairs=20)
    score_only = ProbabilisticLossConfig(w_ins=0.0, w_reg=0.0, w_score=1.0)

    def f(m, r, lg):
        return probabilistic_loss(ProbabilisticOutput(m, torch.exp(r), lg, m, batch,
                                                      instance_classes=INST_CLASSES), semantic, instance, cfg).total

    def g(lg):
        out = ProbabilisticOutput(mu, torch.exp(raw), lg, mu, batch, instance_classes=INST_CLASSES)
        return probabilistic_loss(out, semantic, instance, score_only).total

    inputs = (mu.requires_grad_(), raw.requires_grad_(), logits.requires_grad_())
    assert torch.autograd.gradcheck(f, inputs, fast_mode=True)
    assert torch.autograd.gradcheck(g, (logits,), fast_mode=True)


def test_score_target_is_detached():
    batch, semantic, instance = make_targets()
    mu, raw, logits, _ = rand_inputs(len(batch), 3, seed=9)
    mu.requires_grad_(), raw.requires_grad_()
    cfg = ProbabilisticLossConfig(w_ins=0.0, w_reg=0.0)
    out = ProbabilisticOutput(mu, torch.exp(raw), logits, mu, batch, instance_classes=INST_CLASSES)
    probabilistic_loss(out, semantic, instance, cfg).total.backward()
    assert torch.equal(mu.grad, torch.zeros_like(mu)) and torch.equal(raw.grad, torch.zeros_like(raw))


# ---------------------------------------------------------------- margin
@pytest.mark.parametrize("d", [3, 1])
def test_margin_matches_reference(d):
    batch, semantic, instance = make_targets()
    emb, raw, logits, seed = rand_inputs(len(batch), d, seed=6)
    for cfg in (MarginLossConfig(), MarginLossConfig(w_smooth=3.0, seed_fg_weight=10.0, max_pairs=13, w_sem=0.2)):
        out = MarginOutput(emb, torch.exp(raw), seed, logits, emb, batch, instance_classes=INST_CLASSES)
        got = margin_loss(out, semantic, instance, cfg).total
        ref = ref_margin(emb, torch.exp(raw), seed, logits, batch, semantic, instance, cfg)
        assert float(got) == pytest.approx(ref, abs=1e-6, rel=1e-9)


def test_margin_gradcheck():
    """The seed target phi and the smoothness target sigma_k are detached: the
    Lovasz + semantic terms are checked against all inputs, the seed term
    against the seed map only."""
    batch, semantic, instance = make_targets()
    emb, raw, logits, seed = rand_inputs(len(batch), 3, seed=7)
    lov = MarginLossConfig(w_smooth=0.0, w_seed=0.0, max_pairs=20)
    seed_only = MarginLossConfig(w_lovasz=0.0, w_smooth=0.0, w_sem=0.0, seed_fg_weight=3.0)

    def f(e, r, lg):
        return margin_loss(MarginOutput(e, torch.exp(r), seed, lg, e, batch,
                                        instance_classes=INST_CLASSES), semantic, instance, lov).total

    def g(sd):
        return margin_loss(MarginOutput(emb, torch.exp(raw), sd, logits, emb, batch,
                                        instance_classes=INST_CLASSES), semantic, instance,
                           seed_only).total

    assert torch.autograd.gradcheck(f, tuple(x.requires_grad_() for x in (emb, raw, logits)), fast_mode=True)
    assert torch.autograd.gradcheck(g, (seed.requires_grad_(),), fast_mode=True)


def test_margin_coords_centre():
    batch, semantic, instance = make_targets()
    emb, raw, logits, seed = rand_inputs(len(batch), 3, seed=8)
    coords = emb + 0.3
    cfg = MarginLossConfig(centre="coords")
    a = margin_loss(MarginOutput(emb, torch.exp(raw), seed, logits, coords, batch,
                                 instance_classes=INST_CLASSES), semantic, instance, cfg)
    # Shifting embedding and coordinates together leaves every phi unchanged.
    b = margin_loss(MarginOutput(emb + 1.0, torch.exp(raw), seed, logits, coords + 1.0, batch,
                                 instance_classes=INST_CLASSES), semantic,
                    instance, cfg)
    c = margin_loss(MarginOutput(emb, torch.exp(raw), seed, logits, emb, batch,
                                 instance_classes=INST_CLASSES), semantic, instance, cfg)
    assert float(a.total) == pytest.approx(float(b.total), rel=1e-12)
    assert float(a.terms["lovasz"]) != pytest.approx(float(c.terms["lovasz"]), rel=1e-3)


# ---------------------------------------------------------------- robustness
def _both_losses(mu, sigma, logits, batch, semantic, instance):
    seed = torch.sigmoid(logits[:, 0])
    pl = probabilistic_loss(ProbabilisticOutput(mu, sigma, logits, mu, batch,
                                                instance_classes=INST_CLASSES), semantic, instance)
    ml = margin_loss(MarginOutput(mu, sigma, seed, logits, mu, batch,
                                  instance_classes=INST_CLASSES), semantic, instance)
    return pl, ml


@pytest.mark.parametrize("scale", [1e-4, 1e3])
def test_extreme_sigma_and_coinciding_embeddings_are_finite(scale):
    batch, semantic, instance = make_targets()
    n = len(batch)
    for mu0 in (torch.randn(n, 3) * 2, torch.zeros(n, 3)):  # zeros: kappa = 1 for negatives
        mu = mu0.clone().requires_grad_()
        sigma = torch.full((n, 3), scale).requires_grad_()
        logits = (torch.randn(n, L) * 50).requires_grad_()
        for res in _both_losses(mu, sigma, logits, batch, semantic, instance):
            res.total.backward()
            assert bool(torch.isfinite(res.total))
            for t in (mu, sigma, logits):
                assert bool(torch.isfinite(t.grad).all())
                t.grad = None


def test_zero_instance_scenes_and_empty_batch():
    batch = torch.tensor([0, 0, 0, 1, 1])
    semantic = torch.tensor([0, 1, IGNORE_LABEL, 0, 0])
    instance = torch.tensor([-1, -1, -1, -1, 5])  # 5 is a wall "instance": dropped
    mu = torch.randn(5, 3, requires_grad=True)
    sigma = torch.full((5, 1), 0.1, requires_grad=True)
    logits = torch.randn(5, L, requires_grad=True)
    pl, ml = _both_losses(mu, sigma, logits, batch, semantic, instance)
    assert float(pl.terms["ins"]) == 0.0 and float(ml.terms["lovasz"]) == 0.0
    assert float(pl.terms["score"]) > 0.0  # stuff one-hot targets still apply
    for res in (pl, ml):
        res.total.backward()
    assert torch.equal(mu.grad, torch.zeros_like(mu))
    assert bool(torch.isfinite(sigma.grad).all()) and bool(torch.isfinite(logits.grad).all())

    empty = dict(mu=torch.zeros(0, 3, requires_grad=True), sigma=torch.zeros(0, 3, requires_grad=True),
                 logits=torch.zeros(0, L, requires_grad=True))
    z = torch.zeros(0, dtype=torch.long)
    for res in _both_losses(empty["mu"], empty["sigma"], empty["logits"], z, z, z):
        assert float(res.total.detach()) == 0.0 and res.total.requires_grad
        res.total.backward()


def test_bad_targets_raise():
    batch = torch.tensor([0, 0, 1, 1])
    mu, sigma, logits = torch.zeros(4, 3), torch.ones(4, 3), torch.zeros(4, L)
    with pytest.raises(ValueError, match="spans several scenes"):
        split_scenes(batch, torch.tensor([4, 4, 4, 4]), torch.tensor([1, 1, 1, 1]), instance_classes(SCANNET20))
    with pytest.raises(ValueError, match="semantic ids"):
        _both_losses(mu, sigma, logits, batch, torch.tensor([0, 25, 1, 1]), torch.full((4,), -1))
    with pytest.raises(ValueError, match="shape"):
        _both_losses(mu, sigma, logits, batch, torch.zeros(3, dtype=torch.long), torch.full((4,), -1))
    with pytest.raises(ValueError):
        ProbabilisticLossConfig(dice="sum")


def test_half_precision_outputs_are_computed_in_float32():
    batch, semantic, instance = make_targets()
    mu, raw, logits, _ = rand_inputs(len(batch), 3, seed=10, dtype=torch.float32)
    ref = probabilistic_loss(ProbabilisticOutput(mu, torch.exp(raw) * 0.01, logits, mu, batch,
                                                 instance_classes=INST_CLASSES), semantic, instance)
    half = ProbabilisticOutput(mu.half().float().half(), (torch.exp(raw) * 0.01).half(), logits.half(), mu, batch,
                               instance_classes=INST_CLASSES)
    got = probabilistic_loss(half, semantic, instance)
    assert got.total.dtype == torch.float32
    assert float(got.total) == pytest.approx(float(ref.total), rel=1e-2)


# ---------------------------------------------------------------- degenerate state (kappa -> 1)
def test_log_one_minus_kappa_exact_then_tangent():
    from scene_pe.method.losses_probabilistic import log_one_minus_kappa

    eps = 1e-6
    x0 = math.log1p(-eps)
    x = torch.tensor([-30.0, -2.0, -1e-3, x0 * 1.5, x0, x0 / 2, -1e-12, 0.0], dtype=D64, requires_grad=True)
    y = log_one_minus_kappa(x, eps)
    for xi, yi in zip(x.tolist(), y.tolist()):
        if xi <= x0:  # exact: log(1 - kappa) by its closed form
            assert yi == pytest.approx(math.log(-math.expm1(xi)), rel=1e-12)
        else:  # the tangent at x0: value log(eps), slope -(1 - eps) / eps
            assert yi == pytest.approx(math.log(eps) - (xi - x0) * (1 - eps) / eps, rel=1e-12)
    y.sum().backward()
    slope = (1 - eps) / eps
    for xi, gi in zip(x.tolist(), x.grad.tolist()):
        want = -math.exp(xi) / -math.expm1(xi) if xi < x0 else -slope  # d/dx log(1 - e^x)
        assert gi == pytest.approx(want, rel=1e-6)
    assert math.isfinite(y[-1].item())  # kappa = 1 exactly: finite


@pytest.mark.parametrize("dtype", [torch.float32, D64])
def test_negative_pair_near_kappa_one_is_pushed_apart(dtype):
    """Two one-voxel instances whose kernel is 1 - 1e-9: L_InsCE's gradient separates them.

    Each voxel is its own centre, so the member terms are constant (log kappa = 0)
    and the whole gradient comes from the two negative pairs. Closed form: with
    x = log kappa = -d^2 / (8 s^2) (equal isotropic sigma s, distance d on one axis),
    d L / d mu_0 = slope / (n k) * (mu_1 - mu_0) / (2 s^2), slope = (1 - eps) / eps.
    """
    from scene_pe.method.losses import split_scenes
    from scene_pe.method.losses_probabilistic import _instance_terms
    from scene_pe.method.kernels import logvar_from_sigma

    s, eps = 0.1, 1e-6
    d = math.sqrt(-8 * s * s * math.log1p(-1e-9))  # kappa = 1 - 1e-9
    mu = torch.tensor([[0.0, 0.0, 0.0], [d, 0.0, 0.0]], dtype=dtype, requires_grad=True)
    logvar = logvar_from_sigma(torch.full((2, 3), s, dtype=dtype))
    batch, semantic, instance = torch.tensor([0, 0]), torch.tensor([4, 4]), torch.tensor([1, 2])
    t = split_scenes(batch, semantic, instance, INST_CLASSES)[0]
    ce, _, _ = _instance_terms(mu, logvar, t, ProbabilisticLossConfig(kappa_eps=eps))
    ce.backward()
    g = mu.grad.double()
    want = (1 - eps) / eps / 4 * d / (2 * s * s)  # n = k = 2
    assert g[0, 0].item() == pytest.approx(want, rel=1e-3)  # gradient towards mu_1: descent moves mu_0 away
    assert g[1, 0].item() == pytest.approx(-want, rel=1e-3)
    assert g[:, 1:].abs().max().item() == 0.0
