"""Everyday git workflows on a repository using lfs-agent, without git-lfs."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


def test_history_from_before_the_bucket_was_named_still_checks_out(tmp_path: Path, no_git_lfs_path):
    # The first commits name no remote (it was set in the author's own config, as
    # after moving from git-lfs); .lfsagent comes later.
    server, work, bucket = tmp_path / "server.git", tmp_path / "author", tmp_path / "bucket"
    git("init", "-q", "--bare", str(server), cwd=tmp_path)
    git("init", "-q", str(work), cwd=tmp_path)
    agent("install", "--local", "--remote", str(bucket), cwd=work)
    agent("track", "*.bin", cwd=work)
    (work / "model.bin").write_bytes(b"model v0\n" * 100)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "v0", cwd=work)
    git("branch", "older", cwd=work)
    (work / "model.bin").write_bytes(b"model v1\n" * 100)
    git("commit", "-qam", "v1", cwd=work)
    git("branch", "old", cwd=work)
    agent("install", "--remote", str(bucket), cwd=work)  # writes .lfsagent
    (work / "model.bin").write_bytes(b"model v2\n" * 100)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "v2 and .lfsagent", cwd=work)
    git("remote", "add", "origin", str(server), cwd=work)
    git("push", "-q", "origin", "main", "old", "older", cwd=work)

    clone = tmp_path / "c"
    assert agent("clone", str(server), str(clone), cwd=tmp_path).returncode == 0
    checkout = git("checkout", "-q", "old", cwd=clone, check=False)
    assert checkout.returncode == 0, checkout.stderr
    assert (clone / "model.bin").read_bytes() == b"model v1\n" * 100
    assert git("status", "--porcelain", cwd=clone).stdout == b""
    # From one commit without .lfsagent to another.
    checkout = git("checkout", "-q", "older", cwd=clone, check=False)
    assert checkout.returncode == 0, checkout.stderr
    assert (clone / "model.bin").read_bytes() == b"model v0\n" * 100
    assert git("status", "--porcelain", cwd=clone).stdout == b""

    # A clone of the old branch alone finds the remote on the default branch.
    only_old = tmp_path / "old"
    out = agent("clone", "-b", "old", str(server), str(only_old), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (only_old / "model.bin").read_bytes() == b"model v1\n" * 100
    # uninstall removes what clone recorded.
    agent("uninstall", cwd=only_old)
    assert b"fallback-remote" not in git("config", "--local", "--list", cwd=only_old).stdout


def test_clone_of_an_empty_repository_succeeds(tmp_path: Path, no_git_lfs_path):
    git("init", "-q", "--bare", str(tmp_path / "empty.git"), cwd=tmp_path)
    out = agent("clone", str(tmp_path / "empty.git"), str(tmp_path / "c"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "c/.git").is_dir()


def test_clone_skipping_download_errors_succeeds_with_pointers(tmp_path: Path, server: Path):
    missing = sha256(FILES["b/y.bin"])
    (tmp_path / "bucket/objects" / missing[:2] / missing[2:4] / missing).unlink()
    env = {**os.environ, "GIT_LFS_SKIP_DOWNLOAD_ERRORS": "1"}
    out = agent("clone", str(server), str(tmp_path / "c"), cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert f"{missing}" in out.stderr.decode()
    assert (tmp_path / "c/a/x.bin").read_bytes() == FILES["a/x.bin"]
    assert (tmp_path / "c/b/y.bin").read_bytes().startswith(b"version https://git-lfs")
    # Without it, the same clone fails naming the object.
    out = agent("clone", str(server), str(tmp_path / "d"), cwd=tmp_path)
    assert out.returncode == 2 and missing in out.stderr.decode()


@pytest.mark.parametrize("index", ["split", "GIT_INDEX_FILE"])
def test_pull_with_an_index_git_must_restage_and_small_files_too(
    tmp_path: Path, no_git_lfs_path, index: str
):
    # git's update-index re-cleans files besides those pull wrote (a split index): they
    # get an ordinary clean, not a refusal.
    from lfs_agent.checkout import GIT_WRITES_MAX
    from tests.helpers import random_bytes

    files = {"big.bin": random_bytes(GIT_WRITES_MAX + 1, seed=6), "small.bin": b"small\n" * 9}
    server, work = tmp_path / "server.git", tmp_path / "author"
    git("init", "-q", "--bare", str(server), cwd=tmp_path)
    git("init", "-q", str(work), cwd=tmp_path)
    agent("install", "--remote", str(tmp_path / "bucket"), cwd=work)
    agent("track", "*.bin", cwd=work)
    for name, data in files.items():
        (work / name).write_bytes(data)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "files", cwd=work)
    git("remote", "add", "origin", str(server), cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    clone = tmp_path / "c"
    env = {**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"}
    git("clone", "-q", str(server), str(clone), cwd=tmp_path, env=env)
    agent("install", cwd=clone)
    env = dict(os.environ)
    if index == "split":
        git("config", "core.splitIndex", "true", cwd=clone)
        git("update-index", "--split-index", cwd=clone)
    else:
        env["GIT_INDEX_FILE"] = str(clone / ".git/index")
    out = agent("pull", cwd=clone, env=env)
    assert out.returncode == 0, out.stderr
    for name, data in files.items():
        assert (clone / name).read_bytes() == data
    assert git("status", "--porcelain", cwd=clone, env=env).stdout == b""


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB file system (tmpfs), for a disk that really fills up."""
    import shutil
    import subprocess

    system = "/usr/bin:/bin:/usr/sbin:/sbin"
    mount_cmd, umount_cmd = shutil.which("mount", path=system), shutil.which("umount", path=system)
    if mount_cmd is None or umount_cmd is None:
        pytest.skip("no mount command to make a small file system with")
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(
        [mount_cmd, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run([umount_cmd, "-l", str(mount)], check=False)


def test_clone_onto_a_full_disk_says_so(tmp_path: Path, server: Path, tiny_disk: Path):
    author = tmp_path / "author"
    (author / "big.txt").write_bytes(os.urandom(3 * 1024 * 1024))  # git writes it
    git("add", "big.txt", cwd=author)
    git("commit", "-qm", "big", cwd=author)
    git("push", "-q", "origin", "main", cwd=author)
    out = agent("clone", str(server), str(tiny_disk / "c"), cwd=tmp_path)
    assert out.returncode != 0
    last = out.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("lfs-agent: git could not write the files of "), out.stderr.decode()
    assert "free some space and clone again" in last
