"""Ctrl-C during a push: lfs-agent stops at once, says what it did, and the next run ends it.

The bucket is the HTTP test server reading each upload at a slow rate, so that the push
is still sending when the interrupt comes.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import AGENT, agent, git
from tests.helpers import sha256, write_random

pytestmark = pytest.mark.integration
MIB = 1024 * 1024


def bucket_objects(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / "lfs" / "objects").rglob("*") if p.is_file()}


def test_ctrl_c_stops_a_push_within_two_seconds_and_the_next_push_completes_it(
    http_server, tmp_path: Path
):
    root = tmp_path / "http-root"  # where the http_server fixture keeps its files
    work = tmp_path / "work"
    git("init", "-q", str(work), cwd=tmp_path)
    assert agent("install", "--remote", http_server.url + "/lfs", cwd=work).returncode == 0
    agent("track", "*.bin", cwd=work)
    oids = {write_random(work / f"m{i:02d}.bin", MIB, seed=i) for i in range(12)}
    git("add", "-A", cwd=work)
    git("commit", "-qm", "models", cwd=work)
    (root / ".throttle").write_text(str(128 * 1024))  # 8 s an object

    push = subprocess.Popen(
        [*AGENT, "push", "--all"], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    time.sleep(1.5)  # uploads are under way
    push.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = push.communicate(timeout=30)
    assert time.monotonic() - sent < 2, err
    assert push.returncode == 130, err
    said = err.decode()
    assert "lfs-agent: interrupted: 0 of 12 object(s) uploaded (0 B), 12 not;" in said, said
    assert "run the command again for the rest" in said
    assert "Traceback" not in said
    # Nothing half-sent became an object (the server's temp files start with a dot).
    for name, data in bucket_objects(root).items():
        if not name.startswith("."):
            assert sha256(data) == name

    (root / ".throttle").unlink()
    again = agent("push", "--all", cwd=work)
    assert again.returncode == 0, again.stderr
    held = {n: d for n, d in bucket_objects(root).items() if not n.startswith(".")}
    assert set(held) == oids
    assert all(sha256(data) == name for name, data in held.items())


def test_ctrl_c_prints_no_traceback_from_a_filter_git_runs(repo: Path) -> None:
    """git's Ctrl-C reaches the filter too: it leaves in one line, not a traceback."""
    assert agent("install", "--remote", str(repo.parent / "bucket"), cwd=repo).returncode == 0
    filt = subprocess.Popen(
        [*AGENT, "filter-process"],
        cwd=repo,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(1)  # waiting for git's handshake
    filt.send_signal(signal.SIGINT)
    _, err = filt.communicate(timeout=10)
    assert filt.returncode == 130
    assert b"Traceback" not in err
    assert err.strip().splitlines() == [b"lfs-agent: interrupted"]
