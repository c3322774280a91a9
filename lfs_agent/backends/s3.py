"""S3 and S3-compatible buckets (MinIO, Ceph, R2, Wasabi ...) through boto3.

Keys are ``<prefix>/objects/<oid[0:2]>/<oid[2:4]>/<oid>``. Credentials, regions and
endpoints come from boto3's own chain (environment, shared config and profiles, SSO,
instance roles; ``AWS_ENDPOINT_URL`` works as it is); the options below only choose
among them. boto3 is imported here and nowhere else.

Uploads never expose a partial object: a single PUT is atomic, and a multipart upload
becomes visible only when completed. Before anything is sent the file is hashed: its
sha256 must equal the oid. The one exception is an object the store checked as it wrote
it and that has not changed since (``checked``): a multipart upload of it hashes each
part just before sending it, so the first part leaves at once. Each PUT or part carries
its own SHA-256 checksum, which S3 verifies on arrival; that signed header binds the
body, so botocore is not made to hash the body again for the signature (which it does
over plain HTTP). A file that ends before its upload does is refused, and a multipart
upload of it aborted. An interrupted multipart upload is resumed by the next upload of
the same object: the upload id is remembered in ``state_dir`` (the repository's
``lfs/tmp``) and the parts S3 already holds (ListParts) are kept when their checksum or
MD5 ETag matches the local bytes. That state is held under a lock per object, so that a
second push of the object from the same repository waits for the first, then finds the
object there (or continues the upload) instead of completing the same upload twice.
Large downloads use parallel ranged GETs into the caller's file, about two ranges per
worker (none smaller than ``part-size``), and resume from the ranges already written.
A body that breaks off (a lost connection, a body cut short, a read timeout, or a 5xx
after botocore's own retries) is asked for again from the bytes already written, with
a ``Range``, after a backoff: up to ``max-attempts`` times per object or range.
No download writes more than its pointer's size: an object whose size (ContentLength,
or the total of ContentRange) is not the pointer's is refused before its body is read,
a body longer than announced is cut where it should end, and the file of a ranged
download grows only as ranges arrive, nothing being allocated up front.

Options (``lfs-agent.s3.<name>`` in git config or ``.lfsagent``, read by
:class:`~lfs_agent.options.Options`): ``profile``, ``region``, ``endpoint-url``,
``addressing-style`` (``path``/``virtual``/``auto``), ``sse`` (``AES256``/``aws:kms``),
``sse-kms-key-id``, ``storage-class``, ``part-size`` and ``multipart-threshold`` (bytes,
or with a K/M/G suffix; 5 MiB to 5 GiB, S3's bounds for a part and a single PUT),
``concurrency`` (parallel parts or ranges per object, 1 to 64), ``checksum``
(``sha256``/``off``), ``retry-mode`` (``standard``/``adaptive``/``legacy``) and
``max-attempts`` (1 to 100).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import hashlib
import http.client
import io
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import urllib3.exceptions
from botocore.config import Config

from lfs_agent.backends import (
    META_MAX_BYTES,
    Capability,
    bucket_and_prefix,
    causes,
    check_meta_key,
    connection_error,
    masked_error,
    meta_too_large,
    object_key,
    read_meta,
    stat_by_listing,
)
from lfs_agent.errors import (
    BackendError,
    ConfigError,
    IntegrityError,
    LfsAgentError,
    ObjectNotFoundError,
    RetriableError,
)
from lfs_agent.hashing import CHUNK_SIZE, BackgroundHash, RangeHash, WriteHash
from lfs_agent.options import GIB, MAX_ATTEMPTS, MIB, Options
from lfs_agent.pointer import Pointer
from lfs_agent.progress import Progress

__all__ = ["S3Backend"]

logger = logging.getLogger(__name__)

#: Default part size for multipart uploads and ranged downloads (32 MiB).
DEFAULT_PART_SIZE = 32 * MIB
#: Objects larger than this (bytes) go multipart / ranged (64 MiB).
DEFAULT_MULTIPART_THRESHOLD = 64 * MIB
#: S3's limits: at most 10,000 parts, each from 5 MiB (but the last) to 5 GiB; a single
#: PUT of at most 5 GiB.
MAX_PARTS = 10_000
MIN_PART_SIZE = 5 * MIB
MAX_PART_SIZE = 5 * GIB
MAX_PUT_SIZE = 5 * GIB
#: Most parallel parts or ranges of one object; each holds a connection.
MAX_CONCURRENCY = 64
#: Objects up to this size are read once into memory, hashed and sent from there: a
#: bytes body also spares the ``Expect: 100-continue`` round trip botocore adds to
#: file bodies.
SMALL_OBJECT = MIB
#: Multipart uploads older than this (seconds) are stale for ``abort_stale_uploads``.
STALE_UPLOAD_SECONDS = 24 * 3600
#: First wait (seconds) before a broken-off download is resumed; doubled per attempt,
#: capped at MAX_BACKOFF.
BASE_BACKOFF = 0.5
MAX_BACKOFF = 30.0
# Error codes that mean "the credentials are wrong", "no access", "wrong region".
_BAD_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "ExpiredTokenException",
}
_ACCESS_DENIED = {"AccessDenied", "AllAccessDisabled", "403", "Forbidden"}
_WRONG_REGION = {
    "PermanentRedirect",
    "AuthorizationHeaderMalformed",
    "301",
    "IllegalLocationConstraintException",
}
_THROTTLED = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "500",
    "503",
}
#: Errors of a body that broke off while it was read (botocore's, urllib3's, the
#: socket's), or of a request whose connection was lost before its answer came.
_BROKEN_OFF = (
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)
# Errors an S3-compatible endpoint gives when it does not support SHA-256 checksums.
_CHECKSUM_UNSUPPORTED = {
    "NotImplemented",
    "InvalidRequest",
    "InvalidArgument",
    "XAmzContentChecksumMismatch",
    "BadDigest",
}


def _no_continue_for_small_puts(params: dict[str, Any], model: Any, **_: Any) -> None:
    """Send a small PutObject body at once instead of waiting for ``100 Continue``.

    botocore asks every file-like body (bytes become one) to wait for the server's
    go-ahead, a round trip per object; for a body this small resending it after a
    refusal costs less than that wait.
    """
    body = params.get("body")
    if (
        model.name == "PutObject"
        and isinstance(body, io.BytesIO)
        and len(body.getbuffer()) <= SMALL_OBJECT
    ):
        params["headers"].pop("Expect", None)


def _unsigned_when_checksummed(unsigned: Config, request: Any, **_: Any) -> None:
    """Skip the payload hash of a request whose body our SHA-256 checksum covers.

    Over plain HTTP botocore reads and hashes every body to sign it (over HTTPS it skips
    that when a checksum header is present). The signed ``x-amz-checksum-sha256``
    header already binds the body, and S3 refuses a body that does not match it, so
    that second pass over each part buys nothing. Requests without it stay signed.
    """
    if "x-amz-checksum-sha256" in request.headers:
        request.context["client_config"] = unsigned


def _missing_source(oid: str, src_path: Path) -> ObjectNotFoundError:
    return ObjectNotFoundError(f"cannot upload {oid}: {src_path} is missing")


def _wrong_source(oid: str, src_path: Path, size: int, actual: str) -> IntegrityError:
    return IntegrityError(
        f"refusing to upload {oid}: {src_path} has {size} bytes hashing to {actual}"
    )


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


class _EndedEarly(IntegrityError):
    """A :class:`FileSlice` whose file ended inside it."""


def _cut_short(exc: Exception, oid: str) -> IntegrityError | None:
    """The error of a source file that ended before its upload did, or None.

    A :class:`FileSlice` that ends early raises while botocore reads the body, to sign
    it or to send it; sending wraps the error in ``HTTPClientError``.
    """
    if isinstance(exc, botocore.exceptions.HTTPClientError):
        exc = exc.kwargs.get("error") or exc
    if isinstance(exc, _EndedEarly):
        return IntegrityError(f"refusing to upload {oid}: {exc}")
    return exc if isinstance(exc, IntegrityError) else None


def _break_reason(exc: BaseException) -> str:
    """Why a body broke off, in a few words: never botocore's or urllib3's text."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return f"S3 answered {exc.response.get('Error', {}).get('Code', 'with an error')}"
    errors = list(causes(exc))
    incomplete = botocore.exceptions.IncompleteReadError | http.client.IncompleteRead
    if any(isinstance(e, incomplete) for e in errors):
        return "the body ended early"
    if any(isinstance(e, TimeoutError | urllib3.exceptions.TimeoutError) for e in errors):
        return "timed out"
    for e in errors:
        if isinstance(e, OSError) and e.strerror:
            return e.strerror[:1].lower() + e.strerror[1:]
    return "the connection was lost"


