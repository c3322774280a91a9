"""What ``status`` shows, computed by ``scan.lfs_status`` against real git."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfs_agent.git import Git
from lfs_agent.scan import lfs_status
from tests.conftest import agent, git
from tests.helpers import pointer_bytes

pytestmark = pytest.mark.integration


def paths(files) -> list[str]:
    return [f.path for f in files]


def test_before_the_first_commit_everything_staged_is_to_be_committed(tmp_path: Path):
    git("init", "-q", "-b", "main", str(tmp_path), cwd=tmp_path)
    (tmp_path / "b.bin").write_bytes(pointer_bytes(b"b\n"))
    (tmp_path / "a.bin").write_bytes(pointer_bytes(b"a\n"))
    (tmp_path / "plain.txt").write_text("not a pointer\n")
    git("add", ".", cwd=tmp_path)
    status = lfs_status(Git(tmp_path))
    assert (status.branch, status.upstream, status.to_push) == ("main", "", None)
    assert paths(status.staged) == ["a.bin", "b.bin"]
    assert status.unstaged == []


def test_objects_to_push_staged_and_modified(tmp_path: Path):
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    git("init", "-q", "--bare", str(origin), cwd=tmp_path)
    git("init", "-q", "-b", "main", str(work), cwd=tmp_path)
    (work / "pushed.bin").write_bytes(pointer_bytes(b"pushed\n"))
    git("add", ".", cwd=work)
    git("commit", "-qm", "one", cwd=work)
    git("remote", "add", "origin", str(origin), cwd=work)
    git("push", "-q", "-u", "origin", "main", cwd=work)
    # Two commits the upstream lacks, naming the same object twice: listed once.
    (work / "new.bin").write_bytes(pointer_bytes(b"new\n"))
    git("add", ".", cwd=work)
    git("commit", "-qm", "two", cwd=work)
    (work / "copy.bin").write_bytes(pointer_bytes(b"new\n"))
    git("add", ".", cwd=work)
    git("commit", "-qm", "three", cwd=work)
    (work / "staged.bin").write_bytes(pointer_bytes(b"staged\n"))
    git("add", "staged.bin", cwd=work)
    (work / "pushed.bin").write_bytes(b"edited, not yet cleaned\n")

    status = lfs_status(Git(work))
    assert (status.branch, status.upstream) == ("main", "origin/main")
    assert status.to_push is not None and len(status.to_push) == 1
    assert status.to_push[0].path in ("copy.bin", "new.bin")
    assert paths(status.staged) == ["staged.bin"]
    assert paths(status.unstaged) == ["pushed.bin"]

    shown = agent("status", cwd=work).stdout.decode()
    assert shown.startswith("On branch main\n\nObjects to be pushed to origin/main:\n")
    assert "Objects to be committed:\n\tstaged.bin (LFS: " in shown
    oid = status.unstaged[0].pointer.oid
    assert shown.endswith(f"Objects not staged for commit:\n\tpushed.bin (LFS: {oid[:10]})\n")


def test_a_detached_head_without_upstream_compares_with_the_first_remote(tmp_path: Path):
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    git("init", "-q", "--bare", str(origin), cwd=tmp_path)
    git("init", "-q", "-b", "main", str(work), cwd=tmp_path)
    (work / "a.bin").write_bytes(pointer_bytes(b"a\n"))
    git("add", ".", cwd=work)
    git("commit", "-qm", "one", cwd=work)
    git("remote", "add", "origin", str(origin), cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    (work / "b.bin").write_bytes(pointer_bytes(b"b\n"))
    git("add", ".", cwd=work)
    git("commit", "-qm", "two", cwd=work)
    git("checkout", "-q", "--detach", cwd=work)
    status = lfs_status(Git(work))
    assert (status.branch, status.upstream) == ("", "")
    assert paths(status.to_push or []) == ["b.bin"]
    assert agent("status", cwd=work).stdout.decode().startswith("On branch (detached HEAD)\n")
