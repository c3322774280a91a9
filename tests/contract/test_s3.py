"""The S3 backend against a moto server process over HTTP on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import botocore.exceptions
import pytest

from lfs_agent.backends import Deleted, open_backend
from lfs_agent.backends.s3 import S3Backend
from lfs_agent.backends.s3.limits import S3Limits
from lfs_agent.backends.s3.parts import Part, hash_part, part_matches
from lfs_agent.errors import (
    BackendError,
    ConfigError,
    IntegrityError,
    ObjectNotFoundError,
    UnreachableError,
)
from lfs_agent.pointer import Pointer
from lfs_agent.remote import Remote
from lfs_agent.store import ObjectStore
from tests.conftest import ROOT
from tests.contract.backend_contract import BackendContract, CollectContract, Recorder
from tests.helpers import sha256, write_random
from tests.servers import free_port, moto_server

pytestmark = pytest.mark.s3
MIB = 1024 * 1024
SMALL_PARTS = {"s3.part-size": "5MiB", "s3.multipart-threshold": "5MiB", "s3.concurrency": "1"}


class TestS3Backend(BackendContract, CollectContract):
    tag_resolution = 1.0  # LastModified is kept to the second

    @pytest.fixture
    def remote_url(self, s3_bucket: str) -> str:
        return f"s3://{s3_bucket}/team/models"

    @pytest.fixture
    def versioned_backend(self, s3_bucket: str):
        boto3.client("s3").put_bucket_versioning(
            Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"}
        )
        backend = open_backend(f"s3://{s3_bucket}/team/models")
        yield backend
        backend.close()

    @pytest.fixture
    def backend_env(self, s3_env):
        return s3_env

    @pytest.fixture
    def backend_options(self) -> dict[str, str]:
        return dict(SMALL_PARTS)


class CallCounter:
    """Counts S3 API calls a client makes, by operation name (botocore events)."""

    def __init__(self, client) -> None:
        self.calls: list[tuple[str, dict]] = []
        client.meta.events.register("provide-client-params.s3.*", self._record)

    def _record(self, params, event_name, **_):
        self.calls.append((event_name.rsplit(".", 1)[-1], dict(params)))

    def count(self, name: str) -> int:
        return sum(1 for op, _ in self.calls if op == name)


def make_backend(bucket: str, tmp_path: Path, **options: str) -> tuple[S3Backend, CallCounter]:
    client = boto3.client("s3")
    counter = CallCounter(client)
    backend = S3Backend(
        f"s3://{bucket}/p", {**SMALL_PARTS, **options}, state_dir=tmp_path / "state", client=client
    )
    return backend, counter


def test_keys_follow_the_shared_layout(s3_bucket, tmp_path):
    backend, _ = make_backend(s3_bucket, tmp_path)
    src = tmp_path / "x"
    src.write_bytes(b"layout")
    oid = sha256(b"layout")
    backend.upload(oid, src, 6, Recorder())
    assert list(backend.iter_keys()) == [f"p/objects/{oid[:2]}/{oid[2:4]}/{oid}"]


def test_multipart_upload_with_a_small_part_size(s3_bucket, tmp_path):
    backend, counter = make_backend(s3_bucket, tmp_path, **{"s3.concurrency": "3"})
    src = tmp_path / "big"
    oid = write_random(src, 12 * MIB + 5, seed=1)
    progress = Recorder()
    backend.upload(oid, src, 12 * MIB + 5, progress)
    assert counter.count("UploadPart") == 3
    assert all(p.get("ChecksumSHA256") for op, p in counter.calls if op == "UploadPart")
    head = boto3.client("s3").head_object(
        Bucket=s3_bucket, Key=f"p/objects/{oid[:2]}/{oid[2:4]}/{oid}"
    )
    assert head["ETag"].strip('"').endswith("-3")
    assert progress.total == 12 * MIB + 5
    assert not list((tmp_path / "state").glob("s3-upload-*.json"))  # state dropped once complete
    dest = tmp_path / "dest"
    hashed = backend.download(oid, dest, 12 * MIB + 5, Recorder())
    assert sha256(dest.read_bytes()) == oid
    # Ranged: the parts were read back and hashed as they came in.
    assert hashed == Pointer(oid, 12 * MIB + 5)


def payload_hashes(backend: S3Backend) -> list[tuple[str, str]]:
    """(operation, X-Amz-Content-SHA256) of every request the backend's own client sends."""
    sent: list[tuple[str, str]] = []

    def record(request, event_name, **_):
        value = request.headers["X-Amz-Content-SHA256"]
        sent.append(
            (event_name.rsplit(".", 1)[-1], value.decode() if isinstance(value, bytes) else value)
        )

    backend.client.meta.events.register("before-send.s3", record)
    return sent


