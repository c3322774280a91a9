"""Hashing objects: files read ahead, and bytes hashed by a second thread as they move."""

from __future__ import annotations

import hashlib
import io
import itertools
import threading
from pathlib import Path

import pytest

from lfs_agent.hashing import (
    CHUNK_SIZE,
    READ_AHEAD_MIN,
    BackgroundHash,
    RangeHash,
    WriteHash,
    _hash_read_ahead,
    hash_file,
)
from lfs_agent.pointer import Pointer
from tests.helpers import random_bytes, sha256


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

        def hexdigest(self) -> str:
            raise AssertionError("a failed hash was asked for its digest")

    digest = BackgroundHash(depth=1, digest=Broken())
    for _ in range(6):  # more batches than the queue holds: the thread keeps taking them
        digest.update(bytes(CHUNK_SIZE))
    with pytest.raises(RuntimeError, match="hash failed"):
        digest.hexdigest()
    assert _hash_threads() == []


def test_background_hash_holds_at_most_depth_batches_while_hashing_lags():
    gate = threading.Event()

    class Stalled:
        def update(self, data: bytes) -> None:
            gate.wait()

        def hexdigest(self) -> str:
            return ""

    digest = BackgroundHash(depth=2, digest=Stalled())
    handed: list[int] = []
    changed = threading.Condition()

    def feed() -> None:
        for i in range(10):
            digest.update(bytes(CHUNK_SIZE))
            with changed:
                handed.append(i)
                changed.notify_all()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    with changed:
        assert changed.wait_for(lambda: len(handed) >= 3, timeout=30)
        # One batch in the hashing thread, two waiting: the fourth update waits for
        # room. A queue without a bound would take the fourth at once.
        assert not changed.wait_for(lambda: len(handed) > 3, timeout=0.2)
    assert feeder.is_alive()
    gate.set()
    feeder.join()
    digest.close()
    assert handed == list(range(10))
    assert _hash_threads() == []


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
