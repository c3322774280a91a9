"""The same everyday workflows, run with lfs-agent (no git-lfs anywhere) and with git-lfs.

Each workflow is one script of git commands. It runs twice on identical repositories:
once with lfs-agent's filter and hooks (git-lfs not on PATH), once with the real git-lfs
client (``git lfs install``), and what a user sees is compared: every command's exit
status, the work tree's bytes and ``git status --porcelain`` after each step. The next
difference between the two is then found here, not by a user.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import AGENT

pytestmark = [pytest.mark.integration, pytest.mark.git_lfs]

GIT_LFS = shutil.which("git-lfs", path=os.pathsep.join([os.defpath, "/usr/local/bin"]))

V1 = {"model.bin": b"weights v1\n" * 200, "data/train.bin": b"train v1\n" * 300}
V2 = {"model.bin": b"weights v2\n" * 200}


class Runner:
    """Runs one workflow with one tool, and notes what a user would see."""

    def __init__(self, tool: str, root: Path, env: dict[str, str]) -> None:
        self.tool = tool
        self.root = root
        self.env = env
        self.seen: list[object] = []

    def run(self, *args: str, cwd: Path, note: bool = True) -> int:
        proc = subprocess.run(
            args, cwd=cwd, env=self.env, capture_output=True, check=False, timeout=120
        )
        if note:
            self.seen.append((" ".join(args[:3]), proc.returncode))
        return proc.returncode

    def git(self, *args: str, cwd: Path, note: bool = True) -> int:
        return self.run("git", *args, cwd=cwd, note=note)

    def agent(self, *args: str, cwd: Path) -> int:
        return self.run(*AGENT, *args, cwd=cwd, note=False)

    def track(self, pattern: str, cwd: Path) -> None:
        if self.tool == "git-lfs":
            assert self.git("lfs", "track", pattern, cwd=cwd, note=False) == 0
        else:
            assert self.agent("track", pattern, cwd=cwd) == 0

    def author(self) -> tuple[Path, Path]:
        """A pushed repository with V1 committed, then V2 on top; (server, work)."""
        server, work = self.root / "server.git", self.root / "author"
        assert self.git("init", "-q", "--bare", str(server), cwd=self.root, note=False) == 0
        assert self.git("init", "-q", str(work), cwd=self.root, note=False) == 0
        if self.tool == "lfs-agent":
            assert self.agent("install", "--remote", str(self.root / "bucket"), cwd=work) == 0
        self.track("*.bin", work)
        self.write(work, V1)
        self.git("add", "-A", cwd=work, note=False)
        self.git("commit", "-qm", "v1", cwd=work, note=False)
        self.write(work, V2)
        self.git("commit", "-qam", "v2", cwd=work, note=False)
        self.git("remote", "add", "origin", str(server), cwd=work, note=False)
        assert self.git("push", "-q", "origin", "main", cwd=work, note=False) == 0
        return server, work

    def clone(self, server: Path, dest: Path, *extra: str) -> None:
        if self.tool == "git-lfs":
            code = self.git("clone", "-q", *extra, str(server), str(dest), cwd=self.root)
        else:
            code = self.run(*AGENT, "clone", *extra, str(server), str(dest), cwd=self.root)
        self.seen[-1] = ("clone", code)

    @staticmethod
    def write(repo: Path, files: dict[str, bytes]) -> None:
        for name, data in files.items():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_bytes(data)

    def look(self, repo: Path, label: str) -> None:
        """Note the work tree's files (by hash) and git's status."""
        files = {
            str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()[:12]
            for p in sorted(repo.rglob("*"))
            if p.is_file()
            and ".git" not in p.relative_to(repo).parts
            and p.name != ".lfsagent"  # lfs-agent's own committed config
        }
        status = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=repo,
            env=self.env,
            capture_output=True,
            check=False,
        ).stdout.decode()
        self.seen.append((label, files, status))


def _lfs_env(base: dict[str, str], home: Path) -> dict[str, str]:
    assert GIT_LFS is not None
    home.mkdir()
    env = {
        **base,
        "HOME": str(home),
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "PATH": os.pathsep.join([str(Path(GIT_LFS).parent), base["PATH"]]),
    }
    (home / ".gitconfig").write_text(
        (Path(base["GIT_CONFIG_GLOBAL"])).read_text()
        if Path(base["GIT_CONFIG_GLOBAL"]).exists()
        else ""
    )
    subprocess.run(["git", "lfs", "install"], env=env, capture_output=True, check=True)
    return env


Workflow = Callable[[Runner], None]


def both(tmp_path: Path, workflow: Workflow) -> tuple[list[object], list[object]]:
    ours = Runner("lfs-agent", tmp_path / "ours", dict(os.environ))
    theirs = Runner("git-lfs", tmp_path / "theirs", _lfs_env(dict(os.environ), tmp_path / "h"))
    for runner in (ours, theirs):
        runner.root.mkdir()
        workflow(runner)
    return ours.seen, theirs.seen


def stash_and_pop(r: Runner) -> None:
    server, _ = r.author()
    c = r.root / "c"
    r.clone(server, c)
    r.look(c, "cloned")
    (c / "model.bin").write_bytes(b"local edit\n" * 50)
    r.git("stash", cwd=c)
    r.look(c, "stashed")
    r.git("stash", "pop", cwd=c)
    r.look(c, "popped")


def checkout_old_and_back(r: Runner) -> None:
    server, _ = r.author()
    c = r.root / "c"
    r.clone(server, c)
    r.git("checkout", "-q", "HEAD~1", cwd=c)
    r.look(c, "old")
    r.git("checkout", "-q", "main", cwd=c)
    r.look(c, "back")


def rebase_onto_new_work(r: Runner) -> None:
    _, work = r.author()
    r.git("checkout", "-qb", "feature", "HEAD~1", cwd=work)
    r.write(work, {"data/train.bin": b"train feature\n" * 300})
    r.git("commit", "-qam", "feature", cwd=work)
    r.git("rebase", "-q", "main", cwd=work)
    r.look(work, "rebased")


def merge_conflict_on_a_large_file(r: Runner) -> None:
    _, work = r.author()
    r.git("checkout", "-qb", "other", "HEAD~1", cwd=work)
    r.write(work, {"model.bin": b"weights other\n" * 200})
    r.git("commit", "-qam", "other", cwd=work)
    r.git("merge", "-q", "main", cwd=work)
    r.look(work, "conflicted")
    r.git("checkout", "--theirs", "model.bin", cwd=work)
    r.git("add", "model.bin", cwd=work)
    r.git("commit", "-qm", "merged", cwd=work)
    r.look(work, "merged")


def archive_and_worktree(r: Runner) -> None:
    server, _ = r.author()
    c = r.root / "c"
    r.clone(server, c)
    r.git("archive", "-o", str(r.root / "a.tar"), "HEAD", cwd=c)
    with tarfile.open(r.root / "a.tar") as tar:
        member = tar.extractfile("model.bin")
        assert member is not None
        r.seen.append(("archived", hashlib.sha256(member.read()).hexdigest()[:12]))
    r.git("worktree", "add", "-q", str(r.root / "wt"), "HEAD~1", cwd=c)
    r.look(r.root / "wt", "worktree")


def odd_names_and_shallow_clone(r: Runner) -> None:
    server, work = r.author()
    r.write(work, {"with space.bin": b"spaced\n" * 99, "ünïcode.bin": b"uni\n" * 99})
    r.git("add", "-A", cwd=work)
    r.git("commit", "-qm", "odd names", cwd=work)
    r.git("push", "-q", "origin", "main", cwd=work)
    c = r.root / "c"
    r.clone(server, c, "--depth", "1")
    r.look(c, "shallow")


def patches_and_partial_clone(r: Runner) -> None:
    server, work = r.author()
    r.git("format-patch", "-q", "-1", "-o", str(r.root / "patches"), cwd=work)
    c = r.root / "c"
    r.clone(server, c, "--filter=blob:none")
    r.look(c, "partial")
    r.git("reset", "-q", "--hard", "HEAD~1", cwd=c)
    r.look(c, "reset")
    patch = next((r.root / "patches").iterdir())
    r.git("am", "-q", str(patch), cwd=c)
    r.look(c, "applied")


def split_index_clone(r: Runner) -> None:
    server, _ = r.author()
    c = r.root / "c"
    r.clone(server, c, "--config", "core.splitIndex=true")
    r.look(c, "split")
    (c / "model.bin").write_bytes(b"edited\n" * 10)
    r.git("add", "model.bin", cwd=c)
    r.git("commit", "-qm", "edit", cwd=c)
    r.look(c, "committed")


WORKFLOWS = [
    stash_and_pop,
    checkout_old_and_back,
    rebase_onto_new_work,
    merge_conflict_on_a_large_file,
    archive_and_worktree,
    odd_names_and_shallow_clone,
    patches_and_partial_clone,
    split_index_clone,
]


@pytest.mark.skipif(GIT_LFS is None, reason="the real git-lfs client is not installed")
@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.__name__)
def test_a_workflow_ends_as_it_does_with_git_lfs(
    tmp_path: Path, no_git_lfs_path, workflow: Workflow
):
    ours, theirs = both(tmp_path, workflow)
    assert ours == theirs
    assert any(isinstance(step, tuple) and len(step) == 3 for step in ours)  # it looked
