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
import errno
import hashlib
import io
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Self

from lfs_agent.errors import IntegrityError, ObjectNotFoundError
from lfs_agent.log import get_logger
from lfs_agent.pids import alive
from lfs_agent.pointer import EMPTY_OID, Pointer, is_valid_oid, validate_oid
from lfs_agent.progress import Progress

if TYPE_CHECKING:  # imported with the first thread: start-up matters
    import queue

__all__ = [
    "CHUNK_SIZE",
    "ObjectStore",
    "ObjectWriter",
    "RangeHash",
    "WriteHash",
    "check_file",
    "check_size",
    "corrupt_error",
    "hash_file",
    "link_file",
    "take_file",
]

logger = get_logger(__name__)

#: Bytes read or written per system call when streaming objects (1 MiB).
CHUNK_SIZE = 1024 * 1024
#: Temp files older than this many seconds are stale and may be removed (git-lfs: 1 h).
STALE_TEMP_SECONDS = 3600
#: Mode of temp files and so of published objects, before the umask.
OBJECT_MODE = 0o644
#: Files at least this large are read by a second thread while this one hashes.
READ_AHEAD_MIN = 8 * CHUNK_SIZE
#: Objects at least this large that the store checked as it wrote them are recorded
#: (:meth:`ObjectStore.is_checked`), so that a push need not read them again. Below it
#: hashing is a few milliseconds, and the record stays short: one line per model file.
CHECK_RECORD_MIN = 8 * CHUNK_SIZE
#: The record of those objects, in the lfs directory (git-lfs ignores other files there).
CHECK_RECORD_NAME = "lfs-agent-checked"
#: How far into the past a recorded object's mtime is set: any later write dates it
#: "now", which can never equal that, however coarse the file system's clock.
_CHECK_MARK_BACK_NS = 60 * 10**9


def hash_file(path: Path) -> tuple[str, int]:
    """Return ``(sha256 hex, size)`` of the file at ``path``, read in chunks.

    The buffer is no larger than the file (plus one byte, to see its end in one read),
    so hashing many small files does not allocate and free a megabyte each time. A
    large file is read ahead by a second thread (see :func:`_hash_read_ahead`).
    """
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as src:
        length = os.fstat(src.fileno()).st_size
        if length >= READ_AHEAD_MIN:
            return _hash_read_ahead(src, digest)
        buf = bytearray(min(CHUNK_SIZE, length + 1))
        view = memoryview(buf)
        while n := src.readinto(buf):
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


def _hash_read_ahead(src: io.FileIO, digest: hashlib._Hash) -> tuple[str, int]:
    """Hash ``src`` while a second thread reads the next chunks into spare buffers.

    Both the read (a copy out of the page cache) and sha256 release the GIL, so on two
    cores they overlap: measured on 1 GiB, 0.70 s instead of 1.15-1.45 s for a first
    read in a fresh process, which is what every command does.
    """
    import queue

    free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
    full: queue.SimpleQueue[tuple[bytearray, int] | OSError] = queue.SimpleQueue()
    for _ in range(4):
        free.put(bytearray(CHUNK_SIZE))

    def read_ahead() -> None:
        try:
            while n := src.readinto(buf := free.get()):
                full.put((buf, n))
            full.put((buf, 0))
        except OSError as exc:
            full.put(exc)

    reader = threading.Thread(target=read_ahead, name="hash-read-ahead", daemon=True)
    reader.start()
    size = 0
    try:
        while True:
            item = full.get()
            if isinstance(item, OSError):
                raise item
            buf, n = item
            if not n:
                return digest.hexdigest(), size
            digest.update(memoryview(buf)[:n])
            size += n
            free.put(buf)
    finally:
        free.put(bytearray(0))  # an empty buffer reads 0 bytes: ends a reader still waiting
        reader.join()


