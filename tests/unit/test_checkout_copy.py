"""checkout's copy of an object into the work tree: in the kernel, or through a buffer."""

from __future__ import annotations

import errno
import os

import pytest

from lfs_agent.checkout import _copy_file
from tests.helpers import random_bytes


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
