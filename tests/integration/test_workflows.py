"""Everyday git workflows on a repository using lfs-agent, without git-lfs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import agent, git
from tests.helpers import sha256

pytestmark = pytest.mark.integration

FILES = {
    "a/x.bin": b"in the cone\n" * 100,
    "b/y.bin": b"outside the cone\n" * 100,
    "top.bin": b"at the top\n" * 100,
}


def stored(repo: Path) -> set[str]:
    base = repo / ".git" / "lfs" / "objects"
    return {p.name for p in base.rglob("*") if p.is_file()} if base.exists() else set()


@pytest.fixture
def server(tmp_path: Path, no_git_lfs_path) -> Path:
    """A bare repository holding FILES through lfs-agent, pushed to a folder bucket."""
    server, work = tmp_path / "server.git", tmp_path / "author"
    git("init", "-q", "--bare", str(server), cwd=tmp_path)
    git("init", "-q", str(work), cwd=tmp_path)
    agent("install", "--remote", str(tmp_path / "bucket"), cwd=work)
    agent("track", "*.bin", cwd=work)
    for name, data in FILES.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "files", cwd=work)
    git("remote", "add", "origin", str(server), cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    return server


def test_pull_in_a_sparse_checkout_leaves_what_is_outside_the_cone(tmp_path: Path, server: Path):
    clone = tmp_path / "sparse"
    env = {**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"}
    git("clone", "-q", "--no-checkout", str(server), str(clone), cwd=tmp_path, env=env)
    git("sparse-checkout", "set", "a", cwd=clone, env=env)
    git("checkout", "-q", "main", cwd=clone, env=env)
    assert agent("install", cwd=clone).returncode == 0
    out = agent("pull", cwd=clone)
    assert out.returncode == 0, out.stderr
    assert (clone / "a/x.bin").read_bytes() == FILES["a/x.bin"]
    assert (clone / "top.bin").read_bytes() == FILES["top.bin"]  # the cone keeps the top
    assert not (clone / "b").exists()
    assert sha256(FILES["b/y.bin"]) not in stored(clone)  # not downloaded either
    assert git("status", "--porcelain", cwd=clone).stdout == b""
    # Widening the cone brings the file in through the filter.
    git("sparse-checkout", "add", "b", cwd=clone)
    assert (clone / "b/y.bin").read_bytes() == FILES["b/y.bin"]


def test_git_checkout_fails_when_a_download_fails_and_leaves_pointers(tmp_path: Path, server: Path):
    # git itself ends the checkout with 0 when a delayed smudge never delivers: the
    # post-checkout hook carries the failure, so 'git checkout v2 && ./eval' stops.
    author = tmp_path / "author"
    git("checkout", "-qb", "v2", cwd=author)
    (author / "v2.bin").write_bytes(b"version two\n" * 50)
    (author / "v2-other.bin").write_bytes(b"another file\n" * 50)
    git("add", "-A", cwd=author)
    git("commit", "-qm", "v2", cwd=author)
    git("push", "-q", "origin", "v2", cwd=author)
    missing = sha256(b"version two\n" * 50)
    obj = tmp_path / "bucket/objects" / missing[:2] / missing[2:4] / missing
    hidden = tmp_path / "hidden"
    obj.rename(hidden)

    clone = tmp_path / "c"
    out = agent("clone", str(server), str(clone), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    checkout = git("checkout", "-q", "v2", cwd=clone, check=False)
    assert checkout.returncode != 0
    err = checkout.stderr.decode()
    assert "1 file(s) were left as pointers" in err
    assert f"v2.bin: object {missing} is not on remote" in err
    assert (clone / "v2-other.bin").read_bytes() == b"another file\n" * 50
    assert (clone / "v2.bin").read_bytes().startswith(b"version https://git-lfs")
    assert git("status", "--porcelain", cwd=clone).stdout == b""
    # Once the bucket has it again, a pull completes the work tree; the next checkout
    # reports nothing stale.
    hidden.rename(obj)
    assert agent("pull", cwd=clone).returncode == 0
    assert (clone / "v2.bin").read_bytes() == b"version two\n" * 50
    assert git("checkout", "-q", "main", cwd=clone, check=False).returncode == 0
