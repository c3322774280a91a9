"""Stopping a batch of transfers when the user presses Ctrl-C.

Python delivers SIGINT to the main thread only, while the bytes move in worker threads.
The main thread sets a :class:`Cancel`; every worker's progress callback checks it, so a
transfer stops at its next chunk (backends report progress between chunks), and what a
backend keeps to resume (S3's multipart state, a partial download) stays for next time.

:class:`Cancelled` derives from ``BaseException`` on purpose: a backend's retry loop
catches ``Exception`` to retry a network failure, and must not retry a cancellation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from lfs_agent.progress import Progress

__all__ = ["Cancel", "Cancelled", "run_each"]

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


class Cancelled(BaseException):
    """A transfer stopped because the batch was cancelled."""


class Cancel:
    """A flag shared by the main thread (which sets it) and the workers (which check it)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        """Ask every transfer of the batch to stop at its next chunk."""
        self._event.set()

    @property
    def is_set(self) -> bool:
        """Whether the batch was cancelled."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` once the batch was cancelled."""
        if self._event.is_set():
            raise Cancelled

    def guard(self, progress: Progress) -> Progress:
        """``progress``, checking for cancellation before each report it forwards."""

        def report(delta: int) -> None:
            self.check()
            progress(delta)

        return report


def run_each(
    work: Callable[[_Item], _Result], items: Sequence[_Item], workers: int, name: str
) -> list[_Result]:
    """``work`` of each item on a thread pool, results in order; the first failure ends it.

    Unlike ``pool.map`` in a ``with`` block, a failure (a cancellation included) drops
    the items not yet started instead of running every one of them before it is told:
    the parts of one object need not all be sent to learn that the push was cancelled.

    Args:
        work: Run for each item, from a worker thread.
        items: The items, in the order results are wanted.
        workers: Threads, at least one.
        name: Prefix of the threads' names.
    """
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max(1, workers), name)
    try:
        futures = [pool.submit(work, item) for item in items]
        return [future.result() for future in futures]
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
