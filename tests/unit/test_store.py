"""The local object store: layout, atomic ingest, verification."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import threading
import time
from pathlib import Path

import pytest

from lfs_agent import store as store_module
from lfs_agent.errors import IntegrityError, InvalidOidError, ObjectNotFoundError
from lfs_agent.pointer import EMPTY_OID, Pointer
from lfs_agent.store import (
    CHECK_RECORD_MIN,
    CHECK_RECORD_NAME,
    CHUNK_SIZE,
    READ_AHEAD_MIN,
    BackgroundHash,
    ObjectStore,
    RangeHash,
    WriteHash,
    _hash_read_ahead,
    check_file,
    hash_file,
)
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


@pytest.mark.parametrize(
    "sizes",
    [
        [],
        [5, 6000],  # less than a batch: hashed by the caller, no thread
        [CHUNK_SIZE],
        [65516] * 40 + [3],  # pkt-line payloads, as the clean filter gets them
        [CHUNK_SIZE - 1, 2, 3 * CHUNK_SIZE, 1],
    ],
)
def test_background_hash_is_sha256_and_size_of_all_chunks(sizes):
    data = random_bytes(sum(sizes))
    offsets = [0, *itertools.accumulate(sizes)]
    with BackgroundHash() as digest:
        for start, end in itertools.pairwise(offsets):
            digest.update(data[start:end])
        assert (_hash_threads() != []) == (len(data) >= CHUNK_SIZE)
        assert (digest.hexdigest(), digest.size) == (sha256(data), len(data))
        assert _hash_threads() == []


def test_background_hash_left_without_a_digest_ends_its_thread():
    with BackgroundHash() as digest:
        digest.update(bytes(2 * CHUNK_SIZE))
        assert len(_hash_threads()) == 1
    assert _hash_threads() == []


def test_a_hashing_failure_in_the_thread_is_raised_by_hexdigest_without_a_hang():
    class Broken:
        def update(self, data: bytes) -> None:
            raise RuntimeError("hash failed")

    digest = BackgroundHash(depth=1)
    digest._digest = Broken()  # type: ignore[assignment]
    for _ in range(6):  # more batches than the queue holds: the thread keeps taking them
        digest.update(bytes(CHUNK_SIZE))
    with pytest.raises(RuntimeError, match="hash failed"):
        digest.hexdigest()
    assert _hash_threads() == []


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


def test_background_hash_holds_at_most_depth_batches_while_hashing_lags():
    gate = threading.Event()

    class Stalled:
        def update(self, data: bytes) -> None:
            gate.wait()

    digest = BackgroundHash(depth=2)
    digest._digest = Stalled()  # type: ignore[assignment]
    handed: list[int] = []

    def feed() -> None:
        for i in range(10):
            digest.update(bytes(CHUNK_SIZE))
            handed.append(i)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    deadline = time.monotonic() + 30
    while len(handed) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # time enough for a queue without a bound to take all ten
    # One batch in the hashing thread, two waiting: the fourth update waits for room.
    assert len(handed) == 3
    assert feeder.is_alive()
    gate.set()
    feeder.join()
    digest.close()
    assert handed == list(range(10))
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


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_SIZE, READ_AHEAD_MIN - 1, READ_AHEAD_MIN, READ_AHEAD_MIN + 12345]
)
def test_hash_file_is_sha256_and_size_below_and_above_the_read_ahead_size(tmp_path, size):
    data = random_bytes(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert hash_file(path) == (sha256(data), size)


class _FailingFile(io.FileIO):
    """Reads one chunk, then fails like a disk error would."""

    def readinto(self, buffer):  # type: ignore[override]
        if self.tell():
            raise OSError(5, "Input/output error")
        return super().readinto(buffer)


def test_a_read_error_during_read_ahead_is_raised_and_the_reader_ends(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(random_bytes(READ_AHEAD_MIN))
    before = threading.active_count()
    with _FailingFile(path) as src, pytest.raises(OSError, match="Input/output error"):
        _hash_read_ahead(src, hashlib.sha256())
    assert threading.active_count() == before


def test_a_hashing_failure_stops_the_read_ahead_thread_without_reading_on(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(random_bytes(READ_AHEAD_MIN * 4))

    class Broken:
        def update(self, data: memoryview) -> None:
            raise RuntimeError("hash failed")

    before = threading.active_count()
    with io.FileIO(path) as src:
        with pytest.raises(RuntimeError, match="hash failed"):
            _hash_read_ahead(src, Broken())  # type: ignore[arg-type]
        assert threading.active_count() == before
        assert src.tell() <= 4 * CHUNK_SIZE  # the reader stopped with its spare buffers


def _range_hash_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "range-hash"]


def test_range_hash_hashes_ranges_written_in_any_order(tmp_path: Path):
    data = random_bytes(3 * CHUNK_SIZE + 17, seed=8)
    path = tmp_path / "f"
    path.write_bytes(data)
    bounds = [(0, CHUNK_SIZE), (CHUNK_SIZE, 2 * CHUNK_SIZE + 5), (2 * CHUNK_SIZE + 5, len(data))]
    for order in itertools.permutations(bounds):
        with RangeHash(path) as hasher:
            for start, end in order:
                hasher.written(start, end)
            assert hasher.pointer() == Pointer(sha256(data), len(data))
    assert _range_hash_threads() == []


def test_range_hash_stops_at_the_first_range_not_yet_written(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(b"a" * 100)
    with RangeHash(path) as hasher:
        hasher.written(0, 40)
        hasher.written(60, 100)  # 40-60 never arrives: a download that failed
        assert hasher.pointer() == Pointer(sha256(b"a" * 40), 40)
    assert _range_hash_threads() == []


def test_range_hash_raises_when_the_file_is_shorter_than_its_ranges(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(b"short")
    with RangeHash(path) as hasher:
        hasher.written(0, 10)
        with pytest.raises(OSError, match="ends at byte 5"):
            hasher.pointer()
    assert _range_hash_threads() == []


def test_range_hash_left_without_a_pointer_ends_its_thread(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(bytes(10))
    with RangeHash(path) as hasher:
        hasher.written(0, 10)
        assert len(_range_hash_threads()) == 1
    assert _range_hash_threads() == []


def test_check_file_refuses_a_wrong_size_without_hashing_it(tmp_path: Path, monkeypatch):
    path = tmp_path / "f"
    path.write_bytes(b"hello")

    def no_hashing(_: Path) -> tuple[str, int]:
        raise AssertionError("a file of the wrong size was hashed")

    monkeypatch.setattr(store_module, "hash_file", no_hashing)
    with pytest.raises(IntegrityError, match=r"got 5 bytes, expected 4 bytes"):
        check_file(path, Pointer(sha256(b"hell"), 4), "from s3://b")
    with pytest.raises(AssertionError, match="was hashed"):  # the right size is hashed
        check_file(path, Pointer(sha256(b"hello"), 5))


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


@pytest.mark.parametrize("have", [0, 5, CHUNK_SIZE + 3])
def test_write_hash_keeps_and_hashes_the_start_then_what_is_written(tmp_path: Path, have):
    data = random_bytes(3 * CHUNK_SIZE + 11, seed=7)
    path = tmp_path / "f"
    path.write_bytes(data[:have] + b"stale tail from an earlier attempt")
    with open(path, "r+b") as f, WriteHash(f, have) as written:
        assert written.size == have
        for start in range(have, len(data), CHUNK_SIZE // 2):
            written.write(data[start : start + CHUNK_SIZE // 2])
        assert written.pointer() == Pointer(sha256(data), len(data))
    assert path.read_bytes() == data
    assert _hash_threads() == []


def test_write_hash_restart_empties_the_file_and_the_hash(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(b"old bytes")
    with open(path, "r+b") as f, WriteHash(f, 3) as written:
        written.write(bytes(2 * CHUNK_SIZE))  # the hashing thread has started
        written.restart()
        written.write(b"new")
        assert written.pointer() == Pointer(sha256(b"new"), 3)
    assert path.read_bytes() == b"new"
    assert _hash_threads() == []


class _CutMeanwhile(io.FileIO):
    """A file cut short by someone else after the download measured it."""

    def truncate(self, size: int | None = None) -> int:
        return self.tell()  # no extension with zeros: the file stays short


def test_write_hash_of_a_file_shorter_than_its_start_raises_and_ends(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(bytes(10))
    with _CutMeanwhile(path, "r+b") as f, pytest.raises(OSError, match="ends at byte 10, not"):
        WriteHash(f, 2 * CHUNK_SIZE)  # type: ignore[arg-type]
    assert _hash_threads() == []


# The record of objects the store checked as it wrote them (ObjectStore.is_checked).

BIG = random_bytes(CHECK_RECORD_MIN, seed=21)


def _next_clock_tick() -> None:
    """Let the file system's coarse clock move on, so a ctime set now differs."""
    time.sleep(0.05)


