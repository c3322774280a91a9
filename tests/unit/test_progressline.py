"""The live progress line: what it draws, when, and what it counts."""

from __future__ import annotations

import io

from lfs_agent.pointer import Pointer
from lfs_agent.progressline import ProgressLine, human_rate, human_size

MB = 1000 * 1000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pointer(n: int, size: int) -> Pointer:
    return Pointer(oid=f"{n:064x}", size=size)


def test_sizes_and_rates_read_as_git_lfs_prints_them() -> None:
    assert human_size(12) == "12 B"
    assert human_size(3_000) == "3.0 KB"
    assert human_size(139 * MB) == "139 MB"
    assert human_rate(18 * MB) == "18 MB/s"


def test_the_line_moves_with_bytes_before_any_file_ends() -> None:
    clock, out = Clock(), io.StringIO()
    big = pointer(1, 300 * MB)
    line = ProgressLine("Uploading", [big], out, live=True, clock=clock)
    report = line.progress(big)
    clock.now += 1
    report(100 * MB)
    assert line.text() == "Uploading LFS objects:  33% (0/1), 100 MB | 100 MB/s, 2 s left"
    assert out.getvalue().endswith("Uploading LFS objects:  33% (0/1), 100 MB | 100 MB/s, 2 s left")


def test_redraws_are_throttled_and_the_end_says_done() -> None:
    clock, out = Clock(), io.StringIO()
    p = pointer(1, 10 * MB)
    line = ProgressLine("Downloading", [p], out, live=True, clock=clock)
    report = line.progress(p)
    for _ in range(10):
        clock.now += 0.01
        report(MB // 2)
    assert out.getvalue().count("\r") == 1  # one draw in 0.1 s of reports
    line.done(p, None)
    line.finish()
    assert out.getvalue().endswith("100% (1/1), 10 MB | 50 MB/s, done.\n")


def test_a_retry_rewinds_and_a_failure_takes_its_bytes_back() -> None:
    clock, out = Clock(), io.StringIO()
    a, b = pointer(1, 50 * MB), pointer(2, 50 * MB)
    line = ProgressLine("Uploading", [a, b, a], out, live=True, clock=clock)
    assert (line.total_files, line.total_bytes) == (2, 100 * MB)
    report = line.progress(a)
    report(30 * MB)
    report(-30 * MB)
    assert line.done_bytes == 0
    report(20 * MB)
    line.done(a, RuntimeError("refused"))
    assert (line.done_files, line.done_bytes) == (1, 0)


def test_a_skipped_object_counts_whole_but_not_in_the_rate() -> None:
    clock, out = Clock(), io.StringIO()
    a, b = pointer(1, 50 * MB), pointer(2, 50 * MB)
    line = ProgressLine("Uploading", [a, b], out, live=True, clock=clock)
    clock.now += 1
    line.done(a, None)  # the bucket had it: no bytes moved
    assert line.done_bytes == 50 * MB
    assert line.rate() is None
    line.progress(b)(10 * MB)
    clock.now += 1
    assert line.rate() == 5 * MB


def test_the_rate_follows_the_recent_seconds() -> None:
    clock, out = Clock(), io.StringIO()
    p = pointer(1, 1000 * MB)
    line = ProgressLine("Downloading", [p], out, live=False, clock=clock)
    report = line.progress(p)
    for _ in range(10):  # 10 s at 50 MB/s, then a stall
        clock.now += 1
        report(50 * MB)
    for _ in range(10):
        clock.now += 1
        report(0)
    assert line.rate() is None
    clock.now += 1
    report(10 * MB)
    assert line.rate() is not None and line.rate() < 5 * MB


def test_nothing_is_drawn_off_a_terminal() -> None:
    out = io.StringIO()
    p = pointer(1, MB)
    line = ProgressLine("Uploading", [p], out, live=False, clock=Clock())
    line.progress(p)(MB)
    line.done(p, None)
    line.finish()
    assert out.getvalue() == ""


def test_a_shorter_line_covers_the_longer_one_before_it() -> None:
    clock, out = Clock(), io.StringIO()
    p = pointer(1, 100 * MB)
    line = ProgressLine("Uploading", [p], out, live=True, clock=clock)
    report = line.progress(p)
    clock.now += 1
    report(10 * MB)  # "... | 10 MB/s, 9 s left"
    clock.now += 1
    line.done(p, None)
    drawn = out.getvalue().split("\r")
    assert len(drawn[-1]) >= len(drawn[-2])
