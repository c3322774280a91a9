"""Remotes that hold objects: one small interface, one module per kind.

Every backend stores ``<root>/objects/<oid[0:2]>/<oid[2:4]>/<oid>`` and implements
:class:`Backend`. Backends only move bytes; verification, retries across objects,
dedupe and concurrency live above them (``sync``, ``transfer``, ``gitfilter``).

The registry maps a URL scheme to ``"module:Class"`` and imports the module only when a
remote of that scheme is opened, so boto3 and google-cloud-storage are never imported
by commands that do not need them. A missing SDK becomes a
:class:`~lfs_agent.errors.BackendUnavailableError` that says which extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from lfs_agent.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
    IntegrityError,
    LfsAgentError,
    ObjectNotFoundError,
    RetriableError,
    UnreachableError,
)
from lfs_agent.hashing import CHUNK_SIZE, hash_file
from lfs_agent.pointer import Pointer
from lfs_agent.progress import Progress

__all__ = [
    "META_MAX_BYTES",
    "REGISTRY",
    "Backend",
    "bucket_and_prefix",
    "causes",
    "check_meta_key",
    "check_source",
    "connection_error",
    "masked_error",
    "meta_too_large",
    "network_reason",
    "object_key",
    "open_backend",
    "read_meta",
    "size_of",
]

#: scheme -> ("module:Class", pip extra that provides its SDK or None).
REGISTRY: dict[str, tuple[str, str | None]] = {
    "file": ("lfs_agent.backends.local:LocalBackend", None),
    "s3": ("lfs_agent.backends.s3:S3Backend", "s3"),
    "gs": ("lfs_agent.backends.gcs:GCSBackend", "gcs"),
    "http": ("lfs_agent.backends.http:HTTPBackend", None),
    "https": ("lfs_agent.backends.http:HTTPBackend", None),
}


def check_source(oid: str, src_path: Path, size: int, checked: bool = False) -> None:
    """Hash the file to upload; refuse it unless it has ``size`` bytes hashing to ``oid``.

    Does nothing when the caller says the store has ``checked`` it (see
    :meth:`Backend.upload`).

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


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the errors behind it, breadth first.

    Followed: causes, contexts, urllib3's ``reason``, ``args``, and the values of
    botocore's ``kwargs`` (where it keeps the error it wraps).
    """
    pending: list[object] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [getattr(current, "reason", None), current.__cause__, current.__context__]
        pending += list(current.args)
        kwargs = getattr(current, "kwargs", None)
        pending += list(kwargs.values()) if isinstance(kwargs, dict) else []


def network_reason(exc: BaseException) -> str:
    """Why a request failed, in a few words: the system's reason at the root of ``exc``.

    HTTP libraries wrap a refused connection or a failed name lookup in errors whose
    text repeats the host and the object's URL ("HTTPConnectionPool(...): Max retries
    exceeded with url: ..."). Followed through their causes, contexts and reasons to
    the socket's error, that is "Connection refused", "Name or service not known" or
    "timed out": the same words for every object, so one line can name them all.
    """
    root = exc  # without a system's reason: the last error in the chain says most
    for current in causes(exc):
        root = current
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        if type(current) in (TimeoutError, ConnectionError):  # socket's own, no errno
            return str(current) or "timed out"
    text = str(root).strip()
    return text.splitlines()[0] if text else type(root).__name__


#: Errors (by class name, so that no HTTP library is imported here) meaning no
#: connection was made at all: urllib3's and botocore's, and the socket's own.
_NO_CONNECTION = frozenset(
    {
        "NewConnectionError",  # urllib3: refused, unreachable, no name (NameResolutionError)
        "ConnectTimeoutError",  # urllib3, botocore
        "EndpointConnectionError",  # botocore
        "ConnectionRefusedError",
        "gaierror",
    }
)


def _is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the remote could not be reached at all.

    Then the next object would fare the same: the remote takes no more requests (see
    :class:`~lfs_agent.errors.UnreachableError`). A connection lost midway is not this.
    """
    return any(
        cls.__name__ in _NO_CONNECTION for current in causes(exc) for cls in type(current).__mro__
    )


