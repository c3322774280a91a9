"""Bounds on what a remote may make us write or hold, piece by piece.

The write bound of :class:`WriteHash`, the record cap of :func:`read_meta`, and the S3
download paths against a client that lies about lengths (moto never does; the contract
tests in ``tests/contract/test_bounded_downloads.py`` cover the honest-server side).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

from lfs_agent.backends import read_meta
from lfs_agent.backends.s3 import S3Backend
from lfs_agent.errors import BackendError, IntegrityError
from lfs_agent.hashing import WriteHash
from lfs_agent.pointer import Pointer
from tests.contract.backend_contract import Recorder
from tests.helpers import sha256

MIB = 1024 * 1024


# --- WriteHash ---------------------------------------------------------------------


def test_write_hash_refuses_the_write_that_would_pass_its_limit(tmp_path: Path):
    path = tmp_path / "d"
    with open(path, "wb") as f, WriteHash(f, limit=6, what="object x from s3://b") as written:
        written.write(b"abcd")
        written.write(b"ef")  # up to the limit exactly
        with pytest.raises(IntegrityError) as caught:
            written.write(b"g")
        assert written.size == 6
        assert written.pointer() == Pointer(sha256(b"abcdef"), 6)
    assert str(caught.value) == (
        "object x from s3://b is longer than the 6 bytes expected; stopped reading it"
    )
    assert path.read_bytes() == b"abcdef"


def test_write_hash_writes_nothing_of_a_chunk_that_crosses_its_limit(tmp_path: Path):
    path = tmp_path / "d"
    path.write_bytes(b"ab")
    with open(path, "r+b") as f, WriteHash(f, 2, limit=4, what="it") as written:
        with pytest.raises(IntegrityError, match="it is longer than the 4 bytes expected"):
            written.write(b"cdefgh")
        assert written.size == 2
    assert path.read_bytes() == b"ab"


# --- read_meta ---------------------------------------------------------------------


def test_a_record_of_exactly_the_cap_is_read_and_one_byte_more_is_refused():
    assert read_meta(io.BytesIO(b"x" * 100).read, "meta/a.json", "s3://b/p", 100) == b"x" * 100
    source = io.BytesIO(b"x" * 101 + b"y" * MIB)
    with pytest.raises(BackendError) as caught:
        read_meta(source.read, "meta/a.json", "s3://b/p", 100)
    assert str(caught.value) == (
        "record meta/a.json on s3://b/p is larger than 100 bytes, "
        "the most a record may hold: delete or replace it"
    )
    assert source.tell() <= 101  # read no further than needed to know


# --- S3 against a client that lies ---------------------------------------------------


class Body(io.BytesIO):
    """A botocore StreamingBody stand-in that counts the bytes read from it."""

    taken = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.taken += len(data)
        return data


class LyingClient:
    """``get_object`` answers with the given bodies and headers, whatever was asked."""

    def __init__(self, content: bytes, announce: dict[str, Any] | None = None) -> None:
        self.content = content
        self.announce = announce
        self.asked: list[dict[str, Any]] = []
        self.bodies: list[Body] = []

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        self.asked.append(kwargs)
        reply: dict[str, Any]
        if self.announce is not None:
            body, reply = Body(self.content), dict(self.announce)
        elif "Range" in kwargs:  # honest: the range asked for, and the object's size
            start, end = (int(n) for n in re.findall(r"\d+", kwargs["Range"]))
            body = Body(self.content[start : end + 1])
            reply = {
                "ContentLength": len(body.getvalue()),
                "ContentRange": f"bytes {start}-{end}/{len(self.content)}",
            }
        else:
            body, reply = Body(self.content), {"ContentLength": len(self.content)}
        self.bodies.append(body)
        return {"Body": body, **reply}


def test_an_s3_body_longer_than_announced_is_cut_at_the_pointers_size(tmp_path: Path):
    client = LyingClient(b"abcd" + bytes(2 * MIB), announce={})  # no ContentLength at all
    backend = S3Backend("s3://b/p", {}, client=client)
    dest = tmp_path / "d"
    oid = sha256(b"abcd")
    with pytest.raises(IntegrityError, match=f"object {oid} from s3://b/p is longer than the 4"):
        backend.download(oid, dest, 4, Recorder())
    assert dest.stat().st_size <= 4
    assert all(body.closed for body in client.bodies)


def test_an_s3_content_length_over_the_pointer_fails_before_reading(tmp_path: Path):
    client = LyingClient(bytes(MIB), announce={"ContentLength": MIB})
    backend = S3Backend("s3://b/p", {}, client=client)
    oid = sha256(b"abcd")
    with pytest.raises(IntegrityError, match=f"has {MIB} bytes, but its pointer says 4"):
        backend.download(oid, tmp_path / "d", 4, Recorder())
    assert client.bodies[0].taken == 0
    assert client.bodies[0].closed


RANGED = {"s3.part-size": "5MiB", "s3.multipart-threshold": "5MiB", "s3.concurrency": "1"}


def test_a_range_whose_total_is_not_the_pointers_size_allocates_nothing(tmp_path: Path):
    size = 6 * MIB
    client = LyingClient(
        bytes(5 * MIB),
        announce={"ContentLength": 5 * MIB, "ContentRange": f"bytes 0-{5 * MIB - 1}/{2**44}"},
    )
    backend = S3Backend("s3://b/p", RANGED, client=client)
    dest = tmp_path / "d"
    with pytest.raises(IntegrityError, match=f"has {2**44} bytes, but its pointer says {size}"):
        backend.download(sha256(b"x"), dest, size, Recorder())
    assert dest.stat().st_size == 0
    assert client.bodies[0].taken == 0


def test_a_range_body_longer_than_its_range_is_refused_at_the_ranges_end(tmp_path: Path):
    size = 6 * MIB
    client = LyingClient(
        bytes(6 * MIB),  # 6 MiB for the first range of 5
        announce={"ContentRange": f"bytes 0-{5 * MIB - 1}/{size}"},
    )
    backend = S3Backend("s3://b/p", RANGED, client=client)
    dest = tmp_path / "d"
    oid = sha256(b"x")
    with pytest.raises(IntegrityError, match=f"object {oid} from s3://b/p sent more than bytes 0-"):
        backend.download(oid, dest, size, Recorder())
    assert dest.stat().st_size <= size  # each range stopped at its end
    # Honest ranges still make the object, and are asked for as before.
    data = bytes(range(256)) * (6 * MIB // 256) + b"tail"
    client = LyingClient(data)
    backend = S3Backend("s3://b/p", RANGED, client=client)
    assert backend.download(sha256(data), dest, len(data), Recorder()) == Pointer(
        sha256(data), len(data)
    )
    assert dest.read_bytes() == data
    assert [a["Range"] for a in client.asked] == [
        f"bytes=0-{5 * MIB - 1}",
        f"bytes={5 * MIB}-{len(data) - 1}",
    ]
