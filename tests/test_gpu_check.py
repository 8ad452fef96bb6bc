"""tools/gpu_check.py: the sparse convolution against its closed form, and the timing / DDP code
paths on a tiny scene (on the CPU with gloo without a GPU; on the GPU, and NCCL with 2, with one)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from scene_pe.env import gpu_check as G
from scene_pe.env import minkowski as M

ROOT = Path(__file__).resolve().parents[1]


def test_kernel_offsets_are_the_27_neighbours():
    offsets = M.kernel_offsets()
    assert offsets.shape == (27, 3)
    assert sorted(map(tuple, offsets)) == [tuple(np.array(i) - 1) for i in np.ndindex(3, 3, 3)]


def test_sparse_conv_equals_dense_conv3d_and_a_wrong_kernel_layout_is_caught():
    coords, feats, kernel, out_weight = M.random_points(seed=3, n=800, extent=10)
    sparse = M.sparse_conv(coords, feats, kernel, out_weight, "cpu")
    d = M.compare(sparse, M.dense_conv(coords, feats, kernel, out_weight))
    assert d.ok(1e-5) and d.scale > 1
    assert sparse[2].shape == kernel.shape and float(sparse[1].abs().sum()) > 0
    # the check is not vacuous: the kernel's indices in another order no longer match
    mirrored = M.compare(sparse, M.dense_conv(coords, feats, kernel.flip(0), out_weight))
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
    r = json.loads((tmp_path / "r.json").read_text())
    env = r["environment"]
    assert env["cuda_available"] is torch.cuda.is_available()
    gpu = env["cuda_available"] and env["minkowski_cuda"]  # the timings ran on the GPU
    t = r["training"]
    if not env["cuda_available"]:  # the CPU part, then timings and DDP on the CPU as asked
        assert rc == 0 and "no CUDA device" in out and "all checks passed" in out
        assert sorted(r["checks"]) == ["2-process DDP step (gloo)", "CPU sparse conv = dense conv3d",
                                       "inference", "training steps, float32"]
    elif gpu:  # the GPU checks too: the CUDA convolution, and a DDP step on NCCL with 2+ GPUs
        assert rc == 0 and "no CUDA device" not in out and "all checks passed" in out
        backend = "nccl" if torch.cuda.device_count() >= 2 else "gloo"
        assert sorted(r["checks"]) == sorted([f"2-process DDP step ({backend})", "CPU sparse conv = dense conv3d",
                                              "CUDA sparse conv = CPU sparse conv", "MinkowskiEngine built with CUDA",
                                              "inference", "training steps, float32",
                                              f"training steps, {r['training_amp']['precision']}"]
                                             + [f"MinkowskiEngine has code for GPU {i}"
                                                for i in range(torch.cuda.device_count())])
        assert "AMP (" in out  # float32 and AMP step times side by side
    else:  # a GPU but a CPU-only MinkowskiEngine: that check fails, and says how to fix it
        assert rc == 1 and r["checks"]["MinkowskiEngine built with CUDA"] == {"ok": False, "detail":
                                                                              "no: rebuild it (docs/gpu.md)"}
        assert "1 checks failed: MinkowskiEngine built with CUDA" in out
    assert all(c["ok"] for name, c in r["checks"].items() if name != "MinkowskiEngine built with CUDA")
    assert t["forward"] > 0 and t["backward"] > 0 and t["step"] > 0 and len(t["losses"]) == 2
    # float32 always, and the config's AMP (amp: true) beside it on the GPU only
    assert np.isfinite(t["losses"]).all() and t["precision"] == "float32" and ("training_amp" in r) is bool(gpu)
    assert np.isnan(t["peak_gpu_gib"]) is not gpu
    assert r["inference"]["vertices"] > 0 and r["inference"]["total"] >= r["inference"]["network"]
    assert r["ddp"]["same_weights"] is True
    assert r["ddp"]["backend"] == ("nccl" if gpu and torch.cuda.device_count() >= 2 else "gloo")


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


def fake_env(archs: str, cc: list[int]) -> dict:
    return {"torch": "2.11.0+cu130", "torch_cuda": "13.0", "cuda_available": True, "gpus": ["NVIDIA B200"],
            "compute_capabilities": [cc], "minkowski": "0.5.4", "minkowski_cuda": True,
            "minkowski_library": "/site/MinkowskiEngineBackend/_C.so", "minkowski_archs": archs,
            "minkowski_archs_read_by": "fatbin"}


def test_arch_check_passes_a_served_gpu_and_names_the_rebuild_list_for_another():
    assert M.arch_checks(fake_env("9.0;10.0;12.0+PTX", [10, 0])) == [
        ("MinkowskiEngine has code for GPU 0", True, "compute capability 10.0 runs its sm_100 machine code")]
    (name, ok, detail), = M.arch_checks(fake_env("8.0;8.6;8.9;9.0", [10, 0]))
    assert not ok and 'TORCH_CUDA_ARCH_LIST="8.0;8.6;8.9;9.0;10.0+PTX"' in detail and "NVIDIA B200" in detail
    (_, ok, detail), = M.arch_checks(fake_env("9.0+PTX", [12, 0]))
    assert ok and "JIT-compiles its compute_90 PTX" in detail
    assert M.arch_checks({**fake_env("", [10, 0])}) == []  # nothing read: nothing claimed
    assert M.arch_checks({**fake_env("9.0", [10, 0]), "cuda_available": False}) == []


def test_the_tool_stops_before_cuda_kernels_on_a_gpu_the_build_cannot_serve(monkeypatch, capsys, tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check_tool", ROOT / "tools" / "gpu_check.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr(M, "environment", lambda: fake_env("8.0;8.6;8.9;9.0", [12, 0]))
    ran = []
    monkeypatch.setattr(M, "sparse_conv", lambda *a: ran.append(a[-1]) or (torch.zeros(1),) * 3)
    monkeypatch.setattr(M, "dense_conv", lambda *a: (torch.zeros(1),) * 3)
    rc = tool.main(["--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert rc == 1 and ran == ["cpu"]  # the CPU convolution only: no CUDA kernel was tried
    assert "FAIL MinkowskiEngine has code for GPU 0" in out and 'TORCH_CUDA_ARCH_LIST="8.0;8.6;8.9;9.0;12.0+PTX"' in out
    assert "(CUDA architectures: 8.0;8.6;8.9;9.0); GPUs: NVIDIA B200 (12.0)" in out
    assert json.loads((tmp_path / "r.json").read_text())["checks"]["MinkowskiEngine has code for GPU 0"]["ok"] is False
