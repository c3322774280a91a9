"""The local-folder backend passes the contract, plus folder-specific checks."""

from __future__ import annotations

import io
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from lfs_agent.backends import REGISTRY, open_backend
from lfs_agent.backends.local import LocalBackend
from lfs_agent.checked import CHECK_RECORD_MIN
from lfs_agent.errors import BackendError, BackendUnavailableError, ConfigError, IntegrityError
from lfs_agent.hashing import hash_file
from lfs_agent.pointer import Pointer
from lfs_agent.remote import Remote
from lfs_agent.store import ObjectStore
from tests.contract.backend_contract import BackendContract, CollectContract, Recorder
from tests.helpers import random_bytes, sha256


class TestLocalBackendCopying(BackendContract, CollectContract):
    @pytest.fixture
    def remote_url(self, tmp_path: Path) -> str:
        return (tmp_path / "bucket").as_uri()

    @pytest.fixture
    def backend_options(self) -> dict[str, str]:
        return {"local.link": "false"}


class TestLocalBackendLinking(TestLocalBackendCopying):
    hashes_downloads = False  # a link reads nothing: the caller checks the bytes

    @pytest.fixture
    def backend_options(self) -> dict[str, str]:
        return {}

    def test_a_kill_during_upload_leaves_no_object(self, *args, **kwargs):
        pytest.skip(
            "a linked upload is one link of checked bytes: there is no partial copy to kill"
        )


def test_same_file_system_uploads_are_hard_links_of_verified_bytes(tmp_path):
    backend = open_backend((tmp_path / "bucket").as_uri())
    data = b"linked" * 1000
    src = tmp_path / "src"
    src.write_bytes(data)
    backend.upload(sha256(data), src, len(data), Recorder())
    oid = sha256(data)
    stored = tmp_path / "bucket" / "objects" / oid[:2] / oid[2:4] / oid
    assert stored.stat().st_ino == src.stat().st_ino
    with pytest.raises(IntegrityError, match="refusing to upload"):
        backend.upload(sha256(b"other"), src, len(data), Recorder())
    with pytest.raises(IntegrityError, match="has 6000 bytes, expected 5"):
        backend.upload(sha256(b"other"), src, 5, Recorder())


def test_a_linked_upload_replaces_a_wrong_size_object_and_leaves_no_temp(tmp_path):
    backend = open_backend((tmp_path / "bucket").as_uri())
    data = b"right bytes" * 100
    oid = sha256(data)
    src = tmp_path / "src"
    src.write_bytes(data)
    final = tmp_path / "bucket" / "objects" / oid[:2] / oid[2:4] / oid
    final.parent.mkdir(parents=True)
    final.write_bytes(b"truncated")
    backend.upload(oid, src, len(data), Recorder())
    assert final.read_bytes() == data
    assert final.stat().st_ino == src.stat().st_ino
    assert [p.name for p in final.parent.iterdir()] == [oid]


def test_layout_matches_git_lfs_and_copied_objects_are_read_only(tmp_path):
    backend = open_backend((tmp_path / "bucket").as_uri(), {"local.link": "false"})
    data = b"layout"
    oid = sha256(data)
    src = tmp_path / "src"
    src.write_bytes(data)
    backend.upload(oid, src, len(data), Recorder())
    path = tmp_path / "bucket" / "objects" / oid[:2] / oid[2:4] / oid
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert [p.name for p in path.parent.iterdir()] == [oid]


def test_an_unwritable_folder_is_a_backend_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    backend = open_backend(blocker.as_uri())
    src = tmp_path / "src"
    src.write_bytes(b"x")
    with pytest.raises(BackendError, match=r"cannot write to file:.*Not a directory"):
        backend.upload(sha256(b"x"), src, 1, Recorder())


def test_unknown_schemes_and_missing_sdks_get_clear_errors():
    with pytest.raises(ConfigError, match="no backend for ftp"):
        open_backend("ftp://host/x")
    missing_sdk = {**REGISTRY, "s3": ("lfs_agent_missing_sdk:Nope", "s3")}
    with pytest.raises(BackendUnavailableError, match=r"pip install 'lfs-agent\[s3\]'"):
        open_backend("s3://bucket/prefix", registry=missing_sdk)


