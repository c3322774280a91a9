"""DelayedDownloads: one download per oid, paths listed once finished, failures listed too."""

from __future__ import annotations

import threading
from pathlib import Path

from lfs_agent.errors import ObjectNotFoundError
from lfs_agent.pointer import Pointer
from lfs_agent.smudge_downloads import DelayedDownloads, Unverified
from tests.helpers import sha256

A = Pointer(sha256(b"a"), 1)
B = Pointer(sha256(b"b"), 1)


class GatedFetch:
    """A fetch that holds each download until its oid's gate opens; counts the calls."""

    def __init__(self) -> None:
        self.gates = {A.oid: threading.Event(), B.oid: threading.Event()}
        self.calls: list[str] = []
        self.failing: set[str] = set()
        self.unverified: dict[str, Unverified] = {}

    def __call__(self, pointer: Pointer) -> Unverified | None:
        self.calls.append(pointer.oid)
        assert self.gates[pointer.oid].wait(30)
        if pointer.oid in self.failing:
            raise ObjectNotFoundError(f"object {pointer.oid} is not on remote file:///b")
        return self.unverified.get(pointer.oid)


def test_paths_are_listed_as_their_download_ends_one_download_per_oid():
    fetch = GatedFetch()
    delayed = DelayedDownloads(fetch, concurrency=2)
    try:
        delayed.add("a1", A)
        delayed.add("a2", A)
        delayed.add("b", B)
        assert delayed.take("a1") is None  # not finished: not to be taken yet
        fetch.gates[B.oid].set()
        assert delayed.wait_available() == ["b"]
        fetch.gates[A.oid].set()
        assert sorted(delayed.wait_available()) == ["a1", "a2"]
        assert delayed.wait_available() == []  # nothing left
        assert sorted(fetch.calls) == sorted([A.oid, B.oid])
        assert delayed.take("a1") == (A, True, None)
        assert delayed.take("a1") is None  # taken once
        delayed.add("a3", A)  # an oid already downloaded: ready at once
        assert delayed.wait_available() == ["a3"]
        assert fetch.calls.count(A.oid) == 1
    finally:
        delayed.close()


def test_a_failed_download_is_listed_with_its_reason(caplog):
    fetch = GatedFetch()
    fetch.failing.add(A.oid)
    fetch.gates[A.oid].set()
    delayed = DelayedDownloads(fetch, concurrency=1)
    try:
        delayed.add("a.bin", A)
        assert delayed.wait_available() == ["a.bin"]
        assert delayed.take("a.bin") == (A, False, None)
        assert delayed.error_of(A) == f"object {A.oid} is not on remote file:///b"
        assert delayed.error_of(B) == ""
        delayed.add_failed("b.bin", B, ObjectNotFoundError("gone"))
        assert delayed.wait_available() == ["b.bin"]
    finally:
        delayed.close()
    assert f"a.bin: object {A.oid} is not on remote file:///b" in caplog.text
    assert "b.bin: gone" in caplog.text


def test_an_unchecked_download_goes_to_the_first_path_and_close_removes_the_rest(
    tmp_path: Path,
):
    fetch = GatedFetch()
    for pointer in (A, B):
        temp = tmp_path / pointer.oid
        temp.write_bytes(b"x")
        fetch.unverified[pointer.oid] = Unverified(temp, "from file:///b")
        fetch.gates[pointer.oid].set()
    delayed = DelayedDownloads(fetch, concurrency=2)
    delayed.add("a1", A)
    delayed.add("b", B)
    listed = set(delayed.wait_available())
    while len(listed) < 2:
        listed |= set(delayed.wait_available())
    delayed.add("a2", A)
    assert delayed.wait_available() == ["a2"]
    assert delayed.take("a1") == (A, True, fetch.unverified[A.oid])
    assert delayed.take("a2") == (A, True, None)  # finds the object in the store
    delayed.close()  # b's download was never taken: its temp file goes
    assert (tmp_path / A.oid).exists()  # a1's, handed over: the taker's to remove
    assert not (tmp_path / B.oid).exists()
