"""Google Cloud Storage buckets through google-cloud-storage.

Keys are ``<prefix>/objects/<oid[0:2]>/<oid[2:4]>/<oid>``. Credentials come from
Application Default Credentials (``gcloud auth application-default login``, a service
account key named by ``GOOGLE_APPLICATION_CREDENTIALS``, workload identity ...);
``STORAGE_EMULATOR_HOST`` is honoured by the SDK itself. The SDK is imported here only.

Uploads are create-only (``if_generation_match=0``): a concurrent writer of the same
oid is not an error, the bytes are the same. Before anything is sent the file is hashed
and must match the oid; the SDK checks CRC32C on the wire. Files larger than the chunk
size use a resumable upload session, which creates no object until it is finalized, so
an interrupted upload leaves nothing visible and the next push starts a new session
(the SDK offers no way to reattach to a session from another process). Downloads are
resumed from the bytes already in the caller's file.

A download asks for one byte more than the pointer's size and reads the body as stored
(never decompressed): an object larger than its pointer shows itself by that byte,
which is refused unwritten, so no more than the pointer's size is ever written, even
by a server that ignores the range. Records are capped the same way.

The SDK retries a failed request (a lost connection, 429, 5xx) with growing waits;
here for at most ``retry-timeout`` seconds per request, not the SDK's two minutes, so
that an unreachable endpoint fails a push of many objects in seconds. What is left
then is one line naming the reason ("Connection refused").

Options (``lfs-agent.gcs.<name>``, read by :class:`~lfs_agent.options.Options`):
``project``, ``user-project`` (requester pays), ``chunk-size`` (bytes, a multiple of
256 KiB up to 1 GiB; K/M/G suffixes allowed), ``retry-timeout`` (seconds, 0 to 3600).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import google.auth.exceptions
import requests
from google.api_core import exceptions as gexc
from google.cloud import storage
from google.cloud.storage.exceptions import InvalidResponse
from google.cloud.storage.retry import DEFAULT_RETRY

from lfs_agent.backends import (
    DELETE_BATCH,
    META_MAX_BYTES,
    Capability,
    Deleted,
    Entry,
    bucket_and_prefix,
    check_meta_key,
    check_source,
    collect_key,
    collect_prefix,
    meta_too_large,
    object_key,
)
from lfs_agent.backends.filewindow import FileWindow
from lfs_agent.backends.network import causes, connection_error, masked_error
from lfs_agent.errors import (
    BackendError,
    LfsAgentError,
    ObjectNotFoundError,
    RetriableError,
)
from lfs_agent.hashing import WriteHash
from lfs_agent.options import GIB, KIB, MAX_SECONDS, Options
from lfs_agent.pointer import Pointer
from lfs_agent.progress import Progress

__all__ = ["GCSBackend"]

logger = logging.getLogger(__name__)

#: Resumable-upload chunk size (must be a multiple of 256 KiB): 16 MiB.
DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024
CHUNK_QUANTUM = 256 * KIB
#: Largest chunk: the SDK holds a chunk in memory while it sends it.
MAX_CHUNK_SIZE = GIB
#: Seconds the SDK keeps retrying one request (its own default is 120).
DEFAULT_RETRY_TIMEOUT = 30.0
#: What a request may raise, translated by :meth:`GCSBackend._translate`: the API's
#: errors, an upload's or download's unexpected answer, the retries given up,
#: credentials, and the network (requests' errors).
_FAILURES = (
    gexc.GoogleAPICallError,
    InvalidResponse,
    gexc.RetryError,
    google.auth.exceptions.GoogleAuthError,
    requests.exceptions.RequestException,
)
#: The permissions a denied request needs, named in its error unless the caller says.
_TRANSFER_PERMISSIONS = "storage.objects.get/create"
#: Keys per page of a listing (GCS's most).
LIST_PAGE_SIZE = 1000
#: Conditional deletes in flight at once.
_DELETE_WORKERS = 8
#: Longest answer body taken for the server's own words when it is not GCS's JSON.
_REASON_MAX = 200


def _ended_early(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a body shorter than its announced length."""
    # urllib3's IncompleteRead is a kind of http.client's.
    return any(isinstance(e, http.client.IncompleteRead) for e in causes(exc))