def test_stale_temp_files_of_dead_uploads_are_swept_by_the_next_upload(tmp_path):
    import os
    import time

    backend = open_backend((tmp_path / "bucket").as_uri(), {"local.link": "false"})
    data = b"swept"
    oid = sha256(data)
    directory = tmp_path / "bucket" / "objects" / oid[:2] / oid[2:4]
    directory.mkdir(parents=True)
    stale = directory / f".{oid}.dead.tmp"
    fresh = directory / f".{oid}.live.tmp"
    for f in (stale, fresh):
        f.write_bytes(b"partial")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    src = tmp_path / "src"
    src.write_bytes(data)
    backend.upload(oid, src, len(data), Recorder())
    assert sorted(p.name for p in directory.iterdir()) == sorted([oid, fresh.name])


def test_same_file_system_downloads_are_links_checked_before_they_reach_the_store(tmp_path):
    bucket = tmp_path / "bucket"
    store = ObjectStore(tmp_path / "lfs")
    good, bad = b"good bytes" * 50, b"evil bytes" * 50
    for data in (good, bad):
        src = tmp_path / "src"
        src.write_bytes(data)
        open_backend(bucket.as_uri()).upload(sha256(data), src, len(data), Recorder())
        src.unlink()
    # Corrupt the bucket's copy of ``bad``: same size, other bytes.
    bad_oid = sha256(bad)
    bad_path = bucket / "objects" / bad_oid[:2] / bad_oid[2:4] / bad_oid
    bad_path.chmod(0o644)
    bad_path.write_bytes(good)

    remote = Remote(bucket.as_uri())
    assert remote.download(store, Pointer(sha256(good), len(good))) is True
    stored = store.object_path(sha256(good))
    assert stored.read_bytes() == good
    oid = sha256(good)
    assert stored.stat().st_ino == (bucket / "objects" / oid[:2] / oid[2:4] / oid).stat().st_ino

    with pytest.raises(IntegrityError, match=f"object {bad_oid} from .* is corrupt"):
        remote.download(store, Pointer(bad_oid, len(bad)))
    assert not store.object_path(bad_oid).exists()
    assert list(store.tmp_dir.iterdir()) == []
    assert bad_path.read_bytes() == good  # the bucket's file is left for fsck to report


def test_downloads_are_links_only_on_the_stores_file_system_with_linking_on(tmp_path):
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    store = ObjectStore(tmp_path / "repo/.git/lfs")  # not created yet: its parent counts
    assert Remote(bucket.as_uri()).downloads_are_links(store)
    assert not Remote(bucket.as_uri(), {"local.link": "false"}).downloads_are_links(store)
    assert not Remote(bucket.as_uri(), cache=ObjectStore(tmp_path / "cache")).downloads_are_links(
        store
    )
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system (/dev/shm) to put the store on")
    elsewhere = Path(tempfile.mkdtemp(dir=other))
    try:
        assert not Remote(bucket.as_uri()).downloads_are_links(ObjectStore(elsewhere / "lfs"))
    finally:
        shutil.rmtree(elsewhere)


def test_a_push_links_an_object_the_store_checked_without_reading_it_again(tmp_path):
    store = ObjectStore(tmp_path / "lfs")
    trusted = store.ingest(io.BytesIO(random_bytes(CHECK_RECORD_MIN, seed=1)))
    changed = store.ingest(io.BytesIO(random_bytes(CHECK_RECORD_MIN, seed=2)))
    with open(store.object_path(changed.oid), "r+b") as f:
        f.write(b"rot")  # same size, other bytes, written after the store checked them
    reads: list[Path] = []

    def counting(path: Path) -> tuple[str, int]:
        reads.append(path)
        return hash_file(path)

    remote = Remote(
        (tmp_path / "bucket").as_uri(),
        opener=lambda url, options, state: LocalBackend(url, dict(options), hash_file=counting),
    )

    assert remote.upload(store, trusted)
    assert reads == []
    in_bucket = tmp_path / "bucket" / "objects" / trusted.oid[:2] / trusted.oid[2:4] / trusted.oid
    assert in_bucket.stat().st_ino == store.object_path(trusted.oid).stat().st_ino

    with pytest.raises(IntegrityError, match=f"refusing to upload {changed.oid}"):
        remote.upload(store, changed)
    assert reads == [store.object_path(changed.oid)]
    assert remote.size_of(changed.oid) is None
