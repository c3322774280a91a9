"""Commands killed at random moments (kill -9 of the whole process group), then run again.

``git add`` through the filter, ``git push`` through the pre-push hook (to a folder
bucket and to S3), and git-lfs driving ``lfs-agent transfer``. After each kill, and
after the re-run, which must complete and exit 0:

* every object in the store and in the bucket hashes to its name;
* every work-tree file holds its own bytes (these commands never write it);
* nothing is left in ``.git/lfs/tmp`` (nor, of this machine, in a folder bucket) by a
  process that has ended.

Also: prune removes the S3 multipart-upload state such kills leave, once provably dead.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from lfs_agent.backends.local import _host
from lfs_agent.pids import alive
from tests.conftest import agent, git, needs_git_lfs
from tests.helpers import pointer_bytes, random_bytes, sha256

pytestmark = pytest.mark.integration
MIB = 1024 * 1024

#: Names in .git/lfs/tmp that name the process writing them (store temp files,
#: re-stage lists, the filter's records of failed checkouts).
OWNED = [
    re.compile(r".+-(\d+)-[0-9a-f]{16}"),
    re.compile(r"restage-(\d+)-\d+"),
    re.compile(r"smudge-failed-(\d+)"),
]
#: A folder bucket's temp file: ``.<oid>.<host>-<pid>-<12 hex>.tmp``.
BUCKET_TEMP = re.compile(r"\.[0-9a-f]{64}\.([0-9a-f]+)-(\d+)-[0-9a-f]{12}\.tmp")
#: prctl's option making this process the parent of its orphaned descendants.
PR_SET_CHILD_SUBREAPER = 36


@pytest.fixture(autouse=True)
def reaper() -> Iterator[None]:
    """Make this process adopt the orphans of the groups it kills, to reap them at once.

    A killed process is gone only once its parent reaps it; until then its pid is
    taken, and its temp files count as a live process's. The processes of a killed
    group are orphans, reaped by the machine's init, at once on a usual system but
    not in every container: here they are reaped by this process instead.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip("this system cannot make a process a subreaper")
    yield
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


# --- the invariants -----------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def check_objects(root: Path) -> set[str]:
    """Every object file under ``root`` hashes to its name; return their oids."""
    found = set()
    for path in root.rglob("*"):
        if path.is_file() and re.fullmatch(r"[0-9a-f]{64}", path.name):
            assert file_sha256(path) == path.name, path
            found.add(path.name)
    return found


def check_tmp(repo: Path) -> None:
    """Nothing in .git/lfs/tmp belongs to a process that has ended."""
    tmp = repo / ".git" / "lfs" / "tmp"
    for path in tmp.iterdir() if tmp.is_dir() else []:
        for pattern in OWNED:
            if (match := pattern.fullmatch(path.name)) and not alive(int(match[1])):
                pytest.fail(f"{path.name} in .git/lfs/tmp belongs to ended process {match[1]}")
        if path.name.endswith(".part"):  # a resumable download's, once it is done
            oid = path.name.removesuffix(".part")
            assert not (repo / ".git/lfs/objects" / oid[:2] / oid[2:4] / oid).exists(), path


def check_bucket(bucket: Path, settled: bool) -> set[str]:
    """A folder bucket: every object right; once ``settled`` (after a run that
    completed), no temp file of an ended process from this machine either."""
    for path in bucket.rglob(".*.tmp") if settled else []:
        match = BUCKET_TEMP.fullmatch(path.name)
        if match and match[1] == _host() and not alive(int(match[2])):
            pytest.fail(f"{path.name} in the bucket belongs to ended process {match[2]}")
    return check_objects(bucket / "objects") if (bucket / "objects").exists() else set()


def check_worktree(repo: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        assert (repo / name).read_bytes() == data, name


# --- killing ------------------------------------------------------------------------------


def killed(
    args: Sequence[str],
    cwd: Path,
    rng: random.Random,
    working: Callable[[], bool],
    within: float,
) -> bool:
    """Start ``args`` in a session of its own; kill the whole group at a random moment.

    Mostly the moment is up to ``within`` seconds after ``working()`` first holds (the
    command is seen writing), so that kills land in the middle of the work whatever
    the machine's speed; sometimes it is right at the start.

    Returns:
        Whether the command still ran when it was killed.
    """
    proc = subprocess.Popen(
        list(args),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    if rng.random() < 0.2:
        time.sleep(rng.uniform(0.01, 0.2))
    else:
        deadline = time.monotonic() + 30
        while proc.poll() is None and not working() and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, within))
    running = proc.poll() is None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # git, its filter, hooks and agents too
    proc.wait()
    reap_group(proc.pid)
    # A git killed mid-write leaves its index lock, and tells the user to remove it.
    with contextlib.suppress(FileNotFoundError):
        (cwd / ".git" / "index.lock").unlink()
    return running


