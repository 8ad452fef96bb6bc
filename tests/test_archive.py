"""Hostile zips (path escapes, links, duplicates, bombs, forged sizes) are refused by the evaluator
and the validator from the central directory alone, before any member is read or anything written."""

import stat
import struct
import warnings
import zipfile

import numpy as np
import pytest

from scene_pe.evaluation.io import SubmissionSource, evaluate_instance_submission
from scene_pe.export.validate import validate_submission
from scene_pe.util.archive import ArchiveError, check_zip, open_zip
from scene_pe.util.io import int_lines_bytes

SCENE = "scene0000_00"
N = 300


def good_members() -> dict[str, bytes]:
    mask = np.zeros(N, np.int64)
    mask[:120] = 1
    return {f"{SCENE}.txt": b"predicted_masks/scene0000_00_000.txt 5 0.9\n",
            "predicted_masks/scene0000_00_000.txt": int_lines_bytes(mask)}


def write_zip(path, members: dict[str, bytes], extra: list[zipfile.ZipInfo | str] = ()):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name on purpose
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
            for info in extra:
                zf.writestr(info, b"x" * 10)
    return path


def symlink_info(name: str, target_mode=stat.S_IFLNK | 0o777) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix: external_attr holds st_mode
    info.external_attr = target_mode << 16
    return info


def forge_uncompressed_size(path, member: str, size: int) -> None:
    """Overwrite a member's declared uncompressed size in its local and central headers."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    for sig, offset, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = 0
        while (at := data.find(sig, at)) >= 0:
            if data[at + name_at:at + name_at + len(name)] == name:
                data[at + offset:at + offset + 4] = struct.pack("<I", size)
            at += 4
    path.write_bytes(bytes(data))


HOSTILE = {
    "dotdot": ({"../evil.txt": b"1\n"}, [], "'..' in the path"),
    "dotdot_inner": ({"predicted_masks/../../evil.txt": b"1\n"}, [], "'..' in the path"),
    "absolute": ({"/etc/evil.txt": b"1\n"}, [], "absolute path"),
    "backslash": ({"..\\evil.txt": b"1\n"}, [], "backslash"),
    "drive": ({"C:evil.txt": b"1\n"}, [], "drive letter"),
    "symlink": ({}, [symlink_info("predicted_masks/link.txt")], "symbolic link"),
    "duplicate": ({}, [f"{SCENE}.txt"], "occurs twice"),
    "duplicate_normalised": ({}, [f"./{SCENE}.txt"], "occurs twice"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_names_are_refused_by_evaluator_and_validator(tmp_path, kind, monkeypatch):
    members, extra, reason = HOSTILE[kind]
    path = write_zip(tmp_path / "sub.zip", {**good_members(), **members}, extra)
    reads = []
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: reads.append(a[1]))  # any read: recorded
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / f"{SCENE}.txt").write_bytes(int_lines_bytes(np.full(N, 5001)))
    with pytest.raises(ArchiveError, match=reason):
        evaluate_instance_submission(path, tmp_path / "gt")
    problems = validate_submission(path, {SCENE: N})
    assert len(problems) == 1 and reason in problems[0] and str(path) in problems[0]
    assert reads == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt", "sub.zip"]  # nothing written


def test_the_clean_archive_is_accepted(tmp_path):
    path = write_zip(tmp_path / "sub.zip", good_members())
    assert validate_submission(path, {SCENE: N}) == []
    with SubmissionSource(path) as src:
        assert src.scene_files() == {SCENE: f"{SCENE}.txt"}


@pytest.mark.parametrize("declared,reason", [(0xFFFFFFF0, "more than the limit"), (50_000_000, "forged sizes")])
def test_forged_uncompressed_sizes_are_refused(tmp_path, declared, reason):
    path = write_zip(tmp_path / "sub.zip", good_members())
    forge_uncompressed_size(path, "predicted_masks/scene0000_00_000.txt", declared)
    with pytest.raises(ArchiveError, match=reason):
        open_zip(path)
    assert reason in validate_submission(path, {SCENE: N})[0]


def test_a_real_bomb_is_refused_by_its_declared_total(tmp_path):
    # 20 MB of zeros deflate to ~20 kB: a genuine ratio, refused by the size limits alone
    zeros = bytes(20_000_000)
    path = write_zip(tmp_path / "bomb.zip", {f"m{i}.txt": zeros for i in range(3)})
    assert path.stat().st_size < 200_000
    with zipfile.ZipFile(path) as zf:
        check_zip(zf, path)  # within the default limits
        with pytest.raises(ArchiveError, match="in all"):
            check_zip(zf, path, max_total_bytes=50_000_000)
        with pytest.raises(ArchiveError, match="more than the limit of 10000000"):
            check_zip(zf, path, max_member_bytes=10_000_000)
        with pytest.raises(ArchiveError, match="3 members"):
            check_zip(zf, path, max_members=2)


def test_other_compression_methods_and_damaged_members(tmp_path):
    path = tmp_path / "bz.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2) as zf:
        zf.writestr(f"{SCENE}.txt", b"x\n")
    with pytest.raises(ArchiveError, match="compression method 12"):
        open_zip(path)
    member = f"{SCENE}.txt"
    path = tmp_path / "crc.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:  # stored: the data bytes are the file's
        zf.writestr(member, b"predicted_masks/a.txt 5 0.9\n" * 50)
        info = zf.getinfo(member)
    data = bytearray(path.read_bytes())
    data[info.header_offset + 30 + len(member.encode()) + 100] ^= 0xFF  # local header (30 + name), data
    path.write_bytes(bytes(data))
    assert validate_submission(path, {SCENE: N}) == [
        f"{path}:{member!r}: damaged member: Bad CRC-32 for file {member!r}"]
    # the local header's copy of the name damaged: it no longer matches the central directory
    data = bytearray(write_zip(tmp_path / "name.zip", {member: b"predicted_masks/a.txt 5 0.9\n" * 50}).read_bytes())
    data[30 + 10] ^= 0xFF  # the 11th character of the first member's name ('0' -> '\xcf')
    (tmp_path / "name.zip").write_bytes(bytes(data))
    assert validate_submission(tmp_path / "name.zip", {SCENE: N}) == [
        f"{tmp_path / 'name.zip'}:{member!r}: damaged member: File name in directory {member!r} and header "
        f"{b'scene0000_' + bytes([ord('0') ^ 0xFF]) + b'0.txt'!r} differ."]


def test_symlinks_in_a_submission_folder_are_refused(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / f"{SCENE}.txt").write_bytes(good_members()[f"{SCENE}.txt"])
    (sub / "predicted_masks").symlink_to("/etc")
    problems = validate_submission(sub, {SCENE: N})
    assert len(problems) == 1 and "symbolic link" in problems[0] and "predicted_masks" in problems[0]
