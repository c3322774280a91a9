"""The progress line a person sees during push, fetch, pull and clone.

Drawn as git-lfs draws it, updated while bytes move rather than when a file ends, so a
single large file shows progress too:

    Uploading LFS objects:  33% (1/3), 139 MB | 18 MB/s, 7 s left

The percentage is of bytes, the count of objects. Workers report byte deltas through
the callback :meth:`ProgressLine.progress` hands out per object (negative on a retry),
and :meth:`ProgressLine.done` when an object ends, which also tops the object up to its
full size (a skipped object moved no bytes, yet it is done). Redraws are throttled so
that a fast local copy does not spend its time writing to the terminal.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

from lfs_agent.pointer import Pointer
from lfs_agent.progress import Progress

__all__ = ["ProgressLine", "human_rate", "human_size"]

#: Units of :func:`human_size`, each 1000 times the one before.
SIZE_UNITS = ("B", "KB", "MB", "GB", "TB", "PB", "EB")

#: Redraw at most this often (seconds): fast enough to look live, cheap enough to ignore.
REDRAW_SECONDS = 0.2
#: The rate is the bytes moved over about this many recent seconds: steady, yet it
#: follows a transfer that speeds up or stalls.
RATE_WINDOW_SECONDS = 5.0


def human_size(size: float) -> str:
    """Format bytes as git-lfs does (``humanize.FormatBytes``): ``12 B``, ``3.0 KB``, ``40 MB``.

    In the largest unit the size reaches, rounded to a tenth; shown with that tenth
    below 10, without it from 10 up (and for bytes).
    """
    size = int(size)
    scale, unit = 1, 0
    while size >= scale * 1000 and unit < len(SIZE_UNITS) - 1:
        scale, unit = scale * 1000, unit + 1
    rounded = math.floor(size / scale * 10 + 0.5) / 10
    return f"{rounded:.{1 if rounded < 10 and unit else 0}f} {SIZE_UNITS[unit]}"


def human_rate(bytes_per_second: float) -> str:
    """Format a rate as git-lfs does: ``18 MB/s``."""
    return f"{human_size(bytes_per_second)}/s"


def _human_duration(seconds: float) -> str:
    """``7 s``, ``3 min 05 s``, ``2 h 14 min``: short enough for the end of a line."""
    whole = max(0, math.ceil(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressLine:
    """One line on a terminal, redrawn in place while a batch of objects moves.

    Args:
        verb: ``Uploading`` or ``Downloading``.
        pointers: The objects of the batch (repeats count once).
        stream: Where the line is drawn (stderr).
        live: Draw at all; False when the stream is not a terminal or output is quiet.
        clock: Monotonic clock in seconds; injected by tests.
    """

    def __init__(
        self,
        verb: str,
        pointers: list[Pointer],
        stream: TextIO,
        *,
        live: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        unique = {p.oid: p.size for p in pointers if p.size > 0}
        self.verb = verb
        self.total_files = len(unique)
        self.total_bytes = sum(unique.values())
        self.done_files = 0
        # Net bytes moved or accounted for (a finished object counts whole).
        self.done_bytes = 0
        self._stream = stream
        self._live = live and self.total_files > 0
        self._clock = clock
        self._lock = threading.Lock()
        # Net bytes that actually moved: the rate is of these, not of skipped objects.
        self._flow = 0
        # Bytes each unfinished object has reported, to top it up when it ends.
        self._moved: dict[str, int] = {}
        # (time, done_bytes) samples within the rate window, oldest first.
        self._samples: deque[tuple[float, int]] = deque([(clock(), 0)])
        self._drawn_at = -math.inf
        self._width = 0
        self._finished = False

    def progress(self, pointer: Pointer) -> Progress:
        """The byte-delta callback for one object's transfer (called from its worker)."""

        def report(delta: int) -> None:
            with self._lock:
                self._moved[pointer.oid] = self._moved.get(pointer.oid, 0) + delta
                self.done_bytes += delta
                self._flow += delta
                self._maybe_draw()

        return report

    def done(self, pointer: Pointer, error: BaseException | None) -> None:
        """Count one object as ended; its bytes count whole unless it failed."""
        with self._lock:
            moved = self._moved.pop(pointer.oid, 0)
            self.done_bytes += -moved if error is not None else pointer.size - moved
            self.done_files += 1
            self._maybe_draw(force=self.done_files == self.total_files)

    def finish(self) -> None:
        """End the line (a newline after the last redraw), once."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            if self._live and self._width:
                self._draw(self._clock(), end=", done.\n" if self._complete() else "\n")

    def rate(self) -> float | None:
        """Bytes per second over the recent window; None until there is a measure."""
        with self._lock:
            return self._rate(self._clock())

    def text(self) -> str:
        """The line as it would be drawn now (without carriage return or padding)."""
        with self._lock:
            return self._text(self._clock())

    def _complete(self) -> bool:
        return self.done_files >= self.total_files

    def _rate(self, now: float) -> float | None:
        self._forget_old_samples(now)
        start, moved = self._samples[0]
        elapsed = now - start
        if elapsed <= 0 or self._flow <= moved:
            return None
        return (self._flow - moved) / elapsed

    def _text(self, now: float) -> str:
        percent = 100 * self.done_bytes // self.total_bytes if self.total_bytes else 100
        percent = max(0, min(100, percent))
        line = (
            f"{self.verb} LFS objects: {percent:3d}% ({self.done_files}/{self.total_files}), "
            f"{human_size(max(0, self.done_bytes))}"
        )
        rate = self._rate(now)
        if rate:
            line += f" | {human_rate(rate)}"
            left = self.total_bytes - self.done_bytes
            if left > 0 and not self._complete():
                line += f", {_human_duration(left / rate)} left"
        return line

    def _forget_old_samples(self, now: float) -> None:
        while len(self._samples) > 1 and now - self._samples[1][0] >= RATE_WINDOW_SECONDS:
            self._samples.popleft()

    def _maybe_draw(self, force: bool = False) -> None:
        now = self._clock()
        if self._samples[-1][0] < now:
            self._samples.append((now, self._flow))
            self._forget_old_samples(now)
        if self._live and not self._finished and (force or now - self._drawn_at >= REDRAW_SECONDS):
            self._draw(now)

    def _draw(self, now: float, end: str = "") -> None:
        line = self._text(now)
        # Pad over the remains of a longer earlier line rather than clear it with an
        # escape sequence: it works on every terminal and in git's own progress area.
        padded = line.ljust(self._width)
        self._width = len(line)
        self._stream.write(f"\r{padded}{end}")
        self._stream.flush()
        self._drawn_at = now
