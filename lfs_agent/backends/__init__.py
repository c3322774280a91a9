"""Remotes that hold objects: one small interface, one module per kind.

Every backend stores ``<root>/objects/<oid[0:2]>/<oid[2:4]>/<oid>`` and implements
:class:`Backend`: four primitives (stat, upload, download, close). What it can do
besides, it declares as :class:`Capability` values (hard-link downloads, listings,
resumable uploads, records), each with its own small protocol, so that no caller probes
a backend's type. Backends only move bytes; verification, the breaker for an
unreachable remote, dedupe and concurrency live above them
(:class:`~lfs_agent.remote.Remote`, ``sync``, ``transfer``).

The registry maps a URL scheme to ``"module:Class"`` and imports the module only when a
remote of that scheme is opened, so boto3 and google-cloud-storage are never imported
by commands that do not need them. A missing SDK becomes a
:class:`~lfs_agent.errors.BackendUnavailableError` that says which extra to install.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol
from urllib.parse import urlparse

from lfs_agent.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
    IntegrityError,
    ObjectNotFoundError,
)
from lfs_agent.hashing import CHUNK_SIZE, hash_file
from lfs_agent.pointer import Pointer
from lfs_agent.progress import Progress

__all__ = [
    "DELETE_BATCH",
    "EXTRA_PACKAGES",
    "META_MAX_BYTES",
    "REGISTRY",
    "Backend",
    "Capability",
    "CollectingBackend",
    "Deleted",
    "Entry",
    "LinkingBackend",
    "ListingBackend",
    "RecordBackend",
    "ResumableUploads",
    "bucket_and_prefix",
    "check_meta_key",
    "check_source",
    "collect_key",
    "collect_prefix",
    "meta_too_large",
    "object_key",
    "open_backend",
    "read_meta",
]

#: scheme -> ("module:Class", pip extra that provides its SDK or None).
REGISTRY: dict[str, tuple[str, str | None]] = {
    "file": ("lfs_agent.backends.local:LocalBackend", None),
    "s3": ("lfs_agent.backends.s3:S3Backend", "s3"),
    "gs": ("lfs_agent.backends.gcs:GCSBackend", "gcs"),
    "http": ("lfs_agent.backends.http:HTTPBackend", None),
    "https": ("lfs_agent.backends.http:HTTPBackend", None),
}

#: pip extra -> the distribution it installs, named in the hint: the module that failed
#: to import (``google``) is not what a person installs.
EXTRA_PACKAGES = {"s3": "boto3", "gcs": "google-cloud-storage"}


def check_source(
    oid: str,
    src_path: Path,
    size: int,
    checked: bool = False,
    hash_file: Callable[[Path], tuple[str, int]] = hash_file,
) -> None:
    """Hash the file to upload; refuse it unless it has ``size`` bytes hashing to ``oid``.

    Does nothing when the caller says the store has ``checked`` it (see
    :meth:`Backend.upload`).

    Args:
        oid: The object the file should be.
        src_path: The file.
        size: Its expected size in bytes.
        checked: The store's record vouches for the file: nothing is read.
        hash_file: Hashes a file (:func:`lfs_agent.hashing.hash_file`); a backend
            passes on the one it was given, which tests use to count reads.

    Raises:
        ObjectNotFoundError: the file is missing.
        IntegrityError: it holds something else (nothing is sent then).
    """
    if checked:
        return
    try:
        actual, actual_size = hash_file(src_path)
    except FileNotFoundError:
        raise ObjectNotFoundError(f"cannot upload {oid}: {src_path} is missing") from None
    if actual_size != size:
        raise IntegrityError(
            f"refusing to upload {oid}: {src_path} has {actual_size} bytes, expected {size}"
        )
    if actual != oid:
        raise IntegrityError(f"refusing to upload {oid}: {src_path} hashes to {actual}")


def bucket_and_prefix(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``."""
    parsed = urlparse(url)
    return parsed.netloc, parsed.path.strip("/")


