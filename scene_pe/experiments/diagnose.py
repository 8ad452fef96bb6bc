"""What a trained head's embeddings look like on held-out scenes, independent of clustering thresholds.

For each held-out scene the network runs once; with the GT instance of each
voxel (majority of its vertices) the statistics below are pooled over voxels of
benchmark instances (and, for sigma, over the other labelled voxels):

- ``own``: the kernel between a voxel and its own GT instance, with the
  instance's centre as the head defines it (probabilistic: eq. 4 mean of mu and
  of the variances, Bhattacharyya kernel; margin: mean embedding and mean
  sigma, phi = exp(-sum (e - C)^2 / (2 sigma_k^2))); ``other``: the largest
  kernel to any other GT instance of the scene.
- ``separable``: the share of instance voxels whose own kernel beats every other
  instance's (a threshold-free measure of the embedding: 1 means the GT
  centres alone would assign every voxel right).
- the share of instance voxels with own >= tau (the clustering's threshold:
  below it a voxel leaves its instance) and with other >= tau (it would join a
  neighbour), at the head's configured threshold.
- sigma quantiles (geometric mean over axes) on instance and on other voxels:
  collapse (-> 0) or blow-up shows here; the mean and spread (std) of log sigma
  over every labelled voxel (per-axis logs averaged), the statistics of the
  entropy regulariser (eq. 8).
- ``neg_pairs_above``: the share of negative (voxel, other GT instance of its
  scene) pairs whose kernel exceeds 0.9: the degenerate solution of eq. 7
  (every kappa -> 1) shows here as a share near 1.

``tools/diagnose.py RUN_DIR`` prints them; ``diagnose_run`` returns them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from scene_pe.method.kernels import instance_centres, log_bhattacharyya, logvar_from_sigma, rbf_logvar
from scene_pe.model.outputs import MarginOutput, as_float32
from scene_pe.model.build import instance_classes


NEG_KAPPA = 0.9  # a negative pair above it counts as degenerate (``neg_pairs_above``)


def _scene_kernels(out, inst: torch.Tensor, cfg) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """(own, best other, sigma) for the voxels with an instance (inst >= 0, ids 0..K-1), and the count
    of negative pairs above NEG_KAPPA and of all negative pairs."""
    m = inst >= 0
    idx = inst[m]
    k = int(idx.max()) + 1
    if isinstance(out, MarginOutput):
        emb, sig = out.embedding[m], out.sigma[m]
        counts = torch.bincount(idx, minlength=k).to(emb.dtype)[:, None]
        c = torch.zeros(k, emb.shape[1], dtype=emb.dtype).index_add(0, idx, emb) / counts
        s = torch.zeros(k, sig.shape[1], dtype=sig.dtype).index_add(0, idx, sig) / counts
        logk = -(((emb[:, None, :] - c[None]) ** 2) / (2 * s[None] ** 2)).sum(-1)  # (n, K)
        sigma = sig
    else:
        mu = out.mu[m]
        logvar = (rbf_logvar(mu.shape[0], cfg.loss.probabilistic.rbf_sigma, mu) if out.sigma is None
                  else logvar_from_sigma(out.sigma[m]))
        c_mu, c_lv, _ = instance_centres(mu, logvar, idx, k)
        logk = log_bhattacharyya(mu[:, None, :], logvar[:, None, :], c_mu[None], c_lv[None])
        sigma = torch.exp(0.5 * logvar)
    rows = torch.arange(len(idx))
    own = logk[rows, idx].clone()
    logk[rows, idx] = -torch.inf
    other = logk.max(dim=1).values if k > 1 else torch.full_like(own, -torch.inf)
    gsig = torch.exp(torch.log(sigma).mean(dim=1))
    high = int((logk > np.log(NEG_KAPPA)).sum())
    return own.exp().numpy(), other.exp().numpy(), gsig.numpy(), high, len(idx) * (k - 1)


def _log_sigma(out, sem: torch.Tensor) -> np.ndarray:
    """Per labelled voxel: the mean over axes of log sigma (empty for the deterministic embedding)."""
    return np.empty(0) if out.sigma is None else torch.log(out.sigma[sem >= 0]).mean(dim=1).numpy()


def _other_sigma(out, sem: torch.Tensor, inst: torch.Tensor) -> np.ndarray:
    """Sigma (geometric mean over axes) of labelled voxels outside benchmark instances."""
    sigma = out.sigma
    if sigma is None:
        return np.empty(0)
    keep = (inst < 0) & (sem >= 0)
    return torch.exp(torch.log(sigma[keep]).mean(dim=1)).numpy()


@torch.no_grad()
def diagnose_run(run_path: Path, max_scenes: int = 0) -> dict:
    """Statistics of ``run_path``/last.pth on its config's val split (see the module doc)."""
    from scene_pe.data.dataset import preprocessed_split
    from scene_pe.train.checkpoint import load_trained_run
    from scene_pe.inference.evaluate import inference_loader

    cfg, model, _ = load_trained_run(run_path)
    scenes = preprocessed_split(Path(cfg.data.root), cfg.data.val_split)
    scenes = scenes[:max_scenes] if max_scenes else scenes
    tau = cfg.inference.probabilistic.tau if cfg.model.head.type == "probabilistic" else 0.5
    is_inst = instance_classes(cfg.data.labels)
    own_l, other_l, sig_l, rest_l, logs_l, neg = [], [], [], [], [], np.zeros(2, dtype=np.int64)
    for voxels, _ in inference_loader(cfg, scenes):
        out = as_float32(model(voxels))
        sem, inst = voxels.semantic, voxels.instance.clone()
        inst[(sem < 0) | ~is_inst[sem.clamp(min=0)]] = -1  # benchmark instance classes only
        if (inst >= 0).any():
            inst[inst >= 0] = torch.unique(inst[inst >= 0], return_inverse=True)[1]
            own, other, sig, high, pairs = _scene_kernels(out, inst, cfg)
            own_l.append(own), other_l.append(other), sig_l.append(sig)
            neg += (high, pairs)
        rest_l.append(_other_sigma(out, sem, inst))
        logs_l.append(_log_sigma(out, sem))
    own, other, sig = np.concatenate(own_l), np.concatenate(other_l), np.concatenate(sig_l)
    rest, logs = np.concatenate(rest_l), np.concatenate(logs_l)
    q = (0.1, 0.5, 0.9)
    return {
        "head": cfg.model.head.type, "embedding": cfg.model.head.embedding, "scenes": len(scenes),
        "voxels": int(len(own)), "tau": tau,
        "separable": float(np.mean(own > other)),
        "own_median": float(np.median(own)), "own_below_tau": float(np.mean(own < tau)),
        "other_above_tau": float(np.mean(other >= tau)),
        "sigma_instance_q10_50_90": [float(v) for v in np.quantile(sig, q)],
        "sigma_other_q10_50_90": [float(v) for v in np.quantile(rest, q)] if len(rest) else None,
        "log_sigma_mean": float(logs.mean()) if len(logs) else None,
        "log_sigma_std": float(logs.std()) if len(logs) else None,
        "neg_pairs_above": float(neg[0] / neg[1]) if neg[1] else None,
    }
