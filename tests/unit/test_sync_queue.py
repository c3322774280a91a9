"""The transfer queue (sync.push, sync.fetch, sync.run_batch) over the memory backend."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from lfs_agent.backends import Backend
from lfs_agent.errors import (
    RetriableError,
    TransferError,
    UnreachableError,
)
from lfs_agent.pointer import Pointer
from lfs_agent.progress import NULL_PROGRESS, Progress
from lfs_agent.remote import Remote
from lfs_agent.scan import PointerFile
from lfs_agent.store import ObjectStore
from lfs_agent.sync import fetch, push
from tests.helpers import random_bytes, sha256
from tests.memory_backend import MemoryBackend

#: Objects of distinct sizes, smallest first.
SMALL, MEDIUM, LARGE = (random_bytes(size, seed=size) for size in (10, 2000, 50_000))


def pointer_of(data: bytes) -> Pointer:
    return Pointer(sha256(data), len(data))


def files_of(*blobs: bytes) -> list[PointerFile]:
    """A file for each blob, named by its place."""
    return [PointerFile(f"f{i}.bin", pointer_of(b), "0" * 40) for i, b in enumerate(blobs)]


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(tmp_path / "lfs")


@pytest.fixture
def bucket() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
def remote(bucket: MemoryBackend) -> Remote:
    return Remote(bucket.url, opener=bucket.opener())


def leftovers(store: ObjectStore) -> list[Path]:
    """Data files left in the store's tmp (lock files stay by design)."""
    if not store.tmp_dir.exists():
        return []
    return [p for p in store.tmp_dir.iterdir() if p.suffix != ".lock"]


def test_the_memory_backend_has_every_member_of_the_protocol():
    members = {name for name in vars(Backend) if not name.startswith("_")}
    members |= set(Backend.__annotations__)
    assert members <= set(dir(MemoryBackend()))


def test_fetch_downloads_only_what_the_store_lacks(store, bucket, remote):
    store.ingest(io.BytesIO(MEDIUM))
    for blob in (SMALL, MEDIUM, LARGE):
        bucket.objects[sha256(blob)] = blob
    result = fetch(store, remote, files_of(SMALL, MEDIUM, LARGE), concurrency=4)
    assert sorted(bucket.calls_of("download")) == sorted([sha256(LARGE), sha256(SMALL)])
    assert sorted(result.done, key=lambda p: p.size) == [pointer_of(SMALL), pointer_of(LARGE)]
    assert all(store.contains(pointer_of(b)) for b in (SMALL, MEDIUM, LARGE))
    assert leftovers(store) == []


def test_push_skips_what_the_remote_holds_with_the_right_size(store, bucket, remote):
    for blob in (SMALL, MEDIUM, LARGE):
        store.ingest(io.BytesIO(blob))
    bucket.objects[sha256(SMALL)] = SMALL
    bucket.objects[sha256(MEDIUM)] = MEDIUM[:-1]  # cut short: sent again
    result = push(store, remote, files_of(SMALL, MEDIUM, LARGE), concurrency=1)
    assert result.skipped == [pointer_of(SMALL)]
    assert bucket.calls_of("upload") == [sha256(LARGE), sha256(MEDIUM)]
    assert bucket.objects[sha256(MEDIUM)] == MEDIUM


def test_each_object_moves_once_however_many_files_point_at_it(store, bucket, remote):
    for blob in (SMALL, LARGE):
        store.ingest(io.BytesIO(blob))
    files = files_of(SMALL, LARGE, SMALL, LARGE, SMALL)
    push(store, remote, files, concurrency=4)
    assert sorted(bucket.calls_of("upload")) == sorted([sha256(SMALL), sha256(LARGE)])
    other = ObjectStore(store.root.parent / "other")
    result = fetch(other, remote, files, concurrency=4)
    assert sorted(bucket.calls_of("download")) == sorted([sha256(SMALL), sha256(LARGE)])
    assert len(result.done) == 2


def test_largest_objects_go_first_and_empty_ones_not_at_all(store, bucket, remote):
    for blob in (SMALL, MEDIUM, LARGE, b""):
        bucket.objects[sha256(blob)] = blob
    fetch(store, remote, files_of(SMALL, b"", LARGE, MEDIUM), concurrency=1)
    assert bucket.calls_of("download") == [sha256(LARGE), sha256(MEDIUM), sha256(SMALL)]