def check_meta_key(key: str) -> str:
    """Refuse record keys that could escape the remote's prefix.

    Raises:
        ConfigError: for absolute keys, ``..`` parts or empty parts.
    """
    parts = key.split("/")
    if not key.startswith("meta/") or any(p in ("", ".", "..") for p in parts):
        raise ConfigError(f"invalid record key {key!r}")
    return key


def collect_key(key: str, url: str) -> str:
    """Refuse a key garbage collection may not touch (see :class:`CollectingBackend`).

    Only keys under ``objects/`` and ``meta/`` are listed, created or deleted, and none
    with empty, ``.`` or ``..`` parts: such a key could reach past the remote's prefix.

    Raises:
        BackendError: for any other key, naming it and the remote ``url``.
    """
    parts = key.split("/")
    if parts[0] not in ("objects", "meta") or any(p in ("", ".", "..") for p in parts):
        raise BackendError(f"invalid key {key!r} for {url}: only objects/ and meta/ keys")
    return key


def collect_prefix(prefix: str, url: str) -> str:
    """``prefix`` as a folder to list (``objects`` -> ``objects/``), checked as a key."""
    return collect_key(prefix.rstrip("/"), url) + "/"


#: Most keys one :meth:`CollectingBackend.delete_entries` call takes (S3's DeleteObjects).
DELETE_BATCH = 1000

#: Most bytes a record (``meta/...``) may hold. Records are small JSON documents; a
#: larger one was not written by lfs-agent, and reading it whole would let whoever
#: controls the remote decide how much memory a command takes.
META_MAX_BYTES = 16 * 1024 * 1024


def read_meta(read: Callable[[int], bytes], key: str, url: str, cap: int = META_MAX_BYTES) -> bytes:
    """A record's bytes, from ``read(n)`` (a body's raw read), refused past ``cap`` bytes.

    Reads at most ``cap + 1`` bytes: one more than allowed tells a record of exactly
    ``cap`` bytes from a larger one.

    Raises:
        BackendError: the record is larger than ``cap``, naming ``key`` on ``url``.
    """
    parts: list[bytes] = []
    total = 0
    while chunk := read(min(CHUNK_SIZE, cap + 1 - total)):
        parts.append(chunk)
        total += len(chunk)
        if total > cap:
            raise meta_too_large(key, url, cap)
    return b"".join(parts)


def meta_too_large(key: str, url: str, cap: int) -> BackendError:
    """The error for a record at ``key`` on ``url`` larger than ``cap`` bytes."""
    return BackendError(
        f"record {key} on {url} is larger than {cap} bytes, "
        "the most a record may hold: delete or replace it"
    )


def object_key(oid: str) -> str:
    """The object's path below a remote's root: ``objects/ab/cd/<oid>``."""
    return f"objects/{oid[0:2]}/{oid[2:4]}/{oid}"


class Capability(enum.Enum):
    """What a backend can do beyond the :class:`Backend` primitives, as it declares it.

    Callers ask ``Capability.X in backend.capabilities`` and never probe a backend's
    type; each capability names the protocol whose methods the backend then has.
    """

    #: Downloads may be hard links of the remote's files (:class:`LinkingBackend`): a
    #: folder bucket on the store's file system. Such a download reads no byte.
    LINK = "link"
    #: One listing settles many stats at once (:class:`ListingBackend`).
    LISTING = "listing"
    #: Uploads resume across runs and may be left behind (:class:`ResumableUploads`).
    RESUMABLE_UPLOADS = "resumable-uploads"
    #: Small records under ``meta/`` are stored beside the objects (:class:`RecordBackend`).
    RECORDS = "records"
    #: Keys can be listed with the store's own clock, created only if absent and deleted
    #: only if unchanged (:class:`CollectingBackend`): what remote garbage collection needs.
    COLLECT = "collect"


