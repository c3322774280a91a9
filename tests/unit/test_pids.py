"""Whether a process still runs, zombies counted as ended."""

from __future__ import annotations

import os
import subprocess
import sys

from lfs_agent.pids import alive


def test_this_process_runs_and_an_ended_one_does_not():
    assert alive(os.getpid())
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not alive(proc.pid)


def test_a_process_that_ended_but_is_not_reaped_counts_as_ended():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # ended, still a zombie
    try:
        assert not alive(proc.pid)
    finally:
        proc.wait()