@pytest.mark.parametrize("checksum", ["sha256", "off"])
def test_bodies_our_checksum_covers_are_not_hashed_again_to_sign_them(
    s3_bucket, tmp_path, checksum
):
    # The backend builds its own client (not injected), as it does for users; moto is
    # plain HTTP, where botocore would otherwise hash every body to sign it.
    backend = S3Backend(f"s3://{s3_bucket}/p", {**SMALL_PARTS, "s3.checksum": checksum})
    sent = payload_hashes(backend)
    big, small = tmp_path / "big", tmp_path / "small"
    big_oid = write_random(big, 6 * MIB, seed=3)
    small.write_bytes(b"small")
    backend.upload(big_oid, big, 6 * MIB, Recorder())
    backend.upload(sha256(b"small"), small, 5, Recorder())
    backend.put_meta("meta/tags/v1.json", b"{}")
    bodies = [(op, value) for op, value in sent if op in ("UploadPart", "PutObject")]
    assert [op for op, _ in bodies] == ["UploadPart", "UploadPart", "PutObject", "PutObject"]
    unsigned = [op for op, value in bodies if value == "UNSIGNED-PAYLOAD"]
    if checksum == "sha256":
        # Both parts and the small object carry x-amz-checksum-sha256; the record does not.
        assert unsigned == ["UploadPart", "UploadPart", "PutObject"]
        assert bodies[-1][1] == hashlib.sha256(b"{}").hexdigest()
    else:
        assert unsigned == []
        assert bodies[2][1] == sha256(b"small")
    dest = tmp_path / "dest"
    backend.download(big_oid, dest, 6 * MIB, Recorder())
    assert sha256(dest.read_bytes()) == big_oid


def test_signing_of_bodies_resumes_once_the_endpoint_refuses_checksums(s3_bucket, tmp_path):
    backend = S3Backend(f"s3://{s3_bucket}/p", dict(SMALL_PARTS))
    sent = payload_hashes(backend)
    src = tmp_path / "x"
    src.write_bytes(b"data")
    refusal = botocore.exceptions.ClientError(
        {"Error": {"Code": "NotImplemented", "Message": "checksum"}}, "PutObject"
    )
    assert backend.uploader.checksum_refused(refusal)
    backend.upload(sha256(b"data"), src, 4, Recorder())
    assert sent == [("PutObject", sha256(b"data"))]


SLOW_MULTIPART = """
import json, sys, time
from pathlib import Path
from lfs_agent.backends.s3 import S3Backend
backend = S3Backend(sys.argv[1], json.loads(sys.argv[2]), state_dir=Path(sys.argv[3]))
def progress(delta):
    if delta:  # a zero report comes before each part is sent: not yet a part
        print("part", delta, flush=True)
        time.sleep(30)
backend.upload(sys.argv[4], Path(sys.argv[5]), int(sys.argv[6]), progress)
"""


