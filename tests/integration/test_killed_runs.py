"""A run killed at any moment is completed by the next one, never left with wrong bytes.

The invariants checked after each re-run: every work-tree file holds its object (or its
pointer, where it was never written), ``git status`` is clean, every stored object hashes
to its name, and no temp file is left in the work tree.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lfs_agent.backends.local import _host
from lfs_agent.checkout import GIT_WRITES_MAX
from lfs_agent.hashing import hash_file
from tests.conftest import AGENT, agent, git
from tests.helpers import pointer_bytes, random_bytes, sha256

pytestmark = pytest.mark.integration

LARGE = {f"big{i}.bin": random_bytes(GIT_WRITES_MAX + 1 + i, seed=i) for i in range(2)}
SMALL = {f"s/small{i}.bin": random_bytes(3_000_000 + i, seed=10 + i) for i in range(8)}
FILES = {**LARGE, **SMALL}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("killed")
    env = {**os.environ, "HOME": str(root), "GIT_CONFIG_NOSYSTEM": "1"}
    (root / ".gitconfig").write_text(
        "[user]\n\tname = t\n\temail = t@e\n[init]\n\tdefaultBranch = main\n"
    )
    server, work = root / "server.git", root / "author"
    git("init", "-q", "--bare", str(server), cwd=root, env=env)
    git("init", "-q", str(work), cwd=root, env=env)
    agent("install", "--remote", str(root / "bucket"), cwd=work, env=env)
    agent("track", "*.bin", cwd=work, env=env)
    for name, data in FILES.items():
        (work / name).parent.mkdir(exist_ok=True)
        (work / name).write_bytes(data)
    git("add", "-A", cwd=work, env=env)
    git("commit", "-qm", "files", cwd=work, env=env)
    git("remote", "add", "origin", str(server), cwd=work, env=env)
    git("push", "-q", "origin", "main", cwd=work, env=env)
    return server


def pointers_clone(server: Path, dest: Path) -> Path:
    git(
        "clone",
        "-q",
        str(server),
        str(dest),
        cwd=dest.parent,
        env={**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"},
    )
    assert agent("install", cwd=dest).returncode == 0
    return dest


def check_invariants(clone: Path) -> None:
    for name, data in FILES.items():
        assert (clone / name).read_bytes() == data, name
    assert git("status", "--porcelain", cwd=clone).stdout == b""
    for obj in (clone / ".git/lfs/objects").rglob("*"):
        if obj.is_file():
            assert hash_file(obj)[0] == obj.name
    leftovers = [p for p in clone.rglob(".lfs-agent-*") if ".git" not in p.parts]
    assert leftovers == []


def test_a_file_cut_short_by_a_killed_write_is_completed(
    tmp_path: Path, server: Path, hermetic_env
):
    # What a killed 'git checkout-index' (or git's own checkout) leaves: the first bytes
    # of the object over the pointer, the index still holding the pointer's stat data.
    clone = pointers_clone(server, tmp_path / "c")
    assert agent("fetch", cwd=clone).returncode == 0
    (clone / "s/small3.bin").write_bytes(SMALL["s/small3.bin"][:1_000_000])
    (clone / "big1.bin").write_bytes(LARGE["big1.bin"][: 5 * 1024 * 1024])
    (clone / "s/small4.bin").write_bytes(b"")
    out = agent("pull", cwd=clone)
    assert out.returncode == 0, out.stderr
    check_invariants(clone)


def test_an_edit_that_is_no_prefix_of_the_object_is_never_touched(
    tmp_path: Path, server: Path, hermetic_env
):
    clone = pointers_clone(server, tmp_path / "c")
    (clone / "s/small3.bin").write_bytes(b"my own edit\n")
    assert agent("pull", cwd=clone).returncode == 0
    assert (clone / "s/small3.bin").read_bytes() == b"my own edit\n"
    assert git("status", "--porcelain", cwd=clone).stdout == b" M s/small3.bin\n"


def test_files_written_but_not_recorded_are_recorded_by_the_next_run(
    tmp_path: Path, server: Path, hermetic_env
):
    # A run killed between writing a large file and recording it in the index: git
    # takes the file for modified (its size is not the pointer's).
    clone = pointers_clone(server, tmp_path / "c")
    (clone / "big0.bin").write_bytes(LARGE["big0.bin"])
    inode = os.stat(clone / "big0.bin").st_ino
    assert git("status", "--porcelain", cwd=clone).stdout == b" M big0.bin\n"
    out = agent("pull", cwd=clone)
    assert out.returncode == 0, out.stderr
    check_invariants(clone)
    assert os.stat(clone / "big0.bin").st_ino == inode  # recorded, not written again


def test_temp_files_of_dead_runs_go_and_live_ones_stay(tmp_path: Path, server: Path, hermetic_env):
    clone = pointers_clone(server, tmp_path / "c")
    stale = clone / f".lfs-agent-{ended_pid()}-{'0' * 16}.tmp"
    stale.write_bytes(b"half an object")
    live = clone / f".lfs-agent-{os.getpid()}-{'1' * 16}.tmp"
    live.write_bytes(b"being written")
    assert agent("pull", cwd=clone).returncode == 0
    assert not stale.exists()
    assert live.exists()
    live.unlink()
    check_invariants(clone)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_pull_killed_at_a_random_moment_is_completed_by_the_next(
    tmp_path: Path, server: Path, hermetic_env, seed: int
):
    rng = random.Random(seed)
    clone = pointers_clone(server, tmp_path / "c")
    for _ in range(rng.randint(1, 2)):
        proc = subprocess.Popen(
            [*AGENT, "pull"],
            cwd=clone,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.05, 1.5))
        # The whole group, git's checkout-index too, as a killed terminal would.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        lock = clone / ".git/index.lock"
        if lock.exists():  # git killed mid-write leaves its lock, and says so itself
            lock.unlink()
        for name, data in FILES.items():  # never wrong bytes, at any moment
            # A pointer file is removed just before git writes its file: the index
            # still has it, and the next run restores it.
            got = (clone / name).read_bytes() if (clone / name).exists() else b""
            assert got == pointer_bytes(data) or data.startswith(got), name
    out = agent("pull", cwd=clone)
    assert out.returncode == 0, out.stderr
    check_invariants(clone)


def ended_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_files_of_killed_adds_and_uploads_go_with_the_next_run(
    tmp_path: Path, hermetic_env, no_git_lfs_path
):
    work, bucket = tmp_path / "w", tmp_path / "bucket"
    git("init", "-q", str(work), cwd=tmp_path)
    assert agent("install", "--remote", str(bucket), "--local", cwd=work).returncode == 0
    assert agent("track", "*.bin", cwd=work).returncode == 0
    tmp = work / ".git/lfs/tmp"
    tmp.mkdir(parents=True)
    dead = tmp / f"ingest-{ended_pid()}-{'a' * 16}"  # a 'git add' killed mid-file
    dead.write_bytes(b"x" * 1000)
    live = tmp / f"ingest-{os.getpid()}-{'b' * 16}"
    live.write_bytes(b"y")
    (work / "m.bin").write_bytes(b"model\n" * 100)
    git("add", "m.bin", cwd=work)
    assert not dead.exists() and live.exists()
    # A folder bucket's upload killed mid-copy, from this machine.
    git("config", "lfs-agent.local.link", "false", cwd=work)
    git("commit", "-qm", "m", cwd=work)
    oid = sha256(b"model\n" * 100)
    folder = bucket / "objects" / oid[:2] / oid[2:4]
    folder.mkdir(parents=True)
    stale = folder / f".{oid}.{_host()}-{ended_pid()}-{'c' * 12}.tmp"
    stale.write_bytes(b"half")
    other_host = folder / f".{oid}.00000000-{ended_pid()}-{'d' * 12}.tmp"
    other_host.write_bytes(b"half")  # another machine's: its pid says nothing here
    assert agent("push", "--all", cwd=work).returncode == 0
    assert not stale.exists() and other_host.exists()
    assert (folder / oid).read_bytes() == b"model\n" * 100
