"""Inference: a voxel batch -> network -> clustering -> per-vertex predictions.

For each scene: instances are clustered on voxels (scene_pe.method.clustering),
then devoxelized to every vertex of the mesh; instances covering fewer than
``min_vertices`` vertices are dropped (the benchmark ignores them anyway).
With superpoints (``inference.superpoints``: vote | cluster; scene_pe/superpoints/
pooling.py) every vertex of a superpoint gets the same instance.
Per-vertex semantics are the argmax class of the voxel's scores. Per-vertex
uncertainty is the voxel's: for the probabilistic head the definition chosen
by ``inference.probabilistic.uncertainty`` (scene_pe/method/uncertainty.py),
computed on the final instances (after the ``min_vertices`` drop), for the
margin head 1 - seed; the ``calibrated`` kind is computed per vertex (each
vertex's own assignment, scene_pe/method/error_model.py). A scene whose greedy
clustering was stopped by one of its bounds (``max_steps``, ``max_clusters``)
gets one warning naming the scene, the bound and the counts.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
import torch

from scene_pe.config import InferenceConfig
from scene_pe.labels.label_set import LabelSet
from scene_pe.method.clustering import Clusters, cluster_margin, cluster_probabilistic
from scene_pe.method.uncertainty import calibrated_uncertainty, probabilistic_uncertainty
from scene_pe.model.outputs import HeadOutput, MarginOutput, ProbabilisticOutput, as_float32, select_rows
from scene_pe.model.precision import autocast
from scene_pe.sparse.voxelize import VoxelBatch, majority_label
from scene_pe.method import superpoint_pooling as SP

log = logging.getLogger("scene_pe.inference")


@dataclass
class VertexPrediction:
    """Predictions for every vertex of one scene's mesh."""

    scene: str
    instance: np.ndarray     # (N,) int64 instance index 0..K-1, -1 none
    labels: np.ndarray       # (K,) benchmark class ids of the label set (NYU40 ids for scannet20)
    confidence: np.ndarray   # (K,) float
    semantic: np.ndarray     # (N,) benchmark class id per vertex
    uncertainty: np.ndarray  # (N,) float (see module docstring)
    voxel_instance: np.ndarray | None = None  # (V,) final instance per voxel, as the uncertainty saw them


def cluster(out: HeadOutput, cfg: InferenceConfig) -> list[Clusters]:
    if isinstance(out, ProbabilisticOutput):
        return cluster_probabilistic(out, cfg.probabilistic)
    return cluster_margin(out, cfg.margin)


def scene_rows(out: HeadOutput, rows: slice) -> HeadOutput:
    """The rows (voxels) of one scene of a batch's output."""
    return select_rows(out, rows)


def voxel_uncertainty(out: HeadOutput, instance: np.ndarray, cfg: InferenceConfig) -> np.ndarray:
    """(N,) uncertainty of one scene's voxels; ``instance``: their final instance ids (-1 none)."""
    if isinstance(out, MarginOutput):
        return (1.0 - out.seed).cpu().numpy()
    p = cfg.probabilistic
    return probabilistic_uncertainty(out.mu, out.sigma, out.scores, instance, p.uncertainty, p.rbf_sigma,
                                     instance_classes=out.instance_classes, blend_weight=p.blend_weight)


def uncertainty_name(cfg) -> str:
    """Which per-vertex uncertainty the predictions of a config (``Config``) carry (``voxel_uncertainty``)."""
    if cfg.model.head.type == "margin":
        return "1 - seed"
    return cfg.inference.probabilistic.uncertainty


