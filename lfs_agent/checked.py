"""The record of large objects the store hashed as it wrote them, trusted while unchanged.

A push sends only an object that hashes to its name. One that the store checked as it
wrote it, and that no one has changed since, it may send without reading it first
(:meth:`CheckedRecord.is_checked`). The record is ``<lfs dir>/lfs-agent-checked``, one
line per object: its oid and what its stat data said once it was in place (size,
device, inode, mtime and ctime), appended by the process that placed it, in one write;
``prune`` rewrites it without the objects gone or changed (:meth:`CheckedRecord.compact`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from lfs_agent.log import get_logger
from lfs_agent.pointer import Pointer, is_valid_oid

__all__ = ["CHECK_RECORD_MIN", "CHECK_RECORD_NAME", "CheckedRecord"]

logger = get_logger(__name__)

#: Objects at least this large (8 MiB) that the store checked as it wrote them are
#: recorded, so that a push need not read them again. Hashing a smaller one is cheap,
#: and the record stays short: one line per model file.
CHECK_RECORD_MIN = 8 * 1024 * 1024
#: The record of those objects, in the lfs directory (git-lfs ignores other files there).
CHECK_RECORD_NAME = "lfs-agent-checked"
#: How far into the past a recorded object's mtime is set: any later write dates it
#: "now", which can never equal that, however coarse the file system's clock.
_CHECK_MARK_BACK_NS = 60 * 10**9


class CheckedRecord:
    """The objects a store checked as it wrote them, as their stat data said then.

    Placing an object takes two steps: :meth:`mark` before the rename into place,
    :meth:`add` after it.

    Args:
        root: The ``lfs`` directory, which holds the record.
        object_path: Where the store keeps the object of an oid.
    """

    def __init__(self, root: Path, object_path: Callable[[str], Path]) -> None:
        self.path = root / CHECK_RECORD_NAME
        self._object_path = object_path
        # oid -> what the object's stat said once the store had checked and placed it;
        # read from the file on the first question (uploads ask from threads).
        self._checked: dict[str, tuple[int, ...]] | None = None
        self._lock = threading.Lock()

    def mark(self, temp_path: Path, pointer: Pointer) -> tuple[int, int] | None:
        """Date the checked file at ``temp_path`` a minute back, if it is to be recorded.

        Only an object of :data:`CHECK_RECORD_MIN` bytes or more is. A file with
        another name (a hard link of a folder bucket's object) is left as it is: its
        times are not the store's to change, and others may write to it.

        Returns:
            The file's inode and new mtime, for :meth:`add`, or None when it was left as
            it is.
        """
        if pointer.size < CHECK_RECORD_MIN:
            return None
        try:
            st = os.stat(temp_path)
            if st.st_nlink != 1:
                return None
            os.utime(temp_path, ns=(st.st_atime_ns, time.time_ns() - _CHECK_MARK_BACK_NS))
            st = os.stat(temp_path)  # the mtime as the file system keeps it
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns

    def add(self, pointer: Pointer, final: Path, marked: tuple[int, int]) -> None:
        """Append the placed object's stat data to the record (a lost line: a re-hash).

        Nothing is recorded unless ``final`` is still the file marked, unwritten since.
        """
        try:
            st = os.stat(final)
            if (st.st_ino, st.st_mtime_ns) != marked:
                return
            key = _check_key(st)
            line = _check_line(pointer.oid, key)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("ascii"))  # one write: appends never interleave
            finally:
                os.close(fd)
        except OSError as exc:
            logger.debug("cannot record %s as checked: %s", pointer.oid, exc)
            return
        with self._lock:
            if self._checked is not None:
                self._checked[pointer.oid] = key

    def is_checked(self, pointer: Pointer, path: Path | None = None) -> bool:
        """True when the stored object is, unchanged, one the store checked as it wrote it.

        A push may then send it without reading it. Any write since dates the file
        "now", never the minute-old mtime recorded; setting its times back, renaming,
        linking or replacing it changes its ctime or inode. Damage below the file system
        (a failing disk) is not seen; every download is still checked.

        Args:
            pointer: The object; one under :data:`CHECK_RECORD_MIN` bytes is never
                recorded.
            path: Another name of the same file to judge instead of the stored object
                (the path git-lfs names for an upload); None: the stored object.
        """
        if pointer.size < CHECK_RECORD_MIN:
            return False
        with self._lock:
            if self._checked is None:
                self._checked = self._read()[0]
            record = self._checked.get(pointer.oid)
        return (
            record is not None
            and record[0] == pointer.size
            and self._holds(pointer.oid, record, path)
        )

    def compact(self) -> int:
        """Rewrite the record with only the objects it still vouches for.

        Lines for objects removed or changed since, repeated lines and lines that do
        not parse go. A line another process appends meanwhile may be lost: its object
        is then hashed at its next push, as if it had never been recorded.

        Returns:
            How many lines went.
        """
        checked, lines = self._read()
        if not lines:
            return 0
        kept = {oid: record for oid, record in checked.items() if self._holds(oid, record)}
        temp = self.path.with_name(f".{CHECK_RECORD_NAME}-{os.urandom(8).hex()}")
        try:
            temp.write_text(
                "".join(_check_line(oid, key) for oid, key in kept.items()),
                encoding="ascii",
            )
            os.replace(temp, self.path)
        except OSError as exc:
            logger.debug("cannot rewrite %s: %s", self.path, exc)
            return 0
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        with self._lock:
            self._checked = kept
        return lines - len(kept)

    def _holds(self, oid: str, record: tuple[int, ...], path: Path | None = None) -> bool:
        """Whether the file at ``path`` (default: the stored object) is, unchanged, ``record``'s.

        The same device and inode, so another name of the stored object qualifies.
        """
        try:
            return record == _check_key(os.stat(path or self._object_path(oid)))
        except OSError:
            return False

    def _read(self) -> tuple[dict[str, tuple[int, ...]], int]:
        """The record, later lines winning, and its number of lines.

        A line that does not parse is passed over.
        """
        try:
            text = self.path.read_text(encoding="ascii", errors="replace")
        except OSError:
            return {}, 0
        checked: dict[str, tuple[int, ...]] = {}
        lines = text.splitlines()
        for line in lines:
            oid, _, rest = line.partition(" ")
            try:
                numbers = tuple(int(field) for field in rest.split())
            except ValueError:
                continue
            if len(numbers) == 5 and is_valid_oid(oid):
                checked[oid] = numbers
        return checked, len(lines)


def _check_key(st: os.stat_result) -> tuple[int, ...]:
    """What the record keeps of a checked object's stat data, and compares later."""
    return (st.st_size, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def _check_line(oid: str, key: tuple[int, ...]) -> str:
    """One line of the record of checked objects."""
    return " ".join([oid, *map(str, key)]) + "\n"
