"""The store under real concurrency and real kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lfs_agent.pointer import Pointer
from lfs_agent.store import ObjectStore
from tests.helpers import sha256

pytestmark = pytest.mark.integration

INGEST = """
import sys
from lfs_agent.store import ObjectStore
store = ObjectStore(sys.argv[1])
p = store.ingest(sys.stdin.buffer)
print(p.oid, p.size, flush=True)
"""


def _spawn(root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", INGEST, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_two_processes_ingesting_the_same_content_end_with_one_good_object(tmp_path: Path):
    root = tmp_path / "lfs"
    chunk = os.urandom(1024 * 1024)
    data = chunk * 8
    procs = [_spawn(root), _spawn(root)]
    # Interleave the writes so both are mid-ingest at the same time.
    for i in range(8):
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(data[i * len(chunk) : (i + 1) * len(chunk)])
            proc.stdin.flush()
    outputs = [proc.communicate()[0].decode().split() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert outputs[0] == outputs[1] == [sha256(data), str(len(data))]
    store = ObjectStore(root)
    assert store.verify(sha256(data))
    assert list(store.iter_objects()) == [Pointer(sha256(data), len(data))]
    assert list(store.tmp_dir.iterdir()) == []


def test_a_process_killed_mid_ingest_leaves_nothing_at_the_final_path(tmp_path: Path):
    root = tmp_path / "lfs"
    proc = _spawn(root)
    assert proc.stdin is not None
    proc.stdin.write(b"x" * (3 * 1024 * 1024))
    proc.stdin.flush()
    store = ObjectStore(root)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # wait until bytes reached the temp file
        temps = list(store.tmp_dir.glob("*")) if store.tmp_dir.exists() else []
        if temps and temps[0].stat().st_size > 0:
            break
        time.sleep(0.02)
    else:
        pytest.fail("ingest never started writing")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not store.objects_dir.exists() or list(store.objects_dir.rglob("*")) == []
    # The orphaned temp file goes at once: its writer has ended.
    assert store.clean_tmp() == 1
