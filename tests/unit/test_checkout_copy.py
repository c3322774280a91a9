"""checkout's copy of an object into the work tree: in the kernel, or through a buffer."""

from __future__ import annotations

import errno
import os

import pytest

from lfs_agent.checkout import _copy_file
from tests.helpers import random_bytes


@pytest.mark.parametrize("refusal", [None, errno.EINVAL, errno.ENOSYS])
def test_copy_file_copies_in_the_kernel_or_through_a_buffer(tmp_path, refusal):
    data = random_bytes(3 * 1024 * 1024 + 7)
    (tmp_path / "src").write_bytes(data)
    calls: list[int] = []

    def refuse_after_one(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        if calls and refusal is not None:  # a refusal midway: the buffer copy goes on
            raise OSError(refusal, os.strerror(refusal))
        calls.append(count)
        return os.sendfile(out_fd, in_fd, offset, 1024 * 1024)

    with open(tmp_path / "src", "rb", buffering=0) as src, open(tmp_path / "dst", "wb") as dst:
        _copy_file(src, dst, refuse_after_one)
    assert (tmp_path / "dst").read_bytes() == data
    # In the kernel: a MiB a call until it returns 0 at the end; else refused at the second.
    assert len(calls) == (5 if refusal is None else 1)


def test_copy_file_raises_a_real_write_error(tmp_path):
    (tmp_path / "src").write_bytes(b"x" * 100)

    def full(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with open(tmp_path / "src", "rb") as src, open(tmp_path / "dst", "wb") as dst:
        with pytest.raises(OSError, match="No space left"):
            _copy_file(src, dst, full)
