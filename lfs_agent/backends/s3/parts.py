"""The parts of a multipart upload: their layout, their hashes, and the parts S3 holds.

A part is a window of the file (:class:`~lfs_agent.backends.filewindow.FileWindow`)
with the sha256 S3 is sent to check it by. A part S3 already holds from an interrupted
upload is kept only when it holds the same bytes (:func:`part_matches`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lfs_agent.backends.filewindow import FileWindow
from lfs_agent.backends.s3.limits import UploadPlan
from lfs_agent.errors import ObjectNotFoundError
from lfs_agent.hashing import CHUNK_SIZE

__all__ = ["HashPart", "Part", "hash_part", "layout", "missing_source", "part_matches"]


def missing_source(oid: str, src_path: Path) -> ObjectNotFoundError:
    """The error of a file to upload that is missing."""
    return ObjectNotFoundError(f"cannot upload {oid}: {src_path} is missing")


@dataclass(frozen=True)
class Part:
    """One part of a multipart upload: the bytes ``[offset, offset + length)``."""

    number: int
    offset: int
    length: int
    #: None until hashed: parts of a ``checked`` upload are hashed as they are sent.
    sha256: bytes | None

    def checksum(self) -> str:
        """The part's sha256 as S3's ``ChecksumSHA256`` (base64)."""
        if self.sha256 is None:
            raise AssertionError(f"part {self.number} was not hashed")
        return _b64(self.sha256)


#: Hashes one part of a file: ``(oid, src_path, part) -> part with its sha256``.
HashPart = Callable[[str, Path, Part], Part]


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _digest_part(oid: str, src_path: Path, part: Part, digest: Any) -> Any:
    """``digest`` (a hashlib object) updated with the part's bytes of the file.

    Raises:
        SourceEndedError: the file ends inside the part.
    """
    with FileWindow(src_path, oid, part.offset, part.length) as body:
        while chunk := body.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest


def hash_part(oid: str, src_path: Path, part: Part) -> Part:
    """``part`` with the sha256 of its bytes in ``src_path``.

    Raises:
        ObjectNotFoundError: the file is missing.
        SourceEndedError: it ends inside the part.
    """
    try:
        digest = _digest_part(oid, src_path, part, hashlib.sha256())
    except FileNotFoundError:
        raise missing_source(oid, src_path) from None
    return Part(part.number, part.offset, part.length, digest.digest())


def part_matches(listed: dict[str, Any], part: Part, oid: str, src_path: Path) -> bool:
    """Whether a part already on S3 (from an interrupted upload) holds these bytes.

    The md5 an ETag is compared with is computed only here, when resuming: on every
    upload it would be one more pass over every byte.

    Args:
        listed: The part as ListParts gives it.
        part: The local part, hashed.
        oid: The object uploaded.
        src_path: The file it is read from.
    """
    if int(listed.get("Size", -1)) != part.length:
        return False
    if listed.get("ChecksumSHA256"):
        return bool(listed["ChecksumSHA256"] == part.checksum())
    etag = str(listed.get("ETag", "")).strip('"')
    if len(etag) == 32 and all(c in "0123456789abcdef" for c in etag):
        md5 = _digest_part(oid, src_path, part, hashlib.md5(usedforsecurity=False))
        return bool(etag == md5.hexdigest())
    return True  # no checksum to compare (e.g. SSE-KMS ETags): trust the size


def layout(size: int, plan: UploadPlan) -> list[Part]:
    """The parts of a multipart upload of ``size`` bytes, not yet hashed."""
    return [
        Part(number, offset, min(plan.part_size, size - offset), None)
        for number, offset in enumerate(range(0, size, plan.part_size), start=1)
    ]
