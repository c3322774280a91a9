"""Remote.run_batch: how many threads a batch uses, per backend."""

from __future__ import annotations

import threading
import time

import pytest

from lfs_agent.pointer import Pointer
from lfs_agent.sync import Remote
from tests.helpers import sha256


class Bounded:
    url = "fake://bucket"

    def __init__(self, max_workers: int | None) -> None:
        self.max_workers = max_workers

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("bound", "expected"), [(2, 2), (None, 4), (16, 4)])
def test_a_batch_uses_the_configured_threads_up_to_the_backends_bound(bound, expected):
    remote = Remote("fake://bucket", opener=lambda *_: Bounded(bound))  # type: ignore[arg-type,return-value]
    threads: set[int] = set()

    def action(pointer: Pointer) -> bool:
        threads.add(threading.get_ident())
        time.sleep(0.02)  # all tasks are queued before the first one ends
        return True

    pointers = [Pointer(sha256(bytes([i])), 1) for i in range(12)]
    result = remote.run_batch(pointers, action, concurrency=4)
    assert len(result.done) == 12
    assert len(threads) == expected
