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

from lfs_agent.progress import Progress

__all__ = ["Cancel", "Cancelled"]


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
