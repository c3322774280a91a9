"""The local object store: layout, atomic ingest, verification."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest

from lfs_agent.errors import IntegrityError, InvalidOidError, ObjectNotFoundError
from lfs_agent.hashing import CHUNK_SIZE
from lfs_agent.pointer import EMPTY_OID, Pointer
from lfs_agent.store import ObjectStore, check_file
from tests.helpers import random_bytes, sha256


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(tmp_path / "lfs")


def test_ingest_stores_at_the_git_lfs_path_and_leaves_tmp_empty(store):
    data = random_bytes(3 * 1024 * 1024 + 5)
    pointer = store.ingest(io.BytesIO(data))
    oid = sha256(data)
    assert pointer == Pointer(oid, len(data))
    path = store.root / "objects" / oid[:2] / oid[2:4] / oid
    assert path.read_bytes() == data
    assert store.contains(pointer)
    assert list(store.tmp_dir.iterdir()) == []


def test_contains_requires_the_right_size(store):
    pointer = store.ingest(io.BytesIO(b"abc"))
    assert not store.contains(Pointer(pointer.oid, 4))
    assert store.contains(Pointer(EMPTY_OID, 0))


def test_ingest_with_wrong_expectation_publishes_nothing(store):
    wrong = Pointer(sha256(b"other"), 3)
    with pytest.raises(IntegrityError, match="is corrupt"):
        store.ingest(io.BytesIO(b"abc"), expected=wrong)
    assert not store.contains(Pointer(sha256(b"abc"), 3))
    assert list(store.objects_dir.rglob("*")) == [] if store.objects_dir.exists() else True
    assert list(store.tmp_dir.iterdir()) == []


@pytest.mark.parametrize("size", [7, 3 * CHUNK_SIZE])  # hashed at the end / by a thread
def test_writer_abandoned_by_an_exception_leaves_no_temp_file_and_no_thread(store, size):
    with pytest.raises(RuntimeError), store.writer() as out:
        out.write(bytes(size))
        raise RuntimeError("boom")
    assert list(store.tmp_dir.iterdir()) == []
    assert _hash_threads() == []


def _hash_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "hash"]


def test_a_writer_whose_hashing_fails_publishes_nothing_and_leaves_no_temp_file(store):
    class Broken:
        def update(self, data: bytes) -> None:
            raise RuntimeError("hash failed")

    with store.writer() as out:
        out._written._hash._digest = Broken()  # type: ignore[assignment]
        out.write(bytes(2 * CHUNK_SIZE))
        with pytest.raises(RuntimeError, match="hash failed"):
            out.commit()
    assert list(store.tmp_dir.iterdir()) == []
    assert not store.objects_dir.exists()
    assert _hash_threads() == []


def test_empty_content_is_never_stored(store):
    pointer = store.ingest(io.BytesIO(b""))
    assert pointer == Pointer(EMPTY_OID, 0)
    assert not store.objects_dir.exists()
    assert store.open(pointer).read() == b""


def test_open_streams_the_object_and_reports_missing_or_wrong_size(store):
    pointer = store.ingest(io.BytesIO(b"payload"))
    with store.open(pointer) as f:
        assert f.read() == b"payload"
    with pytest.raises(ObjectNotFoundError, match="not in the local store"):
        store.open(Pointer(sha256(b"nope"), 4))
    with pytest.raises(ObjectNotFoundError, match="wrong size"):
        store.open(Pointer(pointer.oid, 99))
    with store.open(pointer) as f:  # the file object_path names, reached without pathlib
        assert os.path.samefile(f.name, store.object_path(pointer.oid))
        assert f.name == str(store.object_path(pointer.oid))


def test_verify_catches_a_corrupted_object(store):
    pointer = store.ingest(io.BytesIO(b"good bytes"))
    assert store.verify(pointer.oid)
    path = store.object_path(pointer.oid)
    os.chmod(path, 0o644)
    path.write_bytes(b"bad  bytes")
    assert not store.verify(pointer.oid)
    assert not store.verify(sha256(b"absent"))


def test_publish_file_checks_hash_and_always_removes_the_temp(store):
    good = b"downloaded"
    pointer = Pointer(sha256(good), len(good))
    temp = store.temp_path(pointer.oid)
    temp.write_bytes(b"tampered!!")
    with pytest.raises(IntegrityError):
        store.publish_file(temp, pointer)
    assert not temp.exists()
    assert not store.contains(pointer)
    temp = store.temp_path(pointer.oid)
    temp.write_bytes(good)
    store.publish_file(temp, pointer)
    assert not temp.exists()
    assert store.object_path(pointer.oid).read_bytes() == good


def test_a_wrong_size_object_is_replaced_by_good_bytes(store):
    pointer = store.ingest(io.BytesIO(b"0123456789"))
    path = store.object_path(pointer.oid)
    path.write_bytes(b"short")
    assert not store.contains(pointer)
    store.ingest(io.BytesIO(b"0123456789"))
    assert path.read_bytes() == b"0123456789"


def test_object_path_refuses_traversal(store):
    with pytest.raises(InvalidOidError):
        store.object_path("../../etc/passwd")


def test_iter_objects_lists_well_named_objects_only(store):
    a = store.ingest(io.BytesIO(b"a"))
    b = store.ingest(io.BytesIO(b"bb"))
    (store.objects_dir / "zz").mkdir()
    (store.objects_dir / "zz" / "junk").write_text("x")
    assert sorted(store.iter_objects(), key=lambda p: p.oid) == sorted([a, b], key=lambda p: p.oid)


def test_clean_tmp_removes_finished_and_stale_files_only(store):
    pointer = store.ingest(io.BytesIO(b"done"))
    store.tmp_dir.mkdir(parents=True, exist_ok=True)
    finished = store.tmp_dir / f"{pointer.oid}-leftover"
    fresh = store.tmp_dir / "ingest-fresh"
    stale = store.tmp_dir / "ingest-stale"
    for f in (finished, fresh, stale):
        f.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    assert store.clean_tmp() == 2
    assert [p.name for p in store.tmp_dir.iterdir()] == ["ingest-fresh"]


def test_check_file_refuses_a_wrong_size_without_hashing_it(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(b"hello")

    def no_hashing(_: Path) -> tuple[str, int]:
        raise AssertionError("a file of the wrong size was hashed")

    with pytest.raises(IntegrityError, match=r"got 5 bytes, expected 4 bytes"):
        check_file(path, Pointer(sha256(b"hell"), 4), "from s3://b", hash_file=no_hashing)
    with pytest.raises(AssertionError, match="was hashed"):  # the right size is hashed
        check_file(path, Pointer(sha256(b"hello"), 5), hash_file=no_hashing)


def test_check_file_trusts_a_read_back_hash_only_for_the_whole_file(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    good = Pointer(sha256(b"hello"), 5)
    check_file(path, good, hashed=good)
    with pytest.raises(IntegrityError, match="got 5 bytes hashing to"):
        check_file(path, good, "from s3://b", hashed=Pointer(sha256(b"jello"), 5))
    # A hash of only the file's start does not vouch for it: the file is hashed again.
    check_file(path, good, hashed=Pointer(sha256(b"hel"), 3))
    with pytest.raises(IntegrityError):
        check_file(path, Pointer(sha256(b"hel"), 3), hashed=Pointer(sha256(b"hel"), 3))


def test_clean_tmp_keeps_a_lock_file_a_live_process_holds(tmp_path):
    import fcntl
    import time as _time

    store = ObjectStore(tmp_path / "lfs")
    tmp = store.ensure_tmp()
    held, free = tmp / ("a" * 64 + ".lock"), tmp / ("b" * 64 + ".lock")
    held.write_text("")
    free.write_text("")
    with open(held, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Both are "stale" by their age; only the free one may go.
        assert store.clean_tmp(now=_time.time() + 7200) == 1
        assert held.exists() and not free.exists()