class BackgroundHash:
    """sha256 and size of chunks of bytes, hashed by a second thread once they add up.

    The caller meanwhile reads the next chunks (from a pipe) or writes this one (to a
    file): those system calls and sha256 all release the GIL, so on two cores they
    overlap. Chunks are handed over a :data:`CHUNK_SIZE` at a time, at most ``depth``
    batches ahead of the hashing, so the memory held stays bounded however fast the
    caller goes. Content smaller than one batch is hashed by the caller, at the end,
    and starts no thread. Use as a context manager: leaving the block ends the thread.
    """

    def __init__(self, depth: int = 2) -> None:
        self.size = 0
        self._digest = hashlib.sha256()
        self._batch: list[bytes] = []
        self._batch_size = 0
        self._depth = depth
        self._queue: queue.Queue[list[bytes] | None] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None  # from the thread, for hexdigest

    def update(self, chunk: bytes) -> None:
        """Add ``chunk``: bytes, which cannot change while they wait to be hashed."""
        self.size += len(chunk)
        self._batch.append(chunk)
        self._batch_size += len(chunk)
        if self._batch_size >= CHUNK_SIZE:
            if self._queue is None:
                import queue

                self._queue = queue.Queue(maxsize=self._depth)
                self._thread = threading.Thread(
                    target=self._run, args=(self._queue,), name="hash", daemon=True
                )
                self._thread.start()
            self._queue.put(self._batch)
            self._batch = []
            self._batch_size = 0

    def _run(self, batches: queue.Queue[list[bytes] | None]) -> None:
        while (batch := batches.get()) is not None:
            if self._error is not None:
                continue  # keep taking batches: the caller must never wait forever
            try:
                for chunk in batch:
                    self._digest.update(chunk)
            except BaseException as exc:  # raised again by hexdigest
                self._error = exc

    def hexdigest(self) -> str:
        """The sha256 of everything given, once all of it is hashed.

        Raises:
            Whatever hashing raised in the thread.
        """
        self.close()
        if self._error is not None:
            raise self._error
        for chunk in self._batch:
            self._digest.update(chunk)
        self._batch = []
        return self._digest.hexdigest()

    def close(self) -> None:
        """End the thread, if any, once it has hashed every batch handed over."""
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = self._thread = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WriteHash:
    """Writes a download into its file, in order, hashing the bytes as they go by.

    The caller checks :meth:`pointer` instead of reading the file back at the end. The
    hashing is a :class:`BackgroundHash`: past the first MiB a second thread hashes
    while the download receives and writes. A download that continues a partial file
    hashes the bytes already there first (the only read back); one that must start over
    calls :meth:`restart`. Use as a context manager: leaving the block ends the thread.

    A ``limit`` bounds the file: a write that would take it past ``limit`` bytes writes
    nothing and raises, so a remote sending more than the object it names never gets
    more than that written.

    Args:
        file: Open for writing; it is cut after ``have`` bytes, which stay.
        have: Bytes at the file's start that stay.
        limit: Most bytes the file may hold (None: no bound).
        what: What is written, for the error past ``limit`` ("object <oid> from <url>").
    """

    def __init__(
        self,
        file: BinaryIO,
        have: int = 0,
        *,
        limit: int | None = None,
        what: str = "the download",
    ) -> None:
        file.seek(have)
        file.truncate()
        self._file = file
        self._limit = limit
        self._what = what
        self._hash = BackgroundHash()
        try:
            while self._hash.size < have:
                chunk = os.pread(
                    file.fileno(), min(CHUNK_SIZE, have - self._hash.size), self._hash.size
                )
                if not chunk:
                    raise OSError(f"{file.name} ends at byte {self._hash.size}, not {have}")
                self._hash.update(chunk)
        except BaseException:
            self._hash.close()
            raise

    @property
    def size(self) -> int:
        """Bytes in the file so far."""
        return self._hash.size

    def write(self, data: bytes) -> None:
        """Append ``data`` (bytes, which cannot change while they wait) to the file.

        Raises:
            IntegrityError: the file would pass ``limit`` bytes; nothing is written.
        """
        if self._limit is not None and self._hash.size + len(data) > self._limit:
            raise IntegrityError(
                f"{self._what} is longer than the {self._limit} bytes expected; stopped reading it"
            )
        self._file.write(data)
        self._hash.update(data)

    def restart(self) -> None:
        """Empty the file and the hash: the download starts over."""
        self._file.seek(0)
        self._file.truncate()
        self._hash.close()
        self._hash = BackgroundHash()

    def pointer(self) -> Pointer:
        """The sha256 and length of what the file holds, once all of it is hashed."""
        return Pointer(self._hash.hexdigest(), self._hash.size)

    def close(self) -> None:
        """End the hashing thread, if any."""
        self._hash.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RangeHash:
    """sha256 of a file being written in ranges, in any order, hashed as its prefix grows.

    A ranged download writes parts in parallel. A thread of this object reads back and
    hashes each range, in file order, as soon as every range before it is written, so
    that the check at the end costs only the tail still unhashed instead of a second
    read of the whole file. Use as a context manager: leaving the block ends the thread.

    Args:
        path: The file, already created; ranges are reported with :meth:`written`.
    """

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self._digest = hashlib.sha256()
        self._hashed = 0  # the file's first _hashed bytes are hashed
        self._frontier = 0  # the file's first _frontier bytes are written
        self._pending: dict[int, int] = {}  # start -> end of written ranges past it
        self._closing = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="range-hash", daemon=True)
        self._thread.start()

    def written(self, start: int, end: int) -> None:
        """Record that bytes ``[start, end)`` of the file are written and final."""
        with self._changed:
            self._pending[start] = end
            while self._frontier in self._pending:
                self._frontier = self._pending.pop(self._frontier)
            self._changed.notify()

    def _run(self) -> None:
        buf = bytearray(CHUNK_SIZE)
        view = memoryview(buf)
        try:
            while True:
                with self._changed:
                    while self._hashed == self._frontier and not self._closing:
                        self._changed.wait()
                    end = self._frontier
                if self._hashed == end:
                    return  # closing, and everything written is hashed
                while self._hashed < end:
                    n = os.preadv(self._file.fileno(), [view[: end - self._hashed]], self._hashed)
                    if not n:
                        raise OSError(f"{self._file.name} ends at byte {self._hashed}")
                    self._digest.update(view[:n])
                    self._hashed += n
        except BaseException as exc:  # raised again by pointer()
            self._error = exc

    def pointer(self) -> Pointer:
        """The oid and size of the written prefix, once all of it is hashed.

        Raises:
            OSError: reading the file back failed.
        """
        self.close()
        if self._error is not None:
            raise self._error
        return Pointer(self._digest.hexdigest(), self._hashed)

    def close(self) -> None:
        """End the thread once it has hashed what is written; close the file."""
        with self._changed:
            self._closing = True
            self._changed.notify()
        self._thread.join()
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def link_file(src: Path, dest: Path) -> bool:
    """Make ``dest`` a hard link of ``src``, replacing any file there.

    Returns:
        False when linking is impossible here (another file system, no hard links, or
        no ``src``): the caller copies instead.
    """
    with contextlib.suppress(FileNotFoundError):
        dest.unlink()
    try:
        os.link(src, dest)
    except OSError:
        return False
    return True


