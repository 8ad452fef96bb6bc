"""Zip archives from elsewhere (benchmark submissions), checked before anything is read.

``open_zip`` reads only the central directory and refuses, with an ArchiveError
naming the archive and the member, what could write outside a folder, shadow
another file or exhaust memory or disk when read: member names that are
absolute, hold ``..``, backslashes or drive letters; symbolic links; the same
name twice; compression methods other than stored and deflate; a declared size
beyond what the member's compressed bytes can expand to (deflate expands at
most ~1032:1, so a larger ratio is a forged header), and members or a total
above the limits (a zip bomb). Reading a member never yields more than its
declared size (zipfile stops there), so after these checks the sizes are bounded.
A submission folder is listed by ``folder_files``, which refuses symbolic links.
"""

from __future__ import annotations

import os
import posixpath
import stat
import zipfile
import zlib
from pathlib import Path

# A real ScanNet instance submission: 100 scenes x <=100 masks x ~300 kB each, ~3 GB in all.
MAX_MEMBER_BYTES = 1 << 30
MAX_TOTAL_BYTES = 16 << 30
MAX_MEMBERS = 1_000_000
# deflate's best case is 1032:1 (258-byte matches of 2 bits); above it the header lies
MAX_DEFLATE_RATIO = 1100
ALLOWED_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}


class ArchiveError(ValueError):
    """An archive that is refused: names the archive, the member and why."""

    def __init__(self, path, message: str, member: str | None = None):
        self.path, self.member = str(path), member
        where = f"{path}:{member!r}" if member is not None else str(path)
        super().__init__(f"{where}: {message}")


def unsafe_name(name: str) -> str | None:
    """Why a member name is unsafe to use as a relative path, or None if it is fine."""
    if not name:
        return "empty member name"
    if "\x00" in name:
        return "NUL character in the name"
    if "\\" in name:
        return "backslash in the name (a Windows path)"
    if name.startswith("/"):
        return "absolute path"
    if len(name) >= 2 and name[1] == ":":
        return "drive letter"
    if ".." in name.split("/"):
        return "'..' in the path"
    return None


def check_zip(zf: zipfile.ZipFile, path, max_member_bytes: int = MAX_MEMBER_BYTES,
              max_total_bytes: int = MAX_TOTAL_BYTES, max_members: int = MAX_MEMBERS) -> None:
    """Raise ArchiveError for the first unsafe entry of an opened archive (central directory only)."""
    infos = zf.infolist()
    if len(infos) > max_members:
        raise ArchiveError(path, f"{len(infos)} members, more than the limit of {max_members}")
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        why = unsafe_name(name)
        if why:
            raise ArchiveError(path, f"refused: {why}", name)
        # compare normalised names: "a/./b.txt" and "a/b.txt" are the same file when extracted
        key = posixpath.normpath(name) + ("/" if name.endswith("/") else "")
        if key in seen:
            raise ArchiveError(path, "refused: the name occurs twice in the archive", name)
        seen.add(key)
        if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
            raise ArchiveError(path, "refused: a symbolic link", name)
        if info.compress_type not in ALLOWED_METHODS:
            raise ArchiveError(path, f"refused: compression method {info.compress_type} (only stored "
                                     "and deflate are accepted)", name)
        if info.file_size > max_member_bytes:
            raise ArchiveError(path, f"refused: declares {info.file_size} bytes uncompressed, more than "
                                     f"the limit of {max_member_bytes} (a zip bomb?)", name)
        limit = info.compress_size if info.compress_type == zipfile.ZIP_STORED \
            else MAX_DEFLATE_RATIO * info.compress_size + 1024
        if info.file_size > limit:
            raise ArchiveError(path, f"refused: declares {info.file_size} bytes from {info.compress_size} "
                                     "compressed ones, more than the method can produce (forged sizes)", name)
        total += info.file_size
        if total > max_total_bytes:
            raise ArchiveError(path, f"refused: members declare more than {max_total_bytes} bytes "
                                     "uncompressed in all (a zip bomb?)")


def open_zip(path: str | Path, **limits) -> zipfile.ZipFile:
    """An opened, checked archive; ArchiveError for a corrupt or unsafe one."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as e:
        raise ArchiveError(path, f"not a readable zip archive: {e}") from None
    try:
        check_zip(zf, path, **limits)
    except BaseException:
        zf.close()
        raise
    return zf


def read_member(zf: zipfile.ZipFile, name: str, path) -> bytes:
    """A member's bytes; a damaged member (bad CRC, truncated data) is an ArchiveError."""
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, zlib.error) as e:
        raise ArchiveError(path, f"damaged member: {e}", name) from None


def folder_files(root: str | Path) -> set[str]:
    """Relative POSIX names of the files of a submission folder, in one walk (os.walk: a third
    of rglob's time); ArchiveError naming the first symbolic link in it (it may point anywhere)."""
    names, links = set(), []
    for folder, dirs, files in os.walk(root):  # symlinked folders are listed, not entered
        rel = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        links += [prefix + e for e in dirs + files if os.path.islink(os.path.join(folder, e))]
        names.update(prefix + f for f in files if os.path.isfile(os.path.join(folder, f)))
    if links:
        raise ArchiveError(root, "refused: a symbolic link in the submission", sorted(links)[0])
    return names