def test_a_killed_multipart_upload_is_resumed_not_restarted(s3_bucket, s3_env, tmp_path):
    size = 30 * MIB
    src = tmp_path / "big"
    oid = write_random(src, size, seed=2)
    state = tmp_path / "state"
    url = f"s3://{s3_bucket}/p"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SLOW_MULTIPART,
            url,
            json.dumps(SMALL_PARTS),
            str(state),
            oid,
            str(src),
            str(size),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**s3_env, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith(b"part"), proc.stderr.read() if proc.stderr else b""
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    client = boto3.client("s3")
    uploads = client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    assert len(uploads) == 1
    parts_before = client.list_parts(
        Bucket=s3_bucket, Key=uploads[0]["Key"], UploadId=uploads[0]["UploadId"]
    )["Parts"]
    assert len(parts_before) >= 1
    with pytest.raises(botocore.exceptions.ClientError):
        client.head_object(Bucket=s3_bucket, Key=uploads[0]["Key"])  # nothing visible yet

    backend, counter = make_backend(s3_bucket, tmp_path)
    progress = Recorder()
    backend.upload(oid, src, size, progress)
    assert counter.count("CreateMultipartUpload") == 0  # the same upload was continued
    assert counter.count("UploadPart") == 6 - len(parts_before)  # fewer bytes sent
    assert progress.total == size
    dest = tmp_path / "dest"
    backend.download(oid, dest, size, Recorder())
    assert sha256(dest.read_bytes()) == oid
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_a_resumed_part_without_a_checksum_is_matched_by_its_md5_etag(tmp_path):
    src = tmp_path / "big"
    write_random(src, 3 * MIB, seed=4)
    data = src.read_bytes()
    oid = sha256(data)
    part = Part(2, MIB, MIB, hashlib.sha256(data[MIB : 2 * MIB]).digest())
    md5 = hashlib.md5(data[MIB : 2 * MIB], usedforsecurity=False).hexdigest()
    other = hashlib.md5(data[:MIB], usedforsecurity=False).hexdigest()
    assert part_matches({"Size": MIB, "ETag": f'"{md5}"'}, part, oid, src)
    assert not part_matches({"Size": MIB, "ETag": f'"{other}"'}, part, oid, src)
    assert not part_matches({"Size": MIB - 1, "ETag": f'"{md5}"'}, part, oid, src)


def test_a_forgotten_upload_id_starts_a_new_upload(s3_bucket, tmp_path):
    backend, counter = make_backend(s3_bucket, tmp_path)
    src = tmp_path / "big"
    oid = write_random(src, 11 * MIB, seed=3)
    state = tmp_path / "state"
    state.mkdir()
    (state / f"s3-upload-{oid}.json").write_text(
        json.dumps(
            {
                "bucket": s3_bucket,
                "key": f"p/objects/{oid[:2]}/{oid[2:4]}/{oid}",
                "size": 11 * MIB,
                "part_size": 5 * MIB,
                "upload_id": "no-such-upload",
            }
        )
    )
    backend.upload(oid, src, 11 * MIB, Recorder())
    assert counter.count("CreateMultipartUpload") == 1
    assert backend.stat(oid) == 11 * MIB


SLOW_DOWNLOAD = """
import json, sys, time
from pathlib import Path
from lfs_agent.backends.s3 import S3Backend
backend = S3Backend(sys.argv[1], json.loads(sys.argv[2]))
def progress(delta):
    if Path(sys.argv[3] + ".ranges").exists():
        print("range done", flush=True)
        time.sleep(30)
backend.download(sys.argv[4], Path(sys.argv[3]), int(sys.argv[5]), progress)
"""


