"""The local object store, laid out exactly like git-lfs's.

``<lfs dir>/objects/<oid[0:2]>/<oid[2:4]>/<oid>`` holds objects; ``<lfs dir>/tmp`` holds
files being written. ``<lfs dir>`` is ``<git common dir>/lfs`` (shared by all linked
worktrees) unless ``lfs.storage`` says otherwise.

Writes are atomic: bytes go to a temp file in ``tmp/`` (same file system) while being
hashed, the size and sha256 are checked, and only then is the file renamed into place.
A reader never sees a partial file at an object's path, and a process killed mid-write
leaves only a temp file, which a later cleanup removes.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from lfs_agent.checked import CheckedRecord
from lfs_agent.errors import IntegrityError, ObjectNotFoundError
from lfs_agent.hashing import CHUNK_SIZE, WriteHash, hash_file
from lfs_agent.pids import alive
from lfs_agent.pointer import EMPTY_OID, Pointer, is_valid_oid, validate_oid

__all__ = [
    "ObjectStore",
    "ObjectWriter",
    "check_file",
    "check_size",
    "corrupt_error",
]

#: Temp files older than this many seconds are stale and may be removed (git-lfs: 1 h).
STALE_TEMP_SECONDS = 3600
#: Mode of temp files and so of published objects, before the umask.
OBJECT_MODE = 0o644


def check_file(
    path: Path,
    expected: Pointer,
    source: str = "",
    hashed: Pointer | None = None,
    hash_file: Callable[[Path], tuple[str, int]] = hash_file,
) -> None:
    """Refuse the file at ``path`` unless it is exactly ``expected``.

    A file of another size is refused without reading it; one of the right size is
    hashed, unless ``hashed`` already covers all of it.

    Args:
        path: The file to check.
        expected: The pointer it must match.
        source: Where the bytes came from (``from <remote>``), for the message.
        hashed: The sha256 and length of what was written to the file's start, hashed
            as it was written (:class:`~lfs_agent.hashing.WriteHash`,
            :class:`~lfs_agent.hashing.RangeHash`).
        hash_file: Hashes a file (:func:`lfs_agent.hashing.hash_file`); tests see with
            it which files are read.

    Raises:
        IntegrityError: for another size (naming it) or sha256 (naming both).
        FileNotFoundError: when there is no file.
    """
    check_size(path, expected, source)
    size = expected.size
    if hashed is not None and hashed.size == size:
        oid = hashed.oid
    else:
        oid, size = hash_file(path)
    if oid != expected.oid or size != expected.size:
        raise corrupt_error(expected, size, oid, source)


def check_size(path: Path, expected: Pointer, source: str = "") -> None:
    """Refuse the file at ``path`` unless it has ``expected``'s size (its hash unread).

    Raises:
        IntegrityError: for another size, naming both.
        FileNotFoundError: when there is no file.
    """
    size = os.stat(path).st_size
    if size != expected.size:
        raise corrupt_error(expected, size, source=source)


def corrupt_error(
    expected: Pointer, size: int, oid: str | None = None, source: str = ""
) -> IntegrityError:
    """The error for bytes that are not ``expected``'s object, naming what they are.

    Args:
        expected: The object they should have been.
        size: How many bytes there were.
        oid: Their sha256, when it was computed.
        source: Where they came from (``from <remote>``).
    """
    where = f" {source}" if source else ""
    hashing = f" hashing to {oid}" if oid is not None else ""
    return IntegrityError(
        f"object {expected.oid}{where} is corrupt: got {size} bytes{hashing}, "
        f"expected {expected.size} bytes"
    )


def _temp_name(prefix: str) -> str:
    """``<prefix>-<pid>-<16 hex>``: unique, and telling which process writes it."""
    return f"{prefix}-{os.getpid()}-{os.urandom(8).hex()}"


def _temp_owner(name: str) -> int | None:
    """The pid in a name made by :func:`_temp_name`, or None."""
    parts = name.rsplit("-", 2)
    if len(parts) != 3:
        return None
    pid, rest = parts[1], parts[2]
    return int(pid) if pid.isdigit() and len(rest) == 16 else None


def _create_temp(directory: Path, prefix: str) -> tuple[BinaryIO, Path]:
    while True:
        path = directory / _temp_name(prefix)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OBJECT_MODE)
        except FileExistsError:  # pragma: no cover - 64 random bits
            continue
        return os.fdopen(fd, "wb", buffering=0), path


class ObjectWriter:
    """Streams one object into the store: write chunks, then :meth:`commit`.

    Used as a context manager; leaving the block without a commit removes the temp file.
    """

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        self._store = store
        # The temp file in <lfs>/tmp receiving the bytes, and its path for the rename.
        self._file, self.temp_path = _create_temp(store.ensure_tmp(), prefix)
        # Hashes what is written, while the next chunk is written.
        self._written = WriteHash(self._file)
        self._done = False

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._written.size

    def write(self, data: bytes) -> None:
        """Append ``data`` to the temp file (bytes: hashing may come later)."""
        self._written.write(data)

    def commit(self, expected: Pointer | None = None) -> Pointer:
        """Check the bytes against ``expected`` (if given) and publish them.

        Returns:
            The pointer of what was written.

        Raises:
            IntegrityError: when the size or sha256 differ from ``expected``; the temp
                file is removed and nothing is published.
        """
        self._file.close()
        self._done = True
        try:
            pointer = self._written.pointer()
            if expected is not None and (
                expected.oid != pointer.oid or expected.size != pointer.size
            ):
                raise corrupt_error(expected, pointer.size, pointer.oid)
            if pointer.size:
                self._store._publish(self.temp_path, pointer)
        finally:
            self._discard()  # not moved: a mismatch, the empty object, or one stored
        return pointer

    def abort(self) -> None:
        """Drop the temp file without publishing anything."""
        self._written.close()
        self._file.close()
        self._done = True
        self._discard()

    def _discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.temp_path.unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.abort()


class ObjectStore:
    """A git-lfs compatible content-addressed store rooted at ``<lfs dir>``.

    Args:
        root: The ``lfs`` directory (``<git common dir>/lfs`` by default).
        replace: Renames a checked temp file onto its object's path (:func:`os.replace`);
            tests act between that rename and the record of checked objects with it.
    """

    def __init__(self, root: Path, replace: Callable[[Path, Path], None] = os.replace) -> None:
        self.root = Path(root)
        self._replace = replace
        self.objects_dir = self.root / "objects"
        # objects/ as a string ending in a separator (_file_of): open and contains build
        # an object's path from it without pathlib, which costs a smudge of a small file
        # more than opening it does.
        self._objects_prefix = os.path.join(self.objects_dir, "")
        # Same file system as objects/, so os.replace into place is atomic.
        self.tmp_dir = self.root / "tmp"
        self._tmp_ready = False
        # The large objects this store hashed as it wrote them: a push sends those
        # still unchanged without reading them again.
        self.checked = CheckedRecord(self.root, self.object_path)

    def ensure_tmp(self) -> Path:
        """Create ``tmp/`` once per store object (a mkdir per object costs a syscall).

        The temp files of runs that were killed (their writer's pid has ended) are
        removed then, so that the next command cleans up after the one that died.
        """
        if not self._tmp_ready:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            self._tmp_ready = True
            self.remove_dead_temps()
        return self.tmp_dir

    def remove_dead_temps(self) -> int:
        """Remove temp files in ``tmp/`` whose writing process has ended; return how many."""
        removed = 0
        with contextlib.suppress(OSError), os.scandir(self.tmp_dir) as entries:
            for entry in entries:
                pid = _temp_owner(entry.name)
                if pid is not None and not alive(pid):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        removed += 1
        return removed

    def object_path(self, oid: str) -> Path:
        """Return where ``oid`` lives (whether or not it is present).

        Raises:
            InvalidOidError: for anything but 64 lowercase hex digits.
        """
        return Path(self._file_of(validate_oid(oid)))

    def _file_of(self, oid: str) -> str:
        """Where a valid ``oid`` lives, as a string: the one place the layout is spelled."""
        return f"{self._objects_prefix}{oid[0:2]}{os.sep}{oid[2:4]}{os.sep}{oid}"

    def contains(self, pointer: Pointer) -> bool:
        """True when the object is present with the pointer's size (git-lfs's test).

        The empty object is always present: it is never stored.
        """
        if pointer.size == 0:
            return True
        try:
            # A Pointer's oid was checked when it was made: no validate_oid again.
            return os.stat(self._file_of(pointer.oid)).st_size == pointer.size
        except FileNotFoundError:
            return False

    def open(self, pointer: Pointer) -> BinaryIO:
        """Open the object for reading.

        Raises:
            ObjectNotFoundError: when it is absent or has the wrong size.
        """
        if pointer.size == 0:
            return io.BytesIO(b"")
        try:
            # Unbuffered: callers read in large chunks, so a buffer would only copy.
            handle = open(self._file_of(pointer.oid), "rb", buffering=0)  # noqa: SIM115 - returned
        except FileNotFoundError:
            raise ObjectNotFoundError(f"object {pointer.oid} is not in the local store") from None
        if os.fstat(handle.fileno()).st_size != pointer.size:
            handle.close()
            raise ObjectNotFoundError(
                f"object {pointer.oid} in the local store has the wrong size "
                f"(expected {pointer.size} bytes)"
            )
        return handle

    def verify(self, oid: str) -> bool:
        """Re-hash the stored object; True when it hashes to its name."""
        try:
            actual, _ = hash_file(self.object_path(oid))
        except FileNotFoundError:
            return False
        return actual == oid

    def writer(self, prefix: str = "ingest") -> ObjectWriter:
        """Start writing a new object; see :class:`ObjectWriter`."""
        return ObjectWriter(self, prefix)

    def ingest(self, stream: BinaryIO, expected: Pointer | None = None) -> Pointer:
        """Copy ``stream`` into the store while hashing it and return its pointer."""
        with self.writer(expected.oid if expected else "ingest") as out:
            while chunk := stream.read(CHUNK_SIZE):
                out.write(chunk)
            return out.commit(expected)

    def temp_path(self, oid: str) -> Path:
        """A fresh, unused path in ``tmp/`` for a download of ``oid``."""
        validate_oid(oid)
        return self.ensure_tmp() / _temp_name(oid)

    def publish_file(self, path: Path, expected: Pointer) -> None:
        """Hash the finished download at ``path`` and move it into place.

        ``path`` must be in ``tmp/``. It is removed whatever happens.

        Raises:
            IntegrityError: when its size or sha256 differ from ``expected``.
        """
        try:
            check_file(path, expected)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            raise
        self.publish_verified(path, expected)

    def publish_verified(self, path: Path, pointer: Pointer) -> None:
        """Move a file in ``tmp/`` whose size and sha256 the caller has just checked."""
        try:
            if pointer.size:
                self._publish(path, pointer)
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # not moved: the empty object, or one already stored

    def _publish(self, temp_path: Path, pointer: Pointer) -> None:
        """Rename a verified file into place, unless the object is already there.

        A copy already there is kept (the new file is then removed by the caller): it
        may be hard-linked with a shared cache or a folder bucket. A large object is
        recorded as checked once in place (:meth:`is_checked`).
        """
        final = self.object_path(pointer.oid)
        if self.contains(pointer):
            return
        if not stat.S_ISREG(os.lstat(temp_path).st_mode):  # a link's target could change
            raise IntegrityError(f"refusing {temp_path} for {pointer.oid}: not a regular file")
        marked = self.checked.mark(temp_path, pointer)
        try:
            self._replace(temp_path, final)
        except FileNotFoundError:
            if not temp_path.exists():
                raise
            final.parent.mkdir(parents=True, exist_ok=True)
            self._replace(temp_path, final)
        if marked is not None:
            self.checked.add(pointer, final, marked)

    def is_checked(self, pointer: Pointer, path: Path | None = None) -> bool:
        """True when the stored object is, unchanged, one this store checked as it wrote it.

        With ``path``: when the file there is that object, unchanged. See
        :meth:`CheckedRecord.is_checked <lfs_agent.checked.CheckedRecord.is_checked>`.
        """
        return self.checked.is_checked(pointer, path)

    def compact_checked(self) -> int:
        """Rewrite the record of checked objects without those gone or changed.

        Returns:
            How many lines went.
        """
        return self.checked.compact()

    def iter_objects(self) -> Iterator[Pointer]:
        """Yield a pointer for every well-named object file in the store."""
        if not self.objects_dir.is_dir():
            return
        for first in sorted(self.objects_dir.iterdir()):
            for second in sorted(first.iterdir()) if first.is_dir() else ():
                for entry in sorted(second.iterdir()) if second.is_dir() else ():
                    name = entry.name
                    if (
                        name[:2] == first.name
                        and name[2:4] == second.name
                        and len(name) == 64
                        and name != EMPTY_OID
                    ):
                        with contextlib.suppress(ValueError, OSError):
                            yield Pointer(name, entry.stat().st_size)

    def remove(self, oid: str) -> None:
        """Delete the object if present."""
        with contextlib.suppress(FileNotFoundError):
            self.object_path(oid).unlink()

    def clean_tmp(self, now: float | None = None) -> int:
        """Remove stale temp files the way git-lfs does; return how many went.

        A ``<oid>-*`` file goes as soon as that object is present, one whose writer has
        ended at once, and any other file once it is older than an hour (it may belong
        to a live process otherwise).
        """
        if not self.tmp_dir.is_dir():
            return 0
        removed = self.remove_dead_temps()
        now = time.time() if now is None else now
        for entry in self.tmp_dir.iterdir():
            if not entry.is_file():
                continue
            oid = entry.name.split("-", 1)[0]
            try:
                stale = now - entry.stat().st_mtime > STALE_TEMP_SECONDS
                present = is_valid_oid(oid) and self.object_path(oid).exists()
            except OSError:
                continue
            if (stale or present) and not _held(entry):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed += 1
        return removed


def _held(path: Path) -> bool:
    """Whether ``path`` is a lock file a live process holds (``<oid>.lock``, S3 state).

    Removing a held lock file would let the next process lock a new file of the same
    name while the holder goes on: two writers of one ``.part`` or multipart upload.
    """
    if not path.name.endswith(".lock"):
        return False
    import fcntl

    try:
        with open(path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False
