"""Per-voxel uncertainty definitions (method/uncertainty.py) and their wiring into inference."""

import math

import numpy as np
import pytest
import torch

from scene_pe.config import load_config
from scene_pe.labels.label_set import SCANNET20
from scene_pe.inference.vertices import small_instance_remap
from scene_pe.method.kernels import log_bhattacharyya
from scene_pe.method.uncertainty import centre_kernels, probabilistic_uncertainty
from scene_pe.util.typed_config import ConfigError

IS_INST = SCANNET20.train_is_instance

WALL, CHAIR = 0, 4  # training ids


def loop_reference(mu, sigma, scores, inst, kind, rbf_sigma=0.1):
    """Per voxel, by explicit loops: centres (mean mu, mean variance), kernels, the module's formula."""
    mu = np.asarray(mu, np.float64)
    var = np.full((len(mu), 1), rbf_sigma ** 2) if sigma is None else np.asarray(sigma, np.float64) ** 2
    ks = sorted({int(k) for k in inst if k >= 0})
    cent = {}
    for k in ks:
        members = [i for i in range(len(mu)) if inst[i] == k]
        cent[k] = (np.mean(mu[members], 0), np.mean(var[members], 0))
    out = []
    for i in range(len(mu)):
        kap = {}
        for k in ks:
            c_mu, c_var = cent[k]
            lk = log_bhattacharyya(torch.tensor(mu[i]), torch.tensor(np.log(var[i])),
                                   torch.tensor(c_mu), torch.tensor(np.log(c_var)))
            kap[k] = math.exp(float(lk))
        p_stuff = float(scores[i][0] + scores[i][1])
        if inst[i] >= 0:
            own = kap[inst[i]]
            other = max([v for k, v in kap.items() if k != inst[i]], default=0.0)
            member = max(own - other, 0.0) if kind == "margin" else own
            out.append(1.0 - (1.0 - p_stuff) * member)
        else:
            out.append(1.0 - p_stuff * (1.0 - max(kap.values(), default=0.0)))
        if kind == "blend":  # half membership, half 1 - the largest instance-class probability
            out[-1] = 0.5 * out[-1] + 0.5 * (1.0 - max(float(scores[i][c]) for c in range(len(scores[i]))
                                                      if IS_INST[c]))
    return np.array(out)


def random_scene(rng, n=40, k=3, dims=3):
    mu = rng.normal(0, 0.3, (n, 3))
    sigma = np.exp(rng.normal(np.log(0.1), 0.3, (n, dims)))
    logits = rng.normal(0, 2, (n, SCANNET20.num_classes))
    scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    inst = rng.integers(-1, k, n)
    inst[:k] = np.arange(k)  # every cluster non-empty
    return mu, sigma, scores, inst


@pytest.mark.parametrize("kind", ["membership", "margin", "blend"])
@pytest.mark.parametrize("dims", [3, 1, 0])  # anisotropic, isotropic, deterministic (no sigma)
def test_equals_loop_reference(kind, dims):
    rng = np.random.default_rng(dims)
    mu, sigma, scores, inst = random_scene(rng, dims=max(dims, 1))
    sig = None if dims == 0 else torch.tensor(sigma, dtype=torch.float32)
    got = probabilistic_uncertainty(torch.tensor(mu, dtype=torch.float32), sig,
                                    torch.tensor(scores, dtype=torch.float32), inst, kind, instance_classes=IS_INST)
    want = loop_reference(mu.astype(np.float32), None if dims == 0 else sigma.astype(np.float32),
                          scores.astype(np.float32), inst, kind)
    np.testing.assert_allclose(got, want, atol=2e-6)
    assert ((got >= 0) & (got <= 1)).all()