def connection_error(what: str, exc: BaseException, note: str = "") -> RetriableError:
    """``<what>: <reason><note>`` for a request that failed on the network.

    The reason is :func:`network_reason`'s. The error is an
    :class:`~lfs_agent.errors.UnreachableError` when no connection was made at all,
    else a plain :class:`~lfs_agent.errors.RetriableError`.
    """
    kind = UnreachableError if _is_unreachable(exc) else RetriableError
    return kind(f"{what}: {network_reason(exc)}{note}")


def masked_error(error: LfsAgentError) -> LfsAgentError:
    """``error`` with the credentials of any URL its text repeats masked.

    An endpoint URL, or an SDK's message quoting one, may carry user-info.
    """
    from lfs_agent.redact import redact_text

    text = redact_text(str(error))
    if text == str(error):
        return error
    if isinstance(error, RetriableError):
        return type(error)(text, error.retry_after)
    return type(error)(text)


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


def size_of(backend: Backend, oid: str, listed: Mapping[str, int | None]) -> int | None:
    """The object's remote size, or None when the remote lacks it.

    Taken from ``listed`` (:meth:`Backend.stat_many`) when that settled ``oid``, else
    from :meth:`Backend.stat`.
    """
    return listed[oid] if oid in listed else backend.stat(oid)


class Backend(Protocol):
    """What every remote kind implements.

    Implementations validate nothing about content: callers pass valid oids and verify
    what they download. Vendor exceptions are translated into ``lfs_agent.errors``.
    """

    #: The remote's URL, for messages.
    url: str
    #: Parallel transfers beyond which this backend gets no faster (None: no bound).
    max_workers: int | None

    def stat(self, oid: str) -> int | None:
        """Return the stored object's size in bytes, or None when it is absent."""

    def stat_many(self, oids: Sequence[str]) -> dict[str, int | None]:
        """Sizes (None: absent) of those ``oids`` that one cheap listing can settle.

        Oids left out of the answer are unknown: the caller stats them one by one. A
        backend for which a stat is already cheap returns ``{}``, and so does a listing
        that fails (the stats then report the error).
        """

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

    def put_meta(self, key: str, data: bytes) -> None:
        """Store a small record (e.g. ``meta/tags/v1.json``), replacing it atomically."""

    def get_meta(self, key: str) -> bytes | None:
        """Return a record stored with :meth:`put_meta`, or None."""

    def list_meta(self, prefix: str) -> list[str]:
        """Return the keys of records under ``prefix`` (e.g. ``meta/tags/``), sorted."""

    def close(self) -> None:
        """Release connections; the backend is not used afterwards."""


def open_backend(
    url: str, options: Mapping[str, str] | None = None, state_dir: Path | None = None
) -> Backend:
    """Open the backend for a normalized remote ``url``.

    Args:
        url: As returned by :func:`lfs_agent.config.normalize_remote_url`.
        options: ``lfs-agent.*`` settings; each backend reads its own keys.
        state_dir: A directory where a backend may keep state between runs (resumable
            uploads); the repository's ``lfs/tmp``. None: nothing is kept.

    Raises:
        ConfigError: for an unknown scheme.
        BackendUnavailableError: when the scheme's SDK is not installed.
    """
    scheme = urlparse(url).scheme.lower()
    try:
        target, extra = REGISTRY[scheme]
    except KeyError:
        raise ConfigError(f"no backend for {scheme or 'plain'} remote {url!r}") from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f": pip install 'lfs-agent[{extra}]'" if extra else ""
        raise BackendUnavailableError(
            f"{scheme}:// remotes need {exc.name or 'an optional package'}{hint}"
        ) from None
    backend: Backend = getattr(module, class_name)(url, dict(options or {}), state_dir)
    return backend