def test_a_large_object_the_store_wrote_is_recorded_as_checked(store):
    pointer = store.ingest(io.BytesIO(BIG))
    assert store.is_checked(pointer)
    assert ObjectStore(store.root).is_checked(pointer)  # read back from the record
    assert not store.is_checked(Pointer(pointer.oid, pointer.size + 1))
    small = store.ingest(io.BytesIO(BIG[: CHECK_RECORD_MIN - 1]))
    assert not store.is_checked(small)  # hashing it is cheap: never recorded
    lines = (store.root / CHECK_RECORD_NAME).read_text().splitlines()
    assert [line.split()[0] for line in lines] == [pointer.oid]


def _write_in_place(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(b"X")


def _write_and_restore_times(path: Path) -> None:
    before = os.stat(path)
    _next_clock_tick()
    _write_in_place(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _replace_by_a_copy(path: Path) -> None:
    copy = path.with_name("copy")
    copy.write_bytes(path.read_bytes())
    os.replace(copy, path)


def _link_elsewhere(path: Path) -> None:
    _next_clock_tick()
    os.link(path, path.with_name("second-name"))


@pytest.mark.parametrize(
    "change",
    [_write_in_place, _write_and_restore_times, _replace_by_a_copy, _link_elsewhere],
    ids=["written", "written-times-restored", "replaced", "linked"],
)
def test_any_change_to_a_checked_object_ends_its_record(store, change):
    pointer = store.ingest(io.BytesIO(BIG))
    assert store.is_checked(pointer)
    change(store.object_path(pointer.oid))
    assert not store.is_checked(pointer)
    assert not ObjectStore(store.root).is_checked(pointer)


def test_a_download_linked_from_a_bucket_is_neither_redated_nor_recorded(store, tmp_path):
    pointer = Pointer(sha256(BIG), len(BIG))
    bucket_file = tmp_path / "bucket-object"
    bucket_file.write_bytes(BIG)
    before = os.stat(bucket_file)
    temp = store.temp_path(pointer.oid)
    os.link(bucket_file, temp)
    store.publish_file(temp, pointer)
    assert os.stat(bucket_file).st_mtime_ns == before.st_mtime_ns
    assert store.contains(pointer)
    assert not store.is_checked(pointer)


def test_an_object_written_between_its_rename_and_the_record_is_not_recorded(store, monkeypatch):
    replace = os.replace

    def replace_then_write(src: object, dst: object) -> None:
        replace(src, dst)  # type: ignore[arg-type]
        _write_in_place(Path(str(dst)))  # another process, at the worst moment

    monkeypatch.setattr(store_module.os, "replace", replace_then_write)
    pointer = store.ingest(io.BytesIO(BIG))
    monkeypatch.undo()
    assert store.contains(pointer)
    assert not store.is_checked(pointer)
    assert not (store.root / CHECK_RECORD_NAME).exists()


def test_lines_of_the_record_that_do_not_parse_are_passed_over(store):
    pointer = store.ingest(io.BytesIO(BIG))
    record = store.root / CHECK_RECORD_NAME
    good = record.read_text()
    record.write_text(f"garbage\n{pointer.oid} 1 2 x\n{'A' * 64} 1 2 3 4 5\n\xff\n" + good)
    assert ObjectStore(store.root).is_checked(pointer)
    record.write_text(good.rsplit(" ", 1)[0] + " not-a-number\n")
    assert not ObjectStore(store.root).is_checked(pointer)


def test_compacting_the_record_keeps_only_what_it_still_vouches_for(store):
    kept, removed, changed = (
        store.ingest(io.BytesIO(random_bytes(CHECK_RECORD_MIN, seed=seed))) for seed in (1, 2, 3)
    )
    record = store.root / CHECK_RECORD_NAME
    with open(record, "a") as f:
        f.write("garbage\n" + record.read_text().splitlines()[0] + "\n")  # and a repeat
    store.remove(removed.oid)
    _write_in_place(store.object_path(changed.oid))

    assert store.compact_checked() == 4  # of 5 lines (3 objects, garbage, a repeat)
    assert [line.split()[0] for line in record.read_text().splitlines()] == [kept.oid]
    assert store.is_checked(kept) and ObjectStore(store.root).is_checked(kept)
    assert not ObjectStore(store.root).is_checked(changed)
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".")] == []
    assert store.compact_checked() == 0


def test_compacting_without_a_record_writes_none(store):
    assert store.compact_checked() == 0
    assert not (store.root / CHECK_RECORD_NAME).exists()


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
