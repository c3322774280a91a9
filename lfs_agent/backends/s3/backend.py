"""The S3 backend: the :class:`~lfs_agent.backends.Backend` interface over one bucket.

It composes the pieces, one module per verb as s3transfer has: the client and its
errors (:mod:`~lfs_agent.backends.s3.client`), uploads
(:mod:`~lfs_agent.backends.s3.upload`), downloads
(:mod:`~lfs_agent.backends.s3.download`), listings
(:mod:`~lfs_agent.backends.s3.listing`) and the keys garbage collection touches
(:mod:`~lfs_agent.backends.s3.collect`); this module adds stat, records and the
translation of every botocore error into one of ours.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import botocore.exceptions

from lfs_agent.backends import (
    META_MAX_BYTES,
    Capability,
    Deleted,
    Entry,
    check_meta_key,
    meta_too_large,
    read_meta,
)
from lfs_agent.backends.filewindow import SourceEndedError
from lfs_agent.backends.s3.client import (
    TRANSFER_PERMISSIONS,
    S3Location,
    S3Settings,
    error_code,
    make_client,
    no_such_bucket,
    translate,
)
from lfs_agent.backends.s3.collect import Collector
from lfs_agent.backends.s3.download import Downloader
from lfs_agent.backends.s3.limits import S3_LIMITS, S3Limits
from lfs_agent.backends.s3.listing import stat_by_listing
from lfs_agent.backends.s3.parts import HashPart, hash_part
from lfs_agent.backends.s3.upload import STALE_UPLOAD_SECONDS, Uploader
from lfs_agent.errors import LfsAgentError, ObjectNotFoundError
from lfs_agent.hashing import BackgroundHash
from lfs_agent.pointer import Pointer
from lfs_agent.progress import Progress

__all__ = ["S3Backend"]

logger = logging.getLogger(__name__)

#: What every call into botocore may raise; translated into ``lfs_agent.errors``.
_BOTO_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)


def _not_found(exc: botocore.exceptions.ClientError) -> bool:
    return error_code(exc) in ("NoSuchKey", "404")


class S3Backend:
    """Objects in an S3 bucket under a prefix.

    Args:
        url: ``s3://bucket/prefix``.
        options: ``s3.*`` settings (see the package docstring).
        state_dir: Where resumable multipart uploads are remembered (the repository's
            ``lfs/tmp``); None disables resuming.
        client: A ready boto3 S3 client (tests); built from the options otherwise.
        sleep: Waits before a broken-off download is resumed; injected by tests.
        limits: S3's limits uploads keep within; tests shrink them.
        hash_part: Hashes one part of a ``checked`` file before it is sent.
        whole_hash: Makes the hash of a whole file computed beside its parts'.
    """

    #: Transfers are network-bound: every configured worker helps.
    max_workers: int | None = None
    #: A listing settles many stats (stat_many); multipart uploads resume across runs;
    #: conditional PUTs and deletes make garbage collection safe (list_entries ...).
    capabilities: frozenset[Capability] = frozenset(
        {
            Capability.LISTING,
            Capability.RESUMABLE_UPLOADS,
            Capability.RECORDS,
            Capability.COLLECT,
        }
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
        limits: S3Limits = S3_LIMITS,
        hash_part: HashPart = hash_part,
        whole_hash: Callable[[], BackgroundHash] = BackgroundHash,
    ) -> None:
        self.url = url
        self.location = S3Location.of(url)
        self.settings = S3Settings.read(options)
        # Keys per ListObjectsV2 page (S3's maximum; smaller in tests).
        self.list_page_size = 1000
        self._client = client
        self._client_lock = threading.Lock()
        # None until checked: whether the bucket exists (for clear 404 messages).
        self._bucket_exists: bool | None = None
        self.uploader = Uploader(
            lambda: self.client,
            self.location,
            self.settings,
            state_dir,
            self.stat,
            limits=limits,
            hash_part=hash_part,
            whole_hash=whole_hash,
        )
        self.downloader = Downloader(lambda: self.client, self.location, self.settings, sleep)
        self.collector = Collector(
            lambda: self.client, self.location, self.settings, lambda: self.list_page_size
        )

    @property
    def client(self) -> Any:
        """The boto3 client, created once and shared by threads (boto3 clients are)."""
        with self._client_lock:
            if self._client is None:
                self._client = make_client(self.settings)
            return self._client

    def _translate(
        self, exc: Exception, oid: str | None = None, needs: str = TRANSFER_PERMISSIONS
    ) -> LfsAgentError:
        endpoint = self._client.meta.endpoint_url if self._client is not None else None
        return translate(exc, self.location, oid, endpoint, needs)

    def stat(self, oid: str) -> int | None:
        """Return the object's size, or None when absent."""
        try:
            head = self.client.head_object(Bucket=self.location.bucket, Key=self.location.key(oid))
        except botocore.exceptions.ClientError as exc:
            if _not_found(exc):
                self._check_bucket()
                return None
            raise self._translate(exc, oid) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._translate(exc, oid) from exc
        return int(head["ContentLength"])

    def stat_many(self, oids: Sequence[str]) -> dict[str, int | None]:
        """Settle many oids with ListObjectsV2 pages instead of a HEAD each."""
        prefix = self.location.prefix
        base = f"{prefix}/objects/" if prefix else "objects/"

        def pages_after(start: str) -> Iterator[list[tuple[str, int]]]:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(
                Bucket=self.location.bucket,
                Prefix=base,
                StartAfter=start,
                PaginationConfig={"PageSize": self.list_page_size},
            ):
                yield [(item["Key"], int(item["Size"])) for item in page.get("Contents", [])]

        try:
            return stat_by_listing(oids, self.location.key, pages_after)
        except _BOTO_ERRORS as exc:
            # Credentials may allow s3:GetObject/PutObject but not s3:ListBucket; the
            # HEAD of each object then decides (and reports any real error).
            logger.debug("listing %s failed, stat'ing each object: %s", self.url, exc)
            return {}

    def _check_bucket(self) -> None:
        """Turn a 404 caused by a missing bucket into a clear error (checked once)."""
        if self._bucket_exists is None:
            try:
                self.client.head_bucket(Bucket=self.location.bucket)
                self._bucket_exists = True
            except botocore.exceptions.ClientError as exc:
                # No permission to ask: assume it exists.
                self._bucket_exists = error_code(exc) not in ("404", "NoSuchBucket")
        if self._bucket_exists is False:
            raise no_such_bucket(self.location)

    def upload(
        self, oid: str, src_path: Path, size: int, progress: Progress, checked: bool = False
    ) -> None:
        """Upload ``src_path`` as ``oid``, after checking it unless the store ``checked`` it.

        See :meth:`Uploader.upload <lfs_agent.backends.s3.upload.Uploader.upload>`.
        """
        try:
            self.uploader.upload(oid, src_path, size, progress, checked)
        except (*_BOTO_ERRORS, SourceEndedError) as exc:
            raise self._translate(exc, oid) from exc

    def abort_stale_uploads(
        self, older_than: float = STALE_UPLOAD_SECONDS, now: float | None = None
    ) -> int:
        """Abort multipart uploads under our prefix older than ``older_than`` seconds.

        Returns:
            How many uploads were aborted.
        """
        try:
            return self.uploader.abort_stale_uploads(older_than, now)
        except _BOTO_ERRORS as exc:
            raise self._translate(exc) from exc

    def download(self, oid: str, dest_path: Path, size: int, progress: Progress) -> Pointer | None:
        """Write the object into ``dest_path``, resuming what an earlier attempt wrote.

        Returns:
            The sha256 and length of what the file holds (see :meth:`Downloader.download
            <lfs_agent.backends.s3.download.Downloader.download>`).
        """
        try:
            return self.downloader.download(oid, dest_path, size, progress)
        except botocore.exceptions.ClientError as exc:
            if _not_found(exc):
                self._check_bucket()
                raise ObjectNotFoundError(f"object {oid} is not on remote {self.url}") from None
            raise self._translate(exc, oid) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._translate(exc, oid) from exc

    def _meta_key(self, key: str) -> str:
        key = check_meta_key(key)
        return f"{self.location.prefix}/{key}" if self.location.prefix else key

    def put_meta(self, key: str, data: bytes) -> None:
        """Store a record with one PUT (atomic)."""
        try:
            self.client.put_object(
                Bucket=self.location.bucket,
                Key=self._meta_key(key),
                Body=data,
                ContentType="application/json",
                **self.settings.put_args,
            )
        except _BOTO_ERRORS as exc:
            raise self._translate(exc) from exc

    def get_meta(self, key: str) -> bytes | None:
        """Read a record, or None.

        Raises:
            BackendError: the record is larger than :attr:`meta_max_bytes`.
        """
        cap = self.meta_max_bytes
        try:
            response = self.client.get_object(Bucket=self.location.bucket, Key=self._meta_key(key))
            with contextlib.closing(response["Body"]) as body:
                if int(response.get("ContentLength") or 0) > cap:
                    raise meta_too_large(key, self.url, cap)
                return read_meta(body.read, key, self.url, cap)
        except botocore.exceptions.ClientError as exc:
            if _not_found(exc):
                return None
            raise self._translate(exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise self._translate(exc) from exc

    def list_meta(self, prefix: str) -> list[str]:
        """Keys of the records under ``prefix``."""
        full = self._meta_key(prefix.rstrip("/") + "/x")[:-1]
        strip = f"{self.location.prefix}/" if self.location.prefix else ""
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            keys = [
                item["Key"].removeprefix(strip)
                for page in paginator.paginate(Bucket=self.location.bucket, Prefix=full)
                for item in page.get("Contents", [])
            ]
        except _BOTO_ERRORS as exc:
            raise self._translate(exc) from exc
        return sorted(keys)

    def list_entries(self, prefix: str) -> Iterator[Entry]:
        """Every key under ``prefix``, streamed one ListObjectsV2 page at a time.

        See :meth:`Collector.list_entries
        <lfs_agent.backends.s3.collect.Collector.list_entries>`.
        """
        try:
            yield from self.collector.list_entries(prefix)
        except _BOTO_ERRORS as exc:
            raise self._translate(exc) from exc

    def stat_entry(self, key: str) -> Entry | None:
        """The key as a HEAD describes it, or None."""
        try:
            entry = self.collector.stat_entry(key)
        except _BOTO_ERRORS as exc:
            raise self._translate(exc) from exc
        if entry is None:
            self._check_bucket()
        return entry

    def create_meta(self, key: str, data: bytes) -> Entry | None:
        """Create a record only if absent (``If-None-Match: *``); None when it existed."""
        try:
            return self.collector.create_meta(key, data)
        except _BOTO_ERRORS as exc:
            raise self._translate(exc) from exc

    def delete_entries(self, entries: Sequence[Entry]) -> list[Deleted]:
        """Delete the keys still as listed: a HEAD of each, then one DeleteObjects.

        See :meth:`Collector.delete_entries
        <lfs_agent.backends.s3.collect.Collector.delete_entries>`.
        """
        try:
            return self.collector.delete_entries(entries)
        except _BOTO_ERRORS as exc:
            raise self._translate(exc, needs="s3:GetObject and s3:DeleteObject") from exc

    def versioned(self) -> bool:
        """Whether the bucket's versioning is Enabled (asked once)."""
        try:
            return self.collector.versioned()
        except _BOTO_ERRORS as exc:
            raise self._translate(exc, needs="s3:GetBucketVersioning") from exc

    def undelete(self, deleted: Deleted) -> bool:
        """Remove the delete marker a deletion left; False when nothing comes back."""
        try:
            return self.collector.undelete(deleted)
        except _BOTO_ERRORS as exc:
            raise self._translate(
                exc, needs="s3:GetObjectVersion and s3:DeleteObjectVersion"
            ) from exc

    def iter_keys(self) -> Iterator[str]:
        """Yield every object key under the prefix (for tests and tools)."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.location.bucket, Prefix=self.location.key(None)):
            for item in page.get("Contents", []):
                yield item["Key"]

    def close(self) -> None:
        """Close the client's connection pool."""
        with self._client_lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
                self._client = None
