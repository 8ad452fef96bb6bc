"""MinkowskiEngine's compiled CUDA architectures against a GPU's compute capability (on the CPU:
stand-in lists, and a real fat binary compiled by nvcc in tests/data/fatbin)."""

import logging
import os
import shutil
from pathlib import Path

import pytest
import torch

from scene_pe.util import cuda_arch as C
from scene_pe.util import fatbin
from scene_pe.util import cli
from scene_pe.util.errors import RunError

DATA = Path(__file__).resolve().parent / "data" / "fatbin"
PROBE = DATA / "probe.o"
PROBE_COMPILED = C.Compiled(sass=(C.Arch(9, 0), C.Arch(10, 0, "a"), C.Arch(12, 0)),
                            ptx=(C.Arch(12, 0), C.Arch(10, 0, "f")))


def served(arch_list: str, cc: tuple[int, int]) -> str | None:
    s = C.runs_on(C.from_arch_list(arch_list), cc)
    return None if s is None else f"{s.kind} {s.arch.cc}"


def test_the_old_default_list_does_not_serve_blackwell_and_the_new_one_does():
    old = "8.0;8.6;8.9;9.0"
    assert [served(old, cc) for cc in [(8, 0), (8, 6), (8, 7), (8, 9), (9, 0)]] == \
        ["sass 8.0", "sass 8.6", "sass 8.6", "sass 8.9", "sass 9.0"]
    assert served(old, (10, 0)) is None and served(old, (12, 0)) is None and served(old, (7, 5)) is None
    new = C.DEFAULT_ARCH_LIST
    assert served(new, (10, 0)) == "sass 10.0" and served(new, (12, 0)) == "sass 12.0"
    assert served(new, (9, 0)) == "sass 9.0" and served(new, (8, 0)) == "sass 8.0"


def test_machine_code_runs_on_the_same_major_with_a_higher_minor_only():
    assert served("10.0;12.0", (10, 3)) == "sass 10.0"   # B300 runs sm_100
    assert served("10.0;12.0", (12, 1)) == "sass 12.0"   # GB10 runs sm_120
    assert served("10.0;12.0", (11, 0)) is None          # Thor: another major
    assert served("9.0", (10, 0)) is None                # SASS never crosses a major
    assert served("8.6", (8, 0)) is None                 # nor goes to a lower minor


def test_ptx_is_jit_compiled_for_any_later_gpu_but_not_an_earlier_one():
    lst = "10.0;12.0+PTX"
    assert served(lst, (12, 1)) == "sass 12.0"   # machine code first
    assert served(lst, (13, 0)) == "ptx 12.0"    # a GPU after 12.x: JIT from compute_120
    assert served(lst, (11, 0)) is None          # 11.0 < 12.0: the PTX cannot serve it
    assert served(lst, (9, 0)) is None
    assert served("9.0+PTX", (12, 0)) == "ptx 9.0"
    assert served("8.0;9.0+PTX", (8, 6)) == "sass 8.0"


def test_arch_specific_and_family_targets_serve_only_their_gpus():
    only_a = C.Compiled(sass=(C.Arch(10, 0, "a"),), ptx=(C.Arch(9, 0, "a"),))
    assert C.runs_on(only_a, (10, 0)) == C.Served("sass", C.Arch(10, 0, "a"))
    assert C.runs_on(only_a, (10, 3)) is None and C.runs_on(only_a, (12, 0)) is None
    assert C.runs_on(C.Compiled(ptx=(C.Arch(9, 0, "a"),)), (9, 0)) == C.Served("ptx", C.Arch(9, 0, "a"))
    family = C.Compiled(ptx=(C.Arch(10, 0, "f"),))
    assert C.runs_on(family, (10, 3)) == C.Served("ptx", C.Arch(10, 0, "f"))
    assert C.runs_on(family, (12, 0)) is None
    assert C.runs_on(C.Compiled(sass=(C.Arch(10, 0, "f"),)), (10, 3)).kind == "sass"


