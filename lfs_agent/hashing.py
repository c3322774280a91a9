"""sha256 of objects: of a file, and of bytes as they are written.

sha256 and the system calls that read or write a chunk all release the GIL, so on two
cores a second thread hashes while the first one reads or writes: :func:`hash_file`
reads a large file ahead, :class:`BackgroundHash` hashes what a caller streams,
:class:`WriteHash` what a download writes in order and :class:`RangeHash` what one
writes in ranges, so that nothing is read twice to be checked. :data:`CHUNK_SIZE` is
the one chunk every module streams objects in.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, Self

from lfs_agent.errors import IntegrityError
from lfs_agent.pointer import Pointer

if TYPE_CHECKING:  # imported with the first thread: start-up matters
    import queue

__all__ = [
    "CHUNK_SIZE",
    "READ_AHEAD_MIN",
    "BackgroundHash",
    "Digest",
    "RangeHash",
    "WriteHash",
    "hash_file",
]

#: Bytes read or written per system call when streaming objects (1 MiB).
CHUNK_SIZE = 1024 * 1024
#: Files at least this large are read by a second thread while this one hashes.
READ_AHEAD_MIN = 8 * CHUNK_SIZE


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
    cores they overlap.
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


class Digest(Protocol):
    """What :class:`BackgroundHash` needs of a hash: a ``hashlib.sha256()`` object."""

    def update(self, data: bytes, /) -> None:
        """Add ``data`` to what is hashed."""

    def hexdigest(self) -> str:
        """The hash of everything added, in hex."""


class BackgroundHash:
    """sha256 and size of chunks of bytes, hashed by a second thread once they add up.

    The caller meanwhile reads the next chunks (from a pipe) or writes this one (to a
    file): those system calls and sha256 all release the GIL, so on two cores they
    overlap. Chunks are handed over a :data:`CHUNK_SIZE` at a time, at most ``depth``
    batches ahead of the hashing, so the memory held stays bounded however fast the
    caller goes. Content smaller than one batch is hashed by the caller, at the end,
    and starts no thread. Use as a context manager: leaving the block ends the thread.

    Args:
        depth: How many batches may wait for the hashing thread.
        digest: What hashes the bytes (None: a new ``hashlib.sha256()``); tests make
            it fail or stall with it.
    """

    def __init__(self, depth: int = 2, digest: Digest | None = None) -> None:
        self.size = 0
        self._digest: Digest = hashlib.sha256() if digest is None else digest
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
