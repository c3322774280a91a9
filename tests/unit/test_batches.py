"""sync.run_batch: how many threads a batch uses, per backend, and how failures are told."""

from __future__ import annotations

import errno
import signal
import threading
import time

import pytest

from lfs_agent.backends import Capability
from lfs_agent.errors import (
    BackendError,
    LocalError,
    RetriableError,
    TransferError,
    UnreachableError,
    agent_error,
)
from lfs_agent.pointer import Pointer
from lfs_agent.progress import NULL_PROGRESS, Progress
from lfs_agent.remote import Remote
from lfs_agent.scan import PointerFile
from lfs_agent.store import ObjectStore
from lfs_agent.sync import FAILURES_SHOWN, Interrupted, fetch, run_batch
from tests.helpers import sha256


class Bounded:
    url = "fake://bucket"
    capabilities: frozenset[Capability] = frozenset()

    def __init__(self, max_workers: int | None) -> None:
        self.max_workers = max_workers

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("bound", "expected"), [(2, 2), (None, 4), (16, 4)])
def test_a_batch_uses_the_configured_threads_up_to_the_backends_bound(bound, expected):
    remote = Remote("fake://bucket", opener=lambda *_: Bounded(bound))  # type: ignore[arg-type,return-value]
    threads: set[int] = set()
    # The first tasks wait for one another: the pool must run `expected` at once. One
    # thread too many would wait at the barrier's next round, and time it out.
    all_running = threading.Event()
    barrier = threading.Barrier(expected, action=all_running.set, timeout=30)

    def action(pointer: Pointer, progress: Progress) -> bool:
        threads.add(threading.get_ident())
        if not all_running.is_set():
            barrier.wait()
        return True

    pointers = [Pointer(sha256(bytes([i])), 1) for i in range(12)]
    result = run_batch(remote, pointers, action, concurrency=4)
    assert len(result.done) == 12
    assert len(threads) == expected


def test_failures_sharing_a_cause_are_reported_once_with_a_few_oids(tmp_path):
    bucket = tmp_path / "bucket"
    remote = Remote(bucket.as_uri())
    store = ObjectStore(tmp_path / "lfs")
    missing = [Pointer(sha256(bytes([i])), 1) for i in range(8)]
    corrupt = b"right bytes"
    bad = Pointer(sha256(corrupt), len(corrupt))
    key = bucket / "objects" / bad.oid[:2] / bad.oid[2:4] / bad.oid
    key.parent.mkdir(parents=True)
    key.write_bytes(b"wrong bytes")
    files = [PointerFile(f"f{i}", p, "0" * 40) for i, p in enumerate([*missing, bad])]
    with pytest.raises(TransferError) as caught:
        fetch(store, remote, files, concurrency=2)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"9 object(s) failed to download ({bucket.as_uri()}):"
    assert f"  8 objects: object <oid> is not on remote {bucket.as_uri()}" in lines
    shown = sorted(p.oid for p in missing)[:FAILURES_SHOWN]
    assert [line.strip() for line in lines if line.startswith("    ")][:5] == shown
    assert "    ... and 3 more" in lines
    assert any(line.startswith(f"  {bad.oid}: ") and "corrupt" in line for line in lines)
    assert len(lines) == 1 + 1 + FAILURES_SHOWN + 1 + 1


class Denying(Bounded):
    """A bucket refusing every object, naming its key as S3 and GCS errors do."""

    def __init__(self, quoted: bool) -> None:
        super().__init__(None)
        self.sep = "%2F" if quoted else "/"

    def download(self, oid: str, *args: object) -> None:
        key = self.sep.join(["pre", "objects", oid[:2], oid[2:4], oid])
        raise BackendError(f"access denied to s3://bkt/{key}: check the bucket policy")


@pytest.mark.parametrize("quoted", [False, True])
def test_one_cause_naming_each_objects_key_is_still_one_group(tmp_path, quoted):
    remote = Remote("fake://bucket", opener=lambda *_: Denying(quoted))  # type: ignore[arg-type,return-value]
    pointers = [Pointer(sha256(bytes([i])), 1) for i in range(3)]
    files = [PointerFile(f"f{i}", p, "0" * 40) for i, p in enumerate(pointers)]
    with pytest.raises(TransferError) as caught:
        fetch(ObjectStore(tmp_path / "lfs"), remote, files, concurrency=2)
    sep = "%2F" if quoted else "/"
    assert str(caught.value).splitlines()[1:] == [
        f"  3 objects: access denied to s3://bkt/pre{sep}objects{sep}<oid>: "
        "check the bucket policy",
        *(f"    {oid}" for oid in sorted(p.oid for p in pointers)),
    ]


