"""Every shipped config loads; the Table 4 configs of configs/ablation/ are their base plus their row's delta."""

from __future__ import annotations

from pathlib import Path

import pytest

from scene_pe.config import Config, load_config
from scene_pe.util.typed_config import to_dict

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
ABLATION = sorted((CONFIGS / "ablation").glob("*.yaml"))
RECIPE = sorted((CONFIGS / "ablation").glob("*/*.yaml"))  # issue 33: entropy/ and baseline/
EVERY = sorted(CONFIGS.glob("*.yaml")) + ABLATION + RECIPE

EMB = ("model", "head", "embedding")
SCORE = ("loss", "probabilistic", "score_loss")
VOXELS = {("inference", "superpoints"): "none"}  # every row clusters voxels, as the paper
# stem -> (base file, keys that differ from the base or are restated)
ROWS = {
    "full_aniso_hetero": ("scannetlike_probabilistic", {EMB: "anisotropic_heteroscedastic", SCORE: "centre_aware"}),
    "aniso_homo": ("scannetlike_probabilistic", {EMB: "anisotropic_homoscedastic"}),
    "iso_hetero": ("scannetlike_probabilistic", {EMB: "isotropic_heteroscedastic"}),
    "iso_homo": ("scannetlike_probabilistic", {EMB: "isotropic_homoscedastic"}),
    "deterministic_3d": ("scannetlike_probabilistic", {EMB: "deterministic"}),
    "deterministic_6d": ("scannetlike_probabilistic", {EMB: "deterministic_6d"}),
    "full_mse_score": ("scannetlike_probabilistic", {EMB: "anisotropic_heteroscedastic", SCORE: "mse"}),
    "margin_baseline": ("scannetlike_margin", {}),
}
REG, MARGIN = ("loss", "probabilistic"), ("loss", "margin")
RECIPE_ROWS = {
    **{f"entropy/w_reg_{w}": ("scannetlike_probabilistic", {(*REG, "w_reg"): float(w), (*REG, "reg_reduction"): "mean"})
       for w in ("0", "0.001", "0.1", "1", "10")},
    "baseline/margin_authors": ("scannetlike_margin", {(*MARGIN, "w_smooth"): 0.4, (*MARGIN, "seed_fg_weight"): 10.0,
                                                       (*MARGIN, "centre"): "coords"}),
    "baseline/margin_ours": ("scannetlike_margin", {(*MARGIN, "w_smooth"): 1.0, (*MARGIN, "seed_fg_weight"): 1.0,
                                                    (*MARGIN, "centre"): "embedding"}),
    "baseline/probabilistic": ("scannetlike_probabilistic", {}),
}


def base_plus_delta(rel: str, base_name: str, delta: dict) -> None:
    got = to_dict(load_config(CONFIGS / "ablation" / f"{rel}.yaml"))
    want = to_dict(load_config(CONFIGS / f"{base_name}.yaml"))
    for keys, value in delta.items():
        node = want
        for k in keys[:-1]:
            node = node[k]
        assert keys[-1] in node, keys
        node[keys[-1]] = value
    want["name"] = got["name"]
    assert got == want, rel


@pytest.mark.parametrize("path", EVERY, ids=[str(p.relative_to(CONFIGS)) for p in EVERY])
def test_every_config_loads(path):
    assert isinstance(load_config(path), Config)


def test_ablation_configs_are_base_plus_delta():
    assert sorted(p.stem for p in ABLATION) == sorted(ROWS)
    for stem, (base_name, delta) in ROWS.items():
        base_plus_delta(stem, base_name, {**delta, **VOXELS})
    # both bases (so every row) read the harder benchmark with the same backbone and voxels
    sections = [(c.data, c.model.backbone) for c in map(load_config, ABLATION)]
    assert all(s == sections[0] for s in sections)


def test_recipe_configs_are_base_plus_delta():
    """The w_reg sweep and the baseline comparison (docs/results.md, "The paper's recipe"): each row is its
    base with only the keys it names, so a changed base changes every row alike."""
    assert sorted(str(p.relative_to(CONFIGS / "ablation"))[:-5] for p in RECIPE) == sorted(RECIPE_ROWS)
    for rel, (base_name, delta) in RECIPE_ROWS.items():
        base_plus_delta(rel, base_name, delta)


def test_config_names_are_distinct():
    names = [load_config(p).name for p in EVERY]
    assert len(names) == len(set(names)), sorted(names)
