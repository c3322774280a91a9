"""Remote.download: what a download cut short leaves behind, by object size."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfs_agent.errors import RetriableError
from lfs_agent.pointer import Pointer
from lfs_agent.remote import RESUMABLE_SIZE, Remote
from lfs_agent.store import ObjectStore
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
