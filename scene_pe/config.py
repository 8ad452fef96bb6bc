"""The experiment configuration: typed, validated, loaded from YAML at the edges.

A YAML file in configs/ is a nested mapping of the dataclasses below; it may
name a ``_base_`` file (relative path) whose values it overrides. Every key is
checked: an unknown or mistyped key is a ConfigError naming it. Command-line
overrides ``key.sub=value`` are applied before validation. Code receives the
sub-config it needs (e.g. a HeadConfig), never the whole file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml

from scene_pe.labels.label_set import SCANNETPP_NAME, LabelSet, get_label_set
from scene_pe.labels.folder import stored_classes
from scene_pe.labels.scannetpp import scannetpp_label_set
from scene_pe.data.transforms import SCANNET_TRAIN_SPECS, build_transforms
from scene_pe.method.clustering import ClusteringConfig, MarginClusteringConfig
from scene_pe.method.losses_margin import MarginLossConfig
from scene_pe.method.losses_probabilistic import ProbabilisticLossConfig
from scene_pe.model.heads import HeadConfig
from scene_pe.model.unet import BackboneConfig
from scene_pe.sparse.voxelize import VoxelizeConfig
from scene_pe.util.typed_config import ConfigError, apply_overrides, from_dict, merge, to_dict


def _default_train_transforms() -> list[dict]:
    return [dict(s) for s in SCANNET_TRAIN_SPECS]


@dataclass(frozen=True)
class DataConfig:
    root: str = "data/scannet_preprocessed"  # output folder of tools/preprocess.py
    # the classes (scene_pe/labels/label_set.py): scannet20 (ScanNet v2), scannet200 or scannetpp
    # (ScanNet++); must be the label set the root was preprocessed with (tools/preprocess.py
    # --label-set, or --dataset scannetpp)
    label_set: Literal["scannet20", "scannet200", "scannetpp"] = "scannet20"
    # scannetpp only: its semantic and instance class names, read from the release at preprocessing
    # and recorded in <root>/label_set_classes.json. Empty: read from there; a training run copies
    # them into its config.yaml (with_recorded_classes), so a checkpoint carries its classes.
    classes: list[str] = field(default_factory=list)
    instance_classes: list[str] = field(default_factory=list)
    train_split: str = "train"
    val_split: str = "val"
    voxel: VoxelizeConfig = field(default_factory=VoxelizeConfig)
    train_transforms: list[dict] = field(default_factory=_default_train_transforms)
    val_transforms: list[dict] = field(default_factory=lambda: [{"name": "CenterShift"}])
    batch_size: int = 4
    num_workers: int = 2
    repeat: int = 1  # passes over the training scenes per epoch (small synthetic sets)

    @cached_property  # scannetpp: its record is read once per config, not on every call (per batch)
    def labels(self) -> LabelSet:
        if self.label_set != SCANNETPP_NAME:
            return get_label_set(self.label_set)
        if self.classes:
            return scannetpp_label_set(self.classes, self.instance_classes)
        recorded = stored_classes(self.root)
        if recorded is None:
            raise ValueError(f"data.label_set=scannetpp: no classes in the config and none recorded in "
                             f"{self.root} (preprocess a ScanNet++ release there: tools/preprocess.py "
                             "--dataset scannetpp)")
        return recorded.label_set()

    def validate(self) -> None:
        if (self.classes or self.instance_classes) and self.label_set != SCANNETPP_NAME:
            raise ValueError("data.classes / data.instance_classes are for label_set scannetpp only")
        if self.classes:
            unknown = sorted(set(self.instance_classes) - set(self.classes))
            if unknown or len(set(self.classes)) != len(self.classes):
                raise ValueError(f"data.classes must be distinct and hold the instance classes (not {unknown[:5]})")
        build_transforms(self.train_transforms)  # unknown transform or argument -> error now
        build_transforms(self.val_transforms)
        if self.batch_size < 1 or self.num_workers < 0 or self.repeat < 1:
            raise ValueError("batch_size >= 1, num_workers >= 0 and repeat >= 1 are required")


@dataclass(frozen=True)
class ModelConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)


@dataclass(frozen=True)
class LossConfig:
    probabilistic: ProbabilisticLossConfig = field(default_factory=ProbabilisticLossConfig)
    margin: MarginLossConfig = field(default_factory=MarginLossConfig)
    # weight of the superpoint-consistency term, both heads (method/superpoint_pooling.py); 0: off
    superpoint_weight: float = 0.0


@dataclass(frozen=True)
class InferenceConfig:
    probabilistic: ClusteringConfig = field(default_factory=ClusteringConfig)
    margin: MarginClusteringConfig = field(default_factory=MarginClusteringConfig)
    min_vertices: int = 100  # instances smaller than this on the mesh are dropped (benchmark ignores them)
    score_threshold: float = 0.0  # export: drop instances below this confidence
    max_instances: int = 100  # export: keep the most confident per scene
    # superpoints (scene_pe/method/superpoint_pooling.py): none (the paper: voxels) | vote (voxel
    # clusters, then each superpoint takes its vertices' most common instance) | cluster (greedy
    # clustering of superpoint-pooled outputs). Shipped: cluster, the best on the ScanNet-like
    # benchmark for both heads (docs/results.md, "Superpoints"). Scenes without segments use voxels.
    superpoints: Literal["none", "vote", "cluster"] = "cluster"
    # the mode for point clouds without segs.json (tools/predict.py: the built-in point-cloud
    # segmentator's superpoints, normals + colour edges), chosen by measured AP on the same scans given
    # as clouds (docs/results.md, "Point-cloud superpoints"); meshes and ScanNet folders use `superpoints`
    superpoints_cloud: Literal["none", "vote", "cluster"] = "cluster"


@dataclass(frozen=True)
class FitConfig:
    """Inference thresholds fitted on the val split at the end of training (scene_pe/inference/fitting.py):
    the network runs once per val scene, every grid point re-clusters; the point with the best AP on
    the even half of the sorted val scenes is stored in the checkpoint, which tools/test.py and
    tools/predict.py then use unless overridden (docs/method.md, "Fitted inference thresholds")."""

    enabled: bool = True
    # the grid of the trained head (inference.* keys only; the cartesian product of the values)
    probabilistic: list[str] = field(default_factory=lambda: ["inference.probabilistic.tau=0.1,0.15,0.2,0.25,0.35"])
    margin: list[str] = field(default_factory=lambda: ["inference.margin.phi_threshold=0.2,0.3,0.4,0.5"])
    max_scenes: int = 0  # the first N sorted val scenes with GT (0: all)
    # probabilistic head: also fit the calibrated uncertainty's error model (scene_pe/method/error_model.py)
    uncertainty: bool = True

    def validate(self) -> None:
        for item in self.probabilistic + self.margin:
            if not item.startswith("inference.") or "=" not in item:
                raise ValueError(f"train.fit grid item {item!r}: inference.key=v1,v2,... expected")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 256
    lr: float = 1e-3  # paper: Adam, 1e-3, halved at set epochs
    lr_milestones: list[int] = field(default_factory=lambda: [128, 192, 224])
    lr_gamma: float = 0.5
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # 0 disables
    # Mixed precision (model/precision.py): the heads in amp_dtype, the ME backbone always in
    # float32 (its kernels exist for float32/64 only), losses and kernels in float32. So AMP
    # speeds up the heads' Linear layers only; the backbone, most of a step, runs as without.
    amp: bool = True  # on CUDA; on the CPU only with amp_dtype: bfloat16
    # auto: on CUDA bfloat16 where the GPU has it, else float16 with a GradScaler; off on the CPU
    amp_dtype: Literal["auto", "bfloat16", "float16"] = "auto"
    val_every: int = 8  # epochs; 0: never (tools/ablate.py evaluates the final model itself)
    log_every: int = 10  # steps
    empty_cache_every: int = 50  # steps; CUDA: ME's varying voxel counts fragment the cache
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms (tests, resume checks)
    max_steps: int = 0  # stop after this many steps (0: run all epochs)
    # Wall-clock training budget in minutes (0: none): training stops at the first
    # step past it, or at `epochs`, whichever comes first. Validation time is not
    # counted (configs validating more often must not train less), and the time
    # spent is saved in the checkpoint, so a resumed run continues the same budget.
    max_minutes: float = 0.0
    # A step with a non-finite loss or gradient is skipped (train/faults.py); this many
    # in a row end the run with an error (it has diverged).
    max_bad_steps: int = 20
    fit: FitConfig = field(default_factory=FitConfig)

    def validate(self) -> None:
        if self.max_steps < 0 or self.max_minutes < 0 or self.val_every < 0:
            raise ValueError("max_steps, max_minutes and val_every must be >= 0 (0 disables them)")
        if self.max_bad_steps < 1:
            raise ValueError("max_bad_steps must be >= 1")


@dataclass(frozen=True)
class Config:
    name: str = "experiment"
    run_dir: str = "runs"  # runs/<name>/ holds config, logs, TensorBoard, checkpoints
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        if self.loss.probabilistic.rbf_sigma != self.inference.probabilistic.rbf_sigma:
            raise ValueError("loss.probabilistic.rbf_sigma and inference.probabilistic.rbf_sigma must be "
                             "equal (the deterministic embedding's kernel is trained and clustered with it)")

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir) / self.name


def read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a config file, resolving ``_base_`` (relative to the file) recursively."""
    path = Path(path).resolve()
    if path in seen:
        raise ConfigError(f"{path}: _base_ cycle through {[str(p) for p in seen]}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config {path}: {e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping")
    base = data.pop("_base_", None)
    if base is not None and not isinstance(base, str):
        raise ConfigError(f"{path}: _base_ must be a file name, not {type(base).__name__}")
    if base is not None:
        data = merge(read_yaml(path.parent / base, seen + (path,)), data)
    return data


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Load and validate a config (defaults when ``path`` is None), with overrides."""
    data = read_yaml(Path(path)) if path is not None else {}
    data = apply_overrides(data, list(overrides))
    try:
        return from_dict(Config, data)
    except ConfigError as e:
        raise ConfigError(f"{path or 'defaults'}: {e}") from None


def config_from_text(text: str, overrides: list[str] = (), source: str = "config") -> Config:
    """A config from YAML text (e.g. the one a checkpoint carries), with overrides."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a config must be a mapping")
    try:
        return from_dict(Config, apply_overrides(data, list(overrides)))
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def with_recorded_classes(cfg: Config) -> Config:
    """``cfg`` with ScanNet++'s classes copied from its preprocessed folder into ``data`` (a run's
    config.yaml then carries them to its checkpoints); other label sets unchanged."""
    if cfg.data.label_set != SCANNETPP_NAME or cfg.data.classes:
        return cfg
    labels = cfg.data.labels
    data = replace(cfg.data, classes=list(labels.names), instance_classes=list(labels.instance_names))
    return replace(cfg, data=data)


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
