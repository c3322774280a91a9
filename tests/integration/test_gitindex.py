"""Recording written files' stat data in git's index, checked against real git."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lfs_agent.checkout import _hash_paths
from lfs_agent.git import Git
from lfs_agent.gitindex import Written, record_written, restage_wait
from lfs_agent.pointer import Pointer, parse_pointer
from tests.conftest import agent, git
from tests.helpers import pointer_bytes, random_bytes, sha256

CONTENT = random_bytes(100_000, seed=7)
POINTER = pointer_bytes(CONTENT)
PAST = time.time() - 3600


def _repo(tmp_path: Path, *init: str, version: str = "2") -> tuple[Path, Path]:
    """A repository whose ``*.bin`` files clean to POINTER through a logging filter.

    Returns the work tree and the filter's log (one line per file it cleaned).
    """
    top, log = tmp_path / "repo", tmp_path / "filter.log"
    (tmp_path / "pointer").write_bytes(POINTER)
    git("init", "-q", *init, str(top), cwd=tmp_path)
    clean = f"sh -c 'echo \"$1\" >> {log}; cat >/dev/null; cat {tmp_path / 'pointer'}' -- %f"
    for key, value in {
        "filter.x.clean": clean,
        "filter.x.smudge": "cat",
        "filter.x.required": "true",
        "index.version": version,
        "core.trustctime": "false",
    }.items():
        git("config", key, value, cwd=top)
    files = {
        ".gitattributes": b"*.bin filter=x\n",
        "a.txt": b"alpha\n",
        "models/deep/big.bin": POINTER,
        "models/deep/z.txt": b"zeta\n",
        "models/other.bin": POINTER,
    }
    for name, data in files.items():
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        (top / name).write_bytes(data)
        os.utime(top / name, (PAST, PAST))
    git("add", "-A", cwd=top)
    git("commit", "-qm", "pointers", cwd=top)
    log.write_text("")
    return top, log


def _write(top: Path, path: str, data: bytes = CONTENT, when: float = PAST) -> Written:
    """Put ``data`` at ``path`` as pull does, dated ``when``; the Written for it."""
    target = top / path
    target.write_bytes(data)
    os.utime(target, (when, when))
    return Written(path, parse_pointer(POINTER), os.lstat(target))


def _record(top: Path, files: list[Written], **kwargs: object) -> set[str]:
    return record_written(
        top / ".git/index",
        top,
        files,
        hash_paths=lambda paths: _hash_paths(Git(top), paths),
        **kwargs,  # type: ignore[arg-type]
    )


def _debug(top: Path, path: str) -> dict[str, str]:
    """``git ls-files --debug`` of one path, as {field: value}."""
    out = git("ls-files", "--debug", "--", path, cwd=top).stdout.decode().split()
    return {out[i].rstrip(":"): out[i + 1] for i in range(1, len(out) - 1) if out[i].endswith(":")}


@pytest.mark.parametrize("version", ["2", "3", "4"])
def test_the_index_git_would_write_without_running_the_filter(tmp_path, version):
    top, log = _repo(tmp_path, version=version)
    if version == "3":  # an extended entry makes git keep version 3
        git("update-index", "--skip-worktree", "a.txt", cwd=top)
    written = _write(top, "models/deep/big.bin")
    before = (top / ".git/index").read_bytes()
    assert git("diff-files", "--name-only", cwd=top).stdout == b"models/deep/big.bin\n"

    assert _record(top, [written]) == {"models/deep/big.bin"}
    ours = (top / ".git/index").read_bytes()
    assert ours[4:8] == int(version).to_bytes(4, "big")
    assert git("diff-files", "--quiet", cwd=top, check=False).returncode == 0
    assert git("status", "--porcelain", cwd=top).stdout == b""
    assert log.read_text() == ""  # git trusted the stat data: no filter ran
    st = os.lstat(top / "models/deep/big.bin")
    fields = _debug(top, "models/deep/big.bin")
    assert fields["size"] == str(len(CONTENT))
    assert fields["ino"] == str(st.st_ino)
    assert fields["mtime"] == "{}:{}".format(*divmod(st.st_mtime_ns, 10**9))
    assert fields["ctime"] == "{}:{}".format(*divmod(st.st_ctime_ns, 10**9))
    git("fsck", "--no-progress", cwd=top)

    # git's own re-stage of the same file, from the same index, records the same entries
    # (it also drops the cached tree of the file's directories, which we keep: the
    # blob is the same).
    ours_listed = git("ls-files", "--debug", "--stage", cwd=top).stdout
    (top / ".git/index").write_bytes(before)
    git("update-index", "-q", "--", "models/deep/big.bin", cwd=top)
    assert log.read_text() == "models/deep/big.bin\n"
    assert git("ls-files", "--debug", "--stage", cwd=top).stdout == ours_listed
    entries_end = ours.index(b"TREE")
    assert (top / ".git/index").read_bytes()[:entries_end] == ours[:entries_end]


def test_a_time_just_before_a_second_is_recorded_in_the_second_before(tmp_path):
    # As a float, 1795461257.999999999 s is 1795461258.0: git would see another mtime.
    top, log = _repo(tmp_path)
    target = top / "models/other.bin"
    target.write_bytes(CONTENT)
    just_before = int(PAST) * 10**9 - 1
    os.utime(target, ns=(just_before, just_before))
    written = Written("models/other.bin", parse_pointer(POINTER), os.lstat(target))
    assert _record(top, [written]) == {"models/other.bin"}
    assert _debug(top, "models/other.bin")["mtime"] == f"{int(PAST) - 1}:999999999"
    assert git("status", "--porcelain", cwd=top).stdout == b""
    assert log.read_text() == ""


def test_a_sha256_repository(tmp_path):
    top, log = _repo(tmp_path, "--object-format=sha256")
    assert _record(top, [_write(top, "models/other.bin")]) == {"models/other.bin"}
    assert git("status", "--porcelain", cwd=top).stdout == b""
    assert log.read_text() == ""


def test_files_changed_or_staged_otherwise_are_left_to_git(tmp_path):
    top, _ = _repo(tmp_path)
    changed = _write(top, "models/deep/big.bin")
    (top / changed.path).write_bytes(CONTENT[::-1])  # edited after it was written
    # The index holds another pointer than the one this content cleans to.
    other = _write(top, "models/other.bin")._replace(pointer=Pointer(sha256(b"x"), 1))
    index = top / ".git/index"
    os.utime(index, (PAST, PAST))  # every other entry is racily clean in it
    before = index.read_bytes()
    checked: list[list[str]] = []
    recorded = record_written(
        index, top, [changed, other], hash_paths=lambda paths: checked.append(paths) or None
    )
    assert recorded == set()
    assert index.read_bytes() == before  # nothing to record: not rewritten
    assert checked == []  # ... and nothing else checked for a write that does not happen
    assert not (top / ".git/index.lock").exists()


def test_an_executable_bit_the_entry_lacks_is_left_to_git(tmp_path):
    top, _ = _repo(tmp_path)
    (top / "models/other.bin").chmod(0o755)
    done = _write(top, "models/deep/big.bin")
    odd = _write(top, "models/other.bin")
    assert _record(top, [done, odd]) == {"models/deep/big.bin"}
    # Its entry was smudged: git checks its content rather than trust old stat data.
    assert _debug(top, "models/other.bin")["size"] == "0"
    assert git("status", "--porcelain", cwd=top).stdout == b" M models/other.bin\n"


@pytest.mark.parametrize("flag", ["--skip-worktree", "--assume-unchanged"])
def test_entries_git_does_not_stat_are_left_alone(tmp_path, flag):
    top, _ = _repo(tmp_path)
    git("update-index", flag, "models/other.bin", cwd=top)
    assert _record(top, [_write(top, "models/other.bin")]) == set()


def test_a_split_index_or_a_held_lock_is_left_to_git(tmp_path):
    top, _ = _repo(tmp_path)
    written = _write(top, "models/other.bin")
    lock = top / ".git/index.lock"
    lock.write_bytes(b"git is here")
    assert _record(top, [written]) == set()
    assert lock.read_bytes() == b"git is here"  # git's lock is never removed
    lock.unlink()
    git("update-index", "--split-index", cwd=top)
    before = (top / ".git/index").read_bytes()
    assert _record(top, [written]) == set()
    assert (top / ".git/index").read_bytes() == before
    assert not lock.exists()


def test_a_corrupt_index_is_left_alone(tmp_path):
    top, _ = _repo(tmp_path)
    index = top / ".git/index"
    damaged = bytearray(index.read_bytes())
    damaged[40] ^= 0xFF  # the checksum no longer matches
    index.write_bytes(damaged)
    assert _record(top, [_write(top, "models/other.bin")]) == set()
    assert index.read_bytes() == damaged
    assert not (top / ".git/index.lock").exists()


def test_racily_clean_entries_keep_git_checking_their_content(tmp_path):
    # Files changed in the second the index was written are "racily clean": git checks
    # their content. Rewritten later, the index must not start trusting their stat data.
    top, _ = _repo(tmp_path)
    index = top / ".git/index"
    for name in ("a.txt", "models/deep/z.txt"):
        os.utime(top / name, (PAST + 100, PAST + 100))
    git("update-index", "-q", "--refresh", cwd=top)  # records those mtimes
    os.utime(index, (PAST + 100, PAST + 100))  # ... written in that same second
    edited = top / "a.txt"
    edited.write_bytes(b"ALPHA\n")  # same size, same mtime: only the content tells
    os.utime(edited, (PAST + 100, PAST + 100))
    assert git("diff-files", "--name-only", cwd=top).stdout == b"a.txt\n"

    assert _record(top, [_write(top, "models/deep/big.bin")]) == {"models/deep/big.bin"}
    assert int(index.stat().st_mtime) > PAST + 100
    assert _debug(top, "a.txt")["size"] == "0"  # smudged: git sees it changed
    assert _debug(top, "models/deep/z.txt")["size"] == "5"  # unchanged: kept
    assert git("diff-files", "--name-only", cwd=top).stdout == b"a.txt\n"
    assert git("status", "--porcelain", cwd=top).stdout == b" M a.txt\n"


def test_it_waits_until_the_written_files_are_no_longer_racy(tmp_path):
    top, log = _repo(tmp_path)
    written = _write(top, "models/other.bin", when=time.time())
    assert 0 < restage_wait([written]) <= 1.1
    assert restage_wait([written], clock=lambda: written.stat.st_mtime + 5) == 0
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    assert _record(top, [written], sleep=sleep) == {"models/other.bin"}
    assert slept and slept[0] > 0
    assert int((top / ".git/index").stat().st_mtime) > int(written.stat.st_mtime)
    assert git("status", "--porcelain", cwd=top).stdout == b""
    assert log.read_text() == ""


def test_pull_dates_large_files_it_writes_so_that_the_index_is_written_at_once(
    tmp_path, monkeypatch
):
    # checkout writes a large object itself, dated before the second it was
    # written in, then records it in the index: neither that index nor git's later
    # ones take it for racily clean, so git never hashes it again.
    from lfs_agent import checkout
    from lfs_agent.scan import index_pointers
    from lfs_agent.store import ObjectStore

    top = tmp_path / "repo"
    git("init", "-q", str(top), cwd=tmp_path)
    assert agent("install", "--remote", str(tmp_path / "bucket"), cwd=top).returncode == 0
    assert agent("track", "*.bin", cwd=top).returncode == 0
    data = random_bytes(64 * 1024, seed=3)
    (top / "m.bin").write_bytes(data)
    git("add", "-A", cwd=top)
    (top / "m.bin").write_bytes(pointer_bytes(data))
    os.utime(top / "m.bin", (PAST, PAST))
    git("add", "-A", cwd=top)  # the index holds the pointer file's stat data
    git("commit", "-qm", "m", cwd=top)
    trace = tmp_path / "trace"
    monkeypatch.setenv("GIT_TRACE", str(trace))
    repo = Git(top)
    store = ObjectStore(repo.paths.common_dir / "lfs")
    # Objects over a KiB are written by checkout itself, as those over 32 MiB are.
    assert checkout.checkout(repo, store, index_pointers(repo), git_writes_max=1024) == ["m.bin"]
    monkeypatch.delenv("GIT_TRACE")
    assert (top / "m.bin").read_bytes() == data
    assert "update-index" not in trace.read_text()  # recorded by us, not re-staged by git
    st = os.lstat(top / "m.bin")
    assert st.st_mtime_ns % 10**9 == 999_999_999
    assert st.st_mtime_ns // 10**9 < st.st_ctime_ns // 10**9  # dated before it was written
    assert _debug(top, "m.bin")["mtime"] == "{}:{}".format(*divmod(st.st_mtime_ns, 10**9))
    index_second = (top / ".git/index").stat().st_mtime_ns // 10**9
    assert index_second > st.st_mtime_ns // 10**9  # not racily clean
    status = git("status", "--porcelain", cwd=top, env={**os.environ, "GIT_TRACE": "1"})
    assert status.stdout == b""
    assert b"filter-process" not in status.stderr  # status trusts the stat data
