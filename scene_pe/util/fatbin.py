"""The CUDA architectures in a library's fat binaries, read in Python (no cuobjdump needed).

nvcc puts each translation unit's device code in a fat binary, and the linker gathers
them in the ``.nv_fatbin`` section of the ELF file. Layout, as read off nvcc 13.0's output
(little-endian; checked against ``cuobjdump --list-elf/--list-ptx`` on the same files):

- fat binary header, 16 bytes: magic 0xBA55ED50 (u32), version (u16), header size (u16),
  size of the entries that follow (u64);
- per entry: kind (u16 at 0: 1 PTX, 2 ELF/SASS), header size (u32 at 4), payload size
  (u64 at 8), architecture as 10 * major + minor (u32 at 28), flags (u64 at 40: 0x100000
  an arch-specific ``a`` target, 0x200000 a family ``f`` target); the payload (possibly
  compressed: not needed here) follows the entry header.

Blobs follow one another, 8-byte aligned, zero-padded between.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import NamedTuple

MAGIC = 0xBA55ED50
KIND_PTX, KIND_ELF = 1, 2
FLAG_ARCH_SPECIFIC, FLAG_FAMILY = 0x100000, 0x200000


class Target(NamedTuple):
    """One entry's architecture: compute capability major.minor and "" / "a" / "f" (as
    util/cuda_arch.py's Arch, which compares equal)."""

    major: int
    minor: int
    variant: str


class Found(NamedTuple):
    sass: tuple[Target, ...]
    ptx: tuple[Target, ...]


class FatbinError(ValueError):
    """The bytes are not the fat binary layout this reader knows."""


def _variant(flags: int) -> str:
    return "a" if flags & FLAG_ARCH_SPECIFIC else "f" if flags & FLAG_FAMILY else ""


def _entries(data: bytes, start: int) -> tuple[list[tuple[int, Target]], int]:
    """One fat binary at ``start``: its (kind, arch) entries and the offset after it."""
    magic, _version, header, size = struct.unpack_from("<IHHQ", data, start)
    if magic != MAGIC or header < 16:
        raise FatbinError(f"no fat binary header at offset {start}")
    end = start + header + size
    if end > len(data):
        raise FatbinError(f"fat binary at offset {start} runs past the end ({end} > {len(data)})")
    out, off = [], start + header
    while off < end:
        if off + 48 > end:
            raise FatbinError(f"truncated entry header at offset {off}")
        kind, _v, ehead, payload = struct.unpack_from("<HHIQ", data, off)
        (arch,) = struct.unpack_from("<I", data, off + 28)
        (flags,) = struct.unpack_from("<Q", data, off + 40)
        if kind not in (KIND_PTX, KIND_ELF) or ehead < 48 or not 10 <= arch < 1000:
            raise FatbinError(f"unknown entry at offset {off} (kind {kind}, header {ehead}, arch {arch})")
        out.append((kind, Target(arch // 10, arch % 10, _variant(flags))))
        off += ehead + payload
    return out, end


def read_fatbins(data: bytes) -> Found:
    """Every fat binary in ``data`` (a ``.nv_fatbin`` section, or any bytes holding them)."""
    sass, ptx = [], []
    magic = struct.pack("<I", MAGIC)
    pos = data.find(magic)
    while pos >= 0:
        try:
            entries, pos = _entries(data, pos)
        except (FatbinError, struct.error):
            pos += 4  # the magic's bytes inside something else (or a broken blob): look on
        else:
            for kind, arch in entries:
                (ptx if kind == KIND_PTX else sass).append(arch)
        pos = data.find(magic, pos)
    return Found(tuple(sass), tuple(ptx))


def elf_section(data: bytes, name: str) -> bytes | None:
    """The bytes of section ``name`` of a 64-bit little-endian ELF file; None when absent."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    if shoff == 0 or shnum == 0 or shoff + shnum * shentsize > len(data):
        return None

    def header(i: int) -> tuple[int, int, int, int]:
        sh_name, sh_type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return sh_name, sh_type, offset, size

    _n, _t, str_off, str_size = header(shstrndx)
    names = data[str_off:str_off + str_size]
    for i in range(shnum):
        sh_name, sh_type, offset, size = header(i)
        if names[sh_name:names.find(b"\0", sh_name)].decode(errors="replace") == name:
            return b"" if sh_type == 8 else data[offset:offset + size]  # SHT_NOBITS: no bytes
    return None


def read_bytes(data: bytes) -> Found:
    """An ELF file's ``.nv_fatbin`` section; other bytes (a raw fatbin) are searched whole."""
    section = elf_section(data, ".nv_fatbin")
    if section is not None:
        return read_fatbins(section)
    if data[:4] == b"\x7fELF":
        return Found((), ())  # an ELF file without device code (a CPU build)
    return read_fatbins(data)


def read_file(path: str | Path) -> Found:
    return read_bytes(Path(path).read_bytes())