def test_a_killed_ranged_download_resumes(s3_bucket, s3_env, tmp_path):
    size = 20 * MIB
    src = tmp_path / "big"
    oid = write_random(src, size, seed=4)
    backend, _ = make_backend(s3_bucket, tmp_path)
    backend.upload(oid, src, size, Recorder())
    dest = tmp_path / "partial"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SLOW_DOWNLOAD,
            f"s3://{s3_bucket}/p",
            json.dumps(SMALL_PARTS),
            str(dest),
            oid,
            str(size),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**s3_env, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"range done\n", proc.stderr.read() if proc.stderr else b""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = json.loads((tmp_path / "partial.ranges").read_text())["done"]
    assert done_before

    again, counter = make_backend(s3_bucket, tmp_path)
    hashed = again.download(oid, dest, size, Recorder())
    assert counter.count("GetObject") == 2 - len(done_before)  # two ranges for one worker
    assert sha256(dest.read_bytes()) == oid
    assert hashed == Pointer(oid, size)  # the parts from before were hashed too
    assert not (tmp_path / "partial.ranges").exists()


def test_many_objects_are_settled_by_listing_not_a_head_each(s3_bucket, tmp_path):
    backend, counter = make_backend(s3_bucket, tmp_path)
    backend.list_page_size = 7  # several pages
    sizes = {}
    for i in range(30):
        data = b"listed %d" % i
        oid = sha256(data)
        (tmp_path / "src").write_bytes(data)
        backend.upload(oid, tmp_path / "src", len(data), Recorder())
        sizes[oid] = len(data)
    absent = [sha256(b"not there %d" % i) for i in range(30)]
    answer = backend.stat_many([*sizes, *absent])
    assert answer == {**sizes, **dict.fromkeys(absent)}
    assert counter.count("HeadObject") == 0
    assert 1 <= counter.count("ListObjectsV2") <= 5  # 30 keys, 7 per page


def test_a_push_to_a_bucket_that_has_most_objects_uploads_only_the_rest(s3_bucket, tmp_path):
    from lfs_agent.remote import Remote
    from lfs_agent.scan import PointerFile
    from lfs_agent.store import ObjectStore
    from lfs_agent.sync import push

    store = ObjectStore(tmp_path / "lfs")
    files = []
    for i in range(40):
        data = b"pushed %d" % i
        (tmp_path / "src").write_bytes(data)
        with open(tmp_path / "src", "rb") as f:
            files.append(PointerFile(f"f{i}", store.ingest(f), "0" * 40))
    backend, counter = make_backend(s3_bucket, tmp_path)
    for f in files[:30]:
        backend.upload(f.pointer.oid, store.object_path(f.pointer.oid), f.pointer.size, Recorder())
    counter.calls.clear()
    remote = Remote(f"s3://{s3_bucket}/p", opener=lambda *_: backend)
    result = push(store, remote, files, concurrency=4)
    assert sorted(p.oid for p in result.done) == sorted(f.pointer.oid for f in files[30:])
    assert len(result.skipped) == 30
    assert counter.count("HeadObject") == 0
    assert counter.count("PutObject") == 10


def test_a_listing_the_credentials_forbid_falls_back_to_a_head_each(s3_bucket, tmp_path):
    backend, counter = make_backend(s3_bucket, tmp_path)

    def deny(params, **_):
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": "AccessDenied", "Message": "no s3:ListBucket"}}, "ListObjectsV2"
        )

    backend.client.meta.events.register("before-call.s3.ListObjectsV2", deny)
    oids = [sha256(b"%d" % i) for i in range(20)]
    assert backend.stat_many(oids) == {}
    assert backend.stat(oids[0]) is None
    assert counter.count("ListObjectsV2") == 1
    assert counter.count("HeadObject") == 1


def test_a_partial_small_download_continues_with_a_range(s3_bucket, tmp_path):
    backend, counter = make_backend(s3_bucket, tmp_path, **{"s3.multipart-threshold": "64MiB"})
    data = b"0123456789" * 1000
    src = tmp_path / "src"
    src.write_bytes(data)
    oid = sha256(data)
    backend.upload(oid, src, len(data), Recorder())
    dest = tmp_path / "dest"
    dest.write_bytes(data[:4000])
    backend.download(oid, dest, len(data), Recorder())
    assert dest.read_bytes() == data
    gets = [p for op, p in counter.calls if op == "GetObject"]
    assert gets[-1]["Range"] == "bytes=4000-"


