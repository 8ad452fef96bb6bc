"""tools/gpu_check.py's CPU part: the sparse convolution against its closed form, and the
timing / DDP code paths on a tiny scene (no GPU here: they run on the CPU with gloo)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from scene_pe.engine import gpu_check as G

ROOT = Path(__file__).resolve().parents[1]


def test_kernel_offsets_are_the_27_neighbours():
    offsets = G.kernel_offsets()
    assert offsets.shape == (27, 3)
    assert sorted(map(tuple, offsets)) == [tuple(np.array(i) - 1) for i in np.ndindex(3, 3, 3)]


def test_sparse_conv_equals_dense_conv3d_and_a_wrong_kernel_layout_is_caught():
    coords, feats, kernel, out_weight = G.random_points(seed=3, n=800, extent=10)
    sparse = G.sparse_conv(coords, feats, kernel, out_weight, "cpu")
    d = G.compare(sparse, G.dense_conv(coords, feats, kernel, out_weight))
    assert d.ok(1e-5) and d.scale > 1
    assert sparse[2].shape == kernel.shape and float(sparse[1].abs().sum()) > 0
    # the check is not vacuous: the kernel's indices in another order no longer match
    mirrored = G.compare(sparse, G.dense_conv(coords, feats, kernel.flip(0), out_weight))
    assert not mirrored.ok(1e-2)


def test_tool_on_the_cpu_times_training_inference_and_ddp(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_check_tool", ROOT / "tools" / "gpu_check.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    threads = torch.get_num_threads()
    rc = tool.main(["--vertices", "3000", "--batch", "1", "--steps", "1", "--repeats", "1",
                    "--cpu-timings", "--ddp-on-cpu", "--json", str(tmp_path / "r.json"),
                    "model.backbone.name=Res16UNet14A"])
    torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert rc == 0 and "no CUDA device" in out and "all checks passed" in out
    r = json.loads((tmp_path / "r.json").read_text())
    assert all(c["ok"] for c in r["checks"].values()) and len(r["checks"]) == 4
    t = r["training"]
    assert t["forward"] > 0 and t["backward"] > 0 and t["step"] > 0 and len(t["losses"]) == 2
    assert np.isfinite(t["losses"]).all() and t["amp"] is False
    assert r["inference"]["vertices"] > 0 and r["inference"]["total"] >= r["inference"]["network"]
    assert r["ddp"]["same_weights"] is True and r["ddp"]["backend"] == "gloo"


def test_saved_scene_round_trip_and_a_wrong_file_is_named(tmp_path):
    rng = np.random.default_rng(0)
    sample = {"coords": rng.random((50, 3), dtype=np.float32), "colors": rng.random((50, 3), dtype=np.float32),
              "semantic": rng.integers(-100, 20, 50), "instance": rng.integers(-1, 5, 50), "extra": 1}
    G.save_sample(tmp_path / "s.npz", sample)
    back = G.load_sample(tmp_path / "s.npz")
    assert set(back) == {"scene", *G.SAMPLE_KEYS}
    for k in G.SAMPLE_KEYS:
        np.testing.assert_array_equal(back[k], sample[k])
        assert back[k].dtype == sample[k].dtype
    np.savez(tmp_path / "bad.npz", coords=sample["coords"])
    with pytest.raises(ValueError, match=r"bad\.npz: not a scene .*missing \['colors'"):
        G.load_sample(tmp_path / "bad.npz")