class Backend(Protocol):
    """What every remote kind implements: four primitives on one oid at a time.

    Implementations validate nothing about content: callers pass valid oids and verify
    what they download. Vendor exceptions are translated into ``lfs_agent.errors``.
    Dedupe, batching, verification and the breaker for an unreachable remote live above
    (:class:`~lfs_agent.remote.Remote`); what a backend can do besides these four
    methods it declares in :attr:`capabilities`.
    """

    #: The remote's URL, for messages.
    url: str
    #: Parallel transfers beyond which this backend gets no faster (None: no bound).
    max_workers: int | None
    #: What the backend can do besides the primitives (see :class:`Capability`).
    capabilities: frozenset[Capability]

    def stat(self, oid: str) -> int | None:
        """Return the stored object's size in bytes, or None when it is absent."""

    def upload(
        self, oid: str, src_path: Path, size: int, progress: Progress, checked: bool = False
    ) -> None:
        """Store the file at ``src_path`` as ``oid``; never leave a partial object.

        The file is refused (:class:`~lfs_agent.errors.IntegrityError`) unless it has
        ``size`` bytes hashing to ``oid``, except that ``checked`` (the store's record
        says the file is, unchanged, what it checked: :meth:`ObjectStore.is_checked
        <lfs_agent.store.ObjectStore.is_checked>`) lets a backend skip a read made only
        for that check. A backend that hashes as it sends, or must send the hashes,
        hashes anyway.
        """

    def download(self, oid: str, dest_path: Path, size: int, progress: Progress) -> Pointer | None:
        """Write the object into ``dest_path`` (a temp file the caller verifies).

        Returns:
            None, or the sha256 and length of what the file holds, hashed as it was
            written (:class:`~lfs_agent.hashing.WriteHash`) or read back while the download
            went on (:class:`~lfs_agent.hashing.RangeHash`): the caller then checks that
            instead of reading the file again. None when the download read nothing
            (a hard link).

        Raises:
            ObjectNotFoundError: when the remote does not hold ``oid``.
        """

    def close(self) -> None:
        """Release connections; the backend is not used afterwards."""


class LinkingBackend(Backend, Protocol):
    """A backend declaring :attr:`Capability.LINK`."""

    def links_into(self, directory: Path) -> bool:
        """Whether downloads into ``directory`` are hard links (no byte is copied)."""


class ListingBackend(Backend, Protocol):
    """A backend declaring :attr:`Capability.LISTING`."""

    def stat_many(self, oids: Sequence[str]) -> dict[str, int | None]:
        """Sizes (None: absent) of those ``oids`` that one cheap listing can settle.

        Oids left out of the answer are unknown: the caller stats them one by one. A
        listing that fails (or would cost more than the stats) settles none, and the
        stats then report the error.
        """


class ResumableUploads(Backend, Protocol):
    """A backend declaring :attr:`Capability.RESUMABLE_UPLOADS`."""

    def abort_stale_uploads(self) -> int:
        """Abort uploads left unfinished long enough that no run will resume them.

        Returns:
            How many were aborted.
        """


class RecordBackend(Protocol):
    """Small records beside the objects (``meta/tags/v1.json``): the metrics' storage.

    A backend declaring :attr:`Capability.RECORDS` implements it. Keys start with
    ``meta/`` (:func:`check_meta_key`); a record is at most :data:`META_MAX_BYTES`.
    """

    def put_meta(self, key: str, data: bytes) -> None:
        """Store a small record (e.g. ``meta/tags/v1.json``), replacing it atomically."""

    def get_meta(self, key: str) -> bytes | None:
        """Return a record stored with :meth:`put_meta`, or None."""

    def list_meta(self, prefix: str) -> list[str]:
        """Return the keys of records under ``prefix`` (e.g. ``meta/tags/``), sorted."""