def test_a_missing_bucket_is_named(s3_env, tmp_path):
    backend = open_backend("s3://no-such-bucket-here/x")
    with pytest.raises(BackendError, match="bucket 'no-such-bucket-here' does not exist"):
        backend.stat(sha256(b"x"))
    src = tmp_path / "x"
    src.write_bytes(b"x")
    with pytest.raises(BackendError, match="bucket 'no-such-bucket-here' does not exist"):
        backend.upload(sha256(b"x"), src, 1, Recorder())


def test_wrong_credentials_get_one_clear_line(tmp_path, monkeypatch):
    server = moto_server(
        tmp_path,
        {
            "INITIAL_NO_AUTH_ACTION_COUNT": "0",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
        },
    )
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        backend = open_backend("s3://some-bucket/x")
        with pytest.raises(BackendError) as info:
            backend.download(sha256(b"x"), tmp_path / "d", 1, Recorder())
        message = str(info.value)
        assert "\n" not in message
        assert "bad or expired AWS credentials for s3://some-bucket/x" in message
    finally:
        server.stop()


def test_an_unreachable_endpoint_is_one_line_naming_it(s3_env):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens: refused
    options = {"s3.endpoint-url": endpoint, "s3.max-attempts": "1"}
    backend = open_backend("s3://bucket/x", options)
    with pytest.raises(UnreachableError) as caught:
        backend.stat(sha256(b"x"))
    assert str(caught.value) == (
        f"cannot reach the S3 endpoint {endpoint} for s3://bucket/x: Connection refused"
    )


def test_no_credentials_at_all_says_how_to_provide_them(tmp_path, monkeypatch, moto):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    backend = open_backend("s3://bucket/x", {"s3.region": "us-east-1"})
    with pytest.raises(BackendError, match="no AWS credentials found for s3://bucket/x"):
        backend.stat(sha256(b"x"))


def test_upload_refuses_bytes_that_do_not_hash_to_the_oid_before_sending(s3_bucket, tmp_path):
    backend, counter = make_backend(s3_bucket, tmp_path)
    src = tmp_path / "big"
    write_random(src, 11 * MIB, seed=5)
    with pytest.raises(IntegrityError, match="refusing to upload"):
        backend.upload(sha256(b"something else"), src, 11 * MIB, Recorder())
    assert counter.calls == []


def test_a_checked_file_is_sent_part_by_part_without_hashing_it_whole(s3_bucket, tmp_path):
    src = tmp_path / "big"
    size = 12 * MIB + 5
    oid = write_random(src, size, seed=6)
    events: list[str] = []

    def recorded_hash_part(oid: str, src_path: Path, part: Part) -> Part:
        hashed = hash_part(oid, src_path, part)
        events.append(f"hash {hashed.number}")
        return hashed

    def no_whole_hash():
        raise AssertionError("a checked file was hashed whole")

    client = boto3.client("s3")
    counter = CallCounter(client)
    backend = S3Backend(
        f"s3://{s3_bucket}/p",
        dict(SMALL_PARTS),
        state_dir=tmp_path / "state",
        client=client,
        hash_part=recorded_hash_part,
        whole_hash=no_whole_hash,
    )
    backend.client.meta.events.register(
        "provide-client-params.s3.UploadPart",
        lambda params, **_: events.append(f"send {params['PartNumber']}"),
    )
    backend.upload(oid, src, size, Recorder(), checked=True)
    # One worker (SMALL_PARTS): each part leaves as soon as it is hashed.
    assert events == ["hash 1", "send 1", "hash 2", "send 2", "hash 3", "send 3"]
    assert all(p.get("ChecksumSHA256") for op, p in counter.calls if op == "UploadPart")
    dest = tmp_path / "dest"
    assert backend.download(oid, dest, size, Recorder()) == Pointer(oid, size)


