"""Moving objects between the local store and a remote, verified and in parallel.

The backend only moves bytes. This layer decides what to move (skip what is already
there, dedupe, largest first), verifies every download against its size and sha256
before the store takes it, and runs transfers on a bounded thread pool.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from lfs_agent.backends import Backend, open_backend, size_of
from lfs_agent.checkout import GIT_WRITES_MAX
from lfs_agent.errors import (
    IntegrityError,
    LfsAgentError,
    TransferError,
    UnreachableError,
    agent_error,
)
from lfs_agent.gitfilter import Unverified
from lfs_agent.intake import take_file
from lfs_agent.log import get_logger
from lfs_agent.pointer import Pointer
from lfs_agent.progress import NULL_PROGRESS, Progress
from lfs_agent.scan import PointerFile
from lfs_agent.store import ObjectStore, check_file, check_size

__all__ = [
    "BatchResult",
    "Remote",
    "check_local",
    "fetch",
    "push",
]

logger = get_logger(__name__)

#: Downloads of objects this large (or larger) can be resumed; see
#: :meth:`Remote.download_to_temp`.
RESUMABLE_SIZE = 1024 * 1024
#: A smudge of an object larger than this hashes it while sending it to git, rather
#: than reading it once more before; see :meth:`Remote.download_for_reading`. It is
#: :data:`lfs_agent.checkout.GIT_WRITES_MAX`, so that every object git's checkout in
#: ``lfs-agent clone`` gets is checked before git has any of it.
READ_CHECK_SIZE = GIT_WRITES_MAX


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


class Remote:
    """One remote, opened lazily, shared by the threads of one command.

    Args:
        url: Normalized remote URL.
        options: ``lfs-agent.*`` settings passed to the backend.
        state_dir: Where the backend may keep resumable-upload state.
        opener: Opens the backend; injected by tests.
        cache: A shared object cache (``lfs-agent.cachedir``) consulted before the
            remote and filled with what is downloaded.
    """

    def __init__(
        self,
        url: str,
        options: Mapping[str, str] | None = None,
        state_dir: Path | None = None,
        opener: Callable[[str, Mapping[str, str], Path | None], Backend] = open_backend,
        cache: ObjectStore | None = None,
    ) -> None:
        self.url = url
        # A shared object cache (CI runners): read before the remote, filled after it.
        self.cache = cache
        self._options = dict(options or {})
        # Where the backend may remember resumable uploads (the store's tmp dir).
        self._state_dir = state_dir
        self._opener = opener
        # The backend client, created on first use and reused (connection pools).
        self._backend: Backend | None = None
        self._lock = threading.Lock()
        # The first UnreachableError a request met: every later one is refused with it.
        self._unreachable: UnreachableError | None = None

    @property
    def backend(self) -> Backend:
        """The opened backend (opened on first access)."""
        with self._lock:
            if self._backend is None:
                self._backend = self._opener(self.url, self._options, self._state_dir)
            return self._backend

    @contextlib.contextmanager
    def reaching(self) -> Iterator[None]:
        """Around requests to the backend: none once the remote proved unreachable.

        When no connection could be made at all (:class:`UnreachableError`: refused,
        no such host), every other object would fare the same. So the first such error
        is kept, and later requests (of a batch, the filter's downloads, a transfer
        agent's run) fail with it at once instead of each waiting out its retries.
        """
        if self._unreachable is not None:
            raise UnreachableError(str(self._unreachable))  # a new error: a traceback each
        try:
            yield
        except UnreachableError as exc:
            self._unreachable = exc
            raise

    def close(self) -> None:
        """Close the backend if it was opened."""
        with self._lock:
            if self._backend is not None:
                self._backend.close()
                self._backend = None

    def downloads_are_links(self, store: ObjectStore) -> bool:
        """Whether a download into ``store`` is a hard link: a folder bucket on its disk.

        Such a download costs a few system calls, whatever the object's size.
        """
        from lfs_agent.backends.local import LocalBackend

        backend = self.backend
        return (
            self.cache is None
            and isinstance(backend, LocalBackend)
            and backend.links_into(store.root)
        )

    def download(
        self, store: ObjectStore, pointer: Pointer, progress: Progress = NULL_PROGRESS
    ) -> bool:
        """Download ``pointer``'s object into ``store``, verified before it lands.

        Returns:
            False when the store already had it, True when it was brought in.

        Raises:
            ObjectNotFoundError: the remote lacks it.
            IntegrityError: the remote's bytes do not match the pointer.
            BackendError: the remote failed.
        """
        if store.contains(pointer):
            return False
        with self.download_to_temp(store, pointer, progress) as path:
            store.publish_verified(path, pointer)
        if self.cache is not None and not self.cache.contains(pointer):
            try:
                temp = self.cache.temp_path(pointer.oid)
                take_file(store.object_path(pointer.oid), temp, pointer.size)
                self.cache.publish_verified(temp, pointer)
            except (OSError, IntegrityError) as exc:  # a cache that fails is not fatal
                logger.warning(
                    "could not add %s to the cache %s: %s",
                    pointer.oid,
                    self.cache.root,
                    agent_error(exc),
                )
        return True

    def _copy_cached(self, pointer: Pointer, dest: Path, progress: Progress) -> bool:
        """Put the shared cache's copy of ``pointer``'s object at ``dest``, checked.

        The cache is shared with other users and jobs, so it is not trusted: an entry is
        taken only when it is a regular file that hashes right (a hard link costs one
        read, a copy is hashed as it is written). A bad entry is passed over with a
        warning, ``dest`` removed, and the object must come from the remote.

        Returns:
            True when ``dest`` holds the object, checked.
        """
        if self.cache is None or not self.cache.contains(pointer):
            return False
        source = f"in the cache {self.cache.root}"
        try:
            hashed = take_file(self.cache.object_path(pointer.oid), dest, pointer.size)
            check_file(dest, pointer, source, hashed)
        except (IntegrityError, OSError) as exc:
            with contextlib.suppress(FileNotFoundError):
                dest.unlink()
            logger.warning("passing over %s: %s", pointer.oid, agent_error(exc))
            return False
        progress(pointer.size)
        return True

    def download_for_reading(self, store: ObjectStore, pointer: Pointer) -> Unverified | None:
        """Download ``pointer``'s object for a reader that hashes it as it reads it.

        An object over :data:`READ_CHECK_SIZE` that the download put in place
        without hashing it (a hard link from a folder bucket) is not read
        back here: it is moved to a private temp file in ``<lfs>/tmp``, its size checked,
        and returned. The caller (a smudge) hashes it while sending it, then publishes
        it (:meth:`ObjectStore.publish_verified`) or deletes it. Anything else is
        downloaded and verified as by :meth:`download`.

        Returns:
            The unverified temp file, or None when the object is in the store.

        Raises:
            As :meth:`download`; for the temp file, IntegrityError only for its size.
        """
        if store.contains(pointer) or self.cache is not None or pointer.size <= READ_CHECK_SIZE:
            self.download(store, pointer)
            return None
        with self._download_to_temp(store, pointer, NULL_PROGRESS, verify=False) as (path, checked):
            if checked:
                store.publish_verified(path, pointer)
                return None
            temp = store.temp_path(pointer.oid)
            os.replace(path, temp)
            return Unverified(temp, f"from {self.url}")

    @contextlib.contextmanager
    def download_to_temp(
        self, store: ObjectStore, pointer: Pointer, progress: Progress = NULL_PROGRESS
    ) -> Iterator[Path]:
        """Download into ``<lfs>/tmp`` and yield the path once size and sha256 match.

        An object of at least :data:`RESUMABLE_SIZE` goes to ``tmp/<oid>.part``, held
        under a lock, so that a download cut short (a killed process, a network failure)
        is resumed by the next attempt when the backend supports it; a concurrent
        download of the same oid uses a private file. On a mismatch the partial file is
        deleted so the next attempt starts over. A smaller object goes to a private
        file, deleted on any failure: resuming it would save less than the lock costs.
        The caller moves the file away (publish or rename).

        Raises:
            IntegrityError: the bytes do not match the pointer.
        """
        with self._download_to_temp(store, pointer, progress, verify=True) as (path, _):
            yield path

    @contextlib.contextmanager
    def _download_to_temp(
        self, store: ObjectStore, pointer: Pointer, progress: Progress, verify: bool
    ) -> Iterator[tuple[Path, bool]]:
        """:meth:`download_to_temp`, yielding ``(path, checked)``.

        Without ``verify``, bytes the download did not hash are checked for their size
        only, and ``checked`` is False.
        """
        tmp = store.ensure_tmp()
        with contextlib.ExitStack() as stack:
            if pointer.size >= RESUMABLE_SIZE:
                partial = tmp / f"{pointer.oid}.part"
                lock = stack.enter_context(open(tmp / f"{pointer.oid}.lock", "a"))
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    partial = store.temp_path(pointer.oid)  # someone else has the .part
                # The lock file stays: removing it could let two later downloads lock
                # two different files of the same name. clean_tmp removes it once stale.
            else:
                partial = store.temp_path(pointer.oid)
            try:
                checked = self._copy_cached(pointer, partial, progress)
                if not checked:
                    with self.reaching():
                        hashed = self.backend.download(pointer.oid, partial, pointer.size, progress)
                    checked = verify or hashed is not None
                    if checked:
                        check_file(partial, pointer, f"from {self.url}", hashed)
                    else:
                        check_size(partial, pointer, f"from {self.url}")
            except FileNotFoundError:
                raise IntegrityError(f"download of {pointer.oid} produced no file") from None
            except BaseException as exc:
                if isinstance(exc, IntegrityError) or pointer.size < RESUMABLE_SIZE:
                    with contextlib.suppress(FileNotFoundError):
                        partial.unlink()  # these bytes are wrong, or not worth resuming
                raise
            yield partial, checked

    def upload(
        self,
        store: ObjectStore,
        pointer: Pointer,
        progress: Progress = NULL_PROGRESS,
        listed: Mapping[str, int | None] | None = None,
    ) -> bool:
        """Upload the stored object unless the remote holds it with the right size.

        Args:
            store: Holds the object.
            pointer: The object to send.
            progress: Told of bytes sent.
            listed: Remote sizes already known (from :meth:`Backend.stat_many`); an oid
                not in it is stat'ed.

        Returns:
            True when bytes were sent, False when the remote already had the object.
        """
        if pointer.size == 0:
            return False
        path = store.object_path(pointer.oid)
        with self.reaching():
            if size_of(self.backend, pointer.oid, listed or {}) == pointer.size:
                return False
            self.backend.upload(
                pointer.oid, path, pointer.size, progress, store.is_checked(pointer)
            )
        return True

    def run_batch(
        self,
        pointers: Iterable[Pointer],
        action: Callable[[Pointer], bool],
        concurrency: int,
        on_done: Callable[[Pointer, LfsAgentError | None], None] | None = None,
    ) -> BatchResult:
        """Run ``action`` for each distinct pointer, largest first, on a thread pool.

        Once the remote proves unreachable, the objects left fail at once
        (:meth:`reaching`).

        Args:
            pointers: May repeat; each oid is handled once.
            action: Returns True when it transferred bytes, False when it skipped.
            concurrency: Worker threads, at most the backend's ``max_workers``.
            on_done: Called (from a worker thread) after each object.
        """
        unique = {p.oid: p for p in pointers if p.size > 0}
        ordered = sorted(unique.values(), key=lambda p: p.size, reverse=True)
        result = BatchResult()
        if not ordered:
            return result
        from concurrent.futures import ThreadPoolExecutor, as_completed

        bound = self.backend.max_workers
        workers = max(1, min(concurrency, bound) if bound else concurrency)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(action, p): p for p in ordered}
            for future in as_completed(futures):
                pointer = futures[future]
                error: LfsAgentError | None = None
                try:
                    moved = future.result()
                except (LfsAgentError, OSError) as exc:  # OSError: this machine's, a full disk
                    error = agent_error(exc)
                    result.failed[pointer.oid] = error
                else:
                    (result.done if moved else result.skipped).append(pointer)
                if on_done is not None:
                    on_done(pointer, error)
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
    on_done: Callable[[Pointer, LfsAgentError | None], None] | None = None,
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
    listed = remote.backend.stat_many(sorted({p.oid for p in pointers if p.size > 0}))
    result = remote.run_batch(
        pointers,
        lambda p: remote.upload(store, p, listed=listed),
        concurrency,
        on_done,
    )
    _raise_failures("upload", remote, result)
    return result


def fetch(
    store: ObjectStore,
    remote: Remote,
    files: Iterable[PointerFile],
    concurrency: int,
    on_done: Callable[[Pointer, LfsAgentError | None], None] | None = None,
    *,
    unverified: dict[str, Unverified] | None = None,
) -> BatchResult:
    """Download the objects of ``files`` that the store lacks, verified.

    Args:
        store: Where they go.
        remote: Where they come from.
        files: The files whose objects are wanted.
        concurrency: Parallel downloads.
        on_done: Told of each object, from a worker thread.
        unverified: When given, large objects the download did not read are left
            unchecked (:meth:`Remote.download_for_reading`) and added to it, oid ->
            temp file, for :func:`lfs_agent.checkout.checkout` to check while it copies them.

    Raises:
        TransferError: when some downloads failed (the others are done).
    """

    def download(pointer: Pointer) -> bool:
        if unverified is None:
            return remote.download(store, pointer)
        if store.contains(pointer):
            return False
        got = remote.download_for_reading(store, pointer)
        if got is not None:
            unverified[pointer.oid] = got
        return True

    missing = [f.pointer for f in files if not store.contains(f.pointer)]
    result = remote.run_batch(missing, download, concurrency, on_done)
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
