"""A trained model on one ``Scan``: frame -> features -> (blocks ->) voxels -> network ->
clusters -> per-vertex prediction, with the time of every stage.

The checkpoint is self-contained: it carries the resolved training config
(voxel size, input features, head, inference settings), read with
``weights_only=True``; ``key.sub=value`` overrides change inference settings.

Input features the model needs but the scan lacks:
  colours  a colour-trained model on a colourless scan gets a warning and the
           constant mid-grey 0.5 (feature 0 after centring: "no colour
           information", not a colour the model has seen on one class);
  normals  from the mesh's faces (area-weighted, as in preprocessing); for a
           point cloud estimated by open3d (30 neighbours within 10 cm) and
           turned towards the scan's centre, as a room's surfaces face it.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from scene_pe.config import Config, InferenceConfig, config_from_text
from scene_pe.data.provenance import CHECKPOINT_KEY
from scene_pe.geometry.normals import estimate_normals, vertex_normals
from scene_pe.data.transforms import build_transforms
from scene_pe.train.checkpoint import CheckpointError, load_checkpoint, load_model_weights
from scene_pe.inference.vertices import (VertexPrediction, network_outputs, predictions_from_outputs, scene_clusters)
from scene_pe.inference.fitting import RECORD_KEY, effective_overrides
from scene_pe.model.build import build_model
from scene_pe.model.precision import amp_dtype
from scene_pe.predict.blocks import merge_blocks, plan_blocks
from scene_pe.predict.frame import FloorConfig, FrameInfo, apply, model_frame
from scene_pe.predict.scan import Scan
from scene_pe.sparse.voxelize import voxelize
from scene_pe.superpoints.segmentator import segment_cloud, segment_mesh
from scene_pe.util.typed_config import ConfigError

NO_COLOUR = 0.5  # colours in [0, 1]; centred to 0 by voxel_features


@dataclass(frozen=True)
class PredictOptions:
    scale: float = 1.0
    up: str = "z"
    align: str = "none"                # none | floor (ScanNet folders: their own txt)
    floor: FloorConfig = FloorConfig()
    max_voxels: int = 1_000_000        # per block
    overlap: float = 2.0               # metres around each block's core
    tiles: int | None = None           # force an n x n block grid
    link_iou: float = 0.5              # merge rule (scene_pe/predict/blocks.py)
    # segment every input as a bare point cloud (its vertices, open3d normals, colours), with the
    # cloud's superpoint mode: a mesh and the same vertices as a cloud then get the same superpoints,
    # so the same objects; a mesh's own segments (segs.json, the mesh segmentator) score a little higher
    cloud_superpoints: bool = False


@dataclass
class Timings:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str, sync: bool = False):
        t0 = time.perf_counter()
        yield
        if sync and torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


@dataclass
class ScanPrediction:
    pred: VertexPrediction
    frame: FrameInfo
    xyz_model: np.ndarray  # (N, 3) float32: the scan in the model's frame
    normals: np.ndarray    # (N, 3) float32 unit normals in the model's frame
    num_blocks: int
    warnings: list[str]
    superpoints: str | None = None  # where the superpoints came from (None: not used)
    superpoint_mode: str = "none"  # the mode used for this input (Predictor.inference_for)


class Predictor:
    """A model and its config, ready to segment scans."""

    def __init__(self, cfg: Config, model: torch.nn.Module, device: torch.device):
        from scene_pe.util.cuda_arch import check_device

        check_device(device)  # before the first kernel: a build without code for this GPU says so
        self.cfg, self.model, self.device = cfg, model.eval(), device
        self.amp_dtype = amp_dtype(cfg.train, device)  # the heads' dtype (model/precision.py)
        self.transforms = build_transforms(cfg.data.val_transforms)
        # which inference thresholds are used and where from (the checkpoint's fit, the command line)
        self.thresholds: dict = {"fitted": [], "command_line": [], "notes": []}
        self.trained_on: dict | None = None  # the checkpoint's record of its training data (data/provenance.py)

    @classmethod
    def from_checkpoint(cls, path: Path, device: str | torch.device = "cpu", overrides: list[str] = (),
                        use_fitted: bool = True) -> "Predictor":
        """The checkpoint's model and config; its fitted inference thresholds (inference/fitting.py)
        apply unless ``use_fitted`` is False or an override sets the same key."""
        device = torch.device(device)
        ck = load_checkpoint(path, "cpu")
        if not isinstance(ck.get("config"), str):
            raise CheckpointError(path, "carries no config (not written by scene_pe's trainer)")
        applied, notes = effective_overrides(ck.get(RECORD_KEY), list(overrides), use_fitted)
        try:
            cfg = config_from_text(ck["config"], applied, source=f"{path} (its config)")
        except ConfigError as e:
            raise CheckpointError(path, str(e)) from None
        model = build_model(cfg)
        load_model_weights(model, ck, path)
        predictor = cls(cfg, model.to(device), device)
        fitted = [o for o in applied if o not in overrides]
        predictor.thresholds = {"fitted": fitted, "command_line": list(overrides), "notes": notes}
        predictor.trained_on = ck.get(CHECKPOINT_KEY)  # None: a checkpoint from before the record
        return predictor

    # ------------------------------------------------------------ features
    def sample(self, scan: Scan, xyz: np.ndarray, frame: FrameInfo, notes: list[str]) -> dict:
        """The sample dict of scene_pe.data.transforms for the scan in the model frame."""
        features = self.cfg.data.voxel.features
        n = len(xyz)
        if scan.colors is not None:
            colors = scan.colors.astype(np.float32) / 255.0
        else:
            colors = np.full((n, 3), NO_COLOUR, np.float32)
            if "colors" in features:
                notes.append(f"{scan.name}: {scan.path}: no colours; the model was trained with colours, so "
                             f"every point gets mid-grey ({NO_COLOUR}): expect lower accuracy")
        # normals also serve the picture (back-face culling), so they are made whether or not the model uses them
        if scan.is_mesh:
            normals = vertex_normals(xyz, scan.faces)
        elif scan.normals is not None:
            r = frame.model_from_input[:3, :3]
            normals = scan.normals.astype(np.float64) @ (r / np.cbrt(np.linalg.det(r))).T
            normals = (normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12))
        else:
            normals = estimate_normals(xyz)
        return {"scene": scan.name, "coords": xyz, "colors": colors, "normals": normals.astype(np.float32)}

    # ------------------------------------------------------------ inference
    def predict_sample(self, sample: dict, t: Timings, inference: InferenceConfig | None = None) -> VertexPrediction:
        inference = inference or self.cfg.inference
        sync = self.device.type == "cuda"
        with t.stage("voxelize"):
            voxels = voxelize([sample], self.cfg.data.voxel).to(self.device)
        with t.stage("network", sync):
            out = network_outputs(self.model, voxels, self.amp_dtype)
        with t.stage("clustering", sync):  # one scene: the batch's rows are the scene's
            clustered = scene_clusters(out, voxels.point_to_voxel[0].cpu().numpy(), voxels.segments[0],
                                       inference)
        with t.stage("devoxelize", sync):
            (pred,) = predictions_from_outputs(out, voxels, inference, [clustered],
                                               label_set=self.cfg.data.labels)
        return pred

    def inference_for(self, scan: Scan, as_cloud: bool = False) -> InferenceConfig:
        """The inference settings for this input: a point cloud without segments (every input with
        ``as_cloud``: PredictOptions.cloud_superpoints) uses ``inference.superpoints_cloud`` as its
        superpoint mode (chosen by measured AP: docs/method.md, "Superpoints per input kind"); meshes
        and scans with segs.json ``inference.superpoints``."""
        inf = self.cfg.inference
        own_segments = scan.is_mesh or scan.segments is not None
        if (own_segments and not as_cloud) or inf.superpoints_cloud == inf.superpoints:
            return inf
        return dataclasses.replace(inf, superpoints=inf.superpoints_cloud)

    def superpoints(self, scan: Scan, xyz: np.ndarray, normals: np.ndarray, as_cloud: bool = False
                    ) -> tuple[np.ndarray | None, str | None]:
        """(per-vertex superpoint ids, where they came from) when this input's mode uses superpoints.

        A mesh is segmented as stored (as ScanNet did); a point cloud in the model frame
        (metres), with its file's normals where it has them, with colour vetoes where it has colours.
        ``as_cloud``: every input as a bare cloud, its normals estimated from its vertices (a mesh's
        face normals or a file's own normals would make its segments differ from the bare cloud's)."""
        if self.inference_for(scan, as_cloud).superpoints == "none":
            return None, None
        if not as_cloud and scan.segments is not None:
            return scan.segments, "segs.json"
        if not as_cloud and scan.is_mesh:
            return segment_mesh(scan.coords, scan.faces), "built-in segmentator (mesh)"
        # a file's own normals are kept; otherwise the segmentator's (not the 10 cm-ball feature normals:
        # they smooth creases, superpoints/segmentator.py)
        own = None if as_cloud or scan.normals is None else normals
        colored = scan.colors is not None
        return (segment_cloud(xyz, own, colors=scan.colors),
                f"built-in segmentator (point cloud, {'normals + colours' if colored else 'normals only'}"
                f"{'; every input as a cloud' if as_cloud else ''})")

    def __call__(self, scan: Scan, opts: PredictOptions, t: Timings, progress: bool = False) -> ScanPrediction:
        notes: list[str] = []
        with t.stage("align"):
            frame = model_frame(scan.coords, opts.scale, opts.up, opts.align, scan.alignment, opts.floor)
            xyz = apply(frame.model_from_input, scan.coords).astype(np.float32)
            sample = self.sample(scan, xyz, frame, notes)
        inference = self.inference_for(scan, opts.cloud_superpoints)
        with t.stage("superpoints"):
            segments, segments_from = self.superpoints(scan, xyz, sample["normals"], opts.cloud_superpoints)
            if segments is not None:
                sample["segment"] = segments
        with t.stage("voxelize"):
            # the config's inference transforms (CenterShift) on the whole scan, before blocks are cut:
            # blocks then share the whole scan's voxel grid, so a block's voxels are the whole's
            sample = self.transforms(sample, np.random.default_rng(0))
            if len(sample["coords"]) != len(xyz):
                raise ValueError(f"data.val_transforms changed the number of points ({len(xyz)} -> "
                                 f"{len(sample['coords'])}); prediction needs every vertex (drop MaxPoints)")
            blocks = plan_blocks(xyz, self.cfg.data.voxel.voxel_size, opts.max_voxels, opts.overlap, opts.tiles)
        preds = []
        if progress and len(blocks) > 1:
            from tqdm import tqdm
            blocks_iter = tqdm(blocks, desc=f"{scan.name} blocks", leave=False, dynamic_ncols=True)
        else:
            blocks_iter = blocks
        for b in blocks_iter:
            part = sample if len(blocks) == 1 else {k: (v[b.members] if isinstance(v, np.ndarray) else v)
                                                    for k, v in sample.items()}
            preds.append(self.predict_sample(part, t, inference))
        with t.stage("devoxelize"):
            pred = merge_blocks(blocks, preds, len(xyz), scan.name, opts.link_iou, self.cfg.inference.min_vertices)
        return ScanPrediction(pred, frame, xyz, sample["normals"], len(blocks), notes, segments_from,
                              inference.superpoints)


__all__ = ["Predictor", "PredictOptions", "ScanPrediction", "Timings"]
