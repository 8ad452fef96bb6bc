"""tools/minkowski/build_wheel.py's parts that decide what is unpacked and what the compiler sees:
the sdist's members checked before extraction (with and without tarfile's data filter), the CUDA
toolkit taken from PyPI's wheels (its CUDA_HOME, its requirement, the unversioned library links)."""

import io
import os
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools" / "minkowski"))
import build_wheel as BW  # noqa: E402


def archive(tmp_path, members) -> Path:
    path = tmp_path / "sdist.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = 2
                tar.addfile(info, io.BytesIO(b"ok"))
    return path


@pytest.mark.parametrize("with_filter", [True, False])  # Python >= 3.11.4, and Debian 12's 3.11.2
@pytest.mark.parametrize("bad", [("../evil", "file"), ("/tmp/abs_evil", "file"), ("pkg/link", "link")])
def test_sdist_members_outside_the_folder_or_links_are_refused_before_anything_is_written(
        tmp_path, monkeypatch, with_filter, bad):
    if not with_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python's tarfile has no data filter")
    path = archive(tmp_path, [("pkg/setup.py", "file"), bad])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SystemExit):
        BW.extract_checked(path, out)
    assert not any(out.iterdir())  # checked before extraction: nothing at all was written
    assert not (tmp_path / "evil").exists() and not Path("/tmp/abs_evil").exists()


@pytest.mark.parametrize("with_filter", [True, False])
def test_a_plain_sdist_unpacks_whole(tmp_path, monkeypatch, with_filter):
    if not with_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    path = archive(tmp_path, [("pkg/setup.py", "file"), ("pkg/src/a.cpp", "file")])
    BW.extract_checked(path, tmp_path)
    assert (tmp_path / "pkg/setup.py").read_bytes() == b"ok" and (tmp_path / "pkg/src/a.cpp").exists()


def test_the_pypi_toolkit_requirement_is_torchs_own_cuda_toolkit_release(monkeypatch):
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "requires", lambda name: [
        "filelock", 'cuda-toolkit[cublas,cudart,cufft]==13.0.3; platform_system == "Linux"'])
    assert BW.pypi_toolkit_requirement() == "cuda-toolkit[nvcc,cccl,cudart]==13.0.3"
    monkeypatch.setattr(importlib.metadata, "requires", lambda name: ["filelock", "sympy>=1.13"])  # a CPU build
    with pytest.raises(SystemExit):
        BW.pypi_toolkit_requirement()


def fake_wheel_toolkit(root: Path) -> Path:
    """A CUDA 13 toolkit laid out as PyPI's wheels install it: nvidia/cu13/{bin,include,lib}."""
    home = root / "nvidia" / "cu13"
    for d in ("bin", "include/cccl", "lib"):
        (home / d).mkdir(parents=True)
    (home / "bin" / "nvcc").write_text("")
    for name in ("cuda_runtime.h", "cusparse.h", "cublas_v2.h"):
        (home / "include" / name).write_text("")
    for so in ("libcudart.so.13", "libcusparse.so.12", "libcublas.so.13"):
        (home / "lib" / so).write_text("")
    return home


def test_cuda_home_is_the_variable_else_the_wheel_toolkit(tmp_path, monkeypatch):
    home = fake_wheel_toolkit(tmp_path)
    monkeypatch.setattr(BW, "pypi_cuda_home", lambda: home)
    monkeypatch.setenv("CUDA_HOME", "/opt/my-cuda")
    BW.choose_cuda_home(install_pypi=False)
    assert os.environ["CUDA_HOME"] == "/opt/my-cuda"  # the user's choice is kept
    monkeypatch.delenv("CUDA_HOME")
    BW.choose_cuda_home(install_pypi=False)
    assert os.environ["CUDA_HOME"] == str(home)


def test_wheel_libraries_get_the_unversioned_names_the_linker_wants(tmp_path, monkeypatch):
    import torch.utils.cpp_extension as ext

    home = fake_wheel_toolkit(tmp_path)
    monkeypatch.setattr(ext, "CUDA_HOME", str(home))
    monkeypatch.setattr(BW, "cuda_version", lambda: "13.0.88")
    work = tmp_path / "work"
    work.mkdir()
    env = BW.cuda_env({"LIBRARY_PATH": "/usr/lib/extra"}, work)
    link_dir, *rest = env["LIBRARY_PATH"].split(os.pathsep)
    assert rest[-1] == "/usr/lib/extra"  # what was there stays, after
    links = {p.name: p.resolve() for p in Path(link_dir).iterdir()}
    assert links == {"libcudart.so": home / "lib" / "libcudart.so.13",
                     "libcusparse.so": home / "lib" / "libcusparse.so.12",
                     "libcublas.so": home / "lib" / "libcublas.so.13"}
    assert str(home / "include" / "cccl") in env["CPATH"].split(os.pathsep)  # thrust / cub (CUDA 13)
    # a full toolkit that has its unversioned names gets no links
    for so in ("libcudart.so", "libcusparse.so", "libcublas.so"):
        (home / "lib" / so).write_text("")
    work2 = tmp_path / "work2"
    work2.mkdir()
    assert not (work2 / "cudalibs").exists() and "LIBRARY_PATH" not in BW.cuda_env({}, work2)


def test_the_default_arch_list_is_one_list_everywhere_and_covers_blackwell():
    from scene_pe.util.cuda_arch import DEFAULT_ARCH_LIST, from_arch_list, runs_on

    docker = (Path(__file__).resolve().parent.parent / "docker" / "Dockerfile").read_text()
    assert f'ARG TORCH_CUDA_ARCH_LIST="{BW.DEFAULT_CUDA_ARCH_LIST}"' in docker
    assert BW.DEFAULT_CUDA_ARCH_LIST == DEFAULT_ARCH_LIST
    compiled = from_arch_list(DEFAULT_ARCH_LIST)
    for cc in [(8, 0), (8, 6), (8, 9), (9, 0), (10, 0), (12, 0)]:
        assert runs_on(compiled, cc).kind == "sass"
    assert runs_on(compiled, (13, 0)).kind == "ptx"  # a later GPU JIT-compiles the newest PTX


def test_an_unset_arch_list_builds_the_default_and_nvcc_must_know_every_entry(monkeypatch):
    nvcc13 = {"7.5", "8.0", "8.6", "8.7", "8.8", "8.9", "9.0", "10.0", "10.3", "11.0", "12.0", "12.1"}
    assert BW.unknown_archs("8.0;9.0a 10.0f;12.0+PTX", nvcc13) == []
    assert BW.unknown_archs("7.0;9.0;12.0+PTX", {"8.0", "9.0"}) == ["7.0", "12.0"]
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    monkeypatch.setattr(BW, "nvcc_archs", lambda: nvcc13)
    assert BW.choose_arch_list() == BW.DEFAULT_CUDA_ARCH_LIST == os.environ["TORCH_CUDA_ARCH_LIST"]
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")
    assert BW.choose_arch_list() == "9.0"
    monkeypatch.setattr(BW, "nvcc_archs", lambda: {"8.0", "8.6", "8.9", "9.0"})  # CUDA 12.4: no Blackwell
    monkeypatch.setattr(BW, "cuda_version", lambda: "12.4.131")
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", BW.DEFAULT_CUDA_ARCH_LIST)
    with pytest.raises(SystemExit):
        BW.choose_arch_list()
