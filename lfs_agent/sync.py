"""Moving many objects between the local store and a remote: the transfer queue.

This layer decides what to move (skip what is already there, dedupe, largest first),
runs the transfers on a bounded thread pool, and reports the failures grouped by cause.
Each transfer is :class:`~lfs_agent.remote.Remote`'s, which verifies every download
before the store takes it.

Ctrl-C stops a batch at once: queued transfers are dropped, running ones stop at their
next chunk (:mod:`lfs_agent.cancel`), and :class:`Interrupted` tells the caller what
finished.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from lfs_agent.cancel import Cancel, Cancelled
from lfs_agent.errors import LfsAgentError, TransferError, agent_error
from lfs_agent.pointer import Pointer
from lfs_agent.progress import NULL_PROGRESS, Progress
from lfs_agent.remote import Remote
from lfs_agent.scan import PointerFile
from lfs_agent.smudge_downloads import Unverified
from lfs_agent.store import ObjectStore

__all__ = [
    "BatchResult",
    "BatchWatch",
    "Interrupted",
    "check_local",
    "fetch",
    "push",
    "run_batch",
]


class BatchResult:
    """What a push or fetch of many objects did.

    A plain class, not a dataclass: importing ``dataclasses`` (with ``inspect``)
    would add to the start-up of every ``git push``'s pre-push hook.

    Attributes:
        done: Objects transferred.
        skipped: Objects that needed no transfer (already present).
        failed: oid -> the error that stopped it.
    """

    def __init__(self) -> None:
        self.done: list[Pointer] = []
        self.skipped: list[Pointer] = []
        self.failed: dict[str, LfsAgentError] = {}


class BatchWatch(Protocol):
    """Follows a batch as it runs, e.g. :class:`~lfs_agent.progressline.ProgressLine`."""

    def progress(self, pointer: Pointer) -> Progress:
        """The byte-delta callback for ``pointer``'s transfer (called from its worker)."""

    def done(self, pointer: Pointer, error: BaseException | None) -> None:
        """``pointer``'s transfer ended, with ``error`` when it failed."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a batch; what finished before it is in :attr:`result`.

    A ``KeyboardInterrupt``, so that a caller that does not look at the result still
    exits as after any Ctrl-C.

    Attributes:
        result: The objects done, skipped and failed before the interruption.
        total: The objects the batch held.
    """

    def __init__(self, result: BatchResult, total: int) -> None:
        super().__init__()
        self.result = result
        self.total = total


#: After Ctrl-C, wait this long (seconds) for running transfers to reach their next
#: chunk and stop; a transfer stuck on the network is left behind.
STOP_WAIT_SECONDS = 1.0


def run_batch(
    remote: Remote,
    pointers: Iterable[Pointer],
    action: Callable[[Pointer, Progress], bool],
    concurrency: int,
    watch: BatchWatch | None = None,
    *,
    cancel: Cancel | None = None,
) -> BatchResult:
    """Run ``action`` for each distinct pointer, largest first, on a thread pool.

    Once the remote proves unreachable, the objects left fail at once
    (:meth:`Remote.reaching <lfs_agent.remote.Remote.reaching>`).

    Args:
        remote: The remote the actions use; its backend bounds the threads.
        pointers: May repeat; each oid is handled once.
        action: Given the pointer and its progress callback; returns True when it
            transferred bytes, False when it skipped.
        concurrency: Worker threads, at most the backend's ``max_workers``.
        watch: Told of each object's bytes and end.
        cancel: Set to stop the batch; one is made when not given (Ctrl-C sets it).

    Raises:
        Interrupted: Ctrl-C arrived; queued objects were dropped and running ones
            stopped at their next chunk.
    """
    unique = {p.oid: p for p in pointers if p.size > 0}
    ordered = sorted(unique.values(), key=lambda p: p.size, reverse=True)
    result = BatchResult()
    if not ordered:
        return result
    import threading
    from concurrent.futures import ThreadPoolExecutor, wait

    stop = cancel or Cancel()
    # Objects whose action is running; Ctrl-C waits for them to stop.
    running: set[str] = set()
    changed = threading.Condition()

    def run(pointer: Pointer) -> None:
        with changed:
            if stop.is_set:
                return
            running.add(pointer.oid)
        error: LfsAgentError | None = None
        try:
            progress = watch.progress(pointer) if watch else NULL_PROGRESS
            moved = action(pointer, stop.guard(progress))
        except Cancelled:
            return  # neither done nor failed: the next run does it
        except (LfsAgentError, OSError) as exc:  # OSError: this machine's, a full disk
            error = agent_error(exc)
            with changed:
                result.failed[pointer.oid] = error
        else:
            with changed:
                (result.done if moved else result.skipped).append(pointer)
        finally:
            with changed:
                running.discard(pointer.oid)
                changed.notify_all()
        if watch is not None:
            watch.done(pointer, error)

    bound = remote.max_workers
    workers = max(1, min(concurrency, bound) if bound else concurrency)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        # Errors are the objects' (recorded by run); the futures only say when all ended.
        wait([pool.submit(run, p) for p in ordered])
    except KeyboardInterrupt:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        with changed:
            changed.wait_for(lambda: not running, timeout=STOP_WAIT_SECONDS)
            raise Interrupted(result, len(ordered)) from None
    finally:
        # After Ctrl-C, do not wait for a transfer stuck on the network.
        pool.shutdown(wait=not stop.is_set)
    return result


