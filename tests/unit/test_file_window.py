"""FileWindow: a window of a file as an upload's body, exactly its bytes, or an error."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from lfs_agent.backends.filewindow import FileWindow, SourceEndedError
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
    with FileWindow(src, sha256(TEN), 0, 10, progress) as body:
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
    with FileWindow(src, oid, 0, len(data), progress) as body:
        assert body.read(4) == data[:4]
        src.write_bytes(data[:100_000])  # cut short while it is being sent
        with pytest.raises(SourceEndedError) as caught:
            body.read(len(data))
    assert isinstance(caught.value, IntegrityError)
    assert str(caught.value) == (
        f"refusing to upload {oid}: {src} ended at byte 100000, "
        f"inside the bytes 0-{len(data) - 1} to send"
    )
    assert sum(progress.deltas) == 4  # only what was handed over


def test_a_retry_seeks_back_and_takes_its_progress_back(src: Path):
    progress = Progress()
    with FileWindow(src, sha256(TEN), 0, 10, progress) as body:
        assert body.read(6) == b"012345"
        assert body.seek(0) == 0
        assert body.tell() == 0
        assert body.read() == b"0123456789"
    assert progress.deltas == [6, -6, 10]


def test_a_window_inside_the_file_counts_from_its_own_start(src: Path):
    with FileWindow(src, sha256(TEN), 3, 4) as body:
        assert len(body) == 4
        assert body.read() == b"3456"
        assert body.seek(-1, io.SEEK_END) == 3
        assert body.read() == b"6"
        assert body.seek(10) == 4  # clamped to the window
        assert body.read(1) == b""


def test_a_window_past_the_files_end_names_the_bytes_it_was_to_send(src: Path):
    with FileWindow(src, "ab" * 32, 8, 5) as body, pytest.raises(SourceEndedError) as caught:
        body.read()
    assert str(caught.value) == (
        f"refusing to upload {'ab' * 32}: {src} ended at byte 10, inside the bytes 8-12 to send"
    )


def test_a_missing_file_is_not_found(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        FileWindow(tmp_path / "gone", "ab" * 32, 0, 1)
