"""One remote as every command meets it: the only way from lfs-agent to a backend.

A :class:`Remote` opens its backend on first use and shares it between the threads of
one command. Every request passes its breaker (:meth:`Remote.reaching`): once the
remote proved unreachable, later requests fail at once. It asks a backend only for what
the backend declares it can do (:class:`~lfs_agent.backends.Capability`), verifies every
download against its size and sha256 before the store takes it, and consults a shared
object cache before the remote. Batches of objects (dedupe, largest first, a thread
pool) are :mod:`lfs_agent.sync`'s.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, cast

from lfs_agent.backends import (
    Backend,
    Capability,
    CollectingBackend,
    Deleted,
    Entry,
    LinkingBackend,
    ListingBackend,
    RecordBackend,
    ResumableUploads,
    open_backend,
)
from lfs_agent.checkout import GIT_WRITES_MAX
from lfs_agent.errors import BackendError, IntegrityError, UnreachableError, agent_error
from lfs_agent.intake import take_file
from lfs_agent.log import get_logger
from lfs_agent.pointer import Pointer
from lfs_agent.progress import NULL_PROGRESS, Progress
from lfs_agent.smudge_downloads import Unverified
from lfs_agent.store import ObjectStore, check_file, check_size

__all__ = [
    "READ_CHECK_SIZE",
    "RESUMABLE_SIZE",
    "Collector",
    "OpenedBackend",
    "Remote",
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


class OpenedBackend(Backend, RecordBackend, Protocol):
    """A backend as :class:`Remote` holds it: objects and records.

    Every registered kind keeps records (:attr:`Capability.RECORDS`) beside its objects.
    """


class Remote:
    """One remote, opened lazily, shared by the threads of one command.

    A context manager: leaving the ``with`` block closes the backend's connections.

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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def _opened(self) -> OpenedBackend:
        """The backend, opened on first access.

        Private so that every caller goes through this class's methods, which the
        unreachable-remote breaker guards.
        """
        with self._lock:
            if self._backend is None:
                self._backend = self._opener(self.url, self._options, self._state_dir)
            return cast(OpenedBackend, self._backend)

    def can(self, capability: Capability) -> bool:
        """Whether the backend declares ``capability`` (this opens it)."""
        return capability in self._opened.capabilities

    @property
    def max_workers(self) -> int | None:
        """Parallel transfers beyond which the backend gets no faster (None: no bound)."""
        return self._opened.max_workers

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
        """Close the backend if it was opened; it is opened again if used afterwards."""
        with self._lock:
            if self._backend is not None:
                self._backend.close()
                self._backend = None

    # --- one request each, through the breaker -----------------------------------

    def stat_many(self, oids: Sequence[str]) -> dict[str, int | None]:
        """Sizes (None: absent) of those ``oids`` one listing settles; ``{}`` without one.

        Only a backend declaring :attr:`Capability.LISTING` is asked; oids left out
        are unknown (:meth:`size_of` stats them).
        """
        if not oids or not self.can(Capability.LISTING):
            return {}
        with self.reaching():
            return cast(ListingBackend, self._opened).stat_many(oids)

    def size_of(self, oid: str, listed: Mapping[str, int | None] | None = None) -> int | None:
        """The object's remote size, or None when the remote lacks it.

        Taken from ``listed`` (:meth:`stat_many`) when that settled ``oid``, else asked.
        """
        if listed is not None and oid in listed:
            return listed[oid]
        with self.reaching():
            return self._opened.stat(oid)

    def download_file(
        self, oid: str, dest_path: Path, size: int, progress: Progress = NULL_PROGRESS
    ) -> Pointer | None:
        """The backend's download of ``oid`` into ``dest_path``, unverified.

        For callers that judge the bytes themselves (``fsck --deep``); the others use
        :meth:`download` or :meth:`download_to_temp`, which verify them.

        Returns:
            What the file holds, hashed as it was written, or None when the download
            read nothing (a hard link): see :meth:`Backend.download
            <lfs_agent.backends.Backend.download>`.
        """
        with self.reaching():
            return self._opened.download(oid, dest_path, size, progress)

    def abort_stale_uploads(self) -> int:
        """Abort uploads left unfinished, where the backend resumes uploads across runs.

        Returns:
            How many were aborted; 0 for a backend without
            :attr:`Capability.RESUMABLE_UPLOADS`.
        """
        if not self.can(Capability.RESUMABLE_UPLOADS):
            return 0
        with self.reaching():
            return cast(ResumableUploads, self._opened).abort_stale_uploads()

    @property
    def records(self) -> RecordBackend:
        """The remote's records (``meta/...``), each request through the breaker.

        Raises:
            BackendError: the backend keeps no records.
        """
        if not self.can(Capability.RECORDS):
            raise BackendError(f"{self.url} cannot keep records (tag metrics)")
        return _Records(self)

    @property
    def collector(self) -> Collector:
        """The remote's keys for garbage collection, each request through the breaker.

        Raises:
            BackendError: the backend cannot be collected safely (a plain HTTP server:
                no listing with the store's clock, no conditional create or delete).
        """
        if not self.can(Capability.COLLECT):
            raise BackendError(
                f"{self.url} cannot be garbage-collected: it offers no listing with its "
                "own clock and no conditional create or delete, so a collection could "
                "race a push; use a folder, S3 or GCS bucket"
            )
        return Collector(self)

    def downloads_are_links(self, store: ObjectStore) -> bool:
        """Whether a download into ``store`` is a hard link: a folder bucket on its disk.

        Such a download costs a few system calls, whatever the object's size.
        """
        return (
            self.cache is None
            and self.can(Capability.LINK)
            and cast(LinkingBackend, self._opened).links_into(store.root)
        )

    def upload_file(
        self,
        oid: str,
        src_path: Path,
        size: int,
        progress: Progress = NULL_PROGRESS,
        *,
        checked: bool = False,
        listed: Mapping[str, int | None] | None = None,
    ) -> bool:
        """Send ``src_path`` as ``oid`` unless the remote holds it with ``size`` bytes.

        An empty object is sent without asking: no remote size can tell it is there.

        Args:
            oid: The object.
            src_path: Its file, checked against ``oid`` and ``size`` as it is sent.
            size: Its size in bytes.
            progress: Told of bytes sent.
            checked: The store vouches for the file (see :meth:`Backend.upload
                <lfs_agent.backends.Backend.upload>`).
            listed: Remote sizes already known (:meth:`stat_many`).

        Returns:
            True when bytes were sent, False when the remote already had the object.
        """
        if size and self.size_of(oid, listed) == size:
            return False
        with self.reaching():
            self._opened.upload(oid, src_path, size, progress, checked)
        return True

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

    def download_for_reading(
        self, store: ObjectStore, pointer: Pointer, progress: Progress = NULL_PROGRESS
    ) -> Unverified | None:
        """Download ``pointer``'s object for a reader that hashes it as it reads it.

        An object over :data:`READ_CHECK_SIZE` that the download put in place unhashed
        (a hard link from a folder bucket) is not read back here, so that a smudge reads
        it once. Anything else is downloaded and verified as by :meth:`download`.

        Args:
            store: Where the object goes.
            pointer: The object.
            progress: Told of bytes downloaded.

        Returns:
            A private temp file in ``<lfs>/tmp`` of the right size, which the caller
            hashes while sending it, then publishes
            (:meth:`ObjectStore.publish_verified`) or deletes; None when the object is
            in the store.

        Raises:
            The unverified temp file, or None when the object is in the store.

        Raises:
            As :meth:`download`; for the temp file, IntegrityError only for its size.
        """
        if store.contains(pointer) or self.cache is not None or pointer.size <= READ_CHECK_SIZE:
            self.download(store, pointer, progress)
            return None
        with self._download_to_temp(store, pointer, progress, verify=False) as (path, checked):
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
        under a lock, so that the next attempt resumes a download cut short (where the
        backend can); a concurrent download of the same oid uses a private file, and a
        mismatch deletes the partial file. A smaller object goes to a private file,
        deleted on any failure: resuming it would save less than the lock costs.

        Args:
            store: Where the object goes.
            pointer: The object.
            progress: Told of bytes downloaded.

        Yields:
            The checked file, for the caller to move away (publish or rename).

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
                    hashed = self.download_file(pointer.oid, partial, pointer.size, progress)
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
            listed: Remote sizes already known (from :meth:`stat_many`); an oid not in
                it is stat'ed.

        Returns:
            True when bytes were sent, False when the remote already had the object.
        """
        if pointer.size == 0:
            return False
        return self.upload_file(
            pointer.oid,
            store.object_path(pointer.oid),
            pointer.size,
            progress,
            checked=store.is_checked(pointer),
            listed=listed,
        )


class _Records:
    """A remote's records, each request through its breaker (:attr:`Remote.records`)."""

    def __init__(self, remote: Remote) -> None:
        self._remote = remote

    def put_meta(self, key: str, data: bytes) -> None:
        """Store a record, replacing it atomically."""
        with self._remote.reaching():
            self._remote._opened.put_meta(key, data)

    def get_meta(self, key: str) -> bytes | None:
        """A record, or None."""
        with self._remote.reaching():
            return self._remote._opened.get_meta(key)

    def list_meta(self, prefix: str) -> list[str]:
        """The keys of the records under ``prefix``, sorted."""
        with self._remote.reaching():
            return self._remote._opened.list_meta(prefix)