@pytest.mark.parametrize("checked", [True, False])
def test_a_file_cut_short_while_it_is_sent_aborts_the_upload(s3_bucket, tmp_path, checked):
    # Checked, the next part is hashed just before it is sent and found short; not
    # checked (hashed whole before the first part), the short body itself is refused
    # instead of leaving the server waiting for the bytes the request announced.
    backend, counter = make_backend(s3_bucket, tmp_path)
    src = tmp_path / "big"
    size = 12 * MIB + 5
    oid = write_random(src, size, seed=7)

    def truncate_after_the_first_part(delta: int) -> None:
        os.truncate(src, 7 * MIB)

    with pytest.raises(IntegrityError, match=f"refusing to upload {oid}: .* ended at byte"):
        backend.upload(oid, src, size, truncate_after_the_first_part, checked=checked)
    if checked:  # no part was sent once the file was short
        assert counter.count("UploadPart") == 1
    assert counter.count("AbortMultipartUpload") == 1
    assert boto3.client("s3").list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert backend.stat(oid) is None
    assert not list((tmp_path / "state").glob("s3-upload-*.json"))


def test_a_file_cut_short_during_a_single_put_is_refused(s3_bucket, tmp_path):
    backend, _ = make_backend(s3_bucket, tmp_path)
    src = tmp_path / "mid"
    oid = write_random(src, 3 * MIB, seed=9)  # above SMALL_OBJECT: streamed from the file
    backend.client.meta.events.register(
        "before-send.s3.PutObject", lambda **_: os.truncate(src, MIB)
    )
    with pytest.raises(IntegrityError, match=f"refusing to upload {oid}: .* ended at byte"):
        backend.upload(oid, src, 3 * MIB, Recorder())
    assert backend.stat(oid) is None


def test_a_checked_file_of_another_size_is_refused_before_sending(s3_bucket, tmp_path):
    backend, counter = make_backend(s3_bucket, tmp_path)
    src = tmp_path / "big"
    oid = write_random(src, 11 * MIB, seed=8)
    with pytest.raises(IntegrityError, match="refusing to upload"):
        backend.upload(oid, src, 12 * MIB, Recorder(), checked=True)
    with pytest.raises(ObjectNotFoundError, match="is missing"):
        backend.upload(oid, tmp_path / "gone", 11 * MIB, Recorder(), checked=True)
    assert counter.calls == []


def test_abort_stale_uploads_for_prune(s3_bucket, tmp_path):
    backend, _ = make_backend(s3_bucket, tmp_path)
    client = boto3.client("s3")
    client.create_multipart_upload(Bucket=s3_bucket, Key="p/objects/aa/bb/" + "a" * 64)
    client.create_multipart_upload(Bucket=s3_bucket, Key="elsewhere/key")
    # moto reports every upload as initiated at one fixed date (2010-11-10), so age is
    # expressed relative to that: younger than a century is fresh, older than a day stale.
    initiated = client.list_multipart_uploads(Bucket=s3_bucket)["Uploads"][0]["Initiated"]
    assert backend.abort_stale_uploads(older_than=100 * 365 * 86400) == 0
    now = initiated.timestamp() + 3600
    assert backend.abort_stale_uploads(older_than=7200, now=now) == 0
    assert backend.abort_stale_uploads(older_than=86400, now=now + 86400) == 1
    left = [u["Key"] for u in client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])]
    assert left == ["elsewhere/key"]


def test_encryption_and_storage_class_are_sent(s3_bucket, tmp_path):
    backend, counter = make_backend(
        s3_bucket, tmp_path, **{"s3.sse": "AES256", "s3.storage-class": "STANDARD_IA"}
    )
    src = tmp_path / "x"
    src.write_bytes(b"secret model")
    backend.upload(sha256(b"secret model"), src, 12, Recorder())
    put = next(p for op, p in counter.calls if op == "PutObject")
    assert put["ServerSideEncryption"] == "AES256" and put["StorageClass"] == "STANDARD_IA"


