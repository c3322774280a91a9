"""SourceBody: an upload's file as a request body, exactly its size, or an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfs_agent.backends import SourceBody
from lfs_agent.errors import IntegrityError
from tests.helpers import sha256


class Progress:
    def __init__(self) -> None:
        self.deltas: list[int] = []

    def __call__(self, delta: int) -> None:
        self.deltas.append(delta)


TEN = b"0123456789"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src"
    path.write_bytes(TEN)
    return path


def test_reads_stop_at_the_size_though_the_file_has_grown(src: Path):
    progress = Progress()
    with open(src, "rb") as f:
        body = SourceBody(f, sha256(TEN), src, 10, progress)
        with open(src, "ab") as more:
            more.write(b"appended later")
        assert len(body) == 10
        assert body.read(4) == b"0123"
        assert b"".join(body) == b"456789"
        assert body.read() == b""
    assert sum(progress.deltas) == 10


def test_a_file_that_ends_early_is_an_error_naming_the_object(tmp_path: Path):
    src = tmp_path / "src"
    data = bytes(range(256)) * 4096  # 1 MiB: past what the file object reads ahead
    src.write_bytes(data)
    oid = sha256(data)
    progress = Progress()
    with open(src, "rb") as f:
        body = SourceBody(f, oid, src, len(data), progress)
        assert body.read(4) == data[:4]
        src.write_bytes(data[:100_000])  # cut short while it is being sent
        with pytest.raises(IntegrityError) as caught:
            body.read(len(data))
    assert str(caught.value) == (
        f"refusing to upload {oid}: {src} ended at byte 100000, before its {len(data)} bytes"
    )
    assert sum(progress.deltas) == 4  # only what was handed over


def test_a_retry_seeks_back_and_takes_its_progress_back(src: Path):
    progress = Progress()
    with open(src, "rb") as f:
        body = SourceBody(f, sha256(TEN), src, 10, progress)
        assert body.read(6) == b"012345"
        assert body.seek(0) == 0
        assert body.tell() == 0
        assert body.read() == b"0123456789"
    assert progress.deltas == [6, -6, 10]
