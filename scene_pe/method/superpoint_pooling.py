"""Superpoint-aware inference: per-voxel head outputs -> superpoints -> instances -> vertices.

How voxels, vertices and superpoints meet: a superpoint is a set of mesh
vertices; each vertex lies in exactly one voxel; a voxel may hold vertices of
several superpoints and a superpoint spans many voxels. A superpoint's output
is the mean over *its vertices* of their voxels' outputs, i.e. every voxel
weighted by how many of the superpoint's vertices it holds (a sparse
superpoint x voxel count matrix, ``membership``).

Two modes (``inference.superpoints``):
  vote     cluster voxels as usual; every superpoint then takes the most common
           instance of its vertices (-1, no instance, counts as a candidate);
  cluster  pool the outputs to superpoints and run the same greedy clustering
           on superpoints: probabilistic head: mean of mu, mean of the variances
           (the paper's instance centre, eq. 4), mean of the class scores;
           margin head: mean embedding, sigma and seed, mean scores. Every
           vertex takes its superpoint's instance. ``min_size`` counts
           superpoints here (1); small instances go by ``min_vertices`` after.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse
import torch

from scene_pe.model.outputs import HeadOutput, MarginOutput, ProbabilisticOutput

def compact_ids(segment: np.ndarray) -> tuple[np.ndarray, int]:
    """Segment ids of any values -> 0..S-1 (in order of value), and S."""
    ids, inverse = np.unique(segment, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), len(ids)


def membership(seg: np.ndarray, s: int, p2v: np.ndarray, num_voxels: int) -> scipy.sparse.csr_matrix:
    """(S, M) float64: row s, column v = the share of superpoint s's vertices lying in voxel v
    (``seg``, ``s``: the vertices' superpoints as ``compact_ids`` gives them)."""
    counts = scipy.sparse.coo_matrix((np.ones(len(seg)), (seg, p2v)), shape=(s, num_voxels)).tocsr()
    counts.sum_duplicates()
    size = np.asarray(counts.sum(axis=1)).ravel()
    return scipy.sparse.diags(1.0 / size) @ counts


def pool(weights: scipy.sparse.csr_matrix, values: torch.Tensor) -> torch.Tensor:
    """(S, ...) weighted means of per-voxel ``values`` (M, ...)."""
    v = values.detach().cpu().double().numpy()
    flat = v.reshape(v.shape[0], -1)
    return torch.from_numpy(np.asarray(weights @ flat).reshape((weights.shape[0],) + v.shape[1:]))


def pool_output(out: HeadOutput, weights: scipy.sparse.csr_matrix) -> HeadOutput:
    """One scene's head output pooled to its superpoints (module docstring)."""
    s = weights.shape[0]
    scores = pool(weights, out.scores).clamp_min(1e-12)
    common = dict(logits=scores.log().float(), coords=pool(weights, out.coords).float(),
                  batch=torch.zeros(s, dtype=torch.long), instance_classes=out.instance_classes.cpu())
    if isinstance(out, ProbabilisticOutput):
        sigma = None if out.sigma is None else pool(weights, out.sigma.double() ** 2).sqrt().float()
        return ProbabilisticOutput(mu=pool(weights, out.mu).float(), sigma=sigma, **common)
    return MarginOutput(embedding=pool(weights, out.embedding).float(), sigma=pool(weights, out.sigma).float(),
                        seed=pool(weights, out.seed).float(), **common)


def vote(instance: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Per vertex: the most common instance (-1 included) of its superpoint's vertices (ties: smallest)."""
    seg, s = compact_ids(segment)
    k = int(instance.max(initial=-1)) + 2  # columns: -1, 0, ..., max
    counts = np.bincount(seg * k + (instance.astype(np.int64) + 1), minlength=s * k).reshape(s, k)
    return (counts.argmax(axis=1) - 1)[seg]  # argmax: the first maximum, the smallest id


def superpoint_config(cfg):
    """The clustering config for superpoints: a cluster may be a single superpoint."""
    return dataclasses.replace(cfg, min_size=1)


def consistency_loss(embedding: torch.Tensor, point_to_voxel: list[torch.Tensor],
                     segments: list[np.ndarray | None]) -> torch.Tensor:
    """Training switch (``loss.superpoint_weight``): the spread of the embedding within superpoints.

    For each scene with superpoints: every superpoint's vertex-weighted variance of
    its voxels' embeddings (sum over the 3 axes, m^2), averaged over the superpoints
    of the batch. Zero when the embedding is constant on every superpoint, as an
    ideal one is (ScanNet's instances are unions of superpoints).
    """
    terms = []
    for p2v, seg in zip(point_to_voxel, segments):
        if seg is None:
            continue
        ids, s = compact_ids(seg)
        idx = torch.from_numpy(ids).to(embedding.device)
        e = embedding[p2v.to(embedding.device), :3].float()  # per vertex: its voxel's embedding
        counts = torch.bincount(idx, minlength=s).to(e.dtype)
        mean = torch.zeros(s, 3, device=e.device, dtype=e.dtype).index_add_(0, idx, e) / counts[:, None]
        spread = torch.zeros(s, device=e.device, dtype=e.dtype).index_add_(0, idx, ((e - mean[idx]) ** 2).sum(1))
        terms.append((spread / counts).mean())  # per superpoint its variance; mean over superpoints
    if not terms:
        return embedding.sum() * 0.0
    return torch.stack(terms).mean()
