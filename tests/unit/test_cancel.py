"""Cancelling transfers: the flag workers check, and a pool that stops at the first failure."""

from __future__ import annotations

import threading

import pytest

from lfs_agent.cancel import Cancel, Cancelled, run_each


def test_a_guarded_progress_forwards_until_cancelled_then_raises() -> None:
    seen: list[int] = []
    cancel = Cancel()
    report = cancel.guard(seen.append)
    report(5)
    cancel.set()
    with pytest.raises(Cancelled):
        report(7)
    assert seen == [5]


def test_a_cancellation_is_not_an_exception_a_retry_loop_would_catch() -> None:
    assert not issubclass(Cancelled, Exception)


def test_run_each_returns_results_in_order() -> None:
    assert run_each(lambda n: n * n, [3, 1, 2], workers=2, name="t") == [9, 1, 4]


def test_run_each_drops_the_items_not_started_once_one_fails() -> None:
    started: list[int] = []
    lock = threading.Lock()
    first_failed = threading.Event()

    def work(n: int) -> int:
        with lock:
            started.append(n)
        if n == 0:
            first_failed.set()
            raise Cancelled
        first_failed.wait(5)
        threading.Event().wait(0.02)  # each item takes a while
        return n

    with pytest.raises(Cancelled):
        run_each(work, list(range(50)), workers=2, name="t")
    assert len(started) < 50  # the queued ones never ran