def take_file(
    src: Path, dest: Path, size: int, progress: Progress | None = None, link: bool = True
) -> Pointer | None:
    """Put the regular file at ``src`` (a bucket's or a cache's) at ``dest``, to be checked.

    A hard link when ``link`` is set and the file systems allow it, else a copy, hashed
    as it is written and never longer than ``size`` bytes. ``src`` is not trusted: a
    symbolic link there (whose target could change after the check) or anything but a
    regular file is refused, never linked or followed.

    Args:
        src: The file to take.
        dest: A temp file of the caller's, replaced.
        size: The bytes expected (the pointer's size).
        progress: Told of the bytes taken.
        link: Try a hard link first.

    Returns:
        For a copy, the sha256 and length of what ``dest`` holds; None for a link, which
        read nothing (the caller's check then reads it once).

    Raises:
        IntegrityError: ``src`` is no regular file, or holds more than ``size`` bytes.
        FileNotFoundError: there is no ``src``.
    """
    if link and link_file(src, dest):  # link(2) makes a link of a link, never follows
        if not stat.S_ISREG(os.lstat(dest).st_mode):
            dest.unlink()
            raise IntegrityError(f"refusing {src}: it is not a regular file")
        if progress is not None:
            progress(size)
        return None
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IntegrityError(f"refusing {src}: it is a symbolic link") from None
        raise
    with open(fd, "rb", buffering=0) as source:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IntegrityError(f"refusing {src}: it is not a regular file")
        with open(dest, "wb") as dst, WriteHash(dst) as written:
            while chunk := source.read(min(CHUNK_SIZE, size + 1 - written.size)):
                written.write(chunk)
                if written.size > size:
                    raise IntegrityError(f"refusing {src}: it holds more than {size} bytes")
                if progress is not None:
                    progress(len(chunk))
            return written.pointer()


