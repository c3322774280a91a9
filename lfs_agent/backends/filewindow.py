"""A window of a file as an upload's request body: exactly its bytes, or an error.

Every network backend sends files the same way: the HTTP library reads the body in
chunks, seeks back to resend it on a retry, and asks its length for the
``Content-Length`` it announces. A :class:`FileWindow` is that body: the bytes
``[offset, offset + length)`` of a file, the whole file or one part of a multipart
upload, streamed from disk so that nothing is held in memory.

A file that ends inside its window raises :class:`SourceEndedError` instead of handing
the request fewer bytes than it announced, for which the server would wait until its
read timed out. A file that grew since it was checked is read only up to the window's
end.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lfs_agent.errors import IntegrityError
from lfs_agent.hashing import CHUNK_SIZE
from lfs_agent.progress import NULL_PROGRESS, Progress

__all__ = ["FileWindow", "SourceEndedError"]


class SourceEndedError(IntegrityError):
    """The file to upload ended inside the bytes an upload was sending.

    Its own class so that a backend can find it behind the HTTP library's wrapping of
    errors raised while a body is read.
    """


class FileWindow(io.RawIOBase):
    """The bytes ``[offset, offset + length)`` of the file at ``path``, read-only.

    Positions (``seek``, ``tell``) count from the window's start, and ``len()`` is its
    length: what HTTP libraries need of a body they may send twice.

    Args:
        path: The file; opened here and closed by :meth:`close`.
        oid: The object it is uploaded as, named by the error of a file cut short.
        offset: Where the window starts in the file.
        length: Its bytes.
        progress: Told of every byte read, and of bytes taken back (negative) when a
            retry seeks back, so that totals stay net; nothing by default.

    Raises:
        FileNotFoundError: the file is missing.
    """

    def __init__(
        self,
        path: Path,
        oid: str,
        offset: int,
        length: int,
        progress: Progress = NULL_PROGRESS,
    ) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._path = path
        self._oid = oid
        self._offset = offset
        self._length = length
        self._progress = progress
        # Bytes of the window read (or sought past) so far.
        self._pos = 0

    def readable(self) -> bool:
        """Always: a window is for reading."""
        return True

    def seekable(self) -> bool:
        """Always: a retry seeks back to the start."""
        return True

    def tell(self) -> int:
        """Bytes of the window read (or sought to) so far."""
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        """Move within the window (clamped to it), as ``io``'s ``seek`` does."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        position = min(max(0, base + pos), self._length)
        if position != self._pos:
            self._progress(position - self._pos)
            self._pos = position
        return position

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the window; 0 at its end.

        Raises:
            SourceEndedError: the file ended first. A regular file reads short only
                at its end, so a short read is that end.
        """
        want = min(len(buffer), self._length - self._pos)
        if want <= 0:
            return 0
        view = memoryview(buffer)[:want]
        self._file.seek(self._offset + self._pos)
        n = self._file.readinto(view)
        if n < want:
            end = self._offset + self._length - 1
            raise SourceEndedError(
                f"refusing to upload {self._oid}: {self._path} ended at byte "
                f"{self._offset + self._pos + n}, inside the bytes {self._offset}-{end} to send"
            )
        self._pos += n
        self._progress(n)
        return n

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        """Chunks of :data:`~lfs_agent.hashing.CHUNK_SIZE` (not lines, as ``io``'s)."""
        while chunk := self.read(CHUNK_SIZE):
            yield chunk

    def close(self) -> None:
        """Close the file."""
        self._file.close()
        super().close()
