"""Atomic file writes: a killed process never leaves a half-written file.

Each writer writes to a hidden temporary file in the destination's directory
(same filesystem, so ``os.replace`` is an atomic rename) and renames it over
the destination only once the content is complete and flushed to disk.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from scene_pe.util.errors import DiskFullError

# mkstemp creates files 0600; give finished files the usual umask-based mode.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", fsync: bool = True) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is untouched; a full
    disk (ENOSPC, from a write, the flush or fsync) becomes a DiskFullError naming ``path``.
    ``fsync=False`` skips flushing to disk (still never a partial file under
    the final name): for exports of thousands of small files, where fsync
    costs milliseconds each.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden name with a .tmp suffix: never mistaken for a finished output.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if _from_full_disk(e):
            raise DiskFullError(path) from e
        raise


def _from_full_disk(error: BaseException | None) -> bool:
    """ENOSPC anywhere in the chain (torch.save reports it as a RuntimeError of its own)."""
    seen = 0
    while error is not None and seen < 20:
        if isinstance(error, DiskFullError):
            return False  # already named (a nested atomic writer)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def remove_stale_temps(path: str | os.PathLike) -> int:
    """Delete temporary files a killed writer of ``path`` left behind; returns how many.

    Only safe when no other process is writing ``path`` at the same time.
    """
    path = Path(path)
    stale = list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp")) if path.parent.is_dir() else []
    for p in stale:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    return len(stale)


def save_npz_atomic(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``np.savez`` (uncompressed) to exactly ``path``, atomically."""
    # np.savez appends ".npz" to string paths but not to open file objects.
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def read_lines(path: str | os.PathLike) -> list[str]:
    """Non-blank lines, stripped, in order (split lists such as scannetv2_val.txt)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})") from None
    return [s.strip() for s in text.splitlines() if s.strip()]


def write_lines_atomic(path: str | os.PathLike, lines: list[str]) -> None:
    """Write one string per line (newline-terminated) to ``path`` atomically."""
    write_text_atomic(path, "".join(f"{line}\n" for line in lines))


def int_lines_bytes(values) -> bytes:
    """Non-negative integers -> b"v0\\nv1\\n..." (vectorised decimal formatting)."""
    v = np.asarray(values, dtype=np.int64).ravel()
    if v.size == 0:
        return b""
    if v.min() < 0:
        raise ValueError("int_lines_bytes: negative value")
    n_dig = len(str(int(v.max())))
    powers = 10 ** np.arange(n_dig - 1, -1, -1, dtype=np.int64)
    chars = np.full((len(v), n_dig + 1), 10, dtype=np.uint8)  # last column: newline
    chars[:, :n_dig] = 48 + (v[:, None] // powers) % 10
    width = 1 + (v[:, None] >= powers[:-1][None, :]).sum(axis=1) if n_dig > 1 else np.ones_like(v)
    keep = np.arange(n_dig + 1)[None, :] >= (n_dig - width)[:, None]  # drop leading zeros
    return chars[keep].tobytes()


def signed_int_lines_bytes(values) -> bytes:
    """Integers of either sign -> b"v0\\nv1\\n...": ``int_lines_bytes`` of the magnitudes with a
    minus sign inserted at the start of each negative line (vectorised)."""
    v = np.asarray(values, dtype=np.int64).ravel()
    if v.size == 0 or v.min() >= 0:
        return int_lines_bytes(v)
    body = np.frombuffer(int_lines_bytes(np.abs(v)), dtype=np.uint8)
    starts = np.concatenate([[0], np.flatnonzero(body == 10)[:-1] + 1])
    return np.insert(body, starts[v < 0], ord("-")).tobytes()