def check_local(store: ObjectStore, files: Iterable[PointerFile]) -> list[str]:
    """Describe pointers whose objects are missing or corrupt (wrong size) locally."""
    problems = []
    for f in files:
        if f.pointer.size == 0 or store.contains(f.pointer):
            continue
        path = store.object_path(f.pointer.oid)
        kind = "corrupt" if path.exists() else "missing"
        problems.append(f"({kind}) {f.path} ({f.pointer.oid})")
    return problems


def push(
    store: ObjectStore,
    remote: Remote,
    files: Iterable[PointerFile],
    concurrency: int,
    watch: BatchWatch | None = None,
) -> BatchResult:
    """Upload the objects of ``files`` that the remote lacks.

    Raises:
        TransferError: when objects are missing locally (nothing is uploaded then), or
            when some uploads failed (the others are done).
    """
    files = list(files)
    problems = check_local(store, files)
    if problems:
        raise TransferError(
            "upload failed: objects missing from the local store:\n  "
            + "\n  ".join(problems)
            + "\nRun 'lfs-agent fetch --all' to get them, or 'lfs-agent fsck' to check."
        )
    pointers = [f.pointer for f in files]
    # One listing instead of a stat per object, where the backend can (S3).
    listed = remote.stat_many(sorted({p.oid for p in pointers if p.size > 0}))
    result = run_batch(
        remote,
        pointers,
        lambda p, progress: remote.upload(store, p, progress, listed=listed),
        concurrency,
        watch,
    )
    _raise_failures("upload", remote, result)
    return result


def fetch(
    store: ObjectStore,
    remote: Remote,
    files: Iterable[PointerFile],
    concurrency: int,
    watch: BatchWatch | None = None,
    *,
    unverified: dict[str, Unverified] | None = None,
) -> BatchResult:
    """Download the objects of ``files`` that the store lacks, verified.

    Args:
        store: Where they go.
        remote: Where they come from.
        files: The files whose objects are wanted.
        concurrency: Parallel downloads.
        watch: Told of each object's bytes and end, from its worker thread.
        unverified: When given, large objects the download did not read are left
            unchecked (:meth:`Remote.download_for_reading`) and added to it, oid ->
            temp file, for :func:`lfs_agent.checkout.checkout` to check while it copies them.

    Raises:
        TransferError: when some downloads failed (the others are done).
    """

    def download(pointer: Pointer, progress: Progress) -> bool:
        if unverified is None:
            return remote.download(store, pointer, progress)
        if store.contains(pointer):
            return False
        got = remote.download_for_reading(store, pointer, progress)
        if got is not None:
            unverified[pointer.oid] = got
        return True

    missing = [f.pointer for f in files if not store.contains(f.pointer)]
    result = run_batch(remote, missing, download, concurrency, watch)
    _raise_failures("download", remote, result)
    return result


#: Objects named under one repeated error; the rest are counted.
FAILURES_SHOWN = 5


def _without_oid(message: str, oid: str) -> str:
    """``message`` with ``oid``, and the object's path or key naming it, as ``<oid>``.

    A bucket's error names the object's key (``.../objects/ab/cd/<oid>``, in a URL
    perhaps quoted as ``ab%2Fcd%2F<oid>``): without its ``ab/cd/`` too, the same cause
    reads the same for every object.
    """
    for sep in ("/", "%2F", "%2f"):
        message = message.replace(f"{oid[:2]}{sep}{oid[2:4]}{sep}{oid}", "<oid>")
    return message.replace(oid, "<oid>")


def _raise_failures(verb: str, remote: Remote, result: BatchResult) -> None:
    """Raise one error listing the failures, each distinct message once.

    A cause shared by many objects (a missing bucket, bad credentials) is one line with
    a few of the oids, not a line per object.
    """
    if not result.failed:
        return
    groups: dict[str, list[str]] = {}
    for oid, exc in sorted(result.failed.items()):
        groups.setdefault(_without_oid(str(exc), oid), []).append(oid)
    lines = []
    for message, oids in groups.items():
        if len(oids) == 1:
            lines.append(f"{oids[0]}: {result.failed[oids[0]]}")
            continue
        lines.append(f"{len(oids)} objects: {message}")
        lines.extend(f"  {oid}" for oid in oids[:FAILURES_SHOWN])
        if len(oids) > FAILURES_SHOWN:
            lines.append(f"  ... and {len(oids) - FAILURES_SHOWN} more")
    body = "\n  ".join(lines)
    raise TransferError(
        f"{len(result.failed)} object(s) failed to {verb} ({remote.url}):\n  {body}"
    )