def test_arch_lists_parse_and_print_as_torch_writes_them():
    c = C.from_arch_list(" 9.0 ; 8.0  10.0a;12.0+PTX ")
    assert c.sass == (C.Arch(8, 0), C.Arch(9, 0), C.Arch(10, 0, "a"), C.Arch(12, 0)) and c.ptx == (C.Arch(12, 0),)
    assert c.arch_list() == "8.0;9.0;10.0a;12.0+PTX"
    assert c.describe() == "SASS sm_80, sm_90, sm_100a, sm_120; PTX compute_120"
    assert C.Compiled(ptx=(C.Arch(9, 0),)).arch_list() == "9.0+PTX"
    for bad in ("Ampere", "9", "sm90", "9.0+ptx+PTX"):
        with pytest.raises(ValueError):
            C.from_arch_list(bad)


def test_the_rebuild_list_serves_the_gpu_with_machine_code_and_keeps_the_rest():
    old = C.from_arch_list("8.0;8.6;8.9;9.0")
    assert C.rebuild_list(old, (12, 0)) == "8.0;8.6;8.9;9.0;12.0+PTX"
    assert C.rebuild_list(C.from_arch_list("10.0;12.0+PTX"), (9, 0)) == "9.0;10.0;12.0+PTX"
    for lst, cc in [("8.0;8.6;8.9;9.0", (10, 0)), ("10.0;12.0+PTX", (11, 0)), ("9.0a", (9, 1))]:
        fixed = C.from_arch_list(C.rebuild_list(C.from_arch_list(lst), cc))
        assert C.runs_on(fixed, cc).kind == "sass"
        assert all(C.runs_on(fixed, (a.major, a.minor)) for a in C.from_arch_list(lst).sass)


def test_the_mismatch_message_names_the_gpu_the_build_and_the_list_to_rebuild_with():
    msg = C.mismatch_message(C.from_arch_list("8.0;8.6;8.9;9.0"), (12, 0), "NVIDIA GeForce RTX 5090",
                             "/opt/venv/lib/python3.12/site-packages/MinkowskiEngineBackend/_C.cpython-312.so")
    assert "(NVIDIA GeForce RTX 5090, compute capability 12.0)" in msg
    assert "SASS sm_80, sm_86, sm_89, sm_90; PTX none" in msg and "no kernel image is available" in msg
    assert 'TORCH_CUDA_ARCH_LIST="8.0;8.6;8.9;9.0;12.0+PTX"' in msg
    assert cli.one_line(msg) == msg  # the whole of it reaches the user's one error line
    assert isinstance(C.ArchMismatchError(msg), RunError)  # a user error (exit status 2), not a bug


def test_the_fatbin_reader_reads_what_cuobjdump_lists_off_a_real_nvcc_object():
    listed = C.parse_cuobjdump((DATA / "probe.list-elf.txt").read_text(), (DATA / "probe.list-ptx.txt").read_text())
    assert listed == PROBE_COMPILED
    assert fatbin.read_file(PROBE) == fatbin.Found(((9, 0, ""), (10, 0, "a"), (12, 0, "")), ((12, 0, ""), (10, 0, "f")))
    assert C.Compiled.from_bytes(PROBE.read_bytes()) == PROBE_COMPILED
    assert C.read_compiled(PROBE, cuobjdump=None) == (PROBE_COMPILED, "fatbin")
    # a cuobjdump that lists nothing (too old for the file) or fails to start: the reader here
    assert C.read_compiled(PROBE, cuobjdump="/bin/false") == (PROBE_COMPILED, "fatbin")
    assert C.read_compiled(PROBE, cuobjdump="/nonexistent/cuobjdump") == (PROBE_COMPILED, "fatbin")
    # the section alone reads the same; an ELF file without device code holds none
    section = fatbin.elf_section(PROBE.read_bytes(), ".nv_fatbin")
    assert section is not None and C.Compiled.from_bytes(section) == PROBE_COMPILED
    assert C.Compiled.from_bytes(Path(torch._C.__file__).read_bytes()) == C.Compiled()


