"""Shared fixtures: a small generated ScanNet-format dataset, preprocessed once per session."""

from pathlib import Path

import pytest

from scene_pe.data.preprocess import run_preprocess
from scene_pe.data.scannet import load_label_map
from scene_pe.synthetic.scenes import generate_dataset


def make_preprocessed(root: Path, num_train: int, num_val: int, num_test: int = 0, seed: int = 0,
                      num_vertices=(20000, 24000)) -> Path:
    raw, pre = root / "raw", root / "pre"
    splits = generate_dataset(raw, num_train, num_val, num_test, seed=seed, num_vertices=num_vertices)
    summary = run_preprocess(raw, pre, splits, load_label_map(raw / "scannetv2-labels.combined.tsv"),
                             workers=1, progress=False)
    assert summary.ok, summary.format()
    return pre


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """2 train + 1 val + 1 test generated scenes (~20k vertices), preprocessed."""
    return make_preprocessed(tmp_path_factory.mktemp("small"), 2, 1, 1)
