"""Downloads a smudge waits for: the injected fetch, its unchecked result, delayed ones.

The filter is given a download callable (:data:`ReadingFetch`) rather than a remote, so
that it never imports the transfer code before it needs it and tests can inject one. A
large object the download did not read comes back :class:`Unverified`, to be hashed
while it is sent; :class:`DelayedDownloads` runs the downloads of the smudges git
agreed to delay (gitattributes(5) "Delay") on a thread pool while git goes on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from lfs_agent.errors import LfsAgentError, agent_error
from lfs_agent.log import ERROR, get_logger
from lfs_agent.pointer import Pointer

if TYPE_CHECKING:  # imported when the first download starts: start-up matters here
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["DelayedDownloads", "ReadingFetch", "Unverified"]

logger = get_logger(__name__)


class Unverified(NamedTuple):
    """A downloaded object whose bytes nobody has read yet, to be hashed as they are sent.

    Attributes:
        path: A private temp file of the right size; the reader publishes it into the
            store once it hashes right, and deletes it otherwise.
        source: Where it came from (``from <remote>``), for messages.
    """

    path: Path
    source: str

    def discard(self) -> None:
        """Delete the temp file (a file already moved into the store is not there)."""
        self.path.unlink(missing_ok=True)


#: Downloads one object, or raises: None once the object is in the store (verified),
#: or the :class:`Unverified` download of a large one, for the smudge to check.
ReadingFetch = Callable[[Pointer], "Unverified | None"]


class DelayedDownloads:
    """Downloads for smudges git agreed to delay, run on a bounded thread pool.

    Each oid is downloaded once however many paths point at it. Paths go from
    *waiting* (download running) to *ready* (done or failed, not yet listed) to
    *listed* (handed to git, which then asks for the content). A failed path is logged
    and listed like the others, its follow-up smudge answering the pointer: a
    ``status=error`` answer would make git abort the checkout halfway. The
    post-checkout hook then fails the command (:mod:`lfs_agent.smudge_failures`).

    Args:
        fetch: Downloads one object, or raises (a :data:`ReadingFetch`).
        concurrency: Parallel downloads.
        failure_level: The level failures are logged at.
    """

    def __init__(
        self,
        fetch: ReadingFetch,
        concurrency: int,
        failure_level: int = ERROR,
    ) -> None:
        self._fetch = fetch
        self._concurrency = max(1, concurrency)
        # The level failures are logged at (DEBUG when someone else reports them).
        self._failure_level = failure_level
        # Created on the first delayed smudge; most processes never need it.
        self._pool: ThreadPoolExecutor | None = None
        self._cond = threading.Condition()
        # oid -> paths waiting for its download.
        self._waiting: dict[str, list[str]] = {}
        # oids whose download finished -> the error, or None on success.
        self._finished: dict[str, LfsAgentError | None] = {}
        # Paths finished but not yet returned by list_available_blobs.
        self._ready: list[str] = []
        # Listed paths awaiting git's follow-up smudge -> their pointer.
        self._pointers: dict[str, Pointer] = {}
        # oid -> its download, not yet verified nor handed to a smudge.
        self._unverified: dict[str, Unverified] = {}

    def add(self, path: str, pointer: Pointer) -> None:
        """Queue ``path``'s object for download."""
        with self._cond:
            self._pointers[path] = pointer
            if pointer.oid in self._finished:
                self._settle([path], pointer, self._finished[pointer.oid])
                return
            if pointer.oid in self._waiting:
                self._waiting[pointer.oid].append(path)
                return
            self._waiting[pointer.oid] = [path]
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self._concurrency, "lfs-agent-download")
            self._pool.submit(self._run, pointer)

    def add_failed(self, path: str, pointer: Pointer, error: LfsAgentError) -> None:
        """Take ``path`` as a delayed smudge whose download has failed with ``error``.

        It is logged and listed, as a failed background download is.
        """
        with self._cond:
            self._pointers[path] = pointer
            self._finished.setdefault(pointer.oid, error)
            self._settle([path], pointer, error)

    def _run(self, pointer: Pointer) -> None:
        error: LfsAgentError | None = None
        unverified = None
        try:
            unverified = self._fetch(pointer)
        except (LfsAgentError, OSError) as exc:  # OSError: this machine's, a full disk
            error = agent_error(exc)
        except Exception as exc:  # a worker boundary: report, never kill the process
            logger.debug("download of %s failed", pointer.oid, exc_info=True)
            error = LfsAgentError(f"{type(exc).__name__}: {exc}")
        with self._cond:
            if unverified is not None:
                self._unverified[pointer.oid] = unverified
            self._finished[pointer.oid] = error
            self._settle(self._waiting.pop(pointer.oid, []), pointer, error)

    def _settle(self, paths: list[str], pointer: Pointer, error: LfsAgentError | None) -> None:
        """Make finished ``paths`` available, or report their failure (lock held)."""
        if error is not None:
            for path in paths:
                logger.log(self._failure_level, "%s: %s", path, error)
        self._ready.extend(paths)
        self._cond.notify_all()

    def wait_available(self) -> list[str]:
        """Block until some paths are ready and return them; ``[]`` when none are left."""
        with self._cond:
            while not self._ready and self._waiting:
                self._cond.wait()
            ready, self._ready = self._ready, []
            return ready

    def error_of(self, pointer: Pointer) -> str:
        """Why ``pointer``'s download failed ("" when it did not)."""
        with self._cond:
            error = self._finished.get(pointer.oid)
        return "" if error is None else str(error)

    def take(self, path: str) -> tuple[Pointer, bool, Unverified | None] | None:
        """Return ``(pointer, downloaded, unverified)`` for a listed path, else None.

        ``unverified`` is the object's download still to be checked, given to the first
        path of that object only: the others find the object in the store once it is.
        """
        with self._cond:
            pointer = self._pointers.get(path)
            if pointer is None or pointer.oid not in self._finished:
                return None
            del self._pointers[path]
            unverified = self._unverified.pop(pointer.oid, None)
            return pointer, self._finished[pointer.oid] is None, unverified

    def close(self) -> None:
        """Stop the pool (waiting for running downloads); drop unchecked downloads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        with self._cond:
            for unverified in self._unverified.values():
                unverified.discard()
            self._unverified.clear()