def reap_group(group: int) -> None:
    """Wait until every process of the killed ``group`` is gone, reaping those adopted."""
    deadline = time.monotonic() + 30
    while members := group_members(group):
        for pid in members:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        assert time.monotonic() < deadline, f"processes {members} outlived their kill"
        time.sleep(0.005)


def group_members(group: int) -> list[int]:
    """The pids of the processes (zombies too) in process group ``group``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
            if int(stat.read_text().rpartition(")")[2].split()[2]) == group:
                members.append(int(stat.parent.name))
    return members


def has_files(directory: Path, pattern: str = "*") -> Callable[[], bool]:
    """A check that ``directory`` holds a file matching ``pattern``, at any depth."""

    def check() -> bool:
        return directory.is_dir() and any(p.is_file() for p in directory.rglob(pattern))

    return check


def completed(args: Sequence[str], cwd: Path) -> None:
    """Run ``args`` again, to the end: it must succeed."""
    proc = subprocess.run(list(args), cwd=cwd, capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")


def new_repo(root: Path, remote: str, *config: tuple[str, str]) -> Path:
    work = root / "work"
    git("init", "-q", str(work), cwd=root)
    assert agent("install", "--remote", remote, cwd=work).returncode == 0
    for key, value in config:
        git("config", key, value, cwd=work)
    assert agent("track", "*.bin", cwd=work).returncode == 0
    return work


def write_files(work: Path, seed: int, sizes: Sequence[int]) -> dict[str, bytes]:
    files = {}
    for i, size in enumerate(sizes):
        name = f"d{seed}/f{i}.bin"
        files[name] = random_bytes(size, seed=1000 * seed + i)
        (work / name).parent.mkdir(exist_ok=True)
        (work / name).write_bytes(files[name])
    return files


# --- git add ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_git_add_killed_at_a_random_moment_is_completed_by_the_next(
    tmp_path: Path, no_git_lfs_path, seed: int
):
    rng = random.Random(seed)
    work = new_repo(tmp_path, str(tmp_path / "bucket"))
    files = write_files(work, seed, [16 * MIB + i for i in range(4)] + [100, 5000])
    kills = []
    for _ in range(rng.randint(1, 3)):
        ingesting = has_files(work / ".git/lfs/tmp", "ingest-*")
        # The first kill as soon as the filter writes: one at least lands mid-run.
        kills.append(killed(["git", "add", "-A"], work, rng, ingesting, 0.15 if kills else 0))
        check_objects(work / ".git/lfs/objects")  # never a wrong object, at any moment
        check_worktree(work, files)
    assert any(kills)
    completed(["git", "add", "-A"], work)
    stored = check_objects(work / ".git/lfs/objects")
    assert stored == {sha256(data) for data in files.values()}
    for name, data in files.items():
        assert git("show", f":{name}", cwd=work).stdout == pointer_bytes(data), name
    check_worktree(work, files)
    check_tmp(work)
    status = git("status", "--porcelain", cwd=work).stdout.decode().splitlines()
    assert sorted(status) == sorted(
        f"A  {name}" for name in [*files, ".gitattributes", ".lfsagent"]
    )


# --- git push through the pre-push hook ---------------------------------------------------


def push_rounds(
    work: Path,
    rng: random.Random,
    rounds: int,
    working: Callable[[], bool],
    within: float,
    check: Callable[[bool], set[str]],
) -> list[bool]:
    """Commit new files, kill ``git push`` once or twice, push again; check each time.

    Returns:
        For each kill, whether it met the push still running.
    """
    everything: dict[str, bytes] = {}
    kills = []
    for round_ in range(rounds):
        files = write_files(work, round_, [12 * MIB + 1, 8 * MIB + 2, 4 * MIB + 3, 2000])
        everything.update(files)
        git("add", "-A", cwd=work)
        git("commit", "-qm", f"round {round_}", cwd=work)
        for _ in range(rng.randint(1, 2)):
            push = ["git", "push", "-q", "origin", "main"]
            kills.append(killed(push, work, rng, working, within if kills else 0))
            check(False)  # never a wrong object, at any moment
            check_objects(work / ".git/lfs/objects")
        completed(["git", "push", "-q", "origin", "main"], work)
        assert check(True) >= {sha256(d) for d in everything.values()}
        check_tmp(work)
        check_worktree(work, everything)
        remote_head = git("rev-parse", "origin/main", cwd=work).stdout
        assert remote_head == git("rev-parse", "HEAD", cwd=work).stdout
    return kills


@pytest.mark.parametrize("seed", range(2))
def test_git_push_to_a_folder_killed_at_a_random_moment_is_completed_by_the_next(
    tmp_path: Path, no_git_lfs_path, seed: int
):
    bucket = tmp_path / "bucket"
    # Copies, not links, so that a kill lands in the middle of one.
    work = new_repo(tmp_path, str(bucket), ("lfs-agent.local.link", "false"))
    git("init", "-q", "--bare", str(tmp_path / "server.git"), cwd=tmp_path)
    git("remote", "add", "origin", str(tmp_path / "server.git"), cwd=work)
    copying = has_files(bucket, ".*.tmp")
    kills = push_rounds(
        work, random.Random(seed), 2, copying, 0.25, lambda settled: check_bucket(bucket, settled)
    )
    assert any(kills)


def s3_objects(bucket: str, prefix: str) -> Callable[[bool], set[str]]:
    """A check that every object in the S3 bucket hashes to its key's name."""
    import boto3

    def check(settled: bool) -> set[str]:
        client = boto3.client("s3")
        found = set()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for entry in page.get("Contents", []):
                body = client.get_object(Bucket=bucket, Key=entry["Key"])["Body"]
                digest = hashlib.sha256()
                for chunk in body.iter_chunks(MIB):
                    digest.update(chunk)
                name = entry["Key"].rsplit("/", 1)[1]
                assert digest.hexdigest() == name, entry["Key"]
                found.add(name)
        return found

    return check


