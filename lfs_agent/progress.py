"""Progress reporting as callbacks of byte deltas.

A transfer reports how many bytes moved since its last report; a retry reports a negative
delta so totals stay net (s3transfer's convention). :class:`ThrottledProgress` batches
deltas so that protocol peers (git-lfs reads one JSON line per report) are not flooded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["NULL_PROGRESS", "Progress", "ThrottledProgress"]

#: Report at least every this many bytes (256 KiB) ...
THROTTLE_BYTES = 256 * 1024
#: ... or every this many seconds, whichever comes first.
THROTTLE_SECONDS = 0.1


class Progress(Protocol):
    """Receives byte deltas as a transfer moves; may be called from worker threads."""

    def __call__(self, delta: int) -> None:
        """Record ``delta`` more bytes transferred (negative when a retry rewinds)."""


def _ignore(delta: int) -> None:
    """Discard a progress delta (the default callback)."""


#: The do-nothing callback used when a caller does not care about progress.
NULL_PROGRESS: Progress = _ignore


class ThrottledProgress:
    """Aggregates deltas and forwards them in batches.

    Args:
        sink: Receives ``(bytes_so_far, bytes_since_last)`` for each batch.
        clock: Monotonic clock in seconds; injected by tests.
    """

    def __init__(
        self,
        sink: Callable[[int, int], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._clock = clock
        # Net bytes transferred so far, including deltas not yet forwarded.
        self.total = 0
        # Deltas accumulated since the last call to the sink.
        self._pending = 0
        self._last_report = clock()
        self._lock = threading.Lock()

    def __call__(self, delta: int) -> None:
        """Add ``delta``; forward the batch once it is large or old enough."""
        with self._lock:
            self.total += delta
            self._pending += delta
            now = self._clock()
            if abs(self._pending) >= THROTTLE_BYTES or now - self._last_report >= THROTTLE_SECONDS:
                self._emit(now)

    def flush(self) -> None:
        """Forward whatever is pending, so the last report equals the total."""
        with self._lock:
            if self._pending:
                self._emit(self._clock())

    def _emit(self, now: float) -> None:
        self._sink(self.total, self._pending)
        self._pending = 0
        self._last_report = now