def _server_words(response: requests.Response) -> str:
    """What an error answer says: GCS's JSON message, a short plain text, or its status.

    Never the SDK's own wording, which repeats the request's URL and a tuple of the
    statuses it expected.
    """
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = None
    if isinstance(message, str) and message.strip():
        return message.strip().splitlines()[0]
    text = response.text.strip()
    if text and len(text) <= _REASON_MAX and "\n" not in text and "<" not in text:
        return text
    reason = http.client.responses.get(response.status_code, "")
    return f"HTTP {response.status_code} {reason}".rstrip()


def _as_api_error(exc: InvalidResponse) -> gexc.GoogleAPICallError | None:
    """An upload's or download's unexpected answer as the API error of its status."""
    response = getattr(exc, "response", None)
    if not isinstance(response, requests.Response):
        return None
    # api_core leaves this unannotated.
    error: gexc.GoogleAPICallError = gexc.from_http_status(  # type: ignore[no-untyped-call]
        response.status_code, _server_words(response), response=response
    )
    return error


def _said(exc: gexc.GoogleAPICallError) -> str:
    """The server's words in an API error, without the request line the SDK puts first."""
    response = exc.response
    if isinstance(response, requests.Response):
        return _server_words(response)
    return str(exc.message)


class _Sink:
    """A download's file as the SDK writes it: counted and hashed as it goes.

    The SDK only writes, and seeks back to the start when it gets the whole object
    again (decompressive transcoding); any other seek is refused.
    """

    def __init__(self, written: WriteHash, progress: Progress) -> None:
        self._written = written
        self._progress = progress

    def write(self, data: bytes) -> int:
        self._written.write(data)
        self._progress(len(data))
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if (offset, whence) != (0, io.SEEK_SET):
            raise io.UnsupportedOperation(f"seek({offset}, {whence}) in a download")
        self._progress(-self._written.size)
        self._written.restart()
        return 0


