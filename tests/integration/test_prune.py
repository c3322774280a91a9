"""``lfs-agent prune``: git-lfs's retention rules, ``--recent`` and ``--policy``.

Real git, a folder bucket and a bare git remote; commits dated days back with
``GIT_COMMITTER_DATE``, so that the recent windows have something to tell apart.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import agent, git
from tests.helpers import sha256

pytestmark = pytest.mark.integration

DAY = 86400
A, B, C = b"model v1\n", b"model v2\n", b"model v3\n"


@pytest.fixture
def work(tmp_path: Path, no_git_lfs_path: str) -> Path:
    """A repository using a folder bucket, ``*.bin`` tracked, ``origin`` a bare remote."""
    assert shutil.which("git-lfs") is None
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    work = tmp_path / "work"
    git("init", "-q", "-b", "main", str(work), cwd=tmp_path)
    out = agent("install", "--remote", str(tmp_path / "bucket"), cwd=work)
    assert out.returncode == 0, out.stderr
    assert agent("track", "*.bin", cwd=work).returncode == 0
    git("remote", "add", "origin", str(remote), cwd=work)
    return work


def commit(work: Path, age_days: float, files: dict[str, bytes | None]) -> None:
    """Write (None: delete) ``files`` and commit everything, dated ``age_days`` ago."""
    for name, data in files.items():
        if data is None:
            (work / name).unlink()
        else:
            (work / name).write_bytes(data)
    git("add", "-A", cwd=work)
    date = f"@{int(time.time() - age_days * DAY)} +0000"
    env = {**os.environ, "GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date}
    git("commit", "-q", "-m", f"{age_days} days ago", cwd=work, env=env)


def would_prune(work: Path, *args: str) -> set[str]:
    """The oids ``prune --dry-run ARGS`` lists."""
    out = agent("prune", "--dry-run", *args, cwd=work)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    return {line.split()[2] for line in lines if line.startswith("would prune ")}


def stored(work: Path) -> set[str]:
    return {p.name for p in (work / ".git/lfs/objects").rglob("*") if p.is_file()}


def oids(*contents: bytes) -> set[str]:
    return {sha256(data) for data in contents}


@pytest.fixture
def model_history(work: Path) -> Path:
    """model.bin: A 30 days ago, B 20 days ago, C today; all pushed."""
    commit(work, 30, {"model.bin": A, "keep.bin": b"kept\n"})
    commit(work, 20, {"model.bin": B})
    commit(work, 0, {"model.bin": C})
    git("push", "-q", "origin", "main", cwd=work)
    return work


def test_default_rules_prune_old_commits_objects_and_honour_the_windows(model_history: Path):
    work = model_history
    # git-lfs's defaults: no commits window, so only the tip's files stay.
    assert would_prune(work) == oids(A, B)
    # 7 days of commits and the 3-day offset before the tip: today's commit is inside,
    # and it keeps what it replaced (B); A is older.
    git("config", "lfs.fetchrecentcommitsdays", "7", cwd=work)
    assert would_prune(work) == oids(A)
    # An offset of 15 days widens the window to 22: the 20-day commit is inside.
    git("config", "lfs.pruneoffsetdays", "15", cwd=work)
    assert would_prune(work) == set()
    git("config", "lfs.pruneoffsetdays", "0", cwd=work)
    assert would_prune(work) == oids(A)

    git("config", "--unset", "lfs.fetchrecentcommitsdays", cwd=work)
    out = agent("prune", cwd=work)
    assert out.returncode == 0, out.stderr
    assert "pruned 2 object(s)" in out.stdout.decode()
    assert stored(work) == oids(C, b"kept\n")
    assert (work / "model.bin").read_bytes() == C


def test_recent_refs_by_their_tip_date_and_the_offset(work: Path):
    commit(work, 0, {"base.bin": b"base\n"})
    git("checkout", "-q", "-b", "old-topic", cwd=work)
    commit(work, 20, {"old.bin": b"old topic\n"})
    git("checkout", "-q", "-b", "new-topic", "main", cwd=work)
    commit(work, 5, {"new.bin": b"new topic\n"})
    git("checkout", "-q", "main", cwd=work)
    git("push", "-q", "origin", "main", "old-topic", "new-topic", cwd=work)

    # 7 + 3 days: new-topic (5 days old) is recent, old-topic (20) is not.
    assert would_prune(work) == oids(b"old topic\n")
    git("config", "lfs.pruneoffsetdays", "15", cwd=work)
    assert would_prune(work) == set()
    # Left only as origin/old-topic, it is still recent: remote-tracking refs count...
    git("branch", "-q", "-D", "old-topic", cwd=work)
    assert would_prune(work) == set()
    # ...unless lfs.fetchrecentremoterefs says they do not.
    git("config", "lfs.fetchrecentremoterefs", "false", cwd=work)
    assert would_prune(work) == oids(b"old topic\n")
    # --recent: only the current checkout (and anything unpushed) is kept.
    assert would_prune(work, "--recent") == oids(b"old topic\n", b"new topic\n")
    git("config", "lfs.fetchrecentrefsdays", "0", cwd=work)
    assert would_prune(work) == oids(b"old topic\n", b"new topic\n")


def test_a_policy_keeps_what_it_keeps_of_every_ref(model_history: Path):
    work = model_history
    git("tag", "v1", "main~2", cwd=work)
    # tips+tags: main's tree and the v1 tag's; B, in neither, goes.
    assert would_prune(work, "--policy", "tips+tags") == oids(B)
    git("tag", "-d", "v1", cwd=work)
    assert would_prune(work, "--policy", "tips+tags") == oids(A, B)
    assert would_prune(work, "--policy", "history") == set()
    assert would_prune(work, "--policy", "recent:25d") == oids(A)
    # A policy replaces git-lfs's windows: the offset no longer keeps anything.
    git("config", "lfs.fetchrecentcommitsdays", "30", cwd=work)
    assert would_prune(work) == set()
    assert would_prune(work, "--policy", "tips+tags") == oids(A, B)

    out = agent("prune", "--policy", "tips+tags", cwd=work)
    assert out.returncode == 0, out.stderr
    assert stored(work) == oids(C, b"kept\n")


def test_bad_policies_and_settings_are_refused_in_one_line(model_history: Path):
    work = model_history
    out = agent("prune", "--policy", "recent:30", cwd=work)
    assert out.returncode != 0
    assert "unknown retention policy 'recent:30'" in out.stderr.decode()
    assert len(out.stderr.decode().strip().splitlines()) == 1
    out = agent("prune", "--policy", "history", "--recent", cwd=work)
    assert out.returncode == 2 and b"not allowed with" in out.stderr
    git("config", "lfs.pruneoffsetdays", "three", cwd=work)
    out = agent("prune", cwd=work)
    assert out.returncode != 0
    assert "lfs.pruneoffsetdays must be a whole number of days" in out.stderr.decode()
    assert "Traceback" not in out.stderr.decode()
    assert stored(work) == oids(A, B, C, b"kept\n")


def test_unpushed_objects_are_always_kept(model_history: Path):
    work = model_history
    commit(work, 40, {"draft.bin": b"draft\n"})
    commit(work, 40, {"draft.bin": None})
    # Uploaded to the bucket, but its commits are not on origin: still kept.
    assert agent("push", cwd=work).returncode == 0
    # Never committed, and not in the bucket either.
    (work / "scratch.bin").write_bytes(b"scratch\n")
    git("add", "scratch.bin", cwd=work)
    git("rm", "-q", "--cached", "scratch.bin", cwd=work)
    (work / "scratch.bin").unlink()
    assert sha256(b"scratch\n") in stored(work)

    for args in ((), ("--recent",), ("--policy", "tips+tags")):
        assert would_prune(work, *args) == oids(A, B), args
    out = agent("prune", "--recent", cwd=work)
    assert "2 unused object(s) not yet pushed" in out.stdout.decode()
    assert stored(work) == oids(C, b"kept\n", b"draft\n", b"scratch\n")

    # Pushed, the draft is an old commit's object like any other.
    git("push", "-q", "origin", "main", cwd=work)
    assert would_prune(work, "--recent") == oids(b"draft\n")
    # lfs.pruneremotetocheck names another remote: nothing is pushed there.
    git("remote", "add", "fork", str(work.parent / "remote.git"), cwd=work)
    git("config", "lfs.pruneremotetocheck", "fork", cwd=work)
    assert would_prune(work, "--recent") == set()


def test_every_stash_and_other_worktrees_heads_and_indexes_are_kept(model_history: Path):
    work = model_history
    D, E, F = b"stashed first\n", b"stashed second\n", b"staged in a worktree\n"
    for data in (D, E):
        (work / "model.bin").write_bytes(data)
        git("stash", "-q", cwd=work)
    # In the bucket too, so that only the stash rule keeps them.
    assert agent("push", "origin", "stash@{0}", "stash@{1}", cwd=work).returncode == 0

    # A second worktree at B, with F staged there; F is in the bucket (pushed on a
    # branch that then moved back), so only that index keeps it.
    other = work.parent / "other"
    git("worktree", "add", "-q", "-b", "side", str(other), "main~1", cwd=work)
    (other / "model.bin").write_bytes(F)
    commit(other, 0, {})
    git("push", "-q", "origin", "side", cwd=other)
    git("reset", "-q", "--soft", "HEAD~1", cwd=other)
    git("push", "-q", "-f", "origin", "side", cwd=other)

    assert oids(D, E, F) <= stored(work)
    assert would_prune(work, "--recent") == oids(A)
    assert would_prune(work, "--policy", "tips+tags") == oids(A)
    git("stash", "drop", "-q", "stash@{1}", cwd=work)  # D, the first one stashed
    assert would_prune(work, "--recent") == oids(A, D)
    git("reset", "-q", "--hard", cwd=other)
    assert would_prune(work, "--recent") == oids(A, D, F)


def test_files_lfs_fetchexclude_matches_are_pruned_unless_unpushed(model_history: Path):
    work = model_history
    git("config", "lfs.fetchexclude", "keep.bin", cwd=work)
    # Checked out, yet excluded from fetching: git-lfs's prune lets it go.
    assert would_prune(work) == oids(A, B, b"kept\n")
    commit(work, 0, {"keep.bin": b"kept, changed\n"})
    assert agent("push", cwd=work).returncode == 0  # in the bucket, its commit unpushed
    assert would_prune(work) == oids(A, B, b"kept\n")
    git("push", "-q", "origin", "main", cwd=work)
    assert would_prune(work) == oids(A, B, b"kept\n", b"kept, changed\n")
    git("config", "--unset", "lfs.fetchexclude", cwd=work)
    assert would_prune(work) == oids(A, B, b"kept\n")