def test_tiny_parts_are_config_errors():
    with pytest.raises(ConfigError, match="part-size must be a size from 5MiB to 5GiB"):
        S3Backend("s3://b/p", {"s3.part-size": "1M"})


@pytest.mark.parametrize(
    ("concurrency", "ranges"),
    [
        ("1", ["bytes=0-15728639", "bytes=15728640-31457279"]),  # 15 MiB each
        ("2", [f"bytes={i * 7864320}-{(i + 1) * 7864320 - 1}" for i in range(4)]),  # 7.5 MiB
        ("8", [f"bytes={i * 5 * MIB}-{min(30, (i + 1) * 5) * MIB - 1}" for i in range(6)]),
    ],
)
def test_a_ranged_download_takes_about_two_ranges_per_worker(
    s3_bucket, tmp_path, concurrency, ranges
):
    size = 30 * MIB
    src = tmp_path / "big"
    oid = write_random(src, size, seed=6)
    backend, counter = make_backend(s3_bucket, tmp_path, **{"s3.concurrency": concurrency})
    backend.upload(oid, src, size, Recorder())
    dest = tmp_path / "dest"
    assert backend.download(oid, dest, size, Recorder()) == Pointer(oid, size)
    # Never under the part size (5 MiB here): eight workers get six ranges.
    assert sorted(p["Range"] for op, p in counter.calls if op == "GetObject") == sorted(ranges)
    assert sha256(dest.read_bytes()) == oid


