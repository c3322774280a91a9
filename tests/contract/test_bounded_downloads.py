"""A hostile remote cannot make a download write, or a record read hold, more than expected.

Each backend against its real loopback server: the scripted HTTP server for bodies no
well-behaved server sends (gzip bombs, bodies longer than their object), moto for S3
and the emulator for GCS, with objects larger than the pointers that name them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import boto3
import pytest
from google.cloud import storage

from lfs_agent.backends import META_MAX_BYTES, open_backend
from lfs_agent.backends.http import HTTPBackend
from lfs_agent.backends.s3 import S3Backend
from lfs_agent.errors import BackendError, IntegrityError
from lfs_agent.pointer import Pointer
from lfs_agent.remote import Remote
from lfs_agent.store import ObjectStore
from tests.contract.backend_contract import Recorder
from tests.contract.scripted_http import ScriptedServer, body, gzip_bomb, serve
from tests.helpers import sha256

MIB = 1024 * 1024
TIB = 1024 * MIB * MIB
DATA = b"abcd"
OID = sha256(DATA)
KEY = f"objects/{OID[:2]}/{OID[2:4]}/{OID}"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    yield from serve()


def http_backend(server: ScriptedServer) -> HTTPBackend:
    return HTTPBackend(server.url + "/r", {"http.max-attempts": "1"}, sleep=lambda _: None)


def temp_files(store: ObjectStore) -> list[str]:
    return [p.name for p in store.tmp_dir.iterdir() if not p.name.endswith(".lock")]


# --- HTTP ----------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_gzip_bomb_is_never_expanded_and_leaves_nothing(server, tmp_path, chunked):
    bomb = gzip_bomb(128 * MIB)
    server.answers[("GET", f"/r/{KEY}")] = body(
        bomb, headers={"Content-Encoding": "gzip"}, chunked=chunked
    )
    store = ObjectStore(tmp_path / "lfs")
    remote = Remote(server.url + "/r", opener=lambda *_: http_backend(server))
    progress = Recorder()
    with pytest.raises(IntegrityError, match=OID) as caught:
        remote.download(store, Pointer(OID, len(DATA)), progress)
    assert "\n" not in str(caught.value)
    assert progress.total <= len(DATA)  # bytes written, as the download reported them
    assert temp_files(store) == []
    assert not store.object_path(OID).exists()
    assert server.requests_for("GET")[0].headers["accept-encoding"] == "identity"


def test_the_body_of_an_answer_that_is_retried_is_never_read_whole(server, tmp_path):
    sent: list[int] = []

    def unavailable_then_served(handler: BaseHTTPRequestHandler) -> None:
        if sent:  # the retry
            body(DATA)(handler)
            return
        sent.append(0)
        handler.send_response(503)
        handler.send_header("Content-Length", str(256 * MIB))
        handler.end_headers()
        block = bytes(MIB)
        with contextlib.suppress(OSError):  # the client hangs up: what a bounded read does
            for _ in range(256):
                handler.wfile.write(block)
                sent[0] += len(block)

    server.answers[("GET", f"/r/{KEY}")] = unavailable_then_served
    backend = HTTPBackend(server.url + "/r", {"http.max-attempts": "2"}, sleep=lambda _: None)
    assert backend.download(OID, tmp_path / "dest", len(DATA), Recorder()) == Pointer(OID, 4)
    assert sent[0] < 64 * MIB  # what the socket buffers took before the client hung up


def test_a_content_length_over_the_pointer_fails_before_the_body_is_read(server, tmp_path):
    server.answers[("GET", f"/r/{KEY}")] = body(DATA + bytes(3 * MIB))
    dest = tmp_path / "dest"
    with pytest.raises(IntegrityError) as caught:
        http_backend(server).download(OID, dest, len(DATA), Recorder())
    assert str(caught.value) == (
        f"object {OID} from {server.url}/r is {len(DATA) + 3 * MIB} bytes, "
        f"but its pointer says {len(DATA)}"
    )
    assert dest.stat().st_size == 0
    # An honest answer still downloads, exactly.
    server.answers[("GET", f"/r/{KEY}")] = body(DATA)
    assert http_backend(server).download(OID, dest, len(DATA), Recorder()) == Pointer(OID, 4)
    assert dest.read_bytes() == DATA


def test_a_chunked_body_longer_than_the_pointer_stops_at_the_pointers_size(server, tmp_path):
    server.answers[("GET", f"/r/{KEY}")] = body(DATA + bytes(3 * MIB), chunked=True)
    dest = tmp_path / "dest"
    progress = Recorder()
    with pytest.raises(IntegrityError, match=f"object {OID} from {server.url}/r is longer"):
        http_backend(server).download(OID, dest, len(DATA), progress)
    assert dest.stat().st_size <= len(DATA)
    assert progress.total <= len(DATA)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_resumed_download_is_bounded_by_what_is_left(server, tmp_path, chunked):
    data = b"0123456789"
    oid = sha256(data)
    key = f"objects/{oid[:2]}/{oid[2:4]}/{oid}"
    server.answers[("GET", f"/r/{key}")] = body(
        data[4:] + bytes(MIB),
        status=206,
        headers={"Content-Range": "bytes 4-9/10"},  # honest; the body is not
        chunked=chunked,
    )
    dest = tmp_path / "dest"
    dest.write_bytes(data[:4])
    with pytest.raises(IntegrityError, match=oid):
        http_backend(server).download(oid, dest, len(data), Recorder())
    assert server.requests_for("GET")[0].headers["range"] == "bytes=4-"
    assert dest.stat().st_size <= len(data)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_http_record_over_the_cap_is_refused(server, chunked):
    server.answers[("GET", "/r/meta/tags/v1.json")] = body(b"[" * 2000, chunked=chunked)
    backend = http_backend(server)
    backend.meta_max_bytes = 1024
    with pytest.raises(BackendError) as caught:
        backend.get_meta("meta/tags/v1.json")
    assert str(caught.value) == (
        f"record meta/tags/v1.json on {server.url}/r is larger than 1024 bytes, "
        "the most a record may hold: delete or replace it"
    )


def test_an_http_record_is_read_as_sent_never_decompressed(server):
    bomb = gzip_bomb(64 * MIB)
    server.answers[("GET", "/r/meta/index.json")] = body(
        bomb, headers={"Content-Encoding": "gzip"}, chunked=True
    )
    backend = http_backend(server)
    assert backend.get_meta("meta/index.json") == bomb  # the bytes sent, not 64 MiB
    assert server.requests_for("GET")[0].headers["accept-encoding"] == "identity"
    assert backend.meta_max_bytes == META_MAX_BYTES == 16 * MIB


# --- S3 ------------------------------------------------------------------------------


@pytest.mark.s3
def test_an_s3_object_larger_than_its_pointer_fails_before_it_is_read(s3_bucket, tmp_path):
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=f"p/{KEY}", Body=bytes(3 * MIB))
    backend = S3Backend(f"s3://{s3_bucket}/p", {})
    dest = tmp_path / "dest"
    progress = Recorder()
    with pytest.raises(IntegrityError) as caught:
        backend.download(OID, dest, len(DATA), progress)
    assert str(caught.value) == (
        f"object {OID} on s3://{s3_bucket}/p has {3 * MIB} bytes, but its pointer says 4"
    )
    assert not dest.exists() or dest.stat().st_size <= len(DATA)
    assert progress.total <= len(DATA)


@pytest.mark.s3
def test_a_ranged_download_allocates_nothing_before_the_object_proves_its_size(s3_bucket, tmp_path):
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=f"p/{KEY}", Body=bytes(6 * MIB))
    options = {"s3.part-size": "5MiB", "s3.multipart-threshold": "5MiB", "s3.concurrency": "1"}
    backend = S3Backend(f"s3://{s3_bucket}/p", options)
    dest = tmp_path / "dest"
    claimed = 15 * TIB  # a pointer may say anything
    with pytest.raises(
        IntegrityError, match=f"has {6 * MIB} bytes, but its pointer says {claimed}"
    ):
        backend.download(OID, dest, claimed, Recorder())
    assert dest.stat().st_size == 0
    assert dest.stat().st_blocks == 0


@pytest.mark.s3
def test_an_s3_record_over_the_cap_is_refused(s3_bucket):
    backend = S3Backend(f"s3://{s3_bucket}/p", {})
    backend.put_meta("meta/tags/v1.json", b"[" * 2000)
    backend.meta_max_bytes = 1024
    with pytest.raises(BackendError) as caught:
        backend.get_meta("meta/tags/v1.json")
    assert str(caught.value) == (
        f"record meta/tags/v1.json on s3://{s3_bucket}/p is larger than 1024 bytes, "
        "the most a record may hold: delete or replace it"
    )
    backend.meta_max_bytes = 2000
    assert backend.get_meta("meta/tags/v1.json") == b"[" * 2000


# --- GCS -----------------------------------------------------------------------------


@pytest.mark.gcs
def test_a_gcs_object_larger_than_its_pointer_is_cut_at_the_pointers_size(gcs_bucket, tmp_path):
    blob = storage.Client(project="test").bucket(gcs_bucket).blob(f"p/{KEY}")
    blob.upload_from_string(bytes(3 * MIB))
    backend = open_backend(f"gs://{gcs_bucket}/p")
    dest = tmp_path / "dest"
    progress = Recorder()
    with pytest.raises(IntegrityError, match=f"object {OID} from gs://{gcs_bucket}/p is longer"):
        backend.download(OID, dest, len(DATA), progress)
    assert dest.stat().st_size <= len(DATA)
    assert progress.total <= len(DATA)
    # An object of its pointer's size still downloads, exactly.
    data = b"right size"
    src = tmp_path / "src"
    src.write_bytes(data)
    backend.upload(sha256(data), src, len(data), Recorder())
    assert backend.download(sha256(data), dest, len(data), Recorder()) == Pointer(
        sha256(data), len(data)
    )
    assert dest.read_bytes() == data


@pytest.mark.gcs
def test_a_gcs_record_over_the_cap_is_refused(gcs_bucket):
    backend = open_backend(f"gs://{gcs_bucket}/p")
    backend.put_meta("meta/tags/v1.json", b"[" * 2000)
    backend.meta_max_bytes = 1024  # type: ignore[attr-defined]
    with pytest.raises(BackendError) as caught:
        backend.get_meta("meta/tags/v1.json")
    assert str(caught.value) == (
        f"record meta/tags/v1.json on gs://{gcs_bucket}/p is larger than 1024 bytes, "
        "the most a record may hold: delete or replace it"
    )
    backend.meta_max_bytes = 2000  # type: ignore[attr-defined]
    assert backend.get_meta("meta/tags/v1.json") == b"[" * 2000


# --- a folder --------------------------------------------------------------------------


def test_a_local_record_over_the_cap_is_refused(tmp_path: Path):
    backend = open_backend((tmp_path / "bucket").as_uri())
    backend.put_meta("meta/tags/v1.json", b"[" * 2000)
    backend.meta_max_bytes = 1024  # type: ignore[attr-defined]
    with pytest.raises(BackendError, match=r"meta/tags/v1\.json on file://.* larger than 1024"):
        backend.get_meta("meta/tags/v1.json")
    backend.meta_max_bytes = 2000  # type: ignore[attr-defined]
    assert backend.get_meta("meta/tags/v1.json") == b"[" * 2000
    assert os.path.getsize(tmp_path / "bucket/meta/tags/v1.json") == 2000
