"""The GCS backend against the gcp-storage-emulator process over HTTP on loopback."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest
from google.cloud import storage

from lfs_agent.backends import Deleted, Entry, open_backend
from lfs_agent.backends.gcs import GCSBackend, _Sink
from lfs_agent.errors import BackendError, ConfigError, IntegrityError, UnreachableError
from lfs_agent.hashing import WriteHash
from lfs_agent.pointer import Pointer
from tests.conftest import agent, clone_with_filter, git
from tests.contract.backend_contract import BackendContract, CollectContract, Recorder
from tests.contract.scripted_http import ScriptedServer, body
from tests.helpers import sha256, write_random
from tests.servers import free_port

pytestmark = pytest.mark.gcs
MIB = 1024 * 1024


class TestGCSBackend(BackendContract, CollectContract):
    preconditions_untestable = "the GCS emulator ignores ifGenerationMatch"

    @pytest.fixture
    def remote_url(self, gcs_bucket: str) -> str:
        return f"gs://{gcs_bucket}/team/models"

    @pytest.fixture
    def backend_env(self, gcs_env):
        return gcs_env

    @pytest.fixture
    def backend_options(self) -> dict[str, str]:
        return {"gcs.chunk-size": "256KiB"}  # a kill lands mid resumable upload


def test_a_large_object_goes_up_and_down_in_several_chunks(gcs_bucket, tmp_path):
    backend = open_backend(f"gs://{gcs_bucket}/p", {"gcs.chunk-size": "256KiB"})
    src = tmp_path / "big"
    oid = write_random(src, 9 * MIB + 17, seed=1)  # resumable above 8 MiB
    progress = Recorder()
    backend.upload(oid, src, 9 * MIB + 17, progress)
    assert progress.calls > 3  # reported chunk by chunk
    assert progress.total == 9 * MIB + 17
    blob = (
        storage.Client(project="test")
        .bucket(gcs_bucket)
        .get_blob(f"p/objects/{oid[:2]}/{oid[2:4]}/{oid}")
    )
    assert blob.size == 9 * MIB + 17
    dest = tmp_path / "dest"
    backend.download(oid, dest, 9 * MIB + 17, Recorder())
    assert sha256(dest.read_bytes()) == oid


@pytest.mark.parametrize("checked", [True, False])
def test_a_file_cut_short_while_it_is_sent_is_refused_and_stores_nothing(
    gcs_bucket, tmp_path, checked
):
    backend = open_backend(f"gs://{gcs_bucket}/p", {"gcs.chunk-size": "256KiB"})
    src = tmp_path / "big"
    oid = write_random(src, 9 * MIB + 17, seed=5)  # resumable: sent chunk by chunk

    def cut_short(delta: int) -> None:
        if src.stat().st_size > MIB // 2:
            os.truncate(src, MIB // 2)

    with pytest.raises(IntegrityError, match=f"refusing to upload {oid}: .* ended at byte"):
        backend.upload(oid, src, 9 * MIB + 17, cut_short, checked=checked)
    assert backend.stat(oid) is None


def test_concurrent_creates_of_the_same_oid_both_succeed(gcs_bucket, tmp_path):
    src = tmp_path / "same"
    oid = write_random(src, 2 * MIB, seed=2)
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            open_backend(f"gs://{gcs_bucket}", {"gcs.chunk-size": "256KiB"}).upload(
                oid, src, 2 * MIB, Recorder()
            )
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert open_backend(f"gs://{gcs_bucket}").stat(oid) == 2 * MIB


def test_a_partial_download_is_continued(gcs_bucket, tmp_path):
    backend = open_backend(f"gs://{gcs_bucket}")
    data = b"abcdefghij" * 1000
    src = tmp_path / "src"
    src.write_bytes(data)
    backend.upload(sha256(data), src, len(data), Recorder())
    dest = tmp_path / "dest"
    dest.write_bytes(data[:3000])
    progress = Recorder()
    backend.download(sha256(data), dest, len(data), progress)
    assert dest.read_bytes() == data
    assert progress.total == len(data)


def test_a_missing_bucket_is_named(gcs_env, tmp_path):
    backend = open_backend("gs://no-such-bucket-anywhere/x")
    with pytest.raises(BackendError, match="bucket 'no-such-bucket-anywhere' does not exist"):
        backend.stat(sha256(b"x"))
    with pytest.raises(BackendError, match="does not exist"):
        backend.download(sha256(b"x"), tmp_path / "d", 1, Recorder())


def test_no_credentials_says_how_to_log_in(monkeypatch, tmp_path):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    backend = GCSBackend("gs://bucket/x", {})
    with pytest.raises(BackendError, match="gcloud auth application-default login"):
        backend.stat(sha256(b"x"))


def test_an_unreachable_endpoint_fails_in_one_line_after_the_retry_timeout(monkeypatch, tmp_path):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")  # refused
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test")
    backend = open_backend("gs://bucket/x", {"gcs.retry-timeout": "1"})
    src = tmp_path / "src"
    src.write_bytes(b"x")
    calls = [
        lambda: backend.stat(sha256(b"x")),
        lambda: backend.upload(sha256(b"x"), src, 1, Recorder()),
        lambda: backend.download(sha256(b"x"), tmp_path / "d", 1, Recorder()),
        lambda: backend.get_meta("meta/tags/v1.json"),
        lambda: backend.list_meta("meta/tags"),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(UnreachableError) as caught:
            call()
        assert str(caught.value) == (
            "cannot reach GCS for gs://bucket/x: Connection refused (retried for 1s)"
        )
        assert time.monotonic() - started < 10  # not the SDK's two minutes


def test_retry_timeout_must_be_seconds():
    with pytest.raises(ConfigError, match="retry-timeout must be a number of seconds from 0 to"):
        GCSBackend("gs://b/p", {"gcs.retry-timeout": "soon"})
    assert GCSBackend("gs://b/p", {"gcs.retry-timeout": "2.5"}).retry_timeout == 2.5


def test_chunk_size_must_be_a_multiple_of_256k():
    with pytest.raises(ConfigError, match="multiple of 256KiB"):
        GCSBackend("gs://b/p", {"gcs.chunk-size": "100000"})


@pytest.mark.integration
def test_git_round_trip_through_a_gs_remote(gcs_bucket, tmp_path: Path, no_git_lfs_path):
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    work = tmp_path / "work"
    git("init", "-q", str(work), cwd=tmp_path)
    assert agent("install", "--remote", f"gs://{gcs_bucket}/repo", cwd=work).returncode == 0
    agent("track", "*.bin", cwd=work)
    oid = write_random(work / "model.bin", 2 * MIB, seed=3)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "model", cwd=work)
    git("remote", "add", "origin", str(remote), cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    assert open_backend(f"gs://{gcs_bucket}/repo").stat(oid) == 2 * MIB
    clone = tmp_path / "clone"
    clone_with_filter(str(remote), str(clone), cwd=tmp_path)
    assert sha256((clone / "model.bin").read_bytes()) == oid
    assert git("status", "--porcelain", cwd=clone).stdout == b""


def test_the_sdk_may_seek_a_download_back_to_its_start_only(tmp_path: Path):
    # The SDK seeks to 0 when it gets the whole object again (decompressive
    # transcoding); the file and its hash then start over, and the progress with them.
    path = tmp_path / "d"
    progress = Recorder()
    with open(path, "wb") as f, WriteHash(f) as written:
        sink = _Sink(written, progress)
        sink.write(b"first try")
        assert sink.seek(0) == 0
        sink.write(b"whole")
        assert written.pointer() == Pointer(sha256(b"whole"), 5)
        with pytest.raises(io.UnsupportedOperation, match="seek"):
            sink.seek(3)
    assert path.read_bytes() == b"whole"
    assert progress.total == 5


def test_a_versioned_bucket_is_seen_and_a_delete_names_the_generation(gcs_bucket):
    bucket = storage.Client(project="test").bucket(gcs_bucket)
    bucket.versioning_enabled = True
    bucket.patch()
    backend = open_backend(f"gs://{gcs_bucket}/p")
    assert backend.versioned() is True
    backend.put_meta("meta/repos/r.json", b"{}")
    entry = backend.stat_entry("meta/repos/r.json")
    assert int(entry.tag) > 0  # the generation
    assert backend.delete_entries([entry]) == [Deleted("meta/repos/r.json", entry.tag)]
    assert backend.stat_entry("meta/repos/r.json") is None
    # The emulator keeps no noncurrent generations: it answers the copy back as GCS
    # answers one of a generation that expired (404), and nothing comes back.
    assert backend.undelete(Deleted("meta/repos/r.json", entry.tag)) is False


GCS_PRECONDITION_FAILED = (
    b'{"error": {"code": 412, "message": "At least one of the pre-conditions you '
    b'specified did not hold.", "errors": [{"reason": "conditionNotMet"}]}}'
)


def test_generation_preconditions_are_sent_and_a_412_means_lost(monkeypatch):
    # The emulator ignores ifGenerationMatch: a scripted server answers as GCS does
    # when the condition fails, and shows what was asked.
    scripted = ScriptedServer()
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", scripted.url)
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test")
        failed = body(GCS_PRECONDITION_FAILED, 412, {"Content-Type": "application/json"})
        scripted.answers[("POST", "/upload/storage/v1/b/bkt/o")] = failed
        scripted.answers[("DELETE", "/storage/v1/b/bkt/o/p%2Fmeta%2Frepos%2Fr.json")] = failed
        scripted.answers[("GET", "/storage/v1/b/bkt")] = body(
            b'{"name": "bkt", "versioning": {"enabled": false}}',
            headers={"Content-Type": "application/json"},
        )
        backend = GCSBackend("gs://bkt/p", {"gcs.retry-timeout": "0"})
        assert backend.create_meta("meta/gc/lock.json", b"{}") is None
        entry = Entry("meta/repos/r.json", 2, 0.0, "1234")
        assert backend.delete_entries([entry]) == []
        (upload,) = scripted.requests_for("POST")
        assert "ifGenerationMatch=0" in upload.path
        (delete,) = scripted.requests_for("DELETE")
        assert "ifGenerationMatch=1234" in delete.path
    finally:
        scripted.stop()
