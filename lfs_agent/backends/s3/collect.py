"""The keys garbage collection lists, creates only if absent and deletes only if unchanged.

Keys here are below the remote's root (``objects/ab/cd/<oid>``, ``meta/...``);
:class:`Collector` adds and strips the bucket prefix. An entry's tag is its ETag with its
LastModified in whole seconds (``"<etag>"@2026-01-02T03:04:05Z``): the ETag alone is
the MD5 of the bytes, the same for a rewrite with the same bytes, and S3 keeps
LastModified to the second only, in listings and HEADs alike. So a rewrite with the
same bytes within the second of the write before it keeps its tag.

Botocore errors are left to the caller (:class:`~lfs_agent.backends.s3.S3Backend`
translates them), except the answers that mean "exists", "changed" or "gone".
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.exceptions

from lfs_agent.backends import (
    DELETE_BATCH,
    Deleted,
    Entry,
    check_meta_key,
    collect_key,
    collect_prefix,
)
from lfs_agent.backends.s3.client import S3Location, S3Settings, error_code
from lfs_agent.errors import BackendError

__all__ = ["DELETE_BATCH", "Collector"]

logger = logging.getLogger(__name__)

#: HEADs in flight while a batch is checked before its delete.
_HEAD_WORKERS = 8
#: Answers to a conditional request that mean the condition did not hold.
_PRECONDITION = ("PreconditionFailed", "412")
#: A conditional PUT that raced another one on the same key: the other one goes on.
_CONFLICT = ("ConditionalRequestConflict", "409")
#: Answers that mean the key or version is not there.
_GONE = ("NoSuchKey", "NoSuchVersion", "404")


def _tag(etag: str, modified: datetime.datetime) -> str:
    """``"<etag>"@<LastModified in whole seconds, UTC>``: the same from a listing and a HEAD."""
    at = modified.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{etag}@{at}"


def _etag_of(tag: str) -> str:
    return tag.rpartition("@")[0]


class Collector:
    """One bucket's keys for garbage collection (see the module docstring).

    Args:
        client: Returns the shared boto3 client.
        location: The remote's bucket and prefix.
        settings: The ``s3.*`` options (encryption and storage class of a created record).
        list_page_size: Keys per ListObjectsV2 page (S3's most; smaller in tests).
    """

    def __init__(
        self,
        client: Callable[[], Any],
        location: S3Location,
        settings: S3Settings,
        list_page_size: Callable[[], int],
    ) -> None:
        self._client = client
        self._location = location
        self._settings = settings
        self._page_size = list_page_size
        self._versioned: bool | None = None

    def _full(self, key: str) -> str:
        prefix = self._location.prefix
        return f"{prefix}/{key}" if prefix else key

    def _relative(self, full: str) -> str:
        prefix = self._location.prefix
        return full.removeprefix(f"{prefix}/") if prefix else full

    def list_entries(self, prefix: str) -> Iterator[Entry]:
        """Every key under ``prefix``, one ListObjectsV2 page in memory at a time."""
        base = self._full(collect_prefix(prefix, self._location.url))
        paginator = self._client().get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self._location.bucket,
            Prefix=base,
            PaginationConfig={"PageSize": self._page_size()},
        )
        for page in pages:
            for item in page.get("Contents", []):
                modified = item["LastModified"]
                yield Entry(
                    self._relative(item["Key"]),
                    int(item["Size"]),
                    modified.timestamp(),
                    _tag(item["ETag"], modified),
                )

    def stat_entry(self, key: str) -> Entry | None:
        """One HEAD of the key; None when absent."""
        collect_key(key, self._location.url)
        try:
            head = self._client().head_object(Bucket=self._location.bucket, Key=self._full(key))
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in _GONE:
                return None
            raise
        modified = head["LastModified"]
        return Entry(
            key, int(head["ContentLength"]), modified.timestamp(), _tag(head["ETag"], modified)
        )

    def create_meta(self, key: str, data: bytes) -> Entry | None:
        """One PUT with ``If-None-Match: *``, then a HEAD for the store's time of writing.

        A PUT botocore retried after its answer was lost may find its own record: it
        then reports that the key existed, the safe side for a lock.

        Raises:
            BackendError: the record was deleted between the PUT and the HEAD.
        """
        check_meta_key(key)
        try:
            self._client().put_object(
                Bucket=self._location.bucket,
                Key=self._full(key),
                Body=data,
                ContentType="application/json",
                IfNoneMatch="*",
                **self._settings.put_args,
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in (*_PRECONDITION, *_CONFLICT):
                return None
            raise
        entry = self.stat_entry(key)
        if entry is None:
            raise BackendError(f"record {key} on {self._location.url} vanished as it was written")
        return entry

    def delete_entries(self, entries: Sequence[Entry]) -> list[Deleted]:
        """Delete the keys still as listed: a HEAD of each, then one DeleteObjects.

        The HEADs compare each key's whole tag (ETag and LastModified); the delete then
        names each unchanged key with its ETag, which S3 checks as it deletes. What is
        left open is a small window between a key's HEAD and the delete, in which a
        rewrite with the same bytes (same ETag) would be deleted. A key S3 refuses to
        delete on its own (throttled, denied) is left for a later collection and
        logged, unless none was deleted: that is an error.

        Raises:
            ValueError: more than :data:`DELETE_BATCH` entries.
            BackendError: S3 deleted none of the unchanged keys, naming the first refusal.
        """
        if len(entries) > DELETE_BATCH:
            raise ValueError(f"at most {DELETE_BATCH} keys per delete, not {len(entries)}")
        for entry in entries:
            collect_key(entry.key, self._location.url)
        with ThreadPoolExecutor(min(_HEAD_WORKERS, len(entries) or 1)) as pool:
            now = list(pool.map(lambda e: self.stat_entry(e.key), entries))
        unchanged = [
            (entry, current)
            for entry, current in zip(entries, now, strict=True)
            if current is not None and current.tag == entry.tag
        ]
        if not unchanged:
            return []
        answer = self._client().delete_objects(
            Bucket=self._location.bucket,
            Delete={
                "Objects": [
                    {"Key": self._full(e.key), "ETag": _etag_of(e.tag)} for e, _ in unchanged
                ],
                "Quiet": False,
            },
        )
        deleted = [
            Deleted(self._relative(item["Key"]), item.get("DeleteMarkerVersionId") or "")
            for item in answer.get("Deleted", [])
        ]
        refused = [
            error
            for error in answer.get("Errors", [])
            if error.get("Code") not in (*_PRECONDITION, *_GONE)
        ]
        for error in refused:
            logger.warning(
                "S3 did not delete %s from %s (%s): left for a later collection",
                self._relative(error.get("Key", "")),
                self._location.url,
                error.get("Code"),
            )
        if refused and not deleted:
            first = refused[0]
            hint = (
                ": the credentials need s3:DeleteObject"
                if first.get("Code") == "AccessDenied"
                else ""
            )
            raise BackendError(
                f"S3 refused to delete {self._relative(first.get('Key', ''))} from "
                f"{self._location.url} ({first.get('Code')}){hint}"
            )
        return deleted

    def versioned(self) -> bool:
        """Whether the bucket's versioning is Enabled (asked once)."""
        if self._versioned is None:
            answer = self._client().get_bucket_versioning(Bucket=self._location.bucket)
            self._versioned = answer.get("Status") == "Enabled"
        return self._versioned

    def undelete(self, deleted: Deleted) -> bool:
        """Delete the delete marker ``deleted.version``: the version before it is current again.

        The version is first checked to be a delete marker (a HEAD of it answers 405), so
        that no version holding bytes is ever deleted here.

        Raises:
            BackendError: the version holds bytes: it is no delete marker.
        """
        collect_key(deleted.key, self._location.url)
        if not deleted.version:
            return False
        bucket, full = self._location.bucket, self._full(deleted.key)
        try:
            self._client().head_object(Bucket=bucket, Key=full, VersionId=deleted.version)
        except botocore.exceptions.ClientError as exc:
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            if error_code(exc) in _GONE:
                return False  # the marker is gone already
            if headers.get("x-amz-delete-marker") != "true":
                raise
        else:
            raise BackendError(
                f"version {deleted.version} of {deleted.key} on {self._location.url} "
                "is no delete marker: it is left alone"
            )
        self._client().delete_object(Bucket=bucket, Key=full, VersionId=deleted.version)
        return self.stat_entry(deleted.key) is not None
