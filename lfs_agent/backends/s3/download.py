"""Downloads from S3: a single GET, or parallel ranged GETs into the caller's file.

Large objects (over the multipart threshold) are fetched as ranges, about two per
worker (none smaller than ``part-size``), written in place with ``pwrite``; which ranges
are complete is recorded beside the file (``<file>.ranges``), so that a download killed
midway resumes from them. A body that breaks off (a lost connection, a body cut short, a
read timeout, or a 5xx after botocore's own retries) is asked for again, after a
backoff, from the byte where it broke: a single GET with a ``Range`` from the bytes
already written, a range for the rest of that range only. Up to ``max-attempts`` tries
per object or range. Nothing is hashed twice: a single GET hashes as it writes
(:class:`~lfs_agent.hashing.WriteHash`); ranges are hashed once each is whole
(:class:`~lfs_agent.hashing.RangeHash`), so bytes written before a break are hashed with
the rest of their range.

No download writes more than its pointer's size: an object whose size (ContentLength,
or the total of ContentRange) is not the pointer's is refused before its body is read,
a body longer than announced is cut where it should end, and the file of a ranged
download grows only as ranges arrive, nothing being allocated up front.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.exceptions

from lfs_agent.backends.s3.client import (
    BROKEN_OFF,
    S3Location,
    S3Settings,
    break_reason,
    worth_retrying,
)
from lfs_agent.cancel import run_each
from lfs_agent.errors import IntegrityError, RetriableError
from lfs_agent.hashing import CHUNK_SIZE, RangeHash, WriteHash
from lfs_agent.pointer import Pointer
from lfs_agent.progress import Progress

__all__ = ["Downloader"]

logger = logging.getLogger(__name__)

#: First wait (seconds) before a broken-off download is resumed; doubled per attempt,
#: capped at MAX_BACKOFF.
BASE_BACKOFF = 0.5
MAX_BACKOFF = 30.0


def _range_total(content_range: str | None) -> int | None:
    """The object's total size from a ContentRange (``bytes a-b/total``), when given."""
    total = (content_range or "").rpartition("/")[2].strip()
    return int(total) if total.isdigit() else None


