"""The whole workflow with plain git and lfs-agent, git-lfs nowhere on PATH."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from lfs_agent.checked import CHECK_RECORD_MIN, CHECK_RECORD_NAME
from lfs_agent.hashing import hash_file
from tests.conftest import AGENT, agent, clone_with_filter, git
from tests.helpers import pointer_bytes, sha256, write_random
from tests.servers import free_port

pytestmark = pytest.mark.integration


@dataclass
class Setup:
    root: Path
    work: Path
    remote: Path
    bucket: Path

    def clone(self, name: str, *extra: str) -> Path:
        """git clone with our filter passed on the command line (no global install)."""
        dest = self.root / name
        proc = clone_with_filter(self.remote, dest, *extra, cwd=self.root, check=False)
        self.last = proc
        return dest

    def bucket_objects(self) -> list[str]:
        base = self.bucket / "objects"
        return sorted(p.name for p in base.rglob("*") if p.is_file() and not p.name.startswith("."))


@pytest.fixture
def setup(tmp_path: Path, no_git_lfs_path: str) -> Setup:
    assert shutil.which("git-lfs") is None
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    work = tmp_path / "work"
    git("init", "-q", str(work), cwd=tmp_path)
    bucket = tmp_path / "bucket"
    out = agent("install", "--remote", str(bucket), cwd=work)
    assert out.returncode == 0, out.stderr
    assert agent("track", "*.bin", cwd=work).stdout == b'Tracking "*.bin"\n'
    git("remote", "add", "origin", str(remote), cwd=work)
    return Setup(tmp_path, work, remote, bucket)


def commit_all(repo: Path, message: str) -> None:
    git("add", "-A", cwd=repo)
    git("commit", "-qm", message, cwd=repo)


def status(repo: Path) -> bytes:
    return git("status", "--porcelain", cwd=repo).stdout


def test_round_trip_of_empty_small_and_100_mib_files(setup: Setup):
    work = setup.work
    (work / "empty.bin").write_bytes(b"")
    (work / "small.bin").write_bytes(b"small model\n")
    big_oid = write_random(work / "big.bin", 100 * 1024 * 1024, seed=1)
    commit_all(work, "models")
    assert git("cat-file", "-p", "HEAD:small.bin", cwd=work).stdout == pointer_bytes(
        b"small model\n"
    )
    assert git("cat-file", "-p", "HEAD:empty.bin", cwd=work).stdout == b""
    push = git("push", "-q", "origin", "main", cwd=work)
    assert b"uploaded 2 object(s)" in push.stderr
    assert setup.bucket_objects() == sorted([big_oid, sha256(b"small model\n")])

    clone = setup.clone("clone")
    assert setup.last.returncode == 0, setup.last.stderr
    assert (clone / "small.bin").read_bytes() == b"small model\n"
    assert (clone / "empty.bin").read_bytes() == b""
    assert hash_file(clone / "big.bin") == (big_oid, 100 * 1024 * 1024)
    assert status(clone) == b""


def test_clone_then_install_and_pull(setup: Setup):
    (setup.work / "a.bin").write_bytes(b"A" * 5000)
    commit_all(setup.work, "a")
    git("push", "-q", "origin", "main", cwd=setup.work)
    clone = setup.root / "plain"
    git("clone", "-q", str(setup.remote), str(clone), cwd=setup.root)
    assert (clone / "a.bin").read_bytes() == pointer_bytes(b"A" * 5000)
    assert agent("install", cwd=clone).returncode == 0
    pulled = agent("pull", cwd=clone)
    assert pulled.returncode == 0, pulled.stderr
    assert (clone / "a.bin").read_bytes() == b"A" * 5000
    assert status(clone) == b""


def test_branches_checkout_old_versions_and_status_stays_clean(setup: Setup):
    work = setup.work
    (work / "model.bin").write_bytes(b"version 1\n" * 100)
    commit_all(work, "v1")
    git("tag", "v1", cwd=work)
    (work / "model.bin").write_bytes(b"version 2\n" * 100)
    commit_all(work, "v2")
    git("checkout", "-qb", "other", cwd=work)
    (work / "other.bin").write_bytes(b"other branch\n")
    commit_all(work, "other")
    git("push", "-q", "origin", "main", "other", "v1", cwd=work)

    clone = setup.clone("clone")
    assert status(clone) == b""
    assert (clone / "model.bin").read_bytes() == b"version 2\n" * 100
    git("checkout", "-q", "other", cwd=clone)
    assert (clone / "other.bin").read_bytes() == b"other branch\n"
    assert status(clone) == b""
    git("checkout", "-q", "v1", cwd=clone)
    assert (clone / "model.bin").read_bytes() == b"version 1\n" * 100
    assert not (clone / "other.bin").exists()
    assert status(clone) == b""


def test_merge_rebase_and_stash(setup: Setup):
    work = setup.work
    (work / "base.bin").write_bytes(b"base\n")
    commit_all(work, "base")
    git("checkout", "-qb", "feature", cwd=work)
    (work / "feature.bin").write_bytes(b"feature\n")
    commit_all(work, "feature")
    git("checkout", "-q", "main", cwd=work)
    (work / "main.bin").write_bytes(b"main\n")
    commit_all(work, "main")
    git("merge", "-q", "--no-edit", "feature", cwd=work)
    assert (work / "feature.bin").read_bytes() == b"feature\n"
    assert status(work) == b""

    git("checkout", "-qb", "topic", "HEAD~1", cwd=work)
    (work / "topic.bin").write_bytes(b"topic\n")
    commit_all(work, "topic")
    git("rebase", "-q", "main", cwd=work)
    assert (work / "topic.bin").read_bytes() == b"topic\n"
    assert (work / "feature.bin").read_bytes() == b"feature\n"
    assert git("cat-file", "-p", "HEAD:topic.bin", cwd=work).stdout == pointer_bytes(b"topic\n")

    (work / "base.bin").write_bytes(b"edited, then stashed\n")
    git("stash", "-q", cwd=work)
    assert (work / "base.bin").read_bytes() == b"base\n"
    assert status(work) == b""
    git("stash", "pop", "-q", cwd=work)
    assert (work / "base.bin").read_bytes() == b"edited, then stashed\n"


def test_sparse_checkout_downloads_only_what_is_checked_out(setup: Setup):
    work = setup.work
    (work / "models").mkdir()
    (work / "data").mkdir()
    (work / "models" / "m.bin").write_bytes(b"model bytes\n")
    (work / "data" / "d.bin").write_bytes(b"data bytes\n")
    commit_all(work, "layout")
    git("push", "-q", "origin", "main", cwd=work)

    clone = setup.clone("sparse", "--no-checkout")
    git("sparse-checkout", "set", "models", cwd=clone)
    git("checkout", "-q", "main", cwd=clone)
    store = clone / ".git" / "lfs" / "objects"
    stored = {p.name for p in store.rglob("*") if p.is_file()}
    assert stored == {sha256(b"model bytes\n")}
    assert not (clone / "data").exists()
    git("sparse-checkout", "add", "data", cwd=clone)
    assert (clone / "data" / "d.bin").read_bytes() == b"data bytes\n"
    assert status(clone) == b""


def test_content_that_looks_like_a_pointer_round_trips(setup: Setup):
    fake = pointer_bytes(b"whatever") + b"but with an extra line\n"
    (setup.work / "fake.bin").write_bytes(fake)
    commit_all(setup.work, "fake")
    stored = git("cat-file", "-p", "HEAD:fake.bin", cwd=setup.work).stdout
    assert stored == pointer_bytes(fake)
    git("push", "-q", "origin", "main", cwd=setup.work)
    clone = setup.clone("clone")
    assert (clone / "fake.bin").read_bytes() == fake


def _commit_raw_pointer(repo: Path, path: str, data: bytes) -> None:
    """Commit a pointer for ``data`` without storing the object anywhere."""
    blob = (
        git("hash-object", "-w", "--no-filters", "--stdin", cwd=repo, input=pointer_bytes(data))
        .stdout.decode()
        .strip()
    )
    git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", cwd=repo)


def test_a_missing_object_fails_its_file_only_with_a_clear_error(setup: Setup):
    (setup.work / "good.bin").write_bytes(b"good\n")
    commit_all(setup.work, "good")
    git("push", "-q", "origin", "main", cwd=setup.work)
    _commit_raw_pointer(setup.work, "ghost.bin", b"never stored")
    git("commit", "-qm", "ghost", cwd=setup.work)
    push = git("push", "origin", "main", cwd=setup.work, check=False)
    assert push.returncode != 0
    assert f"(missing) ghost.bin ({sha256(b'never stored')})" in push.stderr.decode()
    git("push", "-q", "--no-verify", "origin", "main", cwd=setup.work)

    clone = setup.clone("clone")
    err = setup.last.stderr.decode()
    assert (
        f"ghost.bin: object {sha256(b'never stored')} is not on remote {setup.bucket.as_uri()}"
        in err
    )
    # No post-checkout hook of ours in a new clone to report it: the smudge fails,
    # and git fails the clone's checkout, as with git-lfs.
    assert setup.last.returncode != 0
    assert "Clone succeeded, but checkout failed" in err
    assert not (clone / "ghost.bin").exists()

    # With skipdownloaderrors the pointer stays and the checkout completes cleanly.
    clone2 = setup.clone("clone2", "-c", "lfs.skipdownloaderrors=true")
    assert setup.last.returncode == 0
    assert (clone2 / "ghost.bin").read_bytes() == pointer_bytes(b"never stored")
    assert (clone2 / "good.bin").read_bytes() == b"good\n"
    assert status(clone2) == b""


def test_a_push_to_an_unreachable_bucket_says_why_once_for_all_objects(setup: Setup):
    for i in range(8):
        (setup.work / f"f{i}.bin").write_bytes(b"object %d\n" % i)
    commit_all(setup.work, "eight")
    bucket = f"http://127.0.0.1:{free_port()}/team"  # nothing listens: refused
    git("config", "lfs-agent.remote", bucket, cwd=setup.work)
    git("config", "lfs-agent.http.max-attempts", "1", cwd=setup.work)
    push = git("push", "origin", "main", cwd=setup.work, check=False)
    assert push.returncode != 0
    said = push.stderr.decode().splitlines()
    oids = sorted(sha256(b"object %d\n" % i) for i in range(8))
    start = said.index(f"lfs-agent: error: 8 object(s) failed to upload ({bucket}):")
    assert said[start + 1 : start + 8] == [
        f"  8 objects: cannot reach {bucket}: Connection refused",
        *(f"    {oid}" for oid in oids[:5]),
        "    ... and 3 more",
    ]


def test_a_corrupt_bucket_object_never_reaches_the_work_tree(setup: Setup):
    data = b"precious weights\n" * 50
    (setup.work / "w.bin").write_bytes(data)
    commit_all(setup.work, "w")
    git("push", "-q", "origin", "main", cwd=setup.work)
    oid = sha256(data)
    obj = setup.bucket / "objects" / oid[:2] / oid[2:4] / oid
    obj.chmod(0o644)
    obj.write_bytes(b"X" * len(data))

    clone = setup.clone("clone")
    assert f"object {oid} from {setup.bucket.as_uri()} is corrupt" in setup.last.stderr.decode()
    assert not (clone / "w.bin").exists()

    plain = setup.root / "plain"
    git("clone", "-q", str(setup.remote), str(plain), cwd=setup.root)
    agent("install", cwd=plain)
    pulled = agent("pull", cwd=plain)
    assert pulled.returncode == 2
    assert f"object {oid} from {setup.bucket.as_uri()} is corrupt" in pulled.stderr.decode()
    assert (plain / "w.bin").read_bytes() == pointer_bytes(data)
    assert not (plain / ".git/lfs/objects" / oid[:2]).exists()


LARGE = 33 * 1024 * 1024  # over sync.READ_CHECK_SIZE: hashed while git receives it


def lfs_tmp_files(repo: Path) -> list[str]:
    """Files in the store's tmp dir, but for the lock files downloads leave on purpose."""
    tmp = repo / ".git/lfs/tmp"
    return sorted(p.name for p in tmp.iterdir() if not p.name.endswith(".lock"))


