"""Typed configuration: YAML files, validation errors naming the key, overrides."""

from pathlib import Path

import pytest

from scene_pe.config import Config, dump_config, load_config
from scene_pe.util.typed_config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "configs"  # not relative to the working directory
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config) and cfg.name == path.stem


def test_base_inheritance_and_values():
    cfg = load_config(CONFIG_DIR / "scannet_margin.yaml")
    assert cfg.model.head.type == "margin"
    assert cfg.model.backbone.name == "Res16UNet34C"  # inherited from the base file
    assert cfg.data.voxel.voxel_size == 0.02
    assert cfg.train.lr_milestones == [150, 250, 350]


def test_overrides_set_nested_values_with_yaml_types():
    cfg = load_config(CONFIG_DIR / "scannet_probabilistic.yaml",
                      ["train.lr=5e-4", "model.head.embedding=isotropic_homoscedastic",
                       "train.lr_milestones=[1, 2]", "data.voxel.features=[colors, normals]"])
    assert cfg.train.lr == 5e-4
    assert cfg.model.head.embedding == "isotropic_homoscedastic"
    assert cfg.train.lr_milestones == [1, 2]
    assert cfg.data.voxel.in_channels == 6


@pytest.mark.parametrize("override,names", [
    ("train.lr_milestone=[1]", "train.lr_milestone"),
    ("model.head.embeding=deterministic", "model.head.embeding"),
    ("modle.head.type=margin", "modle"),
])
def test_unknown_key_is_an_error_naming_it(override, names):
    with pytest.raises(ConfigError, match=names.replace(".", r"\.")):
        load_config(CONFIG_DIR / "scannet_probabilistic.yaml", [override])


@pytest.mark.parametrize("override,fragment", [
    ("train.lr=fast", "train.lr"),
    ("model.head.type=gaussian", "model.head.type"),
    ("model.backbone.name=Res99", "Res99"),
    ("train.epochs=1.5", "train.epochs"),
    ("data.train_transforms=[{name: RandomSpin}]", "RandomSpin"),
    ("data.voxel.voxel_size=-1", "voxel_size"),
    ("train.val_every=-1", "val_every"),
])
def test_bad_values_are_errors_naming_the_key(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(CONFIG_DIR / "scannet_probabilistic.yaml", [override])


def test_wrong_key_in_a_file_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("_base_: %s\ntrain:\n  learning_rate: 0.1\n" %
                   (CONFIG_DIR / "scannet_probabilistic.yaml"))
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train\.learning_rate"):
        load_config(bad)


def test_dump_and_reload_roundtrip(tmp_path):
    cfg = load_config(CONFIG_DIR / "scannet_margin.yaml", ["train.seed=7"])
    p = tmp_path / "resolved.yaml"
    p.write_text(dump_config(cfg))
    assert load_config(p) == cfg