class Downloader:
    """Fetches objects from one S3 location into local files.

    Args:
        client: Returns the shared boto3 client (created at the first request).
        location: Where the objects are.
        settings: Threshold, part size, concurrency and tries per body.
        sleep: Waits before a broken-off body is asked for again; injected by tests.
    """

    def __init__(
        self,
        client: Callable[[], Any],
        location: S3Location,
        settings: S3Settings,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._location = location
        self._settings = settings
        self._sleep = sleep

    def download(self, oid: str, dest_path: Path, size: int, progress: Progress) -> Pointer:
        """Write the object into ``dest_path``, resuming what an earlier attempt wrote.

        Returns:
            The sha256 and length of what the file holds: hashed as it was written (a
            single GET), or read back and hashed while the ranges came in.

        Raises:
            IntegrityError: the object is not the pointer's size.
            RetriableError: its body kept breaking off.
            botocore.exceptions.ClientError: and botocore's other errors, untranslated.
        """
        if size > self._settings.threshold:
            return self._ranged_download(oid, dest_path, size, progress)
        return self._stream_download(oid, dest_path, size, progress)

    def _get(self, oid: str, size: int, start: int, end: int | None = None) -> Any:
        """The body of bytes ``start`` to ``end`` (or the object's end) of ``oid``.

        Refused before any of it is read when the answer shows an object of another
        size than the pointer's ``size`` (ContentRange's total; ContentLength for a
        whole object), or a body longer than the bytes asked for.

        Raises:
            IntegrityError: for either; the body is closed unread.
        """
        args: dict[str, Any] = {"Bucket": self._location.bucket, "Key": self._location.key(oid)}
        ranged = bool(start or end is not None)
        if ranged:
            args["Range"] = f"bytes={start}-{'' if end is None else end}"
        response = self._client().get_object(**args)
        body = response["Body"]
        length = response.get("ContentLength")
        total = _range_total(response.get("ContentRange"))
        if total is None and not ranged:
            total = length
        expected = (size if end is None else end + 1) - start
        problem = None
        if total is not None and total != size:
            problem = f"has {total} bytes, but its pointer says {size}"
        elif length is not None and length > expected:
            problem = f"sends {length} bytes for bytes {start}-{start + expected - 1}"
        if problem is not None:
            body.close()
            raise IntegrityError(f"object {oid} on {self._location.url} {problem}")
        return body

    def _backoff(self, attempt: int) -> None:
        self._sleep(min(MAX_BACKOFF, BASE_BACKOFF * 2 ** (attempt - 1)))

    def _until_whole(self, oid: str, attempt: Callable[[], bool]) -> None:
        """Call ``attempt`` until the body it reads is whole, resuming it when it breaks.

        ``attempt`` asks for the bytes still missing, writes what arrives and returns
        whether the body is now whole (False: it ended early without an error). A body
        that breaks off, or a request S3 answers with a 5xx or throttling error after
        botocore's own retries, is tried again after a backoff: ``max_attempts`` times
        in all. Anything else (an :class:`IntegrityError` above all) ends it at once.

        Raises:
            RetriableError: the body kept breaking off.
            botocore.exceptions.ClientError: S3's error answer to the last attempt.
        """
        tries = 0
        max_attempts = self._settings.max_attempts
        while True:
            tries += 1
            failure: BaseException | None = None
            try:
                if attempt():
                    return
            except BROKEN_OFF as exc:
                failure = exc
            except botocore.exceptions.ClientError as exc:
                if tries >= max_attempts or not worth_retrying(exc):
                    raise
                failure = exc
            reason = "the body ended early" if failure is None else break_reason(failure)
            if tries >= max_attempts:
                raise RetriableError(
                    f"download of {oid} from {self._location.url} kept breaking off after "
                    f"{tries} attempts: {reason}"
                ) from None
            logger.debug("download of %s broke off (%s); resuming", oid, reason)
            self._backoff(tries)

    def _stream_download(self, oid: str, dest_path: Path, size: int, progress: Progress) -> Pointer:
        have = dest_path.stat().st_size if dest_path.exists() else 0
        if have >= size or have == 0:
            have = 0
        elif have:
            logger.debug("resuming download of %s at byte %d", oid, have)
            progress(have)
        what = f"object {oid} from {self._location.url}"
        with (
            open(dest_path, "r+b" if have else "wb") as dst,
            WriteHash(dst, have, limit=size, what=what) as written,
        ):

            def attempt() -> bool:
                # From the bytes the file holds: a Range once some are there.
                with contextlib.closing(self._get(oid, size, written.size)) as body:
                    for chunk in iter(lambda: body.read(CHUNK_SIZE), b""):
                        written.write(chunk)
                        progress(len(chunk))
                return written.size == size

            self._until_whole(oid, attempt)
            return written.pointer()

    def _range_size_for(self, size: int) -> int:
        """Bytes per ranged GET: about two ranges per worker, none under ``part-size``.

        The workers stay as busy with few large ranges as with many small ones, and a
        worker done first still finds a range to take; fewer ranges mean fewer requests,
        each with its own latency (gsutil's sliced downloads cut a few equal slices too).

        Args:
            size: The object's bytes.
        """
        concurrency = max(1, self._settings.concurrency)
        return max(self._settings.part_size, math.ceil(size / (2 * concurrency)))

    def _fetch_range(
        self, oid: str, size: int, start: int, end: int, *, fd: int, progress: Progress
    ) -> None:
        """Write bytes ``start`` to ``end`` (inclusive) of ``oid`` at their place in ``fd``.

        A body that breaks off is resumed in place: the next request asks only for the
        rest of this range, from the byte where the last one broke, so no byte is
        fetched, written or counted twice.

        Raises:
            IntegrityError: a body longer than its range (nothing past it is written).
            RetriableError: the range kept breaking off.
        """
        offset = start  # the first byte of the range not yet written

        def attempt() -> bool:
            nonlocal offset
            with contextlib.closing(self._get(oid, size, offset, end)) as body:
                for chunk in iter(lambda: body.read(CHUNK_SIZE), b""):
                    if offset + len(chunk) > end + 1:
                        raise IntegrityError(
                            f"object {oid} from {self._location.url} sent more than bytes "
                            f"{start}-{end} for that range; stopped reading it"
                        )
                    os.pwrite(fd, chunk, offset)
                    offset += len(chunk)
                    progress(len(chunk))
            return offset == end + 1

        self._until_whole(oid, attempt)

    def _ranged_download(self, oid: str, dest_path: Path, size: int, progress: Progress) -> Pointer:
        part_size = self._range_size_for(size)
        count = math.ceil(size / part_size)
        record = dest_path.with_name(dest_path.name + ".ranges")
        done: set[int] = set()
        if dest_path.exists() and record.exists():
            with contextlib.suppress(OSError, ValueError):
                saved = json.loads(record.read_text())
                if saved.get("size") == size and saved.get("part_size") == part_size:
                    done = {int(i) for i in saved.get("done", [])}
        if not done:
            # Empty: each range's pwrite extends the file as its bytes arrive. Setting
            # the size first would make a file as large as the pointer claims before
            # the object has shown its real size.
            open(dest_path, "wb").close()
        lock = threading.Lock()
        failed = threading.Event()

        def save() -> None:
            temp = record.with_name(record.name + ".tmp")
            temp.write_text(
                json.dumps({"size": size, "part_size": part_size, "done": sorted(done)})
            )
            os.replace(temp, record)

        with contextlib.ExitStack() as stack:
            fd = os.open(dest_path, os.O_WRONLY)
            stack.callback(os.close, fd)
            # Reads back each part once the parts before it are in: the caller's check
            # of the whole file then costs only the tail, not a second read of all of it.
            hasher = stack.enter_context(RangeHash(dest_path))
            for i in done:
                progress(min(part_size, size - i * part_size))
                hasher.written(i * part_size, min(size, (i + 1) * part_size))

            def fetch(index: int) -> None:
                if failed.is_set():
                    return  # another range failed for good, and the download with it
                start = index * part_size
                end = min(size, start + part_size) - 1
                try:
                    self._fetch_range(oid, size, start, end, fd=fd, progress=progress)
                except BaseException:
                    failed.set()
                    raise
                hasher.written(start, end + 1)
                with lock:
                    done.add(index)
                    save()

            todo = [i for i in range(count) if i not in done]
            run_each(fetch, todo, self._settings.concurrency, "lfs-agent-s3-range")
            hashed = hasher.pointer()
        with contextlib.suppress(FileNotFoundError):
            record.unlink()
        return hashed