def test_a_corrupt_ranged_download_is_refused_and_stores_nothing(s3_bucket, tmp_path):
    backend, counter = make_backend(s3_bucket, tmp_path, **{"s3.concurrency": "3"})
    size = 11 * MIB + 3  # three ranges, hashed as they come in
    src = tmp_path / "good"
    oid = write_random(src, size, seed=5)
    bad = bytearray(src.read_bytes())
    bad[7 * MIB] ^= 1  # one bit, in the second range
    key = f"p/objects/{oid[:2]}/{oid[2:4]}/{oid}"
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=key, Body=bytes(bad))
    store = ObjectStore(tmp_path / "lfs")
    remote = Remote(f"s3://{s3_bucket}/p", opener=lambda *_: backend)
    with pytest.raises(IntegrityError, match=f"object {oid} from s3://.* is corrupt: got {size}"):
        remote.download(store, Pointer(oid, size))
    assert counter.count("GetObject") == 3
    assert not store.object_path(oid).exists()
    assert [p.name for p in store.tmp_dir.iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.parametrize(
    ("max_parts", "part_sizes"),
    [(10_000, [5 * MIB, 5 * MIB, 2 * MIB]), (2, [6 * MIB, 6 * MIB])],
)
def test_an_object_over_the_largest_put_goes_in_parts_whatever_the_threshold(
    s3_bucket, tmp_path, max_parts, part_sizes
):
    # S3's limits shrunk so that 12 MiB is over the largest PUT; the threshold says
    # one PUT. With at most two parts, the part size grows to fit the object in two.
    client = boto3.client("s3")
    counter = CallCounter(client)
    limits = S3Limits(max_put_size=8 * MIB, max_parts=max_parts)
    backend = S3Backend(
        f"s3://{s3_bucket}/p",
        {**SMALL_PARTS, "s3.multipart-threshold": "64MiB"},
        state_dir=tmp_path / "state",
        client=client,
        limits=limits,
    )
    src = tmp_path / "big"
    size = 12 * MIB
    oid = write_random(src, size, seed=11)
    backend.upload(oid, src, size, Recorder())
    assert counter.count("PutObject") == 0
    assert counter.count("CreateMultipartUpload") == 1
    sent = [len(p["Body"]) for op, p in counter.calls if op == "UploadPart"]
    assert sent == part_sizes
    assert backend.stat(oid) == size


def test_a_listing_of_entries_fetches_one_page_at_a_time(s3_bucket, tmp_path):
    backend, counter = make_backend(s3_bucket, tmp_path)
    backend.list_page_size = 2
    for i in range(5):
        backend.put_meta(f"meta/repos/r{i}.json", b"{}")
    listing = backend.list_entries("meta/repos/")
    first = next(listing)
    assert counter.count("ListObjectsV2") == 1  # the rest is not fetched yet
    rest = list(listing)
    assert counter.count("ListObjectsV2") == 3
    assert sorted(e.key for e in [first, *rest]) == [f"meta/repos/r{i}.json" for i in range(5)]
    assert all(p["MaxKeys"] == 2 for op, p in counter.calls if op == "ListObjectsV2")
    assert all(p["Prefix"] == "p/meta/repos/" for op, p in counter.calls if op == "ListObjectsV2")


def test_a_delete_is_a_head_each_then_one_delete_objects_naming_the_etags(s3_bucket, tmp_path):
    backend, counter = make_backend(s3_bucket, tmp_path)
    for i in range(3):
        backend.put_meta(f"meta/repos/r{i}.json", b"{%d}" % i)
    listed = list(backend.list_entries("meta/repos/"))
    assert len(backend.delete_entries(listed)) == 3
    assert counter.count("HeadObject") == 3
    assert counter.count("DeleteObjects") == 1
    (params,) = [p for op, p in counter.calls if op == "DeleteObjects"]
    assert {(o["Key"], o["ETag"]) for o in params["Delete"]["Objects"]} == {
        (f"p/{e.key}", e.tag.rpartition("@")[0]) for e in listed
    }


def test_create_meta_sends_if_none_match_and_a_412_means_it_existed(s3_bucket, tmp_path):
    backend, counter = make_backend(s3_bucket, tmp_path)
    assert backend.create_meta("meta/gc/lock.json", b"{}") is not None
    assert backend.create_meta("meta/gc/lock.json", b"{}") is None
    puts = [p for op, p in counter.calls if op == "PutObject"]
    assert [p["IfNoneMatch"] for p in puts] == ["*", "*"]


def test_undelete_removes_only_a_delete_marker(s3_bucket, tmp_path):
    client = boto3.client("s3")
    client.put_bucket_versioning(Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"})
    backend, _ = make_backend(s3_bucket, tmp_path)
    backend.put_meta("meta/repos/r.json", b'{"r": 1}')
    (deleted,) = backend.delete_entries([backend.stat_entry("meta/repos/r.json")])
    assert backend.undelete(deleted) is True
    assert backend.undelete(deleted) is False  # its marker is gone now
    data_version = client.head_object(Bucket=s3_bucket, Key="p/meta/repos/r.json")["VersionId"]
    with pytest.raises(BackendError, match="is no delete marker"):
        backend.undelete(Deleted("meta/repos/r.json", data_version))
    assert backend.get_meta("meta/repos/r.json") == b'{"r": 1}'


def test_versioning_is_asked_once_and_suspended_is_not_versioned(s3_bucket, tmp_path):
    client = boto3.client("s3")
    client.put_bucket_versioning(Bucket=s3_bucket, VersioningConfiguration={"Status": "Suspended"})
    backend, counter = make_backend(s3_bucket, tmp_path)
    assert backend.versioned() is False
    assert backend.versioned() is False
    assert counter.count("GetBucketVersioning") == 1


def test_collect_errors_name_the_bucket(s3_env, tmp_path):
    backend, _ = make_backend("no-such-bucket-here", tmp_path)
    with pytest.raises(BackendError, match="bucket 'no-such-bucket-here' does not exist"):
        list(backend.list_entries("objects/"))
    with pytest.raises(BackendError, match="bucket 'no-such-bucket-here' does not exist"):
        backend.versioned()
    with pytest.raises(BackendError, match="bucket 'no-such-bucket-here' does not exist"):
        backend.stat_entry("meta/gc/lock.json")
