"""The one lock of a bucket's garbage collections (``meta/gc/lock.json``).

Created only if absent, renewed by its holder without ever overwriting another's,
broken once stale by the store's clock; pushes never take it (docs/gc.md).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from typing import TYPE_CHECKING

from lfs_agent.backends import Entry
from lfs_agent.errors import BackendError, ConfigError, LfsAgentError
from lfs_agent.redact import redact_url

if TYPE_CHECKING:
    from lfs_agent.remote import Collector

__all__ = ["HEARTBEAT_SECONDS", "LOCK_KEY", "LOCK_STALE_SECONDS", "CollectorLock", "LockHeld"]

LOCK_KEY = "meta/gc/lock.json"
#: How often a running collection rewrites its lock, in seconds.
HEARTBEAT_SECONDS = 60.0
#: A lock not rewritten for this long belongs to a collection that died.
LOCK_STALE_SECONDS = 600.0


def _uptime() -> float:
    """Seconds since boot, sleep included: how long this process may have been away."""
    return time.clock_gettime(getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC))


def _store_now(collector: Collector) -> float:
    """The store's clock now: the time it gives a record written for the purpose."""
    key = f"meta/gc/clock/{secrets.token_hex(8)}.json"
    entry = collector.create_meta(key, b"{}")
    if entry is None:  # a key of 64 random bits that exists: someone else's doing
        raise BackendError(f"cannot read the clock of {redact_url(collector.url)}")
    collector.delete_entries([entry])
    return entry.modified


class LockHeld(ConfigError):
    """Another collection holds the lock."""


class CollectorLock:
    """The one lock of a bucket's collections: a record created only if absent.

    Its holder rewrites it every :data:`HEARTBEAT_SECONDS` from a thread; a lock not
    rewritten for :data:`LOCK_STALE_SECONDS` (by the store's clock) is broken by the
    next collection. Pushes never take it. A holder that finds its lock gone or taken
    over stops before its next delete (:meth:`check`).

    Args:
        collector: The bucket.
        run: This run's name, written into the lock.
        heartbeat: Seconds between rewrites (tests shorten it).
    """

    def __init__(
        self, collector: Collector, run: str, heartbeat: float = HEARTBEAT_SECONDS
    ) -> None:
        self._collector = collector
        self._run = run
        self._heartbeat = heartbeat
        self._entry: Entry | None = None
        self._lost: str | None = None
        # When the lock was last known to be ours (seconds of uptime, sleep included).
        self._renewed = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._data = (
            f'{{"run": "{run}", "host": "{socket.gethostname()[:64]}", "pid": {os.getpid()}}}'
        ).encode()

    def acquire(self) -> float:
        """Take the lock; return the store's time it was taken at.

        Raises:
            LockHeld: a live collection holds it.
        """
        entry = self._collector.create_meta(LOCK_KEY, self._data)
        if entry is None:
            held = self._collector.stat_entry(LOCK_KEY)
            now = _store_now(self._collector)
            if held is not None and now - held.modified < LOCK_STALE_SECONDS:
                raise LockHeld(
                    f"another garbage collection of {redact_url(self._collector.url)} is "
                    f"running (its lock {LOCK_KEY} was renewed {now - held.modified:.0f} s "
                    f"ago); it expires {LOCK_STALE_SECONDS / 60:.0f} minutes after its last "
                    "renewal"
                )
            if held is not None:
                self._collector.delete_entries([held])  # only if still that dead lock
            entry = self._collector.create_meta(LOCK_KEY, self._data)
            if entry is None:
                raise LockHeld(
                    f"another garbage collection of {redact_url(self._collector.url)} "
                    "took the lock at the same moment: run gc again later"
                )
        self._entry = entry
        self._renewed = _uptime()
        self._thread = threading.Thread(target=self._renew, name="gc-lock", daemon=True)
        self._thread.start()
        return entry.modified

    def _renew(self) -> None:
        while not self._stop.wait(self._heartbeat):
            try:
                # Delete ours (only if unchanged), then create anew: a lock broken and
                # taken by another collection meanwhile is never overwritten.
                gone = self._entry is not None and self._collector.delete_entries([self._entry])
                entry = self._collector.create_meta(LOCK_KEY, self._data) if gone else None
            except LfsAgentError as exc:
                self._lost = f"the lock could not be renewed: {exc}"
                return
            if entry is None:
                self._lost = "the lock was broken by another collection"
                return
            self._entry = entry
            self._renewed = _uptime()

    def check(self) -> None:
        """Raise unless the lock is surely still this run's (stop before deleting more).

        Not only when renewing failed: also when the last renewal is so old (this
        process stalled, or the machine slept) that another collection may have
        broken the lock since.

        Raises:
            BackendError: naming why.
        """
        if self._lost is None and _uptime() - self._renewed > LOCK_STALE_SECONDS / 2:
            self._lost = "this collection stalled for longer than its lock is safe"
        if self._lost:
            raise BackendError(f"garbage collection stopped: {self._lost}")

    def release(self) -> None:
        """Stop renewing and remove the lock (if it is still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._entry is not None and not self._lost:
            self._collector.delete_entries([self._entry])
        self._entry = None
