"""Uploads to S3: a single PUT, or a multipart upload that a later run can resume.

Why the multipart upload is written here rather than left to s3transfer (boto3's
``upload_file``): s3transfer keeps the upload id and the finished parts in memory only,
and aborts the upload when it fails, so an upload whose process is killed (a push
stopped with Ctrl-C, a CI job timed out) starts over from the first byte next time. Ours
saves the upload id in the repository as soon as S3 gives it
(:mod:`~lfs_agent.backends.s3.upload_state`) and, on the next upload of the object,
keeps every finished part S3 lists whose checksum matches the local bytes, sending only
the rest. Writing it also lets a file the store has already checked go without a
whole-file hash first: each part is hashed just before it is sent, so the first part
leaves at once.

Uploads never expose a partial object: a single PUT is atomic, and a multipart upload
becomes visible only when completed. Before anything is sent the file is hashed: its
sha256 must equal the oid. The one exception is an object the store checked as it wrote
it and that has not changed since (``checked``). Each PUT or part carries its own
SHA-256 checksum, which S3 verifies on arrival. A file that ends before its upload does
is refused, and a multipart upload of it aborted. The upload of one object is held
under a lock per object, so that a second push of the object from the same repository
waits for the first, then finds the object there (or continues the upload) instead of
completing the same upload twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions

from lfs_agent.backends.filewindow import FileWindow
from lfs_agent.backends.s3.client import (
    SMALL_OBJECT,
    S3Location,
    S3Settings,
    error_code,
)
from lfs_agent.backends.s3.limits import S3_LIMITS, S3Limits, UploadPlan
from lfs_agent.backends.s3.parts import (
    HashPart,
    Part,
    hash_part,
    layout,
    missing_source,
    part_matches,
)
from lfs_agent.backends.s3.upload_state import UploadState
from lfs_agent.cancel import run_each
from lfs_agent.errors import BackendError, IntegrityError
from lfs_agent.hashing import CHUNK_SIZE, BackgroundHash
from lfs_agent.progress import Progress

__all__ = ["STALE_UPLOAD_SECONDS", "Uploader"]

logger = logging.getLogger(__name__)

#: Multipart uploads older than this (seconds) are stale for ``abort_stale_uploads``.
STALE_UPLOAD_SECONDS = 24 * 3600
# Errors an S3-compatible endpoint gives when it does not support SHA-256 checksums.
_CHECKSUM_UNSUPPORTED = {
    "NotImplemented",
    "InvalidRequest",
    "InvalidArgument",
    "XAmzContentChecksumMismatch",
    "BadDigest",
}


def _wrong_source(oid: str, src_path: Path, size: int, actual: str) -> IntegrityError:
    return IntegrityError(
        f"refusing to upload {oid}: {src_path} has {size} bytes hashing to {actual}"
    )


class Uploader:
    """Sends files to one S3 location.

    Args:
        client: Returns the shared boto3 client (created at the first request).
        location: Where objects go.
        settings: Part size, threshold, concurrency, checksums, PUT arguments.
        state_dir: Where resumable multipart uploads are remembered; None: nowhere.
        stat: The object's size on the remote, or None (the backend's ``stat``).
        limits: S3's limits the upload plan keeps within.
        hash_part: Hashes one part of a ``checked`` file just before it is sent.
        whole_hash: Makes the hash of the whole file computed beside its parts'.
    """

    def __init__(
        self,
        client: Callable[[], Any],
        location: S3Location,
        settings: S3Settings,
        state_dir: Path | None,
        stat: Callable[[str], int | None],
        *,
        limits: S3Limits = S3_LIMITS,
        hash_part: HashPart = hash_part,
        whole_hash: Callable[[], BackgroundHash] = BackgroundHash,
    ) -> None:
        self._client = client
        self._location = location
        self._settings = settings
        self._state_dir = state_dir
        self._stat = stat
        self._limits = limits
        self._hash_part = hash_part
        self._whole_hash = whole_hash
        # False once the endpoint refused a SHA-256 checksum; we then send none.
        self.checksums = settings.checksums

    def upload(
        self, oid: str, src_path: Path, size: int, progress: Progress, checked: bool
    ) -> None:
        """Upload ``src_path`` as ``oid`` after checking it hashes to ``oid``.

        The sha256 of each part is sent with it for S3 to check. Unless the store
        ``checked`` the file, the whole file's is computed beside them, before the first
        byte is sent; a ``checked`` file going multipart is not hashed whole, and each
        part is hashed just before it is sent.

        Raises:
            BackendError: the object is larger than S3 holds.
            IntegrityError: the file is not ``size`` bytes hashing to ``oid``.
            ObjectNotFoundError: the file is missing.
            botocore.exceptions.ClientError: and botocore's other errors, untranslated.
        """
        if size <= SMALL_OBJECT:
            self._put_small(oid, src_path, size, progress)
            return
        try:
            plan = self._limits.plan(size, self._settings.threshold, self._settings.part_size)
        except BackendError as exc:
            raise BackendError(f"cannot upload {oid} to {self._location.url}: {exc}") from None
        if plan.multipart and checked and self._source_size(oid, src_path) == size:
            state = self._state(oid, size, plan)
            self._multipart(oid, src_path, state, layout(size, plan), progress)
            return
        parts = self._hash_whole(oid, src_path, size, plan)
        if plan.multipart:
            self._multipart(oid, src_path, self._state(oid, size, plan), parts, progress)
        else:
            with FileWindow(src_path, oid, 0, size) as body:
                self._put(oid, body, parts[0], progress)

    @staticmethod
    def _source_size(oid: str, src_path: Path) -> int:
        try:
            return src_path.stat().st_size
        except FileNotFoundError:
            raise missing_source(oid, src_path) from None

    def _hash_whole(self, oid: str, src_path: Path, size: int, plan: UploadPlan) -> list[Part]:
        """Hash the file part by part; refuse it unless it is exactly ``oid``.

        The whole file's sha256 is computed by a second thread while this one hashes
        the parts: on two cores both hashes run at once, before the first byte is sent.

        Returns:
            The parts, each with its sha256.

        Raises:
            IntegrityError: the file is not ``size`` bytes hashing to ``oid``.
            ObjectNotFoundError: the file is missing.
        """
        part_size = plan.part_size
        parts = []
        offset = 0
        try:
            with open(src_path, "rb") as src, self._whole_hash() as whole:
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
                    parts.append(Part(number, offset, length, part_sha.digest()))
                    offset += length
                    number += 1
                    if length < part_size:
                        break
                digest = whole.hexdigest()
        except FileNotFoundError:
            raise missing_source(oid, src_path) from None
        if offset != size or digest != oid:
            raise _wrong_source(oid, src_path, offset, digest)
        return parts

    def _put_small(self, oid: str, src_path: Path, size: int, progress: Progress) -> None:
        try:
            with open(src_path, "rb") as src:
                data = src.read(SMALL_OBJECT + 1)
        except FileNotFoundError:
            raise missing_source(oid, src_path) from None
        digest = hashlib.sha256(data)
        if len(data) != size or digest.hexdigest() != oid:
            raise _wrong_source(oid, src_path, len(data), digest.hexdigest())
        self._put(oid, data, Part(1, 0, size, digest.digest()), progress)

    def _put(self, oid: str, body: FileWindow | bytes, whole: Part, progress: Progress) -> None:
        """One PUT of the whole object; S3 checks its sha256 before storing it."""
        args: dict[str, Any] = {
            "Bucket": self._location.bucket,
            "Key": self._location.key(oid),
            **self._settings.put_args,
        }
        if self.checksums:
            try:
                self._client().put_object(Body=body, ChecksumSHA256=whole.checksum(), **args)
                progress(whole.length)
                return
            except botocore.exceptions.ClientError as exc:
                if not self.checksum_refused(exc):
                    raise
                if not isinstance(body, bytes):
                    body.seek(0)
        self._client().put_object(Body=body, **args)
        progress(whole.length)

    def checksum_refused(self, exc: botocore.exceptions.ClientError) -> bool:
        """Whether ``exc`` says the endpoint takes no SHA-256 checksums; stop sending them."""
        code = error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message", "")).lower()
        if code in _CHECKSUM_UNSUPPORTED and ("checksum" in message or code == "NotImplemented"):
            logger.debug(
                "%s refused a SHA-256 checksum (%s: %s); sending none from now on",
                self._location.url,
                code,
                message,
            )
            self.checksums = False
            return True
        return False

    # --- multipart upload with resume ----------------------------------------------

    def _state(self, oid: str, size: int, plan: UploadPlan) -> UploadState:
        fields = {
            "bucket": self._location.bucket,
            "key": self._location.key(oid),
            "size": size,
            "part_size": plan.part_size,
        }
        return UploadState(self._state_dir, oid, fields)

    def _multipart(
        self, oid: str, src_path: Path, state: UploadState, parts: list[Part], progress: Progress
    ) -> None:
        """Send ``parts`` as one multipart upload of ``oid``, or nothing if it is there.

        Another upload of ``oid`` from this repository, waited for, may have stored it
        meanwhile, or left its upload for this one to continue.
        """
        size = sum(part.length for part in parts)
        with state.locked() as waited:
            if waited and self._stat(oid) == size:
                logger.debug("%s was uploaded meanwhile; not sending it again", oid)
                progress(size)
                return
            self._send_parts(oid, src_path, state, parts, progress)

    def _listed_parts(self, oid: str, upload_id: str) -> dict[int, dict[str, Any]] | None:
        """The parts S3 holds for ``upload_id``, or None when the upload is gone."""
        found: dict[int, dict[str, Any]] = {}
        try:
            paginator = self._client().get_paginator("list_parts")
            for page in paginator.paginate(
                Bucket=self._location.bucket, Key=self._location.key(oid), UploadId=upload_id
            ):
                for part in page.get("Parts", []):
                    found[int(part["PartNumber"])] = part
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in ("NoSuchUpload", "404"):
                return None
            raise
        return found

    def _start(self, oid: str, state: UploadState, count: int) -> tuple[str, dict[int, Any]]:
        """The upload to send parts to, and the parts S3 already holds of it.

        The one saved in ``state`` when S3 still has it; else a new one, saved at once.
        """
        upload_id = state.load()
        if upload_id is not None:
            listed = self._listed_parts(oid, upload_id)
            if listed is not None:
                logger.debug(
                    "resuming upload of %s: %d of %d parts already on S3", oid, len(listed), count
                )
                return upload_id, listed
        args: dict[str, Any] = {
            "Bucket": self._location.bucket,
            "Key": self._location.key(oid),
            **self._settings.put_args,
        }
        if self.checksums:
            args["ChecksumAlgorithm"] = "SHA256"
        upload_id = self._client().create_multipart_upload(**args)["UploadId"]
        state.save(upload_id)
        return upload_id, {}

    def _send_parts(
        self, oid: str, src_path: Path, state: UploadState, parts: list[Part], progress: Progress
    ) -> None:
        key = self._location.key(oid)
        upload_id, listed = self._start(oid, state, len(parts))

        def send(part: Part) -> dict[str, Any]:
            progress(0)  # a cancelled push stops here, before this part is hashed or sent
            if part.sha256 is None:
                part = self._hash_part(oid, src_path, part)
            previous = listed.get(part.number)
            if previous is not None and part_matches(previous, part, oid, src_path):
                progress(part.length)
                entry = {"PartNumber": part.number, "ETag": previous["ETag"]}
                if previous.get("ChecksumSHA256"):
                    entry["ChecksumSHA256"] = previous["ChecksumSHA256"]
                elif self.checksums:
                    entry["ChecksumSHA256"] = part.checksum()
                return entry
            args = {
                "Bucket": self._location.bucket,
                "Key": key,
                "UploadId": upload_id,
                "PartNumber": part.number,
            }
            if self.checksums:
                args["ChecksumSHA256"] = part.checksum()
            with FileWindow(src_path, oid, part.offset, part.length) as body:
                reply = self._client().upload_part(Body=body, **args)
            progress(part.length)
            entry = {"PartNumber": part.number, "ETag": reply["ETag"]}
            if self.checksums:
                entry["ChecksumSHA256"] = part.checksum()
            return entry

        try:
            done = run_each(send, parts, self._settings.concurrency, "lfs-agent-s3-part")
        except (IntegrityError, botocore.exceptions.HTTPClientError) as exc:
            cut = exc if isinstance(exc, IntegrityError) else exc.kwargs.get("error")
            if not isinstance(cut, IntegrityError):
                raise
            # The file was cut short while it was sent: what was sent is no part of it.
            with contextlib.suppress(
                botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError
            ):
                self._client().abort_multipart_upload(
                    Bucket=self._location.bucket, Key=key, UploadId=upload_id
                )
            state.drop()
            raise cut from None
        self._client().complete_multipart_upload(
            Bucket=self._location.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": done},
        )
        state.drop()

    def abort_stale_uploads(self, older_than: float, now: float | None = None) -> int:
        """Abort multipart uploads under the location older than ``older_than`` seconds.

        Returns:
            How many uploads were aborted.
        """
        now = time.time() if now is None else now
        aborted = 0
        client = self._client()
        for upload in self._uploads(client):
            if now - upload["Initiated"].timestamp() > older_than:
                client.abort_multipart_upload(
                    Bucket=self._location.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                aborted += 1
        return aborted

    def _uploads(self, client: Any) -> Iterator[dict[str, Any]]:
        """The multipart uploads in progress under the location's objects."""
        paginator = client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(
            Bucket=self._location.bucket, Prefix=self._location.key(None)
        ):
            yield from page.get("Uploads", [])