class Entry(NamedTuple):
    """One key of a remote as the store itself describes it."""

    #: The key below the remote's root: ``objects/ab/cd/<oid>``, ``meta/gc/lock.json``.
    key: str
    #: Its size in bytes.
    size: int
    #: When the store last wrote it, in seconds since the epoch, by the store's own clock
    #: (S3's LastModified, GCS's ``updated``, the file's mtime), never the client's.
    modified: float
    #: Changes whenever the key is written again, even with the same bytes (GCS's
    #: generation, a file's inode and mtime in ns), except on S3 (its ETag with its
    #: LastModified, which has whole seconds): there a rewrite of the same bytes within
    #: the second of the last write keeps it. A collection only compares the tags of
    #: objects older than its grace period, which no such rewrite can be.
    tag: str


class Deleted(NamedTuple):
    """A key :meth:`CollectingBackend.delete_entries` deleted."""

    key: str
    #: What :meth:`CollectingBackend.undelete` needs to bring it back on a versioned
    #: bucket (S3's delete-marker version id, GCS's generation); "" when not versioned.
    version: str


class CollectingBackend(Backend, RecordBackend, Protocol):
    """A backend declaring :attr:`Capability.COLLECT`.

    Keys are relative to the remote's root, as in :class:`Entry`; only ``objects/`` and
    ``meta/`` are ever listed, created or deleted.
    """

    def list_entries(self, prefix: str) -> Iterator[Entry]:
        """Every key under ``prefix`` (``objects/``, ``meta/repos/``), in any order."""

    def stat_entry(self, key: str) -> Entry | None:
        """The key as the store describes it now, or None when absent."""

    def create_meta(self, key: str, data: bytes) -> Entry | None:
        """Create the record ``key`` only if no such key exists, atomically.

        S3's ``If-None-Match: *``, GCS's ``ifGenerationMatch=0``, a folder's ``link()``:
        of two callers, exactly one wins.

        Returns:
            The created key, with the store's time of writing; None when it existed.
        """

    def delete_entries(self, entries: Sequence[Entry]) -> list[Deleted]:
        """Delete each key that is still as its entry describes it (same :attr:`Entry.tag`).

        At most 1,000 entries per call. A key rewritten since it was listed, or already
        gone, is left alone and not returned.

        Returns:
            The keys deleted.
        """

    def versioned(self) -> bool:
        """Whether deleted keys stay recoverable (S3 or GCS object versioning on)."""

    def undelete(self, deleted: Deleted) -> bool:
        """Make a key deleted by :meth:`delete_entries` current again.

        Returns:
            False when it cannot be brought back (its old version expired).
        """


def open_backend(
    url: str,
    options: Mapping[str, str] | None = None,
    state_dir: Path | None = None,
    registry: Mapping[str, tuple[str, str | None]] = REGISTRY,
) -> Backend:
    """Open the backend for a normalized remote ``url``.

    Args:
        url: As returned by :func:`lfs_agent.config.normalize_remote_url`.
        options: ``lfs-agent.*`` settings; each backend reads its own keys.
        state_dir: A directory where a backend may keep state between runs (resumable
            uploads); the repository's ``lfs/tmp``. None: nothing is kept.
        registry: Where each scheme's backend class is (:data:`REGISTRY`); tests name
            a module that is not installed with it.

    Raises:
        ConfigError: for an unknown scheme.
        BackendUnavailableError: when the scheme's SDK is not installed.
    """
    scheme = urlparse(url).scheme.lower()
    try:
        target, extra = registry[scheme]
    except KeyError:
        raise ConfigError(f"no backend for {scheme or 'plain'} remote {url!r}") from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f": pip install 'lfs-agent[{extra}]'" if extra else ""
        package = EXTRA_PACKAGES.get(extra or "") or exc.name or "an optional package"
        raise BackendUnavailableError(f"{scheme}:// remotes need {package}{hint}") from None
    backend: Backend = getattr(module, class_name)(url, dict(options or {}), state_dir)
    return backend