def small_instance_remap(vertex_instance: np.ndarray, min_vertices: int, k: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(remap, keep) dropping the instances (of ``k``) with fewer than ``min_vertices`` vertices.

    ``remap`` (k + 1,) renumbers the kept ids 0.. and sends dropped ids and -1
    (its last slot) to -1: apply it to per-vertex or per-voxel ids alike.
    """
    keep = np.bincount(vertex_instance[vertex_instance >= 0], minlength=k) >= min_vertices
    remap = np.full(k + 1, -1, dtype=np.int64)
    remap[:k][keep] = np.arange(int(keep.sum()))
    return remap, keep


@torch.no_grad()
def network_outputs(model: torch.nn.Module, voxels: VoxelBatch,
                    amp_dtype: torch.dtype | None = None) -> HeadOutput:
    """The head's outputs for one batch, in float32 whatever precision the heads ran in
    (``amp_dtype``: model/precision.py; None: float32)."""
    device = next(model.parameters()).device
    with autocast(device, amp_dtype):
        out = model(voxels)
    return as_float32(out)  # kernels and clustering run in float32


def predict_batch(model: torch.nn.Module, voxels: VoxelBatch, cfg: InferenceConfig,
                  amp_dtype: torch.dtype | None = None, *,
                  label_set: LabelSet) -> list[VertexPrediction]:
    """Run the model on one batch and return per-vertex predictions for each scene."""
    return predictions_from_outputs(network_outputs(model, voxels, amp_dtype), voxels, cfg, label_set=label_set)


def superpoint_clusters(out: HeadOutput, segment: np.ndarray, local: np.ndarray, cfg: InferenceConfig
                        ) -> tuple[Clusters, np.ndarray]:
    """Superpoint clustering of one scene (scene_pe/method/superpoint_pooling.py): the clusters of its
    superpoints and each vertex's superpoint index."""
    sp_of_vertex, num_superpoints = SP.compact_ids(segment)
    weights = SP.membership(sp_of_vertex, num_superpoints, local, out.batch.shape[0])
    sp_cfg = dataclasses.replace(cfg, probabilistic=SP.superpoint_config(cfg.probabilistic),
                                 margin=SP.superpoint_config(cfg.margin))
    (clusters,) = cluster(SP.pool_output(out, weights), sp_cfg)
    return clusters, sp_of_vertex


Clustered = tuple[Clusters, "np.ndarray | None"]  # (clusters, each vertex's superpoint index or None)


def scene_clusters(out: HeadOutput, local: np.ndarray, segment: np.ndarray | None, cfg: InferenceConfig
                   ) -> Clustered:
    """The clustering ``cfg.superpoints`` asks for, on one scene (``out``: its rows): of superpoints
    in ``cluster`` mode (with each vertex's superpoint index), else of voxels (and None)."""
    if segment is not None and cfg.superpoints == "cluster":
        return superpoint_clusters(out, segment, local, cfg)
    return cluster(out, cfg)[0], None


def scene_prediction(out: HeadOutput, scene: str, local: np.ndarray, semantic: np.ndarray,
                     clustered: Clustered | None, segment: np.ndarray | None, cfg: InferenceConfig,
                     label_set: LabelSet) -> VertexPrediction:
    """One scene's per-vertex prediction from its voxels' outputs (``out``: that scene's rows).

    ``clustered``: ``scene_clusters``' result (computed here when None);
    ``segment``: per-vertex superpoint ids, used as ``cfg.superpoints`` says;
    ``semantic``: per-vertex benchmark ids; instance classes map to ``label_set``'s ids.
    """
    mode = cfg.superpoints if segment is not None else "none"
    clusters, sp_of_vertex = clustered if clustered is not None else scene_clusters(out, local, segment, cfg)
    if clusters.limit:
        log.warning("%s: %s", scene, clusters.limit)
    vertex_inst = clusters.instance.cpu().numpy()[sp_of_vertex if mode == "cluster" else local]
    if mode == "vote":
        vertex_inst = SP.vote(vertex_inst, segment)
    remap, keep = small_instance_remap(vertex_inst, cfg.min_vertices, clusters.num_instances)
    instance = remap[vertex_inst]
    classes = clusters.classes.cpu().numpy()[keep]
    conf = clusters.confidence.cpu().numpy()[keep].astype(np.float64)
    # per-voxel final ids (for the uncertainty): the voxel clusters' own, else their vertices' majority
    inst_vox = remap[clusters.instance.cpu().numpy()] if mode == "none" else \
        majority_label(instance, local, out.batch.shape[0])
    p = cfg.probabilistic
    if isinstance(out, ProbabilisticOutput) and p.uncertainty == "calibrated":  # per vertex (its own assignment)
        uncert = calibrated_uncertainty(out.mu, out.sigma, out.scores, inst_vox, instance, local, p.calibration,
                                        p.rbf_sigma, instance_classes=out.instance_classes)
    else:
        uncert = voxel_uncertainty(out, inst_vox, cfg)[local]
    return VertexPrediction(scene, instance, label_set.train_to_id[classes], conf, semantic, uncert, inst_vox)


def predictions_from_outputs(out: HeadOutput, voxels: VoxelBatch, cfg: InferenceConfig,
                             clustered: list[Clustered] | None = None, *, label_set: LabelSet
                             ) -> list[VertexPrediction]:
    """Clustering (unless ``clustered`` gives each scene's ``scene_clusters``) and devoxelization of a
    batch's outputs (tools/tune_inference.py re-runs only this; tools/predict.py times the two apart)."""
    segments = voxels.segments or [None] * len(voxels.scenes)
    semantic_vox = label_set.train_to_id[out.logits.argmax(dim=1).cpu().numpy()]
    batch = voxels.batch.cpu().numpy()
    bounds = np.searchsorted(batch, np.arange(len(voxels.scenes) + 1))  # scenes are contiguous
    preds = []
    for b, (scene, p2v) in enumerate(zip(voxels.scenes, voxels.point_to_voxel)):
        p2v = p2v.cpu().numpy()
        rows = scene_rows(out, slice(bounds[b], bounds[b + 1]))
        preds.append(scene_prediction(rows, scene, p2v - bounds[b], semantic_vox[p2v],
                                      None if clustered is None else clustered[b], segments[b], cfg,
                                      label_set))
    return preds