def test_centre_kernels_chunked_equal_one_chunk():
    rng = np.random.default_rng(1)
    mu, sigma, _, inst = random_scene(rng, n=50, k=7)
    args = (torch.tensor(mu), 2 * torch.log(torch.tensor(sigma)), torch.tensor(inst))
    whole = centre_kernels(*args)
    tiny = centre_kernels(*args, max_pairs=1)  # one centre per chunk
    for a, b in zip(whole, tiny):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)  # batched exp may round apart
    own, other, best = whole
    assert (own[torch.tensor(inst) < 0] == 0).all() and torch.equal(best, torch.maximum(own, other))
    need = torch.tensor(inst) < 0  # only these rows get the other centres' kernels
    sub = centre_kernels(*args, rows_needed=need)
    torch.testing.assert_close(sub[1][need], other[need], rtol=0, atol=1e-15)
    assert (sub[1][~need] == 0).all() and other[~need].max() > 0


def test_pruned_pairs_equal_dense_kernels():
    # a room-sized spread with sigmas from 1 cm to 1 m: the distance bound prunes most pairs
    # (checked) and must keep every kernel >= eps, anisotropic and isotropic alike
    from scene_pe.method.kernels import instance_centres, log_kappa_to_instances
    from scene_pe.method.uncertainty import KAPPA_EPS
    rng = np.random.default_rng(4)
    n, k = 3000, 25
    for dims in (3, 1):
        mu = torch.tensor(rng.uniform(-5, 5, (n, 3)))
        lv = torch.tensor(2 * np.log(rng.choice([0.01, 0.05, 0.2, 1.0], (n, dims))))
        inst = torch.tensor(rng.integers(-1, k, n))
        own, other, best = centre_kernels(mu, lv, inst)
        a = inst >= 0
        c_mu, c_lv, _ = instance_centres(mu[a], lv[a], inst[a], k)
        dense = log_kappa_to_instances(mu, lv, c_mu, c_lv).exp()
        assert (dense < KAPPA_EPS).float().mean() > 0.5  # the test exercises the pruning
        dense[torch.arange(n)[a], inst[a]] = 0.0
        dense = torch.where(dense >= KAPPA_EPS, dense, torch.zeros_like(dense))
        torch.testing.assert_close(other, dense.max(1).values, rtol=1e-9, atol=0)


def test_no_clusters_and_sigma_kind():
    rng = np.random.default_rng(2)
    mu, sigma, scores, _ = random_scene(rng)
    none = np.full(len(mu), -1)
    got = probabilistic_uncertainty(torch.tensor(mu), torch.tensor(sigma), torch.tensor(scores), none, "membership",
                                    instance_classes=IS_INST)
    np.testing.assert_allclose(got, 1.0 - (scores[:, 0] + scores[:, 1]), atol=1e-6)  # kappa max = 0
    geo = probabilistic_uncertainty(torch.tensor(mu), torch.tensor(sigma), torch.tensor(scores), none, "sigma",
                                    instance_classes=IS_INST)
    np.testing.assert_allclose(geo, np.exp(np.log(sigma).mean(1)), rtol=1e-6)
    zero = probabilistic_uncertainty(torch.tensor(mu), None, torch.tensor(scores), none, "sigma",
                                     instance_classes=IS_INST)
    assert (zero == 0).all()


def ideal_two_instances():
    """Two chairs whose voxels embed exactly at their centres (0 and 1 m apart), sigma 0.1,
    confident chair scores; voxel 10 is assigned to A but embeds half-way; voxels 11, 12 are
    unassigned: a confident wall voxel far away, and a chair voxel embedded at B's centre."""
    mu = np.zeros((13, 3))
    mu[5:10, 0] = 1.0
    mu[10, 0] = 0.5
    mu[11] = (5.0, 5.0, 5.0)
    mu[12, 0] = 1.0
    sigma = np.full((13, 3), 0.1)
    logits = np.zeros((13, SCANNET20.num_classes))
    logits[:, CHAIR] = 8.0
    logits[11, CHAIR], logits[11, WALL] = 0.0, 8.0
    inst = np.array([0] * 5 + [1] * 5 + [0, -1, -1])
    return [torch.tensor(a) for a in (mu, sigma, torch.tensor(logits).softmax(1).numpy())] + [inst]