@pytest.mark.s3
def test_git_push_to_s3_killed_at_a_random_moment_is_completed_by_the_next(
    tmp_path: Path, s3_bucket: str, no_git_lfs_path
):
    # Parts of 5 MiB: the larger files go up in several, and leave multipart state.
    work = new_repo(
        tmp_path,
        f"s3://{s3_bucket}/repo",
        ("lfs-agent.s3.part-size", "5MiB"),
        ("lfs-agent.s3.multipart-threshold", "5MiB"),
    )
    git("init", "-q", "--bare", str(tmp_path / "server.git"), cwd=tmp_path)
    git("remote", "add", "origin", str(tmp_path / "server.git"), cwd=work)
    tmp = work / ".git" / "lfs" / "tmp"
    sending_parts = has_files(tmp, "s3-upload-*.json")
    check = s3_objects(s3_bucket, "repo/objects/")
    kills = push_rounds(work, random.Random(7), 2, sending_parts, 0.3, check)
    assert any(kills)
    # What a push killed mid-upload left, prune removes once its object is there.
    assert agent("prune", cwd=work).returncode == 0
    assert list(tmp.glob("s3-upload-*.json")) == []


# --- git-lfs driving lfs-agent transfer ---------------------------------------------------


@needs_git_lfs
def test_git_lfs_push_and_fetch_killed_at_random_moments_are_completed_by_the_next(
    tmp_path: Path,
):
    rng = random.Random(11)
    bucket = tmp_path / "bucket"
    git("lfs", "install", "--skip-repo", cwd=tmp_path)
    server = tmp_path / "server.git"
    git("init", "-q", "--bare", str(server), cwd=tmp_path)
    work = tmp_path / "work"
    git("init", "-q", str(work), cwd=tmp_path)
    out = agent("install", "--with-git-lfs", "--remote", str(bucket), cwd=work)
    assert out.returncode == 0, out.stderr
    git("config", "lfs-agent.local.link", "false", cwd=work)  # copies: kills land mid-copy
    git("lfs", "track", "*.bin", cwd=work)
    git("remote", "add", "origin", str(server), cwd=work)
    files = write_files(work, 0, [12 * MIB + 1, 8 * MIB + 2, 4 * MIB + 3, 2000])
    git("add", "-A", cwd=work)
    git("commit", "-qm", "files", cwd=work)
    oids = {sha256(data) for data in files.values()}

    push = ["git", "lfs", "push", "--all", "origin"]
    copying = has_files(bucket, ".*.tmp")
    kills = [killed(push, work, rng, copying, 0.25 if i else 0) for i in range(3)]
    check_bucket(bucket, settled=False)
    completed(push, work)
    assert check_bucket(bucket, settled=True) == oids
    check_tmp(work)
    completed(["git", "push", "-q", "origin", "main"], work)

    clone = tmp_path / "clone"
    skip = {**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"}
    git("clone", "-q", str(server), str(clone), cwd=tmp_path, env=skip)
    out = agent("install", "--with-git-lfs", "--remote", str(bucket), cwd=clone)
    assert out.returncode == 0, out.stderr
    store = clone / ".git" / "lfs"
    fetch = ["git", "lfs", "fetch"]
    for i in range(3):
        kills.append(killed(fetch, clone, rng, has_files(store / "tmp"), 0.25 if i else 0))
        check_objects(store / "objects")
    completed(fetch, clone)
    assert check_objects(store / "objects") == oids
    check_tmp(clone)
    completed(["git", "lfs", "checkout"], clone)
    check_worktree(clone, files)
    assert any(kills)


# --- prune and the multipart state of dead uploads ----------------------------------------


def write_state(tmp: Path, oid: str, bucket: str, key: str, size: int, age: float) -> Path:
    """Multipart state as the S3 backend writes it, started ``age`` seconds ago."""
    state = tmp / f"s3-upload-{oid}.json"
    started = time.time() - age
    record = {"bucket": bucket, "key": key, "size": size, "part_size": 5 * MIB}
    state.write_text(json.dumps({**record, "upload_id": "u", "started": started}))
    os.utime(state, (started, started))  # old enough for clean_tmp's hour, too
    return state


@contextlib.contextmanager
def held(lock: Path) -> Iterator[None]:
    """Hold ``lock`` as a running upload does."""
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


@pytest.mark.s3
def test_prune_removes_the_state_of_dead_uploads_and_never_a_running_ones(
    tmp_path: Path, s3_bucket: str, no_git_lfs_path
):
    work = new_repo(tmp_path, f"s3://{s3_bucket}/repo")
    git("init", "-q", "--bare", str(tmp_path / "server.git"), cwd=tmp_path)
    git("remote", "add", "origin", str(tmp_path / "server.git"), cwd=work)
    pushed = write_files(work, 0, [3000, 4000, 5000])
    git("add", "-A", cwd=work)
    git("commit", "-qm", "pushed", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    there = [(sha256(data), len(data)) for data in pushed.values()]
    absent = [sha256(b"never pushed %d" % i) for i in range(4)]
    tmp = work / ".git" / "lfs" / "tmp"
    tmp.mkdir(exist_ok=True)

    def key(oid: str) -> str:
        return f"repo/objects/{oid[:2]}/{oid[2:4]}/{oid}"

    hour, day = 3600, 24 * 3600
    dead = [
        write_state(tmp, there[0][0], s3_bucket, key(there[0][0]), there[0][1], hour),  # done
        write_state(tmp, absent[0], s3_bucket, key(absent[0]), 9 * MIB, 2 * day),  # too old
    ]
    (tmp / f"s3-upload-{absent[1]}.json").write_text("{not json")
    dead.append(tmp / f"s3-upload-{absent[1]}.json")
    alive_ones = [
        # Uploads running (their lock held), finished or not.
        write_state(tmp, there[1][0], s3_bucket, key(there[1][0]), there[1][1], hour),
        write_state(tmp, absent[2], s3_bucket, key(absent[2]), 9 * MIB, 2 * day),
        # Not running, and not proved over: the next push resumes it.
        write_state(tmp, absent[3], s3_bucket, key(absent[3]), 9 * MIB, 2 * hour),
        # Another bucket's upload of an object this one holds.
        write_state(tmp, there[2][0], "elsewhere", key(there[2][0]), there[2][1], hour),
    ]
    assert agent("prune", "--dry-run", cwd=work).returncode == 0
    assert all(p.exists() for p in dead + alive_ones)
    with held(tmp / f"s3-upload-{there[1][0]}.lock"), held(tmp / f"s3-upload-{absent[2]}.lock"):
        out = agent("prune", cwd=work)
    assert out.returncode == 0, out.stderr
    assert "3 dead S3 upload state(s)" in out.stdout.decode()
    assert [p.name for p in dead if p.exists()] == []
    assert [p.name for p in alive_ones if not p.exists()] == []
    # Not one pushed object went from the bucket, nor from the store.
    assert check_objects(work / ".git/lfs/objects") == {oid for oid, _ in there}
