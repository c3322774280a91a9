"""`lfs-agent transfer` as a real process, and driven by the real git-lfs client."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import AGENT, agent, git, needs_git_lfs
from tests.helpers import pointer_bytes, sha256, tree_files, write_random

pytestmark = pytest.mark.integration

MALFORMED = [
    "not json at all",
    '{"event": ',
    "[]",
    '"just a string"',
    '{"event":"upload","oid":"' + "a" * 64 + '","size":1,"path":"/etc/hostname"}',
    '{"event":"init","operation":"download","remote":"origin"}',
    '{"event":"download","oid":"../../../../tmp/evil","size":3}',
    '{"event":"download","oid":"' + "b" * 64 + '","size":-5}',
    '{"event":"download","oid":"' + "c" * 64 + '"}',
    '{"event":"download","oid":null,"size":1}',
    '{"event":"upload","oid":"' + "d" * 64 + '","size":1,"path":"/nonexistent"}',
    '{"event":"mystery","oid":"' + "e" * 64 + '"}',
    "\x00\x01binary\xff",
]


def test_malformed_input_gets_errors_and_never_a_traceback(repo: Path, tmp_path: Path):
    git("config", "lfs-agent.remote", str(tmp_path / "bucket"), cwd=repo)
    before = set(tree_files(tmp_path))
    stdin = "\n".join(MALFORMED) + "\n"
    proc = subprocess.run(
        [*AGENT, "transfer"],
        cwd=repo,
        input=stdin.encode("utf-8", "surrogateescape"),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0
    assert b"Traceback" not in proc.stderr
    replies = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(replies) == len(MALFORMED)  # exactly one reply per request, all JSON
    assert replies[5] == {}  # the init in the middle succeeded
    assert all("error" in r for i, r in enumerate(replies) if i != 5)
    after = set(tree_files(tmp_path))
    new = {p for p in after - before if "/.git/lfs/" not in "/" + p}
    assert new == set(), new
    assert not Path("/tmp/evil").exists()


def test_an_agent_outside_a_repository_answers_init_with_an_error(tmp_path: Path):
    proc = agent(
        "transfer", cwd=tmp_path, input=b'{"event":"init","operation":"upload"}\n', timeout=30
    )
    assert proc.returncode == 0
    reply = json.loads(proc.stdout)
    assert reply["error"]["message"].startswith("not a git repository")


# --- driven by the real git-lfs ------------------------------------------------------


def _agent_config() -> list[str]:
    python = shlex.quote(AGENT[0])
    return [
        "-c",
        f"lfs.customtransfer.lfs-agent.path={python}",
        "-c",
        "lfs.customtransfer.lfs-agent.args=-m lfs_agent transfer",
        "-c",
        "lfs.standalonetransferagent=lfs-agent",
    ]


@pytest.fixture
def lfs_world(tmp_path: Path):
    """A bare remote, a bucket, and repo A set up with git-lfs + our agent."""
    git("lfs", "install", "--skip-repo", cwd=tmp_path)
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    a = tmp_path / "a"
    git("init", "-q", str(a), cwd=tmp_path)
    out = agent("install", "--with-git-lfs", "--remote", str(tmp_path / "bucket"), cwd=a)
    assert out.returncode == 0, out.stderr
    git("lfs", "track", "*.bin", cwd=a)
    git("remote", "add", "origin", str(remote), cwd=a)
    return tmp_path, a, remote


def trace_env() -> dict[str, str]:
    return dict(os.environ, GIT_TRACE="1")


@needs_git_lfs
def test_git_lfs_moves_every_object_through_the_agent(lfs_world):
    root, a, remote = lfs_world
    big = write_random(a / "big.bin", 3 * 1024 * 1024, seed=8)
    (a / "small.bin").write_bytes(b"small\n")
    git("add", "-A", cwd=a)
    git("commit", "-qm", "one", cwd=a)
    push = git("push", "origin", "main", cwd=a, env=trace_env())
    trace = push.stderr.decode()
    assert 'starting transfer adapter "lfs-agent"' in trace
    assert "-m lfs_agent transfer" in trace
    bucket = root / "bucket" / "objects"
    assert {p.name for p in bucket.rglob("*") if p.is_file()} == {big, sha256(b"small\n")}

    shutil.rmtree(a / ".git" / "lfs" / "objects")
    fetched = git("lfs", "fetch", "--all", cwd=a, env=trace_env())
    assert "-m lfs_agent transfer" in fetched.stderr.decode()
    store = a / ".git" / "lfs" / "objects"
    assert {p.name for p in store.rglob("*") if p.is_file()} == {big, sha256(b"small\n")}
    assert list((a / ".git" / "lfs" / "tmp").glob(f"{big}-*")) == []

    (a / "small.bin").unlink()
    shutil.rmtree(a / ".git" / "lfs" / "objects")
    git("lfs", "pull", cwd=a)
    assert (a / "small.bin").read_bytes() == b"small\n"
    assert git("status", "--porcelain", cwd=a).stdout == b""

    clone = root / "clone"
    cloned = git("clone", *_agent_config(), str(remote), str(clone), cwd=root, env=trace_env())
    assert "-m lfs_agent transfer" in cloned.stderr.decode()
    assert (clone / "small.bin").read_bytes() == b"small\n"
    assert sha256((clone / "big.bin").read_bytes()) == big
    assert git("lfs", "fsck", cwd=clone).returncode == 0


@needs_git_lfs
def test_the_agent_reports_a_missing_bucket_object_to_git_lfs(lfs_world):
    root, a, _remote = lfs_world
    (a / "x.bin").write_bytes(b"x\n")
    git("add", "-A", cwd=a)
    git("commit", "-qm", "x", cwd=a)
    git("push", "-q", "origin", "main", cwd=a)
    shutil.rmtree(root / "bucket")
    shutil.rmtree(a / ".git" / "lfs" / "objects")
    fetched = git("lfs", "fetch", cwd=a, check=False)
    assert fetched.returncode != 0
    assert f"[404] object {sha256(b'x' + bytes([10]))} is not on remote" in fetched.stderr.decode()


@needs_git_lfs
def test_mixed_repositories_share_one_store_layout_and_one_bucket(lfs_world, monkeypatch):
    root, a, remote = lfs_world
    (a / "from-a.bin").write_bytes(b"written by git-lfs + agent\n")
    git("add", "-A", cwd=a)
    git("commit", "-qm", "a", cwd=a)
    git("push", "-q", "origin", "main", cwd=a)

    # B: no git-lfs anywhere on PATH; our filter and hooks.
    bindir = root / "bin-no-lfs"
    bindir.mkdir()
    for tool in ("git", "sh", "cat", "env"):
        (bindir / tool).symlink_to(shutil.which(tool))
    env_b = dict(
        os.environ,
        PATH=os.pathsep.join([str(bindir), str(Path(AGENT[0]).parent)]),
        GIT_EXEC_PATH=git("--exec-path", cwd=root).stdout.decode().strip(),
    )
    assert shutil.which("git-lfs", path=env_b["PATH"]) is None
    b = root / "b"
    filter_cmd = " ".join(shlex.quote(x) for x in AGENT) + " filter-process"
    git(
        "clone",
        "-q",
        "-c",
        f"filter.lfs.process={filter_cmd}",
        "-c",
        "filter.lfs.required=true",
        str(remote),
        str(b),
        cwd=root,
        env=env_b,
    )
    assert (b / "from-a.bin").read_bytes() == b"written by git-lfs + agent\n"
    assert agent("install", cwd=b, env=env_b).returncode == 0
    (b / "from-b.bin").write_bytes(b"written by lfs-agent's filter\n")
    git("add", "-A", cwd=b, env=env_b)
    git("commit", "-qm", "b", cwd=b, env=env_b)
    git("push", "-q", "origin", "main", cwd=b, env=env_b)
    assert git("cat-file", "-p", "HEAD:from-b.bin", cwd=b).stdout == pointer_bytes(
        b"written by lfs-agent's filter\n"
    )

    # C: git-lfs + agent again gets every file.
    c = root / "c"
    git("clone", "-q", *_agent_config(), str(remote), str(c), cwd=root)
    assert (c / "from-a.bin").read_bytes() == b"written by git-lfs + agent\n"
    assert (c / "from-b.bin").read_bytes() == b"written by lfs-agent's filter\n"
    git("pull", "-q", "origin", "main", cwd=a)
    assert (a / "from-b.bin").read_bytes() == b"written by lfs-agent's filter\n"
    assert git("lfs", "fsck", cwd=c).returncode == 0


@needs_git_lfs
def test_install_with_git_lfs_scopes_to_one_remote_and_uninstalls(tmp_path: Path):
    repo = tmp_path / "r"
    git("init", "-q", str(repo), cwd=tmp_path)
    git("remote", "add", "origin", str(tmp_path / "remote.git"), cwd=repo)
    git("remote", "add", "hub", "https://git.example.com/team/repo.git", cwd=repo)
    out = agent(
        "install",
        "--with-git-lfs",
        "--scope-remote",
        "origin",
        "--local",
        "--remote",
        str(tmp_path / "bucket"),
        cwd=repo,
    )
    assert out.returncode == 0, out.stderr
    config = git("config", "--local", "--list", cwd=repo).stdout.decode()
    scoped = f"lfs.{(tmp_path / 'remote.git').as_uri()}.standalonetransferagent=lfs-agent"
    assert scoped in config
    assert "\nlfs.standalonetransferagent=" not in config
    assert "filter.lfs" not in config  # git-lfs's filter is left alone
    env = git("lfs", "env", cwd=repo).stdout.decode()
    assert "lfs-agent" in env.split("UploadTransfers=")[1].splitlines()[0]
    assert agent("uninstall", cwd=repo).returncode == 0
    after = git("config", "--local", "--list", cwd=repo).stdout.decode()
    assert "lfs-agent" not in after and "standalonetransferagent" not in after


@needs_git_lfs
def test_a_git_lfs_push_through_the_agent_registers_for_garbage_collection(lfs_world):
    root, a, _remote = lfs_world
    (a / "one.bin").write_bytes(b"first\n")
    git("add", "-A", cwd=a)
    git("commit", "-qm", "one", cwd=a)
    git("push", "-q", "origin", "main", cwd=a)
    (a / "two.bin").write_bytes(b"second\n")
    git("add", "-A", cwd=a)
    git("commit", "-qm", "two", cwd=a)
    git("push", "-q", "origin", "main", cwd=a)
    records = [
        json.loads(p.read_text()) for p in (root / "bucket" / "meta" / "repos").rglob("*.json")
    ]
    named = {oid for r in records for oid in r["oids"]}
    assert {sha256(b"first\n"), sha256(b"second\n")} <= named
    assert {r["by"] for r in records} <= {"transfer", "pre-push"}
    assert "transfer" in {r["by"] for r in records}
    # The registered repository is collected without losing what main reaches.
    out = agent("gc", "--remote", "--grace", "0s", "--sweep-after", "0s", "--json", cwd=a)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["deleted"] == []