class _CappedRecord:
    """A record's bytes as the SDK writes them, refused past ``cap`` bytes."""

    def __init__(self, key: str, url: str, cap: int) -> None:
        self._key = key
        self._url = url
        self._cap = cap
        self._parts: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> int:
        if self._size + len(data) > self._cap:
            raise meta_too_large(self._key, self._url, self._cap)
        self._parts.append(bytes(data))
        self._size += len(data)
        return len(data)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class GCSBackend:
    """Objects in a GCS bucket under a prefix.

    Args:
        url: ``gs://bucket/prefix``.
        options: ``gcs.*`` settings (see the module docstring).
        state_dir: Unused (resumable sessions cannot be reattached across processes).
        client: A ready ``storage.Client`` (tests); built from the options otherwise.
    """

    #: Transfers are network-bound: every configured worker helps.
    max_workers: int | None = None
    #: Records, and garbage collection (generations make creates and deletes
    #: conditional); no listing for stats (a stat is one metadata GET), no resumable
    #: uploads (sessions cannot be reattached across processes).
    capabilities: frozenset[Capability] = frozenset({Capability.RECORDS, Capability.COLLECT})
    #: Most bytes a record may hold (:data:`~lfs_agent.backends.META_MAX_BYTES`).
    meta_max_bytes: int = META_MAX_BYTES

    def __init__(
        self,
        url: str,
        options: dict[str, str] | None = None,
        state_dir: Path | None = None,
        client: Any = None,
    ) -> None:
        self.url = url
        self.bucket_name, self.prefix = bucket_and_prefix(url)
        opts = Options(options, "gcs")
        self._opts = opts
        self.chunk_size = opts.size(
            "chunk-size",
            DEFAULT_CHUNK_SIZE,
            minimum=CHUNK_QUANTUM,
            maximum=MAX_CHUNK_SIZE,
            multiple_of=CHUNK_QUANTUM,
        )
        self.retry_timeout = opts.seconds(
            "retry-timeout", DEFAULT_RETRY_TIMEOUT, minimum=0, maximum=MAX_SECONDS
        )
        self._retry = DEFAULT_RETRY.with_timeout(self.retry_timeout)
        self._client = client
        self._lock = threading.Lock()
        # Checked once, on the first 404, to tell a missing bucket from a missing object.
        self._bucket_exists: bool | None = None
        # Asked once: whether the bucket keeps noncurrent generations.
        self._versioned: bool | None = None

    @property
    def client(self) -> Any:
        """The storage client, created on first use."""
        with self._lock:
            if self._client is None:
                try:
                    self._client = storage.Client(project=self._opts.text("project"))
                except google.auth.exceptions.DefaultCredentialsError:
                    raise BackendError(
                        f"no Google credentials for {self.url}: run 'gcloud auth "
                        "application-default login', or set GOOGLE_APPLICATION_CREDENTIALS"
                    ) from None
            return self._client

    @property
    def bucket(self) -> Any:
        """The bucket handle."""
        return self.client.bucket(self.bucket_name, user_project=self._opts.text("user-project"))

    def _key(self, oid: str) -> str:
        return f"{self.prefix}/{object_key(oid)}" if self.prefix else object_key(oid)

    def _translate(
        self, exc: Exception, key: str | None = None, needs: str = _TRANSFER_PERMISSIONS
    ) -> LfsAgentError:
        """One line for what a request raised: about the object at ``key``, or the bucket.

        A denied request names the permissions it ``needs``. Credentials in a URL the
        SDK's message repeats are masked.
        """
        return masked_error(self._translate_unmasked(exc, key, needs))

    def _translate_unmasked(
        self, exc: Exception, key: str | None = None, needs: str = _TRANSFER_PERMISSIONS
    ) -> LfsAgentError:
        where = f"gs://{self.bucket_name}/{key}" if key else self.url
        if isinstance(exc, InvalidResponse):
            api_error = _as_api_error(exc)
            if api_error is not None:
                return self._translate_unmasked(api_error, key, needs)
            return BackendError(f"GCS error for {where}: an unexpected answer")
        if isinstance(
            exc,
            google.auth.exceptions.DefaultCredentialsError | google.auth.exceptions.RefreshError,
        ):
            return BackendError(
                f"no valid Google credentials for {self.url}: run 'gcloud auth "
                "application-default login'"
            )
        if isinstance(exc, gexc.Forbidden | gexc.Unauthorized):
            return BackendError(
                f"permission denied on {where}: the account needs {needs} on the bucket"
            )
        if isinstance(exc, gexc.TooManyRequests | gexc.ServerError | gexc.ServiceUnavailable):
            return RetriableError(f"GCS failed for {where} after retries: {_said(exc)}")
        if isinstance(exc, gexc.GoogleAPICallError):
            return BackendError(f"GCS error for {where}: {_said(exc)}")
        if isinstance(exc, gexc.RetryError):  # retries ran out: say what the last one met
            cause = exc.cause or exc
            if isinstance(cause, gexc.GoogleAPICallError | InvalidResponse):
                return self._translate_unmasked(cause, key, needs)
            return self._network_error(cause, f" (retried for {self.retry_timeout:g}s)")
        if isinstance(exc, requests.exceptions.RequestException):
            return self._network_error(exc)
        raise exc

    def _network_error(self, exc: BaseException, note: str = "") -> RetriableError:
        """``cannot reach GCS for <url>: <reason><note>``, in words."""
        what = f"cannot reach GCS for {self.url}"
        if _ended_early(exc):  # urllib3 would say "IncompleteRead(3112 bytes read, ...)"
            return RetriableError(f"{what}: the body ended early{note}")
        return connection_error(what, exc, note)

    def _check_bucket(self) -> None:
        if self._bucket_exists is None:
            try:
                self._bucket_exists = self.bucket.exists(retry=self._retry)
            except gexc.Forbidden:
                self._bucket_exists = True  # may not list buckets: assume it exists
            except _FAILURES as exc:
                raise self._translate(exc) from exc
        if not self._bucket_exists:
            raise BackendError(
                f"bucket {self.bucket_name!r} does not exist: create it, or fix lfs-agent.remote"
            )

    def stat(self, oid: str) -> int | None:
        """Return the object's size, or None when absent."""
        try:
            blob = self.bucket.get_blob(self._key(oid), retry=self._retry)
        except gexc.NotFound:
            blob = None
        except _FAILURES as exc:
            raise self._translate(exc, self._key(oid)) from exc
        if blob is None:
            self._check_bucket()
            return None
        return int(blob.size)

    def upload(
        self, oid: str, src_path: Path, size: int, progress: Progress, checked: bool = False
    ) -> None:
        """Upload ``src_path`` as ``oid`` (create-only) after checking its hash.

        Not when the store has ``checked`` it: the upload still sends a crc32c.
        """
        check_source(oid, src_path, size, checked)
        blob = self.bucket.blob(self._key(oid), chunk_size=self.chunk_size)
        try:
            with FileWindow(src_path, oid, 0, size, progress) as body:
                blob.upload_from_file(
                    body,
                    size=size,
                    if_generation_match=0,
                    checksum="crc32c",
                    content_type="application/octet-stream",
                    retry=self._retry,
                )
        except gexc.PreconditionFailed:
            logger.debug("%s already exists in %s (a concurrent upload)", oid, self.url)
        except gexc.NotFound as exc:
            self._check_bucket()
            raise self._translate(exc, self._key(oid)) from exc
        except _FAILURES as exc:
            raise self._translate(exc, self._key(oid)) from exc

    def download(self, oid: str, dest_path: Path, size: int, progress: Progress) -> Pointer:
        """Write the object into ``dest_path``, continuing a partial file.

        One streamed GET of the bytes as stored, up to one past ``size``: an object
        larger than its pointer fails (:class:`IntegrityError`) at that byte, unwritten.

        Returns:
            The sha256 and length of what the file holds, hashed as it was written.
        """
        have = dest_path.stat().st_size if dest_path.exists() else 0
        if have >= size:
            have = 0
        # No chunk size: a chunked download holds each chunk in memory, whole.
        blob = self.bucket.blob(self._key(oid))
        what = f"object {oid} from {self.url}"
        try:
            with (
                open(dest_path, "r+b" if have else "wb") as dst,
                WriteHash(dst, have, limit=size, what=what) as written,
            ):
                if have:
                    progress(have)
                    logger.debug("resuming download of %s at byte %d", oid, have)
                # CRC32C covers whole objects only; a resumed part is checked by sha256.
                blob.download_to_file(
                    _Sink(written, progress),
                    start=have or None,
                    end=size,  # one byte past the pointer's last: there only if it lies
                    raw_download=True,
                    checksum=None if have else "crc32c",
                    retry=self._retry,
                )
                return written.pointer()
        except gexc.NotFound:
            self._check_bucket()
            raise ObjectNotFoundError(f"object {oid} is not on remote {self.url}") from None
        except _FAILURES as exc:
            raise self._translate(exc, self._key(oid)) from exc

    def _meta_key(self, key: str) -> str:
        key = check_meta_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_meta(self, key: str, data: bytes) -> None:
        """Store a record (one request: atomic)."""
        key = self._meta_key(key)
        try:
            self.bucket.blob(key).upload_from_string(
                data, content_type="application/json", retry=self._retry
            )
        except _FAILURES as exc:
            raise self._translate(exc, key) from exc

    def get_meta(self, key: str) -> bytes | None:
        """Read a record, or None.

        Raises:
            BackendError: the record is larger than :attr:`meta_max_bytes`.
        """
        name = key
        key = self._meta_key(key)
        cap = self.meta_max_bytes
        record = _CappedRecord(name, self.url, cap)
        try:
            # Up to one byte past the cap, as stored: a larger record shows itself by it.
            self.bucket.blob(key).download_to_file(
                record, end=cap, raw_download=True, retry=self._retry
            )
            return record.getvalue()
        except gexc.NotFound:
            return None
        except _FAILURES as exc:
            raise self._translate(exc, key) from exc

    def list_meta(self, prefix: str) -> list[str]:
        """Keys of the records under ``prefix``."""
        full = self._meta_key(prefix.rstrip("/") + "/x")[:-1]
        strip = f"{self.prefix}/" if self.prefix else ""
        try:
            blobs = self.client.list_blobs(self.bucket_name, prefix=full, retry=self._retry)
            return sorted(b.name.removeprefix(strip) for b in blobs)
        except _FAILURES as exc:
            raise self._translate(exc) from exc

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _entry(self, blob: Any) -> Entry:
        """A blob as an entry: ``updated`` is the store's clock, the generation its tag."""
        key = blob.name.removeprefix(f"{self.prefix}/") if self.prefix else blob.name
        return Entry(key, int(blob.size), blob.updated.timestamp(), str(blob.generation))

    def list_entries(self, prefix: str) -> Iterator[Entry]:
        """Every key under ``prefix``, one page of :data:`LIST_PAGE_SIZE` in memory at a time."""
        full = self._full(collect_prefix(prefix, self.url))
        try:
            blobs = self.client.list_blobs(
                self.bucket_name, prefix=full, page_size=LIST_PAGE_SIZE, retry=self._retry
            )
            for blob in blobs:
                yield self._entry(blob)
        except _FAILURES as exc:
            raise self._translate(exc) from exc

    def stat_entry(self, key: str) -> Entry | None:
        """The key's metadata (one GET), or None."""
        full = self._full(collect_key(key, self.url))
        try:
            blob = self.bucket.get_blob(full, retry=self._retry)
        except gexc.NotFound:
            return None
        except _FAILURES as exc:
            raise self._translate(exc, full) from exc
        if blob is None:
            self._check_bucket()
            return None
        return self._entry(blob)

    def create_meta(self, key: str, data: bytes) -> Entry | None:
        """Create a record only if absent (``ifGenerationMatch=0``); None when it existed.

        The answer to the upload describes the created object: no second request. An
        upload retried after its answer was lost may find its own record: it then
        reports that the key existed, the safe side for a lock.
        """
        full = self._meta_key(key)
        blob = self.bucket.blob(full)
        try:
            blob.upload_from_string(
                data, content_type="application/json", if_generation_match=0, retry=self._retry
            )
        except gexc.PreconditionFailed:
            return None
        except _FAILURES as exc:
            raise self._translate(exc, full) from exc
        return self._entry(blob)

    def _delete_if_unchanged(self, entry: Entry) -> Deleted | None:
        full = self._full(entry.key)
        try:
            self.bucket.delete_blob(full, if_generation_match=int(entry.tag), retry=self._retry)
        except (gexc.PreconditionFailed, gexc.NotFound):
            return None
        except _FAILURES as exc:
            raise self._translate(exc, full, "storage.objects.delete") from exc
        return Deleted(entry.key, entry.tag if self.versioned() else "")

    def delete_entries(self, entries: Sequence[Entry]) -> list[Deleted]:
        """Delete each key whose generation is still the entry's (``ifGenerationMatch``).

        GCS checks the generation as it deletes: a key rewritten since it was listed
        (or gone) is left alone, with no window. On a versioned bucket the deleted
        generation stays as a noncurrent one, and is what :meth:`undelete` copies back.
        A delete retried after its answer was lost finds the key gone and does not
        report it: the garbage is gone all the same.

        Raises:
            ValueError: more than :data:`DELETE_BATCH` entries.
        """
        if len(entries) > DELETE_BATCH:
            raise ValueError(f"at most {DELETE_BATCH} keys per delete, not {len(entries)}")
        for entry in entries:
            collect_key(entry.key, self.url)
        if entries:
            self.versioned()  # asked once, before the threads
        with ThreadPoolExecutor(min(_DELETE_WORKERS, len(entries) or 1)) as pool:
            done = list(pool.map(self._delete_if_unchanged, entries))
        return [d for d in done if d is not None]

    def versioned(self) -> bool:
        """Whether the bucket keeps noncurrent generations (object versioning; asked once)."""
        if self._versioned is None:
            bucket = self.bucket
            try:
                bucket.reload(retry=self._retry)
            except _FAILURES as exc:
                raise self._translate(exc, needs="storage.buckets.get") from exc
            self._versioned = bool(bucket.versioning_enabled)
        return self._versioned

    def undelete(self, deleted: Deleted) -> bool:
        """Copy the deleted generation back onto its key, unless the key exists again.

        Returns:
            Whether the key is there now: False when the bucket is not versioned or the
            generation is gone (expired, or deleted for good).
        """
        full = self._full(collect_key(deleted.key, self.url))
        if not deleted.version.isdigit() or not self.versioned():
            return False  # no generation (or not one GCS writes): nothing to bring back
        bucket = self.bucket
        try:
            bucket.copy_blob(
                bucket.blob(full),
                bucket,
                full,
                source_generation=int(deleted.version),
                if_generation_match=0,
                retry=self._retry,
            )
        except gexc.PreconditionFailed:
            return True  # written again since: the key is there
        except gexc.NotFound:
            return False
        except _FAILURES as exc:
            raise self._translate(exc, full, "storage.objects.get/create") from exc
        return True

    def close(self) -> None:
        """Close the client's HTTP session."""
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
                self._client = None