def test_a_cause_of_one_object_is_told_as_it_was_said(tmp_path):
    remote = Remote("fake://bucket", opener=lambda *_: Denying(False))  # type: ignore[arg-type,return-value]
    pointer = Pointer(sha256(b"x"), 1)
    with pytest.raises(TransferError) as caught:
        fetch(ObjectStore(tmp_path / "lfs"), remote, [PointerFile("x", pointer, "0" * 40)], 1)
    oid = pointer.oid
    assert str(caught.value).splitlines()[1] == (
        f"  {oid}: access denied to s3://bkt/pre/objects/{oid[:2]}/{oid[2:4]}/{oid}: "
        "check the bucket policy"
    )


def test_an_os_error_becomes_the_objects_failure_in_the_systems_words():
    full = agent_error(OSError(errno.ENOSPC, "No space left on device"))
    assert (type(full), str(full)) == (LocalError, "No space left on device")
    named = agent_error(OSError(errno.EROFS, "Read-only file system", "/bucket/objects/ab"))
    assert str(named) == "Read-only file system: /bucket/objects/ab"
    ours = BackendError("refused")
    assert agent_error(ours) is ours


class Unreachable(Bounded):
    """A bucket no connection can be made to; counts the tries."""

    def __init__(self) -> None:
        super().__init__(None)
        self.tries = 0

    def download(self, oid: str, *args: object) -> None:
        self.tries += 1
        raise UnreachableError("cannot reach fake://bucket: Connection refused")

    stat = download  # a push asks first whether the bucket has the object


class Told:
    """A watch that keeps (oid, error text) of each object as it ends."""

    def __init__(self, told: list[tuple[str, str]]) -> None:
        self.told = told

    def progress(self, pointer: Pointer) -> Progress:
        return NULL_PROGRESS

    def done(self, pointer: Pointer, error: BaseException | None) -> None:
        self.told.append((pointer.oid, str(error)))


@pytest.mark.parametrize("verb", ["download", "upload"])
def test_a_remote_that_cannot_be_reached_fails_the_objects_left_at_once(tmp_path, verb):
    bucket = Unreachable()
    remote = Remote("fake://bucket", opener=lambda *_: bucket)  # type: ignore[arg-type,return-value]
    store = ObjectStore(tmp_path / "lfs")
    pointers = [Pointer(sha256(bytes([i])), 1) for i in range(10)]
    told: list[tuple[str, str]] = []
    result = run_batch(
        remote,
        pointers,
        lambda p, progress: getattr(remote, verb)(store, p, progress),
        concurrency=1,
        watch=Told(told),
    )
    assert bucket.tries == 1  # one try, not ten rounds of retries
    assert sorted(result.failed) == sorted(p.oid for p in pointers)
    assert {str(e) for e in result.failed.values()} == {
        "cannot reach fake://bucket: Connection refused"
    }
    assert {type(e) for e in result.failed.values()} == {UnreachableError}
    assert sorted(told) == sorted(
        (p.oid, "cannot reach fake://bucket: Connection refused") for p in pointers
    )


def test_a_failure_of_one_object_leaves_the_others_to_run():
    remote = Remote("fake://bucket", opener=lambda *_: Bounded(None))  # type: ignore[arg-type,return-value]
    first = Pointer(sha256(b"big"), 9)  # largest: run first

    def action(pointer: Pointer, progress: Progress) -> bool:
        if pointer == first:
            raise RetriableError("fake://bucket kept failing (503) after 5 attempts")
        return True

    pointers = [first, *(Pointer(sha256(bytes([i])), 1) for i in range(5))]
    result = run_batch(remote, pointers, action, concurrency=1)
    assert list(result.failed) == [first.oid]
    assert len(result.done) == 5


def test_ctrl_c_drops_queued_objects_and_stops_running_ones_at_their_next_chunk():
    remote = Remote("fake://bucket", opener=lambda *_: Bounded(None))  # type: ignore[arg-type,return-value]
    pointers = [Pointer(sha256(bytes([i])), 100 - i) for i in range(10)]
    small = pointers[-1]  # largest first: the smallest is queued last
    started: list[str] = []
    both_running = threading.Barrier(3)
    stopped: list[str] = []

    def action(pointer: Pointer, progress: Progress) -> bool:
        started.append(pointer.oid)
        both_running.wait()
        for _ in range(2000):  # a long transfer, one "chunk" per report
            try:
                progress(1)
            except BaseException:
                stopped.append(pointer.oid)
                raise
            time.sleep(0.005)
        return True

    def interrupt() -> None:
        both_running.wait()
        signal.pthread_kill(main, signal.SIGINT)

    main = threading.get_ident()
    threading.Thread(target=interrupt, daemon=True).start()
    began = time.monotonic()
    with pytest.raises(Interrupted) as caught:
        run_batch(remote, pointers, action, concurrency=2)
    assert time.monotonic() - began < 2
    assert len(started) == 2  # the eight queued were never started
    assert small.oid not in started
    result = caught.value.result
    assert (result.done, result.skipped, result.failed) == ([], [], {})
    assert caught.value.total == 10
    assert sorted(stopped) == sorted(started)  # both running transfers stopped
