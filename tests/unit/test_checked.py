"""The record of large objects the store checked as it wrote them (``CheckedRecord``)."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from lfs_agent.checked import CHECK_RECORD_MIN, CHECK_RECORD_NAME
from lfs_agent.pointer import Pointer
from lfs_agent.store import ObjectStore
from tests.helpers import random_bytes, sha256

BIG = random_bytes(CHECK_RECORD_MIN, seed=21)


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(tmp_path / "lfs")


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


def test_an_object_written_between_its_rename_and_the_record_is_not_recorded(tmp_path):
    def replace_then_write(src: Path, dst: Path) -> None:
        os.replace(src, dst)
        _write_in_place(dst)  # another process, at the worst moment

    store = ObjectStore(tmp_path / "lfs", replace=replace_then_write)
    pointer = store.ingest(io.BytesIO(BIG))
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