def _worth_retrying(exc: botocore.exceptions.ClientError) -> bool:
    """Whether S3's error answer is one that a later attempt may not get (5xx, throttling)."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return code in _THROTTLED or int(status) >= 500


def _range_total(content_range: str | None) -> int | None:
    """The object's total size from a ContentRange (``bytes a-b/total``), when given."""
    total = (content_range or "").rpartition("/")[2].strip()
    return int(total) if total.isdigit() else None


def _sha256(part: _Part) -> bytes:
    if part.sha256 is None:
        raise AssertionError(f"part {part.number} was not hashed")
    return part.sha256


class FileSlice(io.RawIOBase):
    """A seekable, read-only window ``[offset, offset+length)`` of a file.

    botocore reads request bodies in chunks and seeks back on retries; a slice lets a
    part stream from disk without holding it in memory. A file that ends inside the
    window raises :class:`IntegrityError` rather than sending fewer bytes than the
    request announced, for which the server would wait until the read timed out.
    """

    def __init__(self, path: Path, offset: int, length: int) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._offset = offset
        self._length = length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = min(max(0, base + pos), self._length)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        remaining = self._length - self._pos
        if remaining <= 0:
            return 0
        view = memoryview(buffer)[: min(len(buffer), remaining)]
        self._file.seek(self._offset + self._pos)
        n = self._file.readinto(view)
        if not n:
            raise _EndedEarly(
                f"{self._file.name} ended at byte {self._offset + self._pos}, inside the bytes "
                f"{self._offset}-{self._offset + self._length - 1} to send"
            )
        self._pos += n
        return n

    def __len__(self) -> int:
        return self._length

    def close(self) -> None:
        self._file.close()
        super().close()