def test_a_corrupt_download_fails_its_object_and_leaves_nothing(store, bucket, remote):
    bucket.objects[sha256(SMALL)] = SMALL
    forged = bytes(len(MEDIUM))  # the right size, other bytes
    bucket.objects[sha256(MEDIUM)] = forged
    bucket.objects[sha256(LARGE)] = LARGE[:100]  # the wrong size
    with pytest.raises(TransferError) as caught:
        fetch(store, remote, files_of(SMALL, MEDIUM, LARGE), concurrency=2)
    message = str(caught.value)
    assert "2 object(s) failed to download (memory://bucket)" in message
    assert f"object {sha256(MEDIUM)} from memory://bucket is corrupt" in message
    assert f"hashing to {sha256(forged)}" in message
    assert f"object {sha256(LARGE)} from memory://bucket is corrupt: got 100 bytes" in message
    assert store.contains(pointer_of(SMALL))
    assert not store.contains(pointer_of(MEDIUM)) and not store.contains(pointer_of(LARGE))
    assert not store.object_path(sha256(MEDIUM)).exists()
    assert leftovers(store) == []


def test_a_failure_is_that_objects_alone(store, bucket, remote):
    for blob in (SMALL, LARGE):
        bucket.objects[sha256(blob)] = blob
    bucket.errors[sha256(MEDIUM)] = RetriableError("503 Slow Down")
    told: dict[str, BaseException | None] = {}
    lock = threading.Lock()

    class Watch:
        def progress(self, pointer: Pointer) -> Progress:
            return NULL_PROGRESS

        def done(self, pointer: Pointer, error: BaseException | None) -> None:
            with lock:
                told[pointer.oid] = error

    with pytest.raises(TransferError) as caught:
        fetch(store, remote, files_of(SMALL, MEDIUM, LARGE), concurrency=3, watch=Watch())
    assert str(caught.value) == (
        f"1 object(s) failed to download (memory://bucket):\n  {sha256(MEDIUM)}: 503 Slow Down"
    )
    assert store.contains(pointer_of(SMALL)) and store.contains(pointer_of(LARGE))
    assert told[sha256(SMALL)] is None and told[sha256(LARGE)] is None
    assert isinstance(told[sha256(MEDIUM)], RetriableError)


def test_a_missing_object_names_itself(store, bucket, remote):
    with pytest.raises(TransferError) as caught:
        fetch(store, remote, files_of(SMALL), concurrency=1)
    assert f"object {sha256(SMALL)} is not on remote memory://bucket" in str(caught.value)


def test_an_unreachable_remote_stops_the_batch(store, bucket, remote):
    blobs = (SMALL, MEDIUM, LARGE)
    unreachable = UnreachableError("cannot reach memory://bucket: Connection refused")
    for blob in blobs:
        bucket.objects[sha256(blob)] = blob
        bucket.errors[sha256(blob)] = unreachable
    with pytest.raises(TransferError) as caught:
        fetch(store, remote, files_of(*blobs), concurrency=1)
    assert bucket.calls_of("download") == [sha256(LARGE)]  # the others were not tried
    lines = str(caught.value).splitlines()
    assert lines[1] == "  3 objects: cannot reach memory://bucket: Connection refused"
    # A later batch of the same remote fails at once too.
    with pytest.raises(TransferError, match="Connection refused"):
        fetch(store, remote, files_of(SMALL), concurrency=1)
    assert bucket.calls_of("download") == [sha256(LARGE)]


def test_the_backends_bound_on_workers_holds(store):
    # The first download waits for a second one to start: without the bound, one
    # does at once; with it, the wait ends unanswered and the downloads run in turn.
    second_started = threading.Event()
    running = most = started = 0
    lock = threading.Lock()

    class Bounded(MemoryBackend):
        def download(self, oid, dest_path, size, progress):  # type: ignore[no-untyped-def]
            nonlocal running, most, started
            with lock:
                running += 1
                most = max(most, running)
                started += 1
                first = started == 1
                if not first:
                    second_started.set()
            try:
                if first:
                    second_started.wait(0.5)
                return super().download(oid, dest_path, size, progress)
            finally:
                with lock:
                    running -= 1

    blobs = [random_bytes(100, seed=i) for i in range(4)]
    for max_workers in (1, None):
        bucket = Bounded(max_workers=max_workers)
        for blob in blobs:
            bucket.objects[sha256(blob)] = blob
        second_started.clear()
        running = most = started = 0
        target = ObjectStore(store.root.parent / f"lfs-{max_workers}")
        fetch(target, Remote(bucket.url, opener=bucket.opener()), files_of(*blobs), concurrency=4)
        assert (most == 1) == (max_workers == 1)
        assert all(target.contains(pointer_of(b)) for b in blobs)