def pushed_large_and_small(setup: Setup) -> str:
    oid = write_random(setup.work / "big.bin", LARGE, seed=9)
    (setup.work / "small.bin").write_bytes(b"small\n")
    commit_all(setup.work, "big")
    git("push", "-q", "origin", "main", cwd=setup.work)
    return oid


def damage_in_bucket(setup: Setup, oid: str, damage: str) -> None:
    """Rot a few bytes of the bucket's object in place, or cut its last byte off."""
    obj = setup.bucket / "objects" / oid[:2] / oid[2:4] / oid
    obj.chmod(0o644)
    with open(obj, "r+b") as f:
        if damage == "in place":
            f.seek(LARGE // 2)
            f.write(b"rot")
        else:
            f.truncate(LARGE - 1)


def test_a_large_object_is_checked_while_git_receives_it(setup: Setup):
    oid = write_random(setup.work / "big.bin", LARGE, seed=9)
    commit_all(setup.work, "big")
    git("push", "-q", "origin", "main", cwd=setup.work)

    clone = setup.clone("clone")
    assert setup.last.returncode == 0, setup.last.stderr
    assert hash_file(clone / "big.bin") == (oid, LARGE)
    assert hash_file(clone / ".git/lfs/objects" / oid[:2] / oid[2:4] / oid) == (oid, LARGE)
    assert lfs_tmp_files(clone) == []
    assert status(clone) == b""


@pytest.mark.parametrize("damage", ["in place", "cut short"])
def test_a_corrupt_large_bucket_object_never_reaches_the_work_tree(setup: Setup, damage):
    # Corrupted in place, it is found only once git has the bytes: git is told the
    # filter failed, and writes nothing. Cut short, it is found before anything is sent.
    oid = pushed_large_and_small(setup)
    damage_in_bucket(setup, oid, damage)

    clone = setup.clone("clone")
    stderr = setup.last.stderr.decode()
    assert setup.last.returncode != 0
    assert f"object {oid} from {setup.bucket.as_uri()} is corrupt" in stderr
    got = f"got {LARGE} bytes hashing to" if damage == "in place" else f"got {LARGE - 1} bytes"
    assert got in stderr
    assert not (clone / "big.bin").exists()
    assert not (clone / ".git/lfs/objects" / oid[:2]).exists()
    assert lfs_tmp_files(clone) == []


def plain_clone(setup: Setup, name: str) -> Path:
    """A clone with pointers in its work tree, lfs-agent installed."""
    repo = setup.root / name
    git("clone", "-q", str(setup.remote), str(repo), cwd=setup.root)
    assert agent("install", cwd=repo).returncode == 0
    return repo


def test_the_filter_buffers_its_replies_itself_under_pythonunbuffered(setup: Setup):
    # Container images often set PYTHONUNBUFFERED=1; the filter keeps its own buffer.
    files = {f"m{i}.bin": f"model {i}\n".encode() * (i + 1) for i in range(5)}
    for name, data in files.items():
        (setup.work / name).write_bytes(data)
    commit_all(setup.work, "models")
    git("push", "-q", "origin", "main", cwd=setup.work)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    dest = setup.root / "clone"
    clone_with_filter(setup.remote, dest, cwd=setup.root, env=env)
    for name, data in files.items():
        assert (dest / name).read_bytes() == data
    assert status(dest) == b""


def test_a_clone_from_a_folder_bucket_on_its_disk_delays_no_smudge(setup: Setup):
    # Those downloads are hard links: each smudge fetches at once, with no extra round.
    for i in range(3):
        (setup.work / f"m{i}.bin").write_bytes(f"model {i}\n".encode())
    commit_all(setup.work, "models")
    git("push", "-q", "origin", "main", cwd=setup.work)
    dest = setup.root / "clone"
    env = {**os.environ, "GIT_TRACE_PACKET": "1"}
    traced = clone_with_filter(setup.remote, dest, cwd=setup.root, env=env).stderr
    assert traced.count(b"can-delay=1") == 3  # git offered to delay each
    assert b"status=delayed" not in traced
    for i in range(3):
        assert (dest / f"m{i}.bin").read_bytes() == f"model {i}\n".encode()

    # Copied instead (as from another disk), they are downloaded in the background.
    dest = setup.root / "copying"
    traced = clone_with_filter(
        setup.remote, dest, "-c", "lfs-agent.local.link=false", cwd=setup.root, env=env
    ).stderr
    assert traced.count(b"status=delayed") == 3
    for i in range(3):
        assert (dest / f"m{i}.bin").read_bytes() == f"model {i}\n".encode()
    assert status(dest) == b""


def test_pull_checks_a_large_object_while_copying_it_into_place(setup: Setup):
    oid = pushed_large_and_small(setup)
    repo = plain_clone(setup, "plain")
    pulled = agent("pull", cwd=repo)
    assert pulled.returncode == 0, pulled.stderr
    assert hash_file(repo / "big.bin") == (oid, LARGE)
    assert hash_file(repo / ".git/lfs/objects" / oid[:2] / oid[2:4] / oid) == (oid, LARGE)
    assert (repo / "small.bin").read_bytes() == b"small\n"
    assert lfs_tmp_files(repo) == []
    assert sorted(p.name for p in repo.iterdir()) == sorted(
        [".git", ".gitattributes", ".lfsagent", "big.bin", "small.bin"]
    )  # no temp file left beside the work-tree files
    assert status(repo) == b""


@pytest.mark.parametrize("damage", ["in place", "cut short"])
def test_pull_of_a_corrupt_large_object_leaves_the_pointer(setup: Setup, damage):
    oid = pushed_large_and_small(setup)
    damage_in_bucket(setup, oid, damage)
    repo = plain_clone(setup, "plain")
    pointer = (repo / "big.bin").read_bytes()

    pulled = agent("pull", cwd=repo)
    assert pulled.returncode == 2
    stderr = pulled.stderr.decode()
    assert f"object {oid} from {setup.bucket.as_uri()} is corrupt" in stderr
    got = f"got {LARGE} bytes hashing to" if damage == "in place" else f"got {LARGE - 1} bytes"
    assert got in stderr
    assert (repo / "big.bin").read_bytes() == pointer
    assert not (repo / ".git/lfs/objects" / oid[:2]).exists()
    assert lfs_tmp_files(repo) == []
    if damage == "in place":  # found while copying: the other files are done
        assert (repo / "small.bin").read_bytes() == b"small\n"
        assert status(repo) == b""


def test_when_a_download_fails_the_objects_fetched_are_checked_kept_and_written(setup: Setup):
    good = write_random(setup.work / "good.bin", LARGE, seed=1)
    bad = write_random(setup.work / "bad.bin", LARGE, seed=2)
    (setup.work / "small.bin").write_bytes(b"small\n")
    commit_all(setup.work, "three")
    git("push", "-q", "origin", "main", cwd=setup.work)
    (setup.bucket / "objects" / bad[:2] / bad[2:4] / bad).unlink()
    repo = plain_clone(setup, "plain")
    pointer = (repo / "bad.bin").read_bytes()

    pulled = agent("pull", cwd=repo)
    assert pulled.returncode == 2
    assert f"object {bad} is not on remote" in pulled.stderr.decode()
    assert hash_file(repo / ".git/lfs/objects" / good[:2] / good[2:4] / good) == (good, LARGE)
    assert lfs_tmp_files(repo) == []
    # What did arrive is checked out, as git lfs pull does; the rest keeps its pointer.
    assert hash_file(repo / "good.bin") == (good, LARGE)
    assert (repo / "small.bin").read_bytes() == b"small\n"
    assert (repo / "bad.bin").read_bytes() == pointer
    assert status(repo) == b""


def test_pull_keeps_a_local_edit_and_still_stores_the_large_object_checked(setup: Setup):
    oid = pushed_large_and_small(setup)
    repo = plain_clone(setup, "plain")
    (repo / "big.bin").write_bytes(b"my own edit\n")

    pulled = agent("pull", cwd=repo)
    assert pulled.returncode == 0, pulled.stderr
    assert (repo / "big.bin").read_bytes() == b"my own edit\n"
    assert hash_file(repo / ".git/lfs/objects" / oid[:2] / oid[2:4] / oid) == (oid, LARGE)
    assert lfs_tmp_files(repo) == []


def test_pull_reports_a_corrupt_large_object_even_when_it_writes_no_file(setup: Setup):
    oid = pushed_large_and_small(setup)
    damage_in_bucket(setup, oid, "in place")
    repo = plain_clone(setup, "plain")
    (repo / "big.bin").write_bytes(b"my own edit\n")

    pulled = agent("pull", cwd=repo)
    assert pulled.returncode == 2
    assert f"object {oid} from {setup.bucket.as_uri()} is corrupt" in pulled.stderr.decode()
    assert (repo / "big.bin").read_bytes() == b"my own edit\n"
    assert not (repo / ".git/lfs/objects" / oid[:2]).exists()
    assert lfs_tmp_files(repo) == []


def test_pull_without_a_filter_still_stores_the_large_objects_it_fetched(setup: Setup):
    oid = pushed_large_and_small(setup)
    repo = setup.root / "uninstalled"
    git("clone", "-q", str(setup.remote), str(repo), cwd=setup.root)

    pulled = agent("pull", cwd=repo)  # no filter: nothing can be written, all is kept
    assert pulled.returncode == 0, pulled.stderr
    assert "no lfs filter is configured" in pulled.stderr.decode()
    assert hash_file(repo / ".git/lfs/objects" / oid[:2] / oid[2:4] / oid) == (oid, LARGE)
    assert lfs_tmp_files(repo) == []


def test_killing_push_at_random_moments_never_leaves_a_partial_object(setup: Setup):
    work = setup.work
    oids = {write_random(work / f"f{i}.bin", 6 * 1024 * 1024, seed=100 + i) for i in range(6)}
    commit_all(work, "six")
    rng = random.Random(5)
    env = dict(os.environ, LFS_AGENT_CONCURRENCY="2")
    for _ in range(4):
        proc = subprocess.Popen(
            [*AGENT, "push", "--all"],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.4, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for name in setup.bucket_objects():
            path = next((setup.bucket / "objects").rglob(name))
            assert hash_file(path)[0] == name, "a bucket object does not match its name"
    final = agent("push", "--all", cwd=work)
    assert final.returncode == 0, final.stderr
    assert set(setup.bucket_objects()) == oids


def test_a_foreign_pre_push_hook_still_runs_and_uninstall_restores_it(
    tmp_path: Path, no_git_lfs_path: str
):
    repo = tmp_path / "repo"
    git("init", "-q", str(repo), cwd=tmp_path)
    hook = repo / ".git" / "hooks" / "pre-push"
    marker = tmp_path / "foreign-ran"
    foreign = f"#!/bin/sh\ncat > {marker}\n"
    hook.write_text(foreign)
    hook.chmod(0o755)
    out = agent("install", "--remote", str(tmp_path / "bucket"), cwd=repo)
    assert b"kept your pre-push hook" in out.stderr
    assert agent("install", cwd=repo).returncode == 0  # idempotent
    assert (hook.parent / "pre-push.lfs-agent-chained").read_text() == foreign

    agent("track", "*.bin", cwd=repo)
    (repo / "x.bin").write_bytes(b"x\n")
    commit_all(repo, "x")
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    git("push", "-q", str(remote), "main", cwd=repo)
    assert marker.read_text().startswith("refs/heads/main ")
    assert (tmp_path / "bucket" / "objects").exists()

    assert agent("uninstall", cwd=repo).returncode == 0
    assert hook.read_text() == foreign
    assert not (hook.parent / "pre-push.lfs-agent-chained").exists()
    config = git("config", "--local", "--list", cwd=repo).stdout.decode()
    assert "filter.lfs" not in config and "lfs-agent.installed" not in config


def test_install_respects_core_hooks_path_and_refuses_foreign_filter_config(repo: Path):
    git("config", "core.hooksPath", "githooks", cwd=repo)
    assert agent("install", cwd=repo).returncode == 0
    assert (repo / "githooks" / "pre-push").exists()
    other = repo.parent / "other"
    git("init", "-q", str(other), cwd=repo.parent)
    git("config", "filter.lfs.process", "git-lfs filter-process", cwd=other)
    out = agent("install", cwd=other)
    assert out.returncode == 2
    assert "--force" in out.stderr.decode()
    assert agent("install", "--force", cwd=other).returncode == 0


def test_a_second_install_rewrites_no_config(repo: Path, tmp_path: Path):
    assert agent("install", cwd=repo).returncode == 0
    config = (repo / ".git/config").read_bytes()
    trace = tmp_path / "trace"
    again = agent("install", cwd=repo, env={**os.environ, "GIT_TRACE": str(trace)})
    assert again.returncode == 0
    assert "--replace-all" not in trace.read_text()
    assert (repo / ".git/config").read_bytes() == config


def test_untrack_and_listing(repo: Path):
    agent("track", "*.h5", "my file.bin", cwd=repo)
    listed = agent("track", cwd=repo).stdout.decode()
    assert "    *.h5 (.gitattributes)" in listed
    assert "    my[[:space:]]file.bin (.gitattributes)" in listed
    assert agent("untrack", "*.h5", cwd=repo).stdout == b'Untracking "*.h5"\n'
    assert (repo / ".gitattributes").read_text() == (
        "my[[:space:]]file.bin filter=lfs diff=lfs merge=lfs -text\n"
    )


def test_fetch_ls_files_status_fsck_and_prune(setup: Setup):
    work = setup.work
    (work / "keep.bin").write_bytes(b"keep\n")
    (work / "old.bin").write_bytes(b"old\n")
    commit_all(work, "two")
    git("push", "-q", "origin", "main", cwd=work)
    (work / "old.bin").unlink()
    (work / "unpushed.bin").write_bytes(b"unpushed\n")
    commit_all(work, "drop old, add unpushed")
    (work / "unpushed.bin").unlink()
    commit_all(work, "drop unpushed")

    listed = agent("ls-files", "-s", cwd=work).stdout.decode()
    assert listed == f"{sha256(b'keep' + bytes([10]))[:10]} * keep.bin (5 B)\n"
    st = agent("status", cwd=work).stdout.decode()
    assert "On branch main" in st and "unpushed.bin" not in st.split("committed")[1]

    # origin/main, pushed today, is a recent ref: git-lfs's rules keep its old.bin.
    dry = agent("prune", "--dry-run", cwd=work)
    assert dry.returncode == 0, dry.stderr
    assert "would prune 0 object(s)" in dry.stdout.decode()
    dry = agent("prune", "--dry-run", "--recent", cwd=work)
    assert dry.returncode == 0, dry.stderr
    assert f"would prune {sha256(b'old' + bytes([10]))}" in dry.stdout.decode()
    pruned = agent("prune", "--recent", cwd=work).stdout.decode()
    assert "pruned 1 object(s)" in pruned and "1 unused object(s) not yet pushed" in pruned
    store = work / ".git" / "lfs" / "objects"
    names = {p.name for p in store.rglob("*") if p.is_file()}
    assert names == {sha256(b"keep\n"), sha256(b"unpushed\n")}

    fetched = agent("fetch", "HEAD~2", cwd=work)
    assert fetched.returncode == 0, fetched.stderr
    assert (store / sha256(b"old\n")[:2]).exists()

    assert agent("fsck", cwd=work).returncode == 0
    oid = sha256(b"keep\n")
    path = store / oid[:2] / oid[2:4] / oid
    path.write_bytes(b"kee!\n")
    bad = agent("fsck", cwd=work)
    assert bad.returncode == 1
    assert f"objects: corruptObject: {oid}" in bad.stdout.decode()
    assert (work / ".git" / "lfs" / "bad" / oid).exists()
    assert agent("fsck", "--remote", cwd=work).returncode == 1  # now missing locally
    agent("pull", cwd=work)
    remote_ok = agent("fsck", "--remote", "--deep", cwd=work)
    assert "unpushed.bin" in remote_ok.stdout.decode()  # never pushed: reported missing


def test_the_pre_push_hook_refuses_malformed_lines_and_pushes_over_unknown_history(
    setup: Setup,
):
    work = setup.work
    (work / "a.bin").write_bytes(b"a\n")
    commit_all(work, "a")
    head = git("rev-parse", "HEAD", cwd=work).stdout.decode().strip()
    zero = "0" * 40
    for line in [
        "garbage",
        f"refs/heads/main zzzz refs/heads/main {zero}",
        f"refs/heads/main {head} refs/heads/main 12345",
    ]:
        out = agent("pre-push", "origin", str(setup.remote), cwd=work, input=f"{line}\n".encode())
        assert out.returncode == 2
        said = out.stderr.decode().splitlines()
        assert said == [f"lfs-agent: error: malformed pre-push line: {line!r}"]
    assert setup.bucket_objects() == []
    # A remote sha this clone never fetched (someone else's push) excludes nothing.
    update = f"refs/heads/main {head} refs/heads/main {'1' * 40}\n"
    out = agent("pre-push", "origin", str(setup.remote), cwd=work, input=update.encode())
    assert out.returncode == 0, out.stderr
    assert setup.bucket_objects() == [sha256(b"a\n")]


def test_fsck_remote_names_what_the_bucket_lacks_or_holds_wrong(setup: Setup):
    work, url = setup.work, setup.bucket.as_uri()
    data = {name: f"{name} content\n".encode() for name in ("short", "damaged", "gone", "fine")}
    for name, content in data.items():
        (work / f"{name}.bin").write_bytes(content)
    commit_all(work, "four")
    git("push", "-q", "origin", "main", cwd=work)
    oid = {name: sha256(content) for name, content in data.items()}

    def unlinked(name: str) -> Path:
        """The path of the bucket's object, unlinked (it is a hard link of the store's)."""
        path = setup.bucket / "objects" / oid[name][:2] / oid[name][2:4] / oid[name]
        path.unlink()
        return path

    unlinked("short").write_bytes(b"sh")
    unlinked("damaged").write_bytes(b"X" * len(data["damaged"]))
    unlinked("gone")
    size = {name: len(content) for name, content in data.items()}
    expected = [
        f"remote: gone.bin ({oid['gone']}): missing on {url}",
        f"remote: short.bin ({oid['short']}): 2 bytes on {url}, expected {size['short']}",
    ]
    shallow = agent("fsck", "--remote", cwd=work)
    assert shallow.returncode == 1
    assert sorted(shallow.stdout.decode().splitlines()) == expected
    deep = agent("fsck", "--remote", "--deep", cwd=work)
    assert deep.returncode == 1
    damaged = sha256(b"X" * size["damaged"])
    assert sorted(deep.stdout.decode().splitlines()) == sorted(
        [
            *expected,
            f"remote: damaged.bin ({oid['damaged']}): corrupt on {url} (hashes to {damaged})",
        ]
    )


def test_git_add_records_its_check_and_a_push_refuses_an_object_changed_since(setup: Setup):
    work = setup.work
    size = CHECK_RECORD_MIN
    kept = write_random(work / "kept.bin", size, seed=31)
    commit_all(work, "kept")
    stored = work / ".git/lfs/objects" / kept[:2] / kept[2:4] / kept
    record = (work / ".git/lfs" / CHECK_RECORD_NAME).read_text()
    assert record.split()[:2] == [kept, str(size)]
    push = git("push", "-q", "origin", "main", cwd=work)
    assert b"uploaded 1 object(s)" in push.stderr
    in_bucket = setup.bucket / "objects" / kept[:2] / kept[2:4] / kept
    assert in_bucket.stat().st_ino == stored.stat().st_ino  # linked, as git-lfs does

    rotten = write_random(work / "rotten.bin", size, seed=32)
    commit_all(work, "rotten")
    with open(work / ".git/lfs/objects" / rotten[:2] / rotten[2:4] / rotten, "r+b") as f:
        f.seek(size // 2)
        f.write(b"rot")  # after git add checked it: the push must hash it again
    push = git("push", "-q", "origin", "main", cwd=work, check=False)
    assert push.returncode != 0
    assert f"refusing to upload {rotten}".encode() in push.stderr
    assert b"Traceback" not in push.stderr
    assert rotten not in setup.bucket_objects()


def test_prune_drops_what_it_removes_from_the_record_of_checks(setup: Setup):
    work = setup.work
    # Copied, not linked, into the bucket: a link would change the objects' ctime and
    # so end their records by itself.
    git("config", "lfs-agent.local.link", "false", cwd=work)
    old = write_random(work / "model.bin", CHECK_RECORD_MIN, seed=41)
    commit_all(work, "v1")
    new = write_random(work / "model.bin", CHECK_RECORD_MIN, seed=42)
    commit_all(work, "v2")
    git("push", "-q", "origin", "main", cwd=work)
    record = work / ".git/lfs" / CHECK_RECORD_NAME
    assert [line.split()[0] for line in record.read_text().splitlines()] == [old, new]

    pruned = agent("prune", cwd=work)
    assert pruned.returncode == 0, pruned.stderr
    assert "pruned 1 object(s)" in pruned.stdout.decode()
    assert [line.split()[0] for line in record.read_text().splitlines()] == [new]