def check_file(
    path: Path, expected: Pointer, source: str = "", hashed: Pointer | None = None
) -> None:
    """Refuse the file at ``path`` unless it is exactly ``expected``.

    A file of another size is refused without reading it; one of the right size is
    hashed, unless ``hashed`` already covers all of it.

    Args:
        path: The file to check.
        expected: The pointer it must match.
        source: Where the bytes came from (``from <remote>``), for the message.
        hashed: The sha256 and length of what was written to the file's start, hashed
            as it was written (:class:`WriteHash`, :class:`RangeHash`).

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


def _mark_checked(temp_path: Path) -> tuple[int, int] | None:
    """Date the checked file at ``temp_path`` a minute back.

    A file with another name (a hard link of a folder bucket's object) is left as it
    is: its times are not the store's to change, and others may write to it.

    Returns:
        The file's inode and new mtime, or None when it was left as it is.
    """
    try:
        st = os.stat(temp_path)
        if st.st_nlink != 1:
            return None
        os.utime(temp_path, ns=(st.st_atime_ns, time.time_ns() - _CHECK_MARK_BACK_NS))
        st = os.stat(temp_path)  # the mtime as the file system keeps it
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _check_key(st: os.stat_result) -> tuple[int, ...]:
    """What the record keeps of a checked object's stat data, and compares later."""
    return (st.st_size, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def _check_line(oid: str, key: tuple[int, ...]) -> str:
    """One line of the record of checked objects."""
    return " ".join([oid, *map(str, key)]) + "\n"


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
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects_dir = self.root / "objects"
        # objects/ as a string ending in a separator (_file_of): open and contains build
        # an object's path from it without pathlib, which costs a smudge of a small file
        # more than opening it does.
        self._objects_prefix = os.path.join(self.objects_dir, "")
        # Same file system as objects/, so os.replace into place is atomic.
        self.tmp_dir = self.root / "tmp"
        self._tmp_ready = False
        # oid -> what the object's stat said once the store had checked and placed it;
        # read from CHECK_RECORD_NAME on the first question (uploads ask from threads).
        self._checked: dict[str, tuple[int, ...]] | None = None
        self._checked_lock = threading.Lock()

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
        marked = _mark_checked(temp_path) if pointer.size >= CHECK_RECORD_MIN else None
        try:
            os.replace(temp_path, final)
        except FileNotFoundError:
            if not temp_path.exists():
                raise
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp_path, final)
        if marked is not None:
            self._record_checked(pointer, final, marked)

    def is_checked(self, pointer: Pointer, path: Path | None = None) -> bool:
        """True when the stored object is, unchanged, one this store checked as it wrote it.

        With ``path``: when the file there is that object (another name of the same
        file, such as the path git-lfs names for an upload), unchanged.

        Recorded are objects of :data:`CHECK_RECORD_MIN` bytes or more that the store
        hashed as it wrote them (``clean``, a copied download) and that no other name
        shared then. Once they were in place, the record took their inode, size,
        mtime and ctime, the mtime having been set a minute into the past. Any write
        since dates the file "now"; setting its times back, renaming, linking or
        replacing it changes its ctime or inode. So a True answer means no one has
        changed the file through the file system since it was checked, and a push may
        send it without reading it first, as DVC does from its own record (of inode,
        size and mtime) and git-lfs does with none. Damage below the file system (a
        failing disk) is not seen; every download is still checked.
        """
        if pointer.size < CHECK_RECORD_MIN:
            return False
        with self._checked_lock:
            if self._checked is None:
                self._checked = self._read_checked()[0]
            record = self._checked.get(pointer.oid)
        return (
            record is not None
            and record[0] == pointer.size
            and self._holds(pointer.oid, record, path)
        )

    def _holds(self, oid: str, record: tuple[int, ...], path: Path | None = None) -> bool:
        """Whether the file at ``path`` (default: the stored object) is, unchanged, ``record``'s.

        The same device and inode, so another name of the stored object qualifies.
        """
        try:
            return record == _check_key(os.stat(path or self.object_path(oid)))
        except OSError:
            return False

    def _read_checked(self) -> tuple[dict[str, tuple[int, ...]], int]:
        """The record, later lines winning, and its number of lines.

        A line that does not parse is passed over.
        """
        try:
            text = (self.root / CHECK_RECORD_NAME).read_text(encoding="ascii", errors="replace")
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

    def compact_checked(self) -> int:
        """Rewrite the record with only the objects it still vouches for.

        Lines for objects removed or changed since, repeated lines and lines that do
        not parse go. A line another process appends meanwhile may be lost: its object
        is then hashed at its next push, as if it had never been recorded.

        Returns:
            How many lines went.
        """
        checked, lines = self._read_checked()
        if not lines:
            return 0
        kept = {oid: record for oid, record in checked.items() if self._holds(oid, record)}
        path = self.root / CHECK_RECORD_NAME
        temp = self.root / f".{CHECK_RECORD_NAME}-{os.urandom(8).hex()}"
        try:
            temp.write_text(
                "".join(_check_line(oid, key) for oid, key in kept.items()),
                encoding="ascii",
            )
            os.replace(temp, path)
        except OSError as exc:
            logger.debug("cannot rewrite %s: %s", path, exc)
            return 0
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        with self._checked_lock:
            self._checked = kept
        return lines - len(kept)

    def _record_checked(self, pointer: Pointer, final: Path, marked: tuple[int, int]) -> None:
        """Append the placed object's stat data to the record (a lost line: a re-hash).

        Nothing is recorded unless ``final`` is still the file marked, unwritten since.
        """
        try:
            st = os.stat(final)
            if (st.st_ino, st.st_mtime_ns) != marked:
                return
            key = _check_key(st)
            line = _check_line(pointer.oid, key)
            fd = os.open(
                self.root / CHECK_RECORD_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
            )
            try:
                os.write(fd, line.encode("ascii"))  # one write: appends never interleave
            finally:
                os.close(fd)
        except OSError as exc:
            logger.debug("cannot record %s as checked: %s", pointer.oid, exc)
            return
        with self._checked_lock:
            if self._checked is not None:
                self._checked[pointer.oid] = key

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
