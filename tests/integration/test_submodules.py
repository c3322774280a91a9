"""Submodules that use LFS, through plain git, with git-lfs nowhere on PATH.

A superproject holds ``lib``, which holds ``inner``: three repositories, each with its
own LFS files and its own bucket named in its own committed ``.lfsagent``. Every way of
getting the submodules must leave their real bytes in the work tree and a clean status,
and a file edited and committed inside one must be stored as a pointer.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from lfs_agent.hooks import MARKER, render_hook
from tests.conftest import agent, git
from tests.helpers import pointer_bytes

pytestmark = pytest.mark.integration

#: Each repository's LFS files: name -> bytes.
CONTENT = {
    "super": {"top.bin": b"superproject model\n"},
    "lib": {"lib.bin": b"library weights\n", "data/more.bin": b"x" * 3000},
    "inner": {"inner.bin": b"inner table\n"},
}


class Project(NamedTuple):
    root: Path
    remotes: dict[str, Path]  # name -> bare repository
    buckets: dict[str, Path]


def _lfs_repository(root: Path, name: str, submodules: dict[str, Path]) -> tuple[Path, Path]:
    """A bare repository with LFS files pushed to its own bucket, and that bucket."""
    work, bare, bucket = root / f"{name}-work", root / f"{name}.git", root / f"{name}-bucket"
    git("init", "-q", str(work), cwd=root)
    git("init", "-q", "--bare", str(bare), cwd=root)
    git("config", "uploadpack.allowFilter", "true", cwd=bare)
    assert agent("install", "--remote", str(bucket), cwd=work).returncode == 0
    agent("track", "*.bin", cwd=work)
    for path, data in CONTENT[name].items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(data)
    (work / "notes.txt").write_text(f"{name}\n")
    for path, url in submodules.items():
        git("submodule", "add", "-q", url.as_uri(), path, cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-qm", f"{name} v1", cwd=work)
    git("remote", "add", "origin", str(bare), cwd=work)
    push = git("push", "-q", "origin", "main", cwd=work)
    assert b"uploaded" in push.stderr, push.stderr
    return bare, bucket


@pytest.fixture
def without_git_lfs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """A PATH holding every tool of the usual one but git-lfs (git submodule is a script)."""
    bindir = tmp_path_factory.mktemp("bin-all-but-lfs")
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = bindir / entry.name
            if entry.name != "git-lfs" and not target.exists() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    monkeypatch.setenv("PATH", os.pathsep.join([str(bindir), str(Path(sys.executable).parent)]))
    assert shutil.which("git-lfs") is None


@pytest.fixture
def project(tmp_path: Path, without_git_lfs: None) -> Project:
    remotes, buckets = {}, {}
    remotes["inner"], buckets["inner"] = _lfs_repository(tmp_path, "inner", {})
    remotes["lib"], buckets["lib"] = _lfs_repository(tmp_path, "lib", {"inner": remotes["inner"]})
    remotes["super"], buckets["super"] = _lfs_repository(tmp_path, "super", {"lib": remotes["lib"]})
    return Project(tmp_path, remotes, buckets)


#: Where each repository sits in a recursive clone of the superproject.
PLACES = {"super": ".", "lib": "lib", "inner": "lib/inner"}


def status(repo: Path) -> bytes:
    return git("status", "--porcelain", "--ignore-submodules=none", cwd=repo).stdout


def assert_real_and_clean(clone: Path, names=("super", "lib", "inner")) -> None:
    for name in names:
        repo = clone / PLACES[name]
        for path, data in CONTENT[name].items():
            assert (repo / path).read_bytes() == data, f"{name}: {path}"
        assert status(repo) == b"", f"{name}: {status(repo)!r}"


def assert_an_edit_is_committed_as_a_pointer(repo: Path, path: str) -> None:
    edited = b"edited inside " + path.encode() + b"\n"
    (repo / path).write_bytes(edited)
    git("add", path, cwd=repo)
    git("commit", "-qm", "edit", cwd=repo)
    assert git("cat-file", "-p", f"HEAD:{path}", cwd=repo).stdout == pointer_bytes(edited)
    assert git("status", "--porcelain", "--ignore-submodules=all", cwd=repo).stdout == b""


def global_config() -> bytes:
    return Path(os.environ["GIT_CONFIG_GLOBAL"]).read_bytes()


def install_global() -> None:
    out = agent("install", "--global", cwd=Path(os.environ["HOME"]))
    assert out.returncode == 0, out.stderr


def test_clone_recurse_submodules_after_a_global_install(project: Project):
    install_global()
    clone = project.root / "clone"
    proc = git(
        "clone",
        "-q",
        "--recurse-submodules",
        str(project.remotes["super"]),
        str(clone),
        cwd=project.root,
    )
    assert proc.returncode == 0
    assert_real_and_clean(clone)
    # The filter added each repository's hooks at its first run there.
    for hooks in (clone / ".git/hooks", clone / ".git/modules/lib/hooks"):
        for name in ("pre-push", "pre-commit", "post-checkout"):
            assert MARKER in (hooks / name).read_text(), hooks / name
    assert_an_edit_is_committed_as_a_pointer(clone / "lib/inner", "inner.bin")
    assert_an_edit_is_committed_as_a_pointer(clone / "lib", "data/more.bin")
    # The pre-push hook of the submodule uploads to the submodule's own bucket.
    git("push", "-q", "origin", "HEAD:refs/heads/edited", cwd=clone / "lib")
    edited = pointer_bytes(b"edited inside data/more.bin\n").split(b"sha256:")[1][:64].decode()
    assert (project.buckets["lib"] / "objects" / edited[:2] / edited[2:4] / edited).exists()


def test_submodule_update_init_and_remote_and_submodule_add(project: Project):
    install_global()
    clone = project.root / "clone"
    git("clone", "-q", str(project.remotes["super"]), str(clone), cwd=project.root)
    assert (clone / "top.bin").read_bytes() == CONTENT["super"]["top.bin"]
    git("submodule", "update", "-q", "--init", "--recursive", cwd=clone)
    assert_real_and_clean(clone)

    # A new commit of lib, with a new LFS file, reaches the clone by --remote.
    lib_work = project.root / "lib-work"
    (lib_work / "v2.bin").write_bytes(b"version two\n")
    git("add", "v2.bin", cwd=lib_work)
    git("commit", "-qm", "v2", cwd=lib_work)
    git("push", "-q", "origin", "main", cwd=lib_work)
    git("submodule", "update", "-q", "--remote", "lib", cwd=clone)
    assert (clone / "lib/v2.bin").read_bytes() == b"version two\n"
    assert status(clone / "lib") == b""
    assert status(clone) == b" M lib\n"  # the superproject sees lib's new commit

    other = project.root / "other"
    git("init", "-q", str(other), cwd=project.root)
    added = git("submodule", "add", "-q", project.remotes["lib"].as_uri(), "vendored", cwd=other)
    assert added.returncode == 0
    assert (other / "vendored/lib.bin").read_bytes() == CONTENT["lib"]["lib.bin"]
    assert status(other / "vendored") == b""
    assert_an_edit_is_committed_as_a_pointer(other / "vendored", "lib.bin")


def test_a_worktree_of_a_submodule(project: Project):
    install_global()
    clone = project.root / "clone"
    git(
        "clone",
        "-q",
        "--recurse-submodules",
        str(project.remotes["super"]),
        str(clone),
        cwd=project.root,
    )
    tree = project.root / "lib-tree"
    git("worktree", "add", "-q", "-b", "side", str(tree), cwd=clone / "lib")
    for path, data in CONTENT["lib"].items():
        assert (tree / path).read_bytes() == data
    assert status(tree) == b""
    assert_an_edit_is_committed_as_a_pointer(tree, "lib.bin")


def test_a_partial_clone_with_submodules(project: Project):
    install_global()
    clone = project.root / "clone"
    git(
        "clone",
        "-q",
        "--filter=blob:none",
        "--also-filter-submodules",
        "--recurse-submodules",
        project.remotes["super"].as_uri(),
        str(clone),
        cwd=project.root,
    )
    assert git("config", "remote.origin.promisor", cwd=clone).stdout.strip() == b"true"
    assert git("config", "remote.origin.promisor", cwd=clone / "lib").stdout.strip() == b"true"
    assert_real_and_clean(clone)
    assert_an_edit_is_committed_as_a_pointer(clone / "lib", "lib.bin")


def test_lfs_agent_clone_recurse_submodules_without_a_global_install(project: Project):
    dest = project.root / "dest"
    out = agent(
        "clone", "--recurse-submodules", str(project.remotes["super"]), str(dest), cwd=project.root
    )
    assert out.returncode == 0, out.stderr
    assert_real_and_clean(dest)
    assert b"filter.lfs" not in global_config()
    # Each submodule got install's config and hooks.
    assert_an_edit_is_committed_as_a_pointer(dest / "lib/inner", "inner.bin")
    assert MARKER in (dest / ".git/modules/lib/modules/inner/hooks/pre-push").read_text()


def test_install_recursive_sets_up_every_initialized_submodule(project: Project):
    clone = project.root / "clone"
    git(
        "clone",
        "-q",
        "--recurse-submodules",
        str(project.remotes["super"]),
        str(clone),
        cwd=project.root,
    )
    lib = clone / "lib"
    assert (lib / "lib.bin").read_bytes() == pointer_bytes(CONTENT["lib"]["lib.bin"])
    out = agent("install", "--recursive", cwd=clone)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert lines[1].startswith("lfs-agent installed in submodule lib (filter and hooks); remote ")
    assert lines[2].startswith("lfs-agent installed in submodule lib/inner (")
    for place in PLACES.values():
        assert agent("pull", cwd=clone / place).returncode == 0
    assert_real_and_clean(clone)
    assert_an_edit_is_committed_as_a_pointer(clone / "lib/inner", "inner.bin")
    out = agent("uninstall", "--recursive", cwd=clone)
    assert out.returncode == 0, out.stderr
    config = git("config", "--local", "--list", cwd=clone / "lib/inner").stdout
    assert b"filter.lfs" not in config


def test_the_pre_commit_hook_refuses_raw_bytes_when_no_filter_is_configured(project: Project):
    install_global()
    clone = project.root / "clone"
    git(
        "clone",
        "-q",
        "--recurse-submodules",
        str(project.remotes["super"]),
        str(clone),
        cwd=project.root,
    )
    assert agent("uninstall", "--global", cwd=project.root).returncode == 0
    lib = clone / "lib"  # keeps the hooks the global filter added
    head = git("rev-parse", "HEAD", cwd=lib).stdout
    (lib / "lib.bin").write_bytes(b"raw bytes that must not reach git\n")
    (lib / "notes.txt").write_text("edited too\n")
    git("add", "lib.bin", "notes.txt", cwd=lib)
    refused = git("commit", "-qm", "raw", cwd=lib, check=False)
    assert refused.returncode != 0
    err = refused.stderr.decode()
    assert (
        "lfs-agent: lib.bin is staged as its raw content, but .gitattributes stores it with LFS "
        "(filter=lfs): run 'lfs-agent install', then 'git add --renormalize -- lib.bin'"
    ) in err, err
    assert "notes.txt" not in err
    assert git("rev-parse", "HEAD", cwd=lib).stdout == head
    # The fix it names works.
    assert agent("install", cwd=lib).returncode == 0
    git("add", "--renormalize", "--", "lib.bin", cwd=lib)
    git("commit", "-qm", "pointer", cwd=lib)
    assert git("cat-file", "-p", "HEAD:lib.bin", cwd=lib).stdout == pointer_bytes(
        b"raw bytes that must not reach git\n"
    )


def test_the_pre_commit_hook_starts_lfs_agent_only_for_lfs_paths(tmp_path: Path):
    repo = tmp_path / "repo"
    git("init", "-q", str(repo), cwd=tmp_path)
    (repo / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    hook = repo / ".git/hooks/pre-commit"
    hook.write_text(render_hook("pre-commit", "/nonexistent/python"))
    hook.chmod(0o755)
    bindir = tmp_path / "bin"  # git and sh, and no lfs-agent
    bindir.mkdir()
    for tool in ("git", "sh"):
        (bindir / tool).symlink_to(shutil.which(tool))
    env = {**os.environ, "PATH": str(bindir)}
    git("add", ".gitattributes", cwd=repo)
    git("commit", "-qm", "attributes only", cwd=repo, env=env)
    (repo / "a.bin").write_bytes(b"raw\n")
    git("add", "a.bin", cwd=repo)
    refused = git("commit", "-qm", "raw", cwd=repo, env=env, check=False)
    assert refused.returncode != 0
    assert b"set up for lfs-agent, but it was not found" in refused.stderr
    git("rm", "-q", "--cached", "a.bin", cwd=repo)
    git("rm", "-q", ".gitattributes", cwd=repo)  # a deletion is no content
    git("commit", "-qm", "removed", cwd=repo, env=env)


def test_a_foreign_pre_commit_hook_runs_first_and_uninstall_restores_it(tmp_path: Path):
    repo = tmp_path / "repo"
    git("init", "-q", str(repo), cwd=tmp_path)
    hook = repo / ".git/hooks/pre-commit"
    foreign = "#!/bin/sh\necho foreign ran >&2\nexit 1\n"
    hook.write_text(foreign)
    hook.chmod(0o755)
    out = agent("install", cwd=repo)
    assert b"kept your pre-commit hook" in out.stderr
    (repo / "a.txt").write_text("a\n")
    git("add", "a.txt", cwd=repo)
    refused = git("commit", "-qm", "a", cwd=repo, check=False)
    assert refused.returncode != 0 and b"foreign ran" in refused.stderr
    assert agent("uninstall", cwd=repo).returncode == 0
    assert hook.read_text() == foreign