@dataclass(frozen=True)
class _Part:
    number: int
    offset: int
    length: int
    #: None until hashed: parts of a ``checked`` upload are hashed as they are sent.
    sha256: bytes | None


def _slice_digest(src_path: Path, part: _Part, digest: hashlib._Hash) -> hashlib._Hash:
    """``digest`` (a hashlib object) updated with the part's bytes of the file.

    Raises:
        _EndedEarly: when the file ends inside the part.
    """
    with FileSlice(src_path, part.offset, part.length) as body:
        while chunk := body.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest


def _hash_part(oid: str, src_path: Path, part: _Part) -> _Part:
    """``part`` with the sha256 of its bytes in ``src_path``."""
    try:
        digest = _slice_digest(src_path, part, hashlib.sha256())
    except FileNotFoundError:
        raise _missing_source(oid, src_path) from None
    return _Part(part.number, part.offset, part.length, digest.digest())


def _slice_md5(src_path: Path, part: _Part) -> str:
    """The md5 of one part of the file: what S3 gives as a plain part's ETag."""
    return _slice_digest(src_path, part, hashlib.md5(usedforsecurity=False)).hexdigest()


class S3Backend:
    """Objects in an S3 bucket under a prefix.

    Args:
        url: ``s3://bucket/prefix``.
        options: ``s3.*`` settings (see the module docstring).
        state_dir: Where resumable multipart uploads are remembered (the repository's
            ``lfs/tmp``); None disables resuming.
        client: A ready boto3 S3 client (tests); built from the options otherwise.
        sleep: Waits before a broken-off download is resumed; injected by tests.
    """

    #: Transfers are network-bound: every configured worker helps.
    max_workers: int | None = None
    #: A listing settles many stats (stat_many); multipart uploads resume across runs.
    capabilities: frozenset[Capability] = frozenset(
        {Capability.LISTING, Capability.RESUMABLE_UPLOADS, Capability.RECORDS}
    )
    #: Most bytes a record may hold (:data:`~lfs_agent.backends.META_MAX_BYTES`).
    meta_max_bytes: int = META_MAX_BYTES

    def __init__(
        self,
        url: str,
        options: dict[str, str] | None = None,
        state_dir: Path | None = None,
        client: Any = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.bucket, self.prefix = bucket_and_prefix(url)
        opts = Options(options, "s3")
        self._opts = opts
        self.part_size = opts.size(
            "part-size", DEFAULT_PART_SIZE, minimum=MIN_PART_SIZE, maximum=MAX_PART_SIZE
        )
        # Below a part's least size a multipart upload is all overhead; above S3's
        # largest PUT a single request cannot carry the object.
        self.threshold = opts.size(
            "multipart-threshold",
            DEFAULT_MULTIPART_THRESHOLD,
            minimum=MIN_PART_SIZE,
            maximum=MAX_PUT_SIZE,
        )
        self.concurrency = opts.whole("concurrency", 4, minimum=1, maximum=MAX_CONCURRENCY)
        # botocore's retries per request (it tries once more than this), and our tries
        # per downloaded body or range.
        self.max_attempts = opts.whole("max-attempts", 5, minimum=1, maximum=MAX_ATTEMPTS)
        # Read here, though only the client uses them: a bad value fails at once.
        self._retry_mode = opts.choice("retry-mode", "standard", ("standard", "adaptive", "legacy"))
        self._addressing_style = opts.choice("addressing-style", None, ("path", "virtual", "auto"))
        self._sleep = sleep
        # Keys per ListObjectsV2 page (S3's maximum; smaller in tests).
        self.list_page_size = 1000
        # False once the endpoint refused a SHA-256 checksum; we then send none.
        self.checksums = opts.choice("checksum", "sha256", ("sha256", "off")) == "sha256"
        self.state_dir = state_dir
        self._client = client
        self._client_lock = threading.Lock()
        # None until checked: whether the bucket exists (for clear 404 messages).
        self._bucket_exists: bool | None = None

    # --- client and errors ---------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3 client, created once and shared by threads (boto3 clients are)."""
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        o = self._opts
        config_args: dict[str, Any] = {
            "retries": {
                "mode": self._retry_mode,
                "max_attempts": self.max_attempts,
            },
            "max_pool_connections": max(10, self.concurrency * 4),
            "connect_timeout": 10,
            "read_timeout": 60,
            # We send our own SHA-256 checksums; botocore's default CRC32s are refused
            # by some S3-compatible endpoints.
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
        style = self._addressing_style
        s3_args = {"addressing_style": style} if style else {}
        config = Config(**config_args, s3=s3_args)
        try:
            session = boto3.session.Session(profile_name=o.text("profile"))
            client = session.client(
                "s3",
                region_name=o.text("region"),
                endpoint_url=o.text("endpoint-url"),
                config=config,
            )
        except botocore.exceptions.ProfileNotFound as exc:
            raise ConfigError(f"AWS profile not found: {exc}") from None
        client.meta.events.register_last("before-call.s3", _no_continue_for_small_puts)
        unsigned = client.meta.config.merge(
            Config(s3={**s3_args, "payload_signing_enabled": False})
        )
        client.meta.events.register(
            "before-sign.s3", functools.partial(_unsigned_when_checksummed, unsigned)
        )
        return client

    def _where(self, oid: str | None = None) -> str:
        return f"s3://{self.bucket}/{self._key(oid)}" if oid else self.url

    def _translate(self, exc: Exception, oid: str | None = None) -> LfsAgentError:
        """Map a botocore exception to one line naming the bucket and the fix.

        Credentials in a URL the line shows (an endpoint's) are masked.
        """
        return masked_error(self._translate_unmasked(exc, oid))

    def _translate_unmasked(self, exc: Exception, oid: str | None = None) -> LfsAgentError:
        where = self._where(oid)
        if oid and (cut := _cut_short(exc, oid)):
            return cut
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return BackendError(
                f"no AWS credentials found for {self.url}: set AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE (or lfs-agent.s3.profile), or run "
                "'aws sso login'"
            )
        if isinstance(
            exc,
            botocore.exceptions.EndpointConnectionError
            | botocore.exceptions.ConnectionClosedError
            | botocore.exceptions.ReadTimeoutError
            | botocore.exceptions.ConnectTimeoutError,
        ):
            endpoint = f" {self._client.meta.endpoint_url}" if self._client is not None else ""
            return connection_error(f"cannot reach the S3 endpoint{endpoint} for {self.url}", exc)
        if isinstance(exc, _BROKEN_OFF):
            return RetriableError(
                f"the connection to S3 broke off while reading {where}: {_break_reason(exc)}"
            )
        if isinstance(exc, botocore.exceptions.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return BackendError(
                    f"bucket {self.bucket!r} does not exist: create it, or fix lfs-agent.remote"
                )
            if code in _BAD_CREDENTIALS:
                return BackendError(
                    f"bad or expired AWS credentials for {self.url} ({code}): "
                    "refresh them or check AWS_PROFILE"
                )
            if code in _ACCESS_DENIED or status == 403:
                return BackendError(
                    f"access denied to {where}: the credentials need "
                    "s3:GetObject, s3:PutObject and s3:ListBucket on it"
                )
            if code in _WRONG_REGION or status == 301:
                region = (
                    exc.response.get("ResponseMetadata", {})
                    .get("HTTPHeaders", {})
                    .get("x-amz-bucket-region", "the bucket's region")
                )
                return BackendError(
                    f"wrong region for bucket {self.bucket!r}: set lfs-agent.s3.region to {region}"
                )
            if code in _THROTTLED or (status or 0) >= 500:
                return RetriableError(
                    f"S3 failed for {where} after retries ({code}): "
                    f"{error.get('Message', '')}".rstrip(": ")
                )
            return BackendError(f"S3 error for {where} ({code}): {error.get('Message', exc)}")
        if isinstance(exc, botocore.exceptions.BotoCoreError):
            return BackendError(f"S3 error for {self.url}: {exc}")
        raise exc

    def _key(self, oid: str | None) -> str:
        key = object_key(oid) if oid else ""
        return f"{self.prefix}/{key}" if self.prefix else key

    def _extra_put_args(self) -> dict[str, str]:
        args = {}
        sse = self._opts.text("sse")
        if sse:
            args["ServerSideEncryption"] = sse
            key_id = self._opts.text("sse-kms-key-id")
            if key_id:
                args["SSEKMSKeyId"] = key_id
        storage_class = self._opts.text("storage-class")
        if storage_class:
            args["StorageClass"] = storage_class
        return args

    # --- the Backend interface -----------------------------------------------------

    def stat(self, oid: str) -> int | None:
        """Return the object's size, or None when absent."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(oid))
        except botocore.exceptions.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey"):
                self._check_bucket()
                return None
            raise self._translate(exc, oid) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._translate(exc, oid) from exc
        return int(head["ContentLength"])

    def stat_many(self, oids: Sequence[str]) -> dict[str, int | None]:
        """Settle many oids with ListObjectsV2 pages instead of a HEAD each."""
        base = f"{self.prefix}/objects/" if self.prefix else "objects/"

        def pages_after(start: str) -> Iterator[list[tuple[str, int]]]:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(
                Bucket=self.bucket,
                Prefix=base,
                StartAfter=start,
                PaginationConfig={"PageSize": self.list_page_size},
            ):
                yield [(item["Key"], int(item["Size"])) for item in page.get("Contents", [])]

        try:
            return stat_by_listing(oids, self._key, pages_after)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            # Credentials may allow s3:GetObject/PutObject but not s3:ListBucket; the
            # HEAD of each object then decides (and reports any real error).
            logger.debug("listing %s failed, stat'ing each object: %s", self.url, exc)
            return {}

    def _check_bucket(self) -> None:
        """Turn a 404 caused by a missing bucket into a clear error (checked once)."""
        if self._bucket_exists is None:
            try:
                self.client.head_bucket(Bucket=self.bucket)
                self._bucket_exists = True
            except botocore.exceptions.ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code"))
                if code in ("404", "NoSuchBucket"):
                    self._bucket_exists = False
                else:
                    self._bucket_exists = True  # no permission to ask: assume it exists
        if self._bucket_exists is False:
            raise BackendError(
                f"bucket {self.bucket!r} does not exist: create it, or fix lfs-agent.remote"
            )

    def upload(
        self, oid: str, src_path: Path, size: int, progress: Progress, checked: bool = False
    ) -> None:
        """Upload ``src_path`` as ``oid`` after checking it hashes to ``oid``.

        The sha256 of each part is sent with it for S3 to check. Unless the store
        ``checked`` the file, the whole file's is computed beside them, before the
        first byte is sent; a ``checked`` file larger than the multipart threshold is
        not hashed whole, and each part is hashed just before it is sent.
        """
        try:
            if size <= SMALL_OBJECT:
                self._put_small(oid, src_path, size, progress)
                return
            if size > self.threshold and checked and self._source_size(oid, src_path) == size:
                self._multipart(oid, src_path, size, self._layout(size), progress)
                return
            parts = self._plan(oid, src_path, size)
            if size <= self.threshold:
                with FileSlice(src_path, 0, size) as body:
                    self._put(oid, body, _sha256(parts[0]), size, progress)
            else:
                self._multipart(oid, src_path, size, parts, progress)
        except (
            botocore.exceptions.ClientError,
            botocore.exceptions.BotoCoreError,
            _EndedEarly,
        ) as exc:
            raise self._translate(exc, oid) from exc

    @staticmethod
    def _source_size(oid: str, src_path: Path) -> int:
        try:
            return src_path.stat().st_size
        except FileNotFoundError:
            raise _missing_source(oid, src_path) from None

    def _layout(self, size: int) -> list[_Part]:
        """The parts of a multipart upload of ``size`` bytes, not yet hashed."""
        part_size = self._part_size_for(size)
        return [
            _Part(number, offset, min(part_size, size - offset), None)
            for number, offset in enumerate(range(0, size, part_size), start=1)
        ]

    def _part_size_for(self, size: int) -> int:
        if size <= self.threshold:
            return max(size, 1)
        return max(self.part_size, math.ceil(size / MAX_PARTS))

    def _plan(self, oid: str, src_path: Path, size: int) -> list[_Part]:
        """Hash the file part by part; refuse it unless it is exactly ``oid``.

        The whole file's sha256 is computed by a second thread while this one hashes
        the parts: on two cores that halves the time before the first byte is sent.
        """
        part_size = self._part_size_for(size)
        parts = []
        offset = 0
        try:
            with open(src_path, "rb") as src, BackgroundHash() as whole:
                number = 1
                while True:
                    part_sha = hashlib.sha256()
                    length = 0
                    while length < part_size and (
                        chunk := src.read(min(CHUNK_SIZE, part_size - length))
                    ):
                        whole.update(chunk)
                        part_sha.update(chunk)
                        length += len(chunk)
                    if length == 0 and number > 1:
                        break
                    parts.append(_Part(number, offset, length, part_sha.digest()))
                    offset += length
                    number += 1
                    if length < part_size:
                        break
                digest = whole.hexdigest()
        except FileNotFoundError:
            raise _missing_source(oid, src_path) from None
        if offset != size or digest != oid:
            raise _wrong_source(oid, src_path, offset, digest)
        return parts

    def _put_small(self, oid: str, src_path: Path, size: int, progress: Progress) -> None:
        try:
            with open(src_path, "rb") as src:
                data = src.read(SMALL_OBJECT + 1)
        except FileNotFoundError:
            raise _missing_source(oid, src_path) from None
        digest = hashlib.sha256(data)
        if len(data) != size or digest.hexdigest() != oid:
            raise _wrong_source(oid, src_path, len(data), digest.hexdigest())
        self._put(oid, data, digest.digest(), size, progress)

    def _put(
        self, oid: str, body: FileSlice | bytes, sha256: bytes, length: int, progress: Progress
    ) -> None:
        """One PUT of the whole object; S3 checks ``sha256`` before storing it."""
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._key(oid),
            **self._extra_put_args(),
        }
        if self.checksums:
            try:
                self.client.put_object(Body=body, ChecksumSHA256=_b64(sha256), **args)
                progress(length)
                return
            except botocore.exceptions.ClientError as exc:
                if not self._checksum_refused(exc):
                    raise
                if not isinstance(body, bytes):
                    body.seek(0)
        self.client.put_object(Body=body, **args)
        progress(length)

    def _checksum_refused(self, exc: botocore.exceptions.ClientError) -> bool:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        message = str(exc.response.get("Error", {}).get("Message", "")).lower()
        if code in _CHECKSUM_UNSUPPORTED and ("checksum" in message or code == "NotImplemented"):
            logger.debug(
                "%s refused a SHA-256 checksum (%s: %s); sending none from now on",
                self.url,
                code,
                message,
            )
            self.checksums = False
            return True
        return False

    # --- multipart upload with resume ----------------------------------------------

    def _state_path(self, oid: str) -> Path | None:
        return self.state_dir / f"s3-upload-{oid}.json" if self.state_dir else None

    def _load_state(self, oid: str, size: int, part_size: int) -> str | None:
        path = self._state_path(oid)
        if path is None or not path.exists():
            return None
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        expected = {
            "bucket": self.bucket,
            "key": self._key(oid),
            "size": size,
            "part_size": part_size,
        }
        if any(state.get(k) != v for k, v in expected.items()):
            return None
        upload_id = state.get("upload_id")
        return upload_id if isinstance(upload_id, str) else None

    def _save_state(self, oid: str, size: int, part_size: int, upload_id: str) -> None:
        path = self._state_path(oid)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".tmp")
        temp.write_text(
            json.dumps(
                {
                    "bucket": self.bucket,
                    "key": self._key(oid),
                    "size": size,
                    "part_size": part_size,
                    "upload_id": upload_id,
                    "started": time.time(),
                }
            )
        )
        os.replace(temp, path)

    def _drop_state(self, oid: str) -> None:
        path = self._state_path(oid)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _listed_parts(self, oid: str, upload_id: str) -> dict[int, dict[str, Any]] | None:
        """The parts S3 holds for ``upload_id``, or None when the upload is gone."""
        found: dict[int, dict[str, Any]] = {}
        try:
            paginator = self.client.get_paginator("list_parts")
            for page in paginator.paginate(
                Bucket=self.bucket, Key=self._key(oid), UploadId=upload_id
            ):
                for part in page.get("Parts", []):
                    found[int(part["PartNumber"])] = part
        except botocore.exceptions.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("NoSuchUpload", "404"):
                return None
            raise
        return found

    @staticmethod
    def _part_matches(listed: dict[str, Any], part: _Part, src_path: Path) -> bool:
        """Whether a part already on S3 (from an interrupted upload) holds these bytes.

        The md5 an ETag is compared with is computed only here, when resuming: on
        every upload it would cost more CPU than both sha256 passes together.
        """
        if int(listed.get("Size", -1)) != part.length:
            return False
        if listed.get("ChecksumSHA256"):
            return bool(listed["ChecksumSHA256"] == _b64(_sha256(part)))
        etag = str(listed.get("ETag", "")).strip('"')
        if len(etag) == 32 and all(c in "0123456789abcdef" for c in etag):
            return etag == _slice_md5(src_path, part)
        return True  # no checksum to compare (e.g. SSE-KMS ETags): trust the size

    @contextlib.contextmanager
    def _state_lock(self, oid: str) -> Iterator[bool]:
        """Hold ``oid``'s multipart state alone; yield whether another upload held it first.

        Two pushes from one repository share ``state_dir``: unlocked, both would continue
        the same multipart upload and both complete it, and one of them fail. The lock
        file stays, as the download side's ``<oid>.lock`` does: removing it could let two
        later uploads lock two different files of the same name.
        """
        path = self._state_path(oid)
        if path is None:
            yield False
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                waited = False
            except BlockingIOError:
                logger.debug("waiting for another upload of %s to end", oid)
                fcntl.flock(lock, fcntl.LOCK_EX)
                waited = True
            # Fresh, so that cleaning stale temp files spares it while it is held.
            os.utime(lock.fileno())
            yield waited

    def _multipart(
        self, oid: str, src_path: Path, size: int, parts: list[_Part], progress: Progress
    ) -> None:
        """Send ``parts`` as one multipart upload of ``oid``, or nothing if it is there.

        Another upload of ``oid`` from this repository, waited for, may have stored it
        meanwhile, or left its upload for this one to continue.
        """
        with self._state_lock(oid) as waited:
            if waited and self.stat(oid) == size:
                logger.debug("%s was uploaded meanwhile; not sending it again", oid)
                progress(size)
                return
            self._send_parts(oid, src_path, size, parts, progress)

    def _send_parts(
        self, oid: str, src_path: Path, size: int, parts: list[_Part], progress: Progress
    ) -> None:
        key = self._key(oid)
        part_size = self._part_size_for(size)
        upload_id = self._load_state(oid, size, part_size)
        listed: dict[int, dict[str, Any]] = {}
        if upload_id is not None:
            found = self._listed_parts(oid, upload_id)
            if found is None:
                upload_id = None
            else:
                listed = found
                logger.debug(
                    "resuming upload of %s: %d of %d parts already on S3",
                    oid,
                    len(listed),
                    len(parts),
                )
        if upload_id is None:
            args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, **self._extra_put_args()}
            if self.checksums:
                args["ChecksumAlgorithm"] = "SHA256"
            upload_id = self.client.create_multipart_upload(**args)["UploadId"]
            self._save_state(oid, size, part_size, upload_id)

        def send(part: _Part) -> dict[str, Any]:
            if part.sha256 is None:
                part = _hash_part(oid, src_path, part)
            checksum = _b64(_sha256(part))
            previous = listed.get(part.number)
            if previous is not None and self._part_matches(previous, part, src_path):
                progress(part.length)
                entry = {"PartNumber": part.number, "ETag": previous["ETag"]}
                if previous.get("ChecksumSHA256"):
                    entry["ChecksumSHA256"] = previous["ChecksumSHA256"]
                elif self.checksums:
                    entry["ChecksumSHA256"] = checksum
                return entry
            args = {
                "Bucket": self.bucket,
                "Key": key,
                "UploadId": upload_id,
                "PartNumber": part.number,
            }
            if self.checksums:
                args["ChecksumSHA256"] = checksum
            with FileSlice(src_path, part.offset, part.length) as body:
                reply = self.client.upload_part(Body=body, **args)
            progress(part.length)
            entry = {"PartNumber": part.number, "ETag": reply["ETag"]}
            if self.checksums:
                entry["ChecksumSHA256"] = checksum
            return entry

        try:
            with ThreadPoolExecutor(max(1, self.concurrency), "lfs-agent-s3-part") as pool:
                done = list(pool.map(send, parts))
        except (IntegrityError, botocore.exceptions.HTTPClientError) as exc:
            cut = _cut_short(exc, oid)
            if cut is None:
                raise
            # The file was cut short while it was sent: what was sent is no part of it.
            with contextlib.suppress(
                botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError
            ):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            self._drop_state(oid)
            raise cut from None
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
        )
        self._drop_state(oid)

    def abort_stale_uploads(
        self, older_than: float = STALE_UPLOAD_SECONDS, now: float | None = None
    ) -> int:
        """Abort multipart uploads under our prefix older than ``older_than`` seconds.

        Returns:
            How many uploads were aborted.
        """
        now = time.time() if now is None else now
        aborted = 0
        try:
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(None)):
                for upload in page.get("Uploads", []):
                    if now - upload["Initiated"].timestamp() > older_than:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted += 1
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._translate(exc) from exc
        return aborted

    # --- downloads -------------------------------------------------------------------

    def download(self, oid: str, dest_path: Path, size: int, progress: Progress) -> Pointer | None:
        """Write the object into ``dest_path``, resuming what an earlier attempt wrote.

        Returns:
            The sha256 and length of what the file holds: hashed as it was written (a
            single GET), or read back and hashed while the ranges came in.
        """
        try:
            if size > self.threshold:
                return self._ranged_download(oid, dest_path, size, progress)
            return self._stream_download(oid, dest_path, size, progress)
        except botocore.exceptions.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("NoSuchKey", "404"):
                self._check_bucket()
                raise ObjectNotFoundError(f"object {oid} is not on remote {self.url}") from None
            raise self._translate(exc, oid) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._translate(exc, oid) from exc

    def _get(self, oid: str, size: int, start: int, end: int | None = None) -> Any:
        """The body of bytes ``start`` to ``end`` (or the object's end) of ``oid``.

        Refused before any of it is read when the answer shows an object of another
        size than the pointer's ``size`` (ContentRange's total; ContentLength for a
        whole object), or a body longer than the bytes asked for.

        Raises:
            IntegrityError: for either; the body is closed unread.
        """
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(oid)}
        ranged = bool(start or end is not None)
        if ranged:
            args["Range"] = f"bytes={start}-{'' if end is None else end}"
        response = self.client.get_object(**args)
        body = response["Body"]
        length = response.get("ContentLength")
        total = _range_total(response.get("ContentRange"))
        if total is None and not ranged:
            total = length
        expected = (size if end is None else end + 1) - start
        problem = None
        if total is not None and total != size:
            problem = f"has {total} bytes, but its pointer says {size}"
        elif length is not None and length > expected:
            problem = f"sends {length} bytes for bytes {start}-{start + expected - 1}"
        if problem is not None:
            body.close()
            raise IntegrityError(f"object {oid} on {self.url} {problem}")
        return body

    def _backoff(self, attempt: int) -> None:
        self._sleep(min(MAX_BACKOFF, BASE_BACKOFF * 2 ** (attempt - 1)))

    def _until_whole(self, oid: str, attempt: Callable[[], bool]) -> None:
        """Call ``attempt`` until the body it reads is whole, resuming it when it breaks.

        ``attempt`` asks for the bytes still missing, writes what arrives and returns
        whether the body is now whole (False: it ended early without an error). A body
        that breaks off, or a request S3 answers with a 5xx or throttling error after
        botocore's own retries, is tried again after a backoff: ``max_attempts`` times
        in all. Anything else (an :class:`IntegrityError` above all) ends it at once.

        Raises:
            RetriableError: the body kept breaking off.
            botocore.exceptions.ClientError: S3's error answer to the last attempt.
        """
        tries = 0
        while True:
            tries += 1
            failure: BaseException | None = None
            try:
                if attempt():
                    return
            except _BROKEN_OFF as exc:
                failure = exc
            except botocore.exceptions.ClientError as exc:
                if tries >= self.max_attempts or not _worth_retrying(exc):
                    raise
                failure = exc
            reason = "the body ended early" if failure is None else _break_reason(failure)
            if tries >= self.max_attempts:
                raise RetriableError(
                    f"download of {oid} from {self.url} kept breaking off after {tries} "
                    f"attempts: {reason}"
                ) from None
            logger.debug("download of %s broke off (%s); resuming", oid, reason)
            self._backoff(tries)

    def _stream_download(self, oid: str, dest_path: Path, size: int, progress: Progress) -> Pointer:
        have = dest_path.stat().st_size if dest_path.exists() else 0
        if have >= size or have == 0:
            have = 0
        elif have:
            logger.debug("resuming download of %s at byte %d", oid, have)
            progress(have)
        what = f"object {oid} from {self.url}"
        with (
            open(dest_path, "r+b" if have else "wb") as dst,
            WriteHash(dst, have, limit=size, what=what) as written,
        ):

            def attempt() -> bool:
                # From the bytes the file holds: a Range once some are there.
                with contextlib.closing(self._get(oid, size, written.size)) as body:
                    for chunk in iter(lambda: body.read(CHUNK_SIZE), b""):
                        written.write(chunk)
                        progress(len(chunk))
                return written.size == size

            self._until_whole(oid, attempt)
            return written.pointer()

    def _range_size_for(self, size: int) -> int:
        """Bytes per ranged GET: about two ranges per worker, none under ``part-size``.

        The workers keep the same number of streams busy whatever the range size, and
        each of them still has a second range to take when the other is done. Fewer
        ranges mean fewer requests, each with its own latency, and less work for servers
        that read the whole object for every range (moto does: 1 GiB took 27 s from it
        as 32 ranges, 8 s as 8). gsutil's sliced downloads likewise cut an object into a
        few equal slices. An interrupted download resumes from the ranges completed.
        """
        return max(self.part_size, math.ceil(size / (2 * max(1, self.concurrency))))

    def _ranged_download(self, oid: str, dest_path: Path, size: int, progress: Progress) -> Pointer:
        part_size = self._range_size_for(size)
        count = math.ceil(size / part_size)
        record = dest_path.with_name(dest_path.name + ".ranges")
        done: set[int] = set()
        if dest_path.exists() and record.exists():
            with contextlib.suppress(OSError, ValueError):
                saved = json.loads(record.read_text())
                if saved.get("size") == size and saved.get("part_size") == part_size:
                    done = {int(i) for i in saved.get("done", [])}
        if not done:
            # Empty: each range's pwrite extends the file as its bytes arrive. Setting
            # the size first would make a file as large as the pointer claims before
            # the object has shown its real size.
            open(dest_path, "wb").close()
        lock = threading.Lock()
        failed = threading.Event()

        def save() -> None:
            temp = record.with_name(record.name + ".tmp")
            temp.write_text(
                json.dumps({"size": size, "part_size": part_size, "done": sorted(done)})
            )
            os.replace(temp, record)

        with contextlib.ExitStack() as stack:
            fd = os.open(dest_path, os.O_WRONLY)
            stack.callback(os.close, fd)
            # Reads back each part once the parts before it are in: the caller's check
            # of the whole file then costs only the tail, not a second read of all of it.
            hasher = stack.enter_context(RangeHash(dest_path))
            for i in done:
                progress(min(part_size, size - i * part_size))
                hasher.written(i * part_size, min(size, (i + 1) * part_size))

            def fetch(index: int) -> None:
                if failed.is_set():
                    return  # another range failed for good, and the download with it
                try:
                    fetch_range(index)
                except BaseException:
                    failed.set()
                    raise

            def fetch_range(index: int) -> None:
                start = index * part_size
                end = min(size, start + part_size) - 1
                offset = start

                def attempt() -> bool:
                    # Only what this range still misses: from its bytes already written.
                    nonlocal offset
                    with contextlib.closing(self._get(oid, size, offset, end)) as body:
                        for chunk in iter(lambda: body.read(CHUNK_SIZE), b""):
                            if offset + len(chunk) > end + 1:
                                raise IntegrityError(
                                    f"object {oid} from {self.url} sent more than bytes "
                                    f"{start}-{end} for that range; stopped reading it"
                                )
                            os.pwrite(fd, chunk, offset)
                            offset += len(chunk)
                            progress(len(chunk))
                    return offset == end + 1

                self._until_whole(oid, attempt)
                hasher.written(start, end + 1)
                with lock:
                    done.add(index)
                    save()

            todo = [i for i in range(count) if i not in done]
            with ThreadPoolExecutor(max(1, self.concurrency), "lfs-agent-s3-range") as pool:
                for _ in pool.map(fetch, todo):
                    pass
            hashed = hasher.pointer()
        with contextlib.suppress(FileNotFoundError):
            record.unlink()
        return hashed

    def _meta_key(self, key: str) -> str:
        key = check_meta_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_meta(self, key: str, data: bytes) -> None:
        """Store a record with one PUT (atomic)."""
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._meta_key(key),
                Body=data,
                ContentType="application/json",
                **self._extra_put_args(),
            )
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._translate(exc) from exc

    def get_meta(self, key: str) -> bytes | None:
        """Read a record, or None.

        Raises:
            BackendError: the record is larger than :attr:`meta_max_bytes`.
        """
        cap = self.meta_max_bytes
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._meta_key(key))
            with contextlib.closing(response["Body"]) as body:
                if int(response.get("ContentLength") or 0) > cap:
                    raise meta_too_large(key, self.url, cap)
                return read_meta(body.read, key, self.url, cap)
        except botocore.exceptions.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("NoSuchKey", "404"):
                return None
            raise self._translate(exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._translate(exc) from exc

    def list_meta(self, prefix: str) -> list[str]:
        """Keys of the records under ``prefix``."""
        full = self._meta_key(prefix.rstrip("/") + "/x")[:-1]
        strip = f"{self.prefix}/" if self.prefix else ""
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            keys = [
                item["Key"].removeprefix(strip)
                for page in paginator.paginate(Bucket=self.bucket, Prefix=full)
                for item in page.get("Contents", [])
            ]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._translate(exc) from exc
        return sorted(keys)

    def iter_keys(self) -> Iterator[str]:
        """Yield every object key under the prefix (for tests and tools)."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(None)):
            for item in page.get("Contents", []):
                yield item["Key"]

    def close(self) -> None:
        """Close the client's connection pool."""
        with self._client_lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
                self._client = None