@pytest.mark.parametrize("kind", ["membership", "margin"])
def test_ideal_embeddings_flag_the_ambiguous_voxel(kind):
    mu, sigma, scores, inst = ideal_two_instances()
    u = probabilistic_uncertainty(mu, sigma, scores, inst, kind, instance_classes=IS_INST)
    # closed form: A's centre is the mean of its 6 members, (0.5 / 6, 0, 0); equal sigmas: beta = 1,
    # kappa = exp(-d^2 / (4 (0.01 + 0.01))); p_stuff = 2 / (e^8 + 19) (softmax of the logits)
    p_inst = 1.0 - 2.0 / (math.exp(8.0) + 19.0)
    kappa = lambda d: math.exp(-d * d / 0.08)  # noqa: E731
    member = kappa(0.5 - 0.5 / 6) - (kappa(0.5) if kind == "margin" else 0.0)
    assert u[10] == pytest.approx(1.0 - p_inst * member, abs=1e-6)
    member = kappa(0.5 / 6) - (kappa(1.0) if kind == "margin" else 0.0)
    assert u[0] == pytest.approx(1.0 - p_inst * member, abs=1e-7)
    assert u[10] > 0.85 and u[:10].max() < 0.1  # between two centres vs at (near) a centre
    assert u[11] < 0.01                          # wall correctly left out
    assert u[12] > 0.99                          # a chair voxel on B's centre left out: surely wrong
    # the paper's sigma cannot tell them apart: every voxel has the same sigma
    s = probabilistic_uncertainty(mu, sigma, scores, inst, "sigma", instance_classes=IS_INST)
    assert np.ptp(s) == 0


def test_small_instance_remap_drops_small_clusters_by_vertex_count():
    voxel_cluster = np.array([0, 0, 1, 2, 2, -1])
    p2v = np.array([0, 0, 1, 2, 3, 3, 4, 5, 5])  # vertices per cluster: 0 -> 3, 1 -> 1, 2 -> 3
    remap, keep = small_instance_remap(voxel_cluster[p2v], min_vertices=2, k=3)
    assert keep.tolist() == [True, False, True]
    assert remap[voxel_cluster].tolist() == [0, 0, -1, 1, 1, -1]  # per voxel, as scene_prediction uses it


def test_config_key_typed_and_validated():
    assert load_config().inference.probabilistic.uncertainty == "membership"
    cfg = load_config(None, ["inference.probabilistic.uncertainty=sigma"])
    assert cfg.inference.probabilistic.uncertainty == "sigma"
    with pytest.raises(ConfigError, match="uncertainty"):
        load_config(None, ["inference.probabilistic.uncertainty=entropy"])


def test_blend_on_a_hand_computed_voxel():
    # one voxel, alone in its cluster: its own kernel is 1, so membership = 1 - (1 - p_stuff) = p_stuff
    scores = np.full((1, SCANNET20.num_classes), 0.0)
    scores[0, WALL], scores[0, CHAIR], scores[0, CHAIR + 1] = 0.3, 0.5, 0.2
    args = (torch.zeros(1, 3), torch.full((1, 3), 0.1), torch.tensor(scores, dtype=torch.float32), np.array([0]))
    assert probabilistic_uncertainty(*args, "membership", instance_classes=IS_INST)[0] == pytest.approx(0.3)
    # blend, w = 0.5: 0.5 * 0.3 + 0.5 * (1 - 0.5) = 0.4; w = 0.8: 0.24 + 0.1 = 0.34
    assert probabilistic_uncertainty(*args, "blend", instance_classes=IS_INST)[0] == pytest.approx(0.4)
    assert probabilistic_uncertainty(*args, "blend", instance_classes=IS_INST,
                                     blend_weight=0.8)[0] == pytest.approx(0.34)
