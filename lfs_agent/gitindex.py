"""Recording in git's index the stat data of files lfs-agent has just written.

After ``pull`` streams a large object over its pointer file, the index still holds the
pointer file's stat data: git would take the file for modified and hash it through the
clean filter at the next ``git status``. ``git lfs pull`` has git re-stage such files at
once (``git update-index``), which streams every byte through the filter again, a
second read of the whole object. For a file lfs-agent wrote itself from a verified
object, :func:`record_written` fills the index entry's stat data in directly instead, as
git's own checkout does for the files it writes. It does so only when:

- the entry is the file's pointer: stage 0, not assume-unchanged nor skip-worktree, and
  its blob is the canonical pointer, which is what the clean filter makes of the file;
- the file is still the one written: same inode, size, mode and times as right after it
  was written (the caller's stat), and its executable bit agrees with the entry's mode;
- its size is not a non-zero multiple of 4 GiB (the index keeps 32 bits of it, and 0
  means "check the content").

git counts an entry whose file changed in the same second as the index was written as
"racily clean" and hashes it again at the next command (git here compares whole seconds).
The index is therefore written only once the clock has passed the second of the newest
file's last change (:func:`restage_wait`). ``pull`` dates the files it writes to just
before the second they were written in, so that this is at once.

The format is git's (``gitformat-index``), versions 2 to 4, SHA-1 or SHA-256. Only the
stat fields of matched entries change, in place: every offset (extensions, ``EOIE``,
``IEOT``) stays valid; the trailing checksum is recomputed. An index git has split
(``link`` extension), or one that does not parse, is left alone. The index is rewritten
under ``index.lock``, as git does; when git holds that lock, nothing is recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import struct
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

from lfs_agent.pointer import Pointer

__all__ = ["Written", "record_written", "restage_wait"]

# Header: signature, version, number of entries.
_HEADER = struct.Struct(">4sII")
# An entry's stat data: ctime s/ns, mtime s/ns, dev, ino, mode, uid, gid, size.
_STAT = struct.Struct(">10I")
_MTIME_AT, _MODE_AT, _SIZE_AT = 8, 24, 36  # offsets in an entry
_FLAG_VALID = 0x8000  # assume-unchanged
_FLAG_EXTENDED = 0x4000
_FLAG_STAGE = 0x3000
_EXT_SKIP_WORKTREE = 0x4000
_U32 = 0xFFFFFFFF
# How long the lock file's mtime may lag the clock (the file system's coarse clock).
_CLOCK_SLACK = 0.02
_CLOCK_TRIES = 100


class Written(NamedTuple):
    """A file lfs-agent wrote over its pointer file.

    Attributes:
        path: Repository-relative path, ``/``-separated, as the index names it.
        pointer: The pointer the file's content cleans to; the index entry's blob must
            be its canonical encoding.
        stat: ``os.lstat`` of the file taken right after it was put in place.
    """

    path: str
    pointer: Pointer
    stat: os.stat_result


#: Blob ids (hex) of work-tree paths as git would store them; None when that failed.
HashPaths = Callable[[list[str]], list[str] | None]


class _Unsupported(Exception):
    """The index is one this module leaves to git."""


def restage_wait(files: list[Written], clock: Callable[[], float] = time.time) -> float:
    """Seconds until the index can be written without ``files`` being racily clean."""
    newest = max(_seconds(w.stat.st_mtime_ns) for w in files)
    return max(0.0, newest + 1 + _CLOCK_SLACK - clock())


def record_written(
    index: Path,
    top: Path,
    files: list[Written],
    *,
    hash_paths: HashPaths,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], object] = time.sleep,
) -> set[str]:
    """Record ``files`` (under the work tree ``top``) in the index file ``index``.

    Waits (:func:`restage_wait`) first, so that no file recorded is racily clean.

    Args:
        index: The index file.
        top: The work tree's top.
        files: The files just written.
        hash_paths: The blob ids git would store for files (``git hash-object
            --stdin-paths``), or None when it fails; it checks the other entries the
            rewrite would stop being racily clean.
        clock: The time of day, in seconds; injected by tests.
        sleep: Waits for :func:`restage_wait`; injected by tests.

    Returns:
        The paths recorded. The others are left for git to re-stage: the index holds
        them differently, they changed since they were written, or the index is not one
        this module writes, or git holds its lock (then nothing is recorded).
    """
    if not files:
        return set()
    sleep(restage_wait(files, clock))
    lock = index.with_name(index.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return set()  # git is at work: it re-stages them, and says so if it must fail
    try:
        with os.fdopen(fd, "r+b") as out:
            unchanged = {w.path: w for w in files if _unchanged(top / w.path, w)}
            try:
                written_at = _seconds(os.stat(index).st_mtime_ns)
                data = bytearray(index.read_bytes())
                recorded = _patch(data, unchanged, written_at, hash_paths) if unchanged else set()
            except (_Unsupported, FileNotFoundError):
                recorded = set()
            if not recorded:
                return set()
            out.write(data)
            out.flush()
            _stamp_after(out.fileno(), max(_seconds(w.stat.st_mtime_ns) for w in files), sleep)
        with contextlib.suppress(OSError):
            os.chmod(lock, stat.S_IMODE(os.stat(index).st_mode))
        os.replace(lock, index)
        return recorded
    except _Unsupported:
        return set()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)


def _seconds(ns: int) -> int:
    """Whole seconds of a time in nanoseconds.

    Not ``int(st.st_mtime)``: a float cannot hold nanoseconds, and rounds a time just
    before a second up to that second.
    """
    return ns // 1_000_000_000


def _unchanged(path: Path, written: Written) -> bool:
    """Whether ``path`` is still exactly the file that was written."""
    try:
        now = os.lstat(path)
    except OSError:
        return False
    was = written.stat
    return (
        stat.S_ISREG(now.st_mode)
        and (now.st_dev, now.st_ino, now.st_mode, now.st_size)
        == (was.st_dev, was.st_ino, was.st_mode, was.st_size)
        and (now.st_mtime_ns, now.st_ctime_ns) == (was.st_mtime_ns, was.st_ctime_ns)
    )


def _stamp_after(fd: int, second: int, sleep: Callable[[float], object]) -> None:
    """Make sure the lock file's mtime is past ``second``.

    The file system's clock is coarse and may lag the one :func:`restage_wait` read.
    """
    for _ in range(_CLOCK_TRIES):
        if _seconds(os.fstat(fd).st_mtime_ns) > second:
            return
        sleep(_CLOCK_SLACK)
        os.utime(fd)
    raise _Unsupported


def _patch(
    data: bytearray, files: Mapping[str, Written], written_at: int, hash_paths: HashPaths
) -> set[str]:
    """Fill in the stat data of ``files``' entries in the index ``data``, in place.

    The index was written in the second ``written_at``. Entries that were racily clean
    in it (their file changed in that second or later) would no longer be once it is
    written again later. As git does when it writes an index, their content is checked
    (``hash_paths``) and those that changed are smudged (size 0), so that git sees them
    as modified.
    """
    hash_size, algorithm = _checksum(data)
    signature, version, count = _HEADER.unpack_from(data)
    if signature != b"DIRC" or version not in (2, 3, 4):
        raise _Unsupported
    wanted = {os.fsencode(path): w for path, w in files.items()}
    blob_ids = {w.path: _blob_id(algorithm, w.pointer.encode()) for w in files.values()}
    found: list[tuple[int, Written]] = []
    racy: list[tuple[int, bytes]] = []  # other entries racily clean in the old index
    changed: list[int] = []  # entries of files written but not recorded: smudged
    pos = _HEADER.size
    previous = b""
    try:
        for _ in range(count):
            start = pos
            flags_at = start + 40 + hash_size
            (flags,) = struct.unpack_from(">H", data, flags_at)
            name_at = flags_at + 2
            extended = 0
            if flags & _FLAG_EXTENDED:
                if version < 3:
                    raise _Unsupported
                (extended,) = struct.unpack_from(">H", data, name_at)
                name_at += 2
            if version == 4:
                strip, name_at = _varint(data, name_at)
                end = data.index(b"\0", name_at)
                if strip > len(previous):
                    raise _Unsupported
                name = previous[: len(previous) - strip] + data[name_at:end]
                pos = end + 1
            else:
                end = data.index(b"\0", name_at)
                name = bytes(data[name_at:end])
                pos = start + ((name_at - start + len(name) + 8) & ~7)
            previous = name
            w = wanted.get(name)
            if w is None:
                if _is_racy(data, start, written_at):
                    racy.append((start, name))
            elif (
                not flags & (_FLAG_VALID | _FLAG_STAGE)
                and not extended & _EXT_SKIP_WORKTREE
                and data[start + 40 : flags_at] == blob_ids[w.path]
            ):
                found.append((start, w))
            else:
                changed.append(start)
    except (ValueError, struct.error):
        raise _Unsupported from None
    _check_extensions(data, pos, len(data) - hash_size)
    recorded = set()
    for start, w in found:
        st = w.stat
        (mode,) = struct.unpack_from(">I", data, start + _MODE_AT)
        if (
            mode not in (0o100644, 0o100755)
            or (mode == 0o100755) != bool(st.st_mode & 0o100)
            or (st.st_size and not st.st_size & _U32)
        ):
            changed.append(start)
            continue
        _STAT.pack_into(
            data,
            start,
            _seconds(st.st_ctime_ns) & _U32,
            st.st_ctime_ns % 1_000_000_000,
            _seconds(st.st_mtime_ns) & _U32,
            st.st_mtime_ns % 1_000_000_000,
            st.st_dev & _U32,
            st.st_ino & _U32,
            mode,
            st.st_uid & _U32,
            st.st_gid & _U32,
            st.st_size & _U32,
        )
        recorded.add(w.path)
    if not recorded:
        return recorded  # the index is not written: nothing to check or smudge
    for start in changed:
        struct.pack_into(">I", data, start + _SIZE_AT, 0)
    _smudge_changed(data, racy, hash_size, hash_paths)
    data[-hash_size:] = hashlib.new(algorithm, memoryview(data)[:-hash_size]).digest()
    return recorded


def _blob_id(algorithm: str, content: bytes) -> bytes:
    """The id git gives a blob holding ``content``."""
    return hashlib.new(algorithm, b"blob %d\0%s" % (len(content), content)).digest()


def _is_racy(data: bytearray, start: int, written_at: int) -> bool:
    """Whether the entry at ``start`` changed in or after the second ``written_at``.

    Gitlinks are never racy (git compares their commits) and sparse directories have no
    file; the others are, as git compares whole seconds unless built with ``USE_NSEC``.
    """
    (mtime,) = struct.unpack_from(">I", data, start + _MTIME_AT)
    (mode,) = struct.unpack_from(">I", data, start + _MODE_AT)
    return mtime >= written_at and stat.S_IFMT(mode) in (stat.S_IFREG, stat.S_IFLNK)


def _smudge_changed(
    data: bytearray, racy: list[tuple[int, bytes]], hash_size: int, hash_paths: HashPaths
) -> None:
    """Set the size of the ``racy`` entries whose file no longer holds their blob to 0.

    Symbolic links are smudged without a check, as is everything when the check fails.
    """
    files = [
        (start, name)
        for start, name in racy
        if stat.S_IFMT(struct.unpack_from(">I", data, start + _MODE_AT)[0]) == stat.S_IFREG
    ]
    blob_ids = hash_paths([os.fsdecode(name) for _, name in files]) if files else []
    unchanged = set()
    if blob_ids is not None and len(blob_ids) == len(files):
        unchanged = {
            start
            for (start, _), blob_id in zip(files, blob_ids, strict=True)
            if data[start + 40 : start + 40 + hash_size].hex() == blob_id
        }
    for start, _ in racy:
        if start not in unchanged:
            struct.pack_into(">I", data, start + _SIZE_AT, 0)


def _checksum(data: bytearray) -> tuple[int, str]:
    """The index's hash size and algorithm, told by its trailing checksum."""
    view = memoryview(data)
    for size, algorithm in ((20, "sha1"), (32, "sha256")):
        if len(data) > _HEADER.size + size and (
            hashlib.new(algorithm, view[:-size]).digest() == view[-size:]
        ):
            return size, algorithm
    raise _Unsupported


def _varint(data: bytearray, pos: int) -> tuple[int, int]:
    """Decode git's offset varint (index v4's name prefix) at ``pos``."""
    byte = data[pos]
    pos += 1
    value = byte & 0x7F
    while byte & 0x80:
        byte = data[pos]
        pos += 1
        value = ((value + 1) << 7) | (byte & 0x7F)
    return value, pos


def _check_extensions(data: bytearray, pos: int, end: int) -> None:
    """Refuse a split index (``link``) and extensions that do not add up."""
    while pos < end:
        signature = bytes(data[pos : pos + 4])
        (size,) = struct.unpack_from(">I", data, pos + 4)
        if signature == b"link":
            raise _Unsupported
        pos += 8 + size
    if pos != end:
        raise _Unsupported