def test_a_damaged_fatbin_entry_is_skipped_not_misread():
    data = bytearray(fatbin.elf_section(PROBE.read_bytes(), ".nv_fatbin"))
    data[16] = 7  # the first entry's kind: neither PTX nor ELF -> that fat binary is not read
    none = fatbin.Found((), ())
    assert fatbin.read_fatbins(bytes(data)) == none
    assert fatbin.read_fatbins(b"") == none and fatbin.read_fatbins(b"\x50\xed\x55\xba") == none


@pytest.mark.skipif(not C.find_cuobjdump(), reason="no cuobjdump here")
def test_cuobjdump_here_reads_the_probe_alike():
    assert C.read_compiled(PROBE) == (PROBE_COMPILED, "cuobjdump")


@pytest.mark.skipif(not os.environ.get("SCENE_PE_ME_CUDA_SO"), reason="set SCENE_PE_ME_CUDA_SO to a CUDA ME _C.so")
def test_a_built_minkowski_library_reads_alike_both_ways():
    so = os.environ["SCENE_PE_ME_CUDA_SO"]
    exe = C.find_cuobjdump() or shutil.which("cuobjdump")
    by_fatbin = C.Compiled.from_bytes(Path(so).read_bytes())
    assert by_fatbin.sass, "no machine code found"
    if exe:
        assert C.read_with_cuobjdump(so, exe) == by_fatbin


def fake_gpu(monkeypatch, cc, library=PROBE):
    C._minkowski_compiled.cache_clear()
    monkeypatch.setattr(C, "minkowski_library", lambda: library)
    monkeypatch.setattr(C, "find_cuobjdump", lambda: None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=None: cc)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: f"a GPU of {cc[0]}.{cc[1]}")


@pytest.mark.parametrize("cc, kind", [((9, 0), "sass"), ((12, 1), "sass"), ((13, 0), "ptx"), ((10, 3), "ptx")])
def test_check_device_passes_a_served_gpu_and_says_when_ptx_is_jit_compiled(monkeypatch, caplog, cc, kind):
    fake_gpu(monkeypatch, cc)
    with caplog.at_level(logging.WARNING, logger=C.__name__):
        assert C.check_device("cuda").kind == kind
    assert ("JIT-compiles" in caplog.text) is (kind == "ptx")


@pytest.mark.parametrize("cc", [(8, 0), (8, 9), (11, 0)])
def test_check_device_stops_an_unserved_gpu_with_the_rebuild_list(monkeypatch, cc):
    fake_gpu(monkeypatch, cc)
    with pytest.raises(C.ArchMismatchError, match=rf"compute capability {cc[0]}\.{cc[1]}.*TORCH_CUDA_ARCH_LIST=\"") as e:
        C.check_device(torch.device("cuda", 0))
    assert str(PROBE) in str(e.value)


def test_check_device_leaves_the_cpu_and_a_build_without_device_code_alone(monkeypatch):
    fake_gpu(monkeypatch, (8, 0), library=Path(torch._C.__file__))
    assert C.check_device("cpu") is None and C.check_device("cuda") is None
    fake_gpu(monkeypatch, (8, 0), library=None)
    assert C.check_device("cuda") is None


def test_training_and_test_stop_at_device_setup_on_an_unserved_gpu(monkeypatch):
    from scene_pe.util import distributed as D

    fake_gpu(monkeypatch, (8, 9))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: None)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(C.ArchMismatchError, match=r'TORCH_CUDA_ARCH_LIST="8.9;9.0;10.0;12.0\+PTX"'):
        D.init_distributed()
    fake_gpu(monkeypatch, (12, 0))
    assert D.init_distributed()[2] == torch.device("cuda", 0)


def test_prediction_stops_before_its_first_kernel_on_an_unserved_gpu(monkeypatch):
    from scene_pe.predict.pipeline import Predictor

    fake_gpu(monkeypatch, (8, 9))
    with pytest.raises(C.ArchMismatchError):  # raised first: the config and model are not looked at
        Predictor(None, None, torch.device("cuda", 0))
