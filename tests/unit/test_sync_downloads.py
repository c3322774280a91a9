"""Remote.download: what a download cut short leaves behind, by object size."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from lfs_agent.errors import RetriableError
from lfs_agent.pointer import Pointer
from lfs_agent.store import ObjectStore
from lfs_agent.sync import RESUMABLE_SIZE, Remote, _copy_file
from tests.helpers import random_bytes, sha256


class CutOnce:
    """A backend whose first download stops halfway; later ones continue from the file."""

    url = "fake://bucket"

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.resumed_at: list[int] = []

    def download(self, oid: str, dest: Path, size: int, progress: object) -> None:
        have = dest.stat().st_size if dest.exists() else 0
        self.resumed_at.append(have)
        if len(self.resumed_at) == 1:
            dest.write_bytes(self.data[: len(self.data) // 2])
            raise RetriableError("connection reset")
        with open(dest, "ab") as f:
            f.write(self.data[have:])

    def close(self) -> None:
        pass


def remote_for(backend: CutOnce) -> Remote:
    return Remote(backend.url, opener=lambda *_: backend)  # type: ignore[arg-type,return-value]


def data_files(store: ObjectStore) -> list[Path]:
    return [p for p in store.tmp_dir.iterdir() if p.suffix != ".lock"]


def test_a_large_download_cut_short_is_resumed(tmp_path: Path):
    data = random_bytes(RESUMABLE_SIZE + 10, seed=3)
    pointer = Pointer(sha256(data), len(data))
    store = ObjectStore(tmp_path / "lfs")
    backend = CutOnce(data)
    with pytest.raises(RetriableError):
        remote_for(backend).download(store, pointer)
    assert data_files(store) == [store.tmp_dir / f"{pointer.oid}.part"]
    assert remote_for(backend).download(store, pointer) is True
    assert backend.resumed_at == [0, len(data) // 2]
    assert store.object_path(pointer.oid).read_bytes() == data
    assert data_files(store) == []


def test_a_small_download_cut_short_leaves_nothing_and_starts_over(tmp_path: Path):
    data = b"small object"
    pointer = Pointer(sha256(data), len(data))
    store = ObjectStore(tmp_path / "lfs")
    backend = CutOnce(data)
    with pytest.raises(RetriableError):
        remote_for(backend).download(store, pointer)
    assert list(store.tmp_dir.iterdir()) == []
    assert remote_for(backend).download(store, pointer) is True
    assert backend.resumed_at == [0, 0]
    assert store.object_path(pointer.oid).read_bytes() == data
    assert remote_for(backend).download(store, pointer) is False  # already stored


@pytest.mark.parametrize("refusal", [None, errno.EINVAL, errno.ENOSYS])
def test_copy_file_copies_in_the_kernel_or_through_a_buffer(tmp_path, monkeypatch, refusal):
    data = random_bytes(3 * 1024 * 1024 + 7)
    (tmp_path / "src").write_bytes(data)
    if refusal is not None:
        calls = []
        real = os.sendfile

        def refuse_after_one(out_fd: int, in_fd: int, offset: None, count: int) -> int:
            if calls:  # a refusal midway: the buffer copy goes on from there
                raise OSError(refusal, os.strerror(refusal))
            calls.append(count)
            return real(out_fd, in_fd, offset, 1024 * 1024)

        monkeypatch.setattr(os, "sendfile", refuse_after_one)
    with open(tmp_path / "src", "rb", buffering=0) as src, open(tmp_path / "dst", "wb") as dst:
        _copy_file(src, dst)
    assert (tmp_path / "dst").read_bytes() == data


def test_copy_file_raises_a_real_write_error(tmp_path, monkeypatch):
    (tmp_path / "src").write_bytes(b"x" * 100)

    def full(out_fd: int, in_fd: int, offset: None, count: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "sendfile", full)
    with open(tmp_path / "src", "rb") as src, open(tmp_path / "dst", "wb") as dst:
        with pytest.raises(OSError, match="No space left"):
            _copy_file(src, dst)