class Collector(_Records):
    """A remote's keys for garbage collection (:attr:`Remote.collector`)."""

    @property
    def url(self) -> str:
        """The remote's URL (with any credentials: redact before showing it)."""
        return self._remote.url

    @property
    def _backend(self) -> CollectingBackend:
        return cast(CollectingBackend, self._remote._opened)

    def list_entries(self, prefix: str) -> Iterator[Entry]:
        """Every key under ``prefix``, with the store's clock."""
        with self._remote.reaching():
            yield from self._backend.list_entries(prefix)

    def stat_entry(self, key: str) -> Entry | None:
        """The key now, or None."""
        with self._remote.reaching():
            return self._backend.stat_entry(key)

    def create_meta(self, key: str, data: bytes) -> Entry | None:
        """Create a record only if absent; None when it existed."""
        with self._remote.reaching():
            return self._backend.create_meta(key, data)

    def put_meta_entry(self, key: str, data: bytes) -> Entry:
        """Store a record and return it as the store describes it (its clock).

        Raises:
            BackendError: the record vanished at once (another writer deleted it).
        """
        with self._remote.reaching():
            self._backend.put_meta(key, data)
            entry = self._backend.stat_entry(key)
        if entry is None:
            raise BackendError(f"record {key} on {self._remote.url} vanished as it was written")
        return entry

    def delete_entries(self, entries: Sequence[Entry]) -> list[Deleted]:
        """Delete each key still as listed (at most 1,000 per call)."""
        with self._remote.reaching():
            return self._backend.delete_entries(entries)

    def versioned(self) -> bool:
        """Whether deleted keys stay recoverable."""
        with self._remote.reaching():
            return self._backend.versioned()

    def undelete(self, deleted: Deleted) -> bool:
        """Bring a deleted key back; False when it cannot be."""
        with self._remote.reaching():
            return self._backend.undelete(deleted)
