"""``lfs-agent clone``: git clone through our filter, then install, then the large files.

1. ``git clone`` runs with our filter on its command line (a global filter, git-lfs's
   say, is not used) and what ``install`` writes passed with ``clone -c``; git's
   checkout writes the small files through the filter, which leaves objects over
   :data:`~lfs_agent.checkout.GIT_WRITES_MAX`, and any it cannot get, as pointers.
2. ``install`` adds the hooks; a branch from before ``.lfsagent`` existed finds its
   remote on the remote's default branch (:func:`remote_from_default_branch`).
3. The caller pulls the rest, unless the filter said it gave git every file
   (:attr:`CloneRun.smudged_all`); submodules get steps 2 and 3 each.

The command line supplies the environment, the stream git's messages go to, and the
pull, which reports progress to a person.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple

from lfs_agent.checkout import GIT_WRITES_MAX
from lfs_agent.config import committed_remote
from lfs_agent.errors import LfsAgentError
from lfs_agent.git import Git
from lfs_agent.gitfilter import PULL_AFTER_ENV, SMUDGED_ALL_ENV
from lfs_agent.install import clone_settings, install, remember_remote, submodule_repos

__all__ = [
    "CloneRun",
    "clone_command",
    "clone_directory",
    "free_space_if_unwritable",
    "relay_stderr",
    "remote_from_default_branch",
    "run_git_clone",
    "set_up_submodules",
]

#: How much of a command's stderr is kept to be read after it ends (bytes).
STDERR_KEPT = 64 * 1024
#: Bytes read from git's stderr at a time (a pipe's default capacity).
RELAY_CHUNK = 64 * 1024
#: What git says when it could not write a file of the checkout; it never names the cause.
UNWRITABLE_MARKERS = ("unable to write", "No space left on device", "File too large")


def clone_directory(url: str) -> str:
    """The directory git clone would pick for ``url`` (its "humanish" part)."""
    name = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    name = name.removesuffix(".git") if name != ".git" else name
    return name or "repo"


def clone_command(
    url: str,
    dest: Path,
    *,
    python: str,
    branch: str | None = None,
    depth: int | None = None,
    recurse_submodules: bool = False,
    partial: str | None = None,
    config: Sequence[str] = (),
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> list[str]:
    """The ``git clone`` command line that checks out through our filter.

    Args:
        url: What to clone.
        dest: The new repository's directory.
        python: The interpreter our filter runs with (written into the clone's config).
        branch: ``--branch``.
        depth: ``--depth``.
        recurse_submodules: ``--recurse-submodules``.
        partial: ``--filter`` (a partial clone, ``blob:none``).
        config: ``--config KEY=VALUE`` settings, as given.
        include: Fetch include patterns, kept in the clone's config; None: none set.
        exclude: Fetch exclude patterns, kept likewise.

    Returns:
        The command, starting with ``git``.
    """
    # Written into the clone's config by git (clone -c) before its checkout: what
    # install writes, and the fetch patterns, which last.
    settings = clone_settings(python)
    for key, patterns in (("fetchinclude", include), ("fetchexclude", exclude)):
        if patterns is not None:
            settings[f"lfs-agent.{key}"] = ",".join(patterns)
    # For the clone's checkout only (-c before "clone"), overriding the above: our filter
    # runs, not whatever filter is set up globally (git-lfs's, say), and is not required:
    # should it fail, git writes pointers and goes on. With PULL_AFTER_ENV it leaves
    # objects over GIT_WRITES_MAX, and any it cannot get, as pointers for the pull
    # after it, which writes large files itself and reports what is missing.
    checkout_only = {
        # Also in settings; here it outranks one given in the environment as well.
        "filter.lfs.process": settings["filter.lfs.process"],
        "filter.lfs.smudge": "",
        "filter.lfs.clean": "",
        "filter.lfs.required": "false",
    }
    cmd = ["git"]
    for key, value in checkout_only.items():
        cmd += ["-c", f"{key}={value}"]
    cmd.append("clone")
    for key, value in settings.items():
        cmd += ["-c", f"{key}={value}"]
    if branch:
        cmd += ["--branch", branch]
    if depth:
        cmd += ["--depth", str(depth)]
    if recurse_submodules:
        cmd.append("--recurse-submodules")
    if partial:
        cmd.append(f"--filter={partial}")
    for setting in config:
        cmd += ["--config", setting]
    cmd += ["--", url, str(dest)]
    return cmd


class CloneRun(NamedTuple):
    """How ``git clone`` went.

    Attributes:
        status: git's exit status.
        stderr_tail: The last :data:`STDERR_KEPT` bytes git wrote to stderr, decoded.
        smudged_all: Whether our filter gave git every file's content (nothing left to
            pull), as far as the top repository's checkout goes.
    """

    status: int
    stderr_tail: str
    smudged_all: bool


def run_git_clone(cmd: list[str], env: Mapping[str, str], stderr: BinaryIO) -> CloneRun:
    """Run ``cmd`` (from :func:`clone_command`), its messages passed on to ``stderr``.

    Args:
        cmd: The clone command.
        env: The environment git runs in; the filter's settings for this checkout are
            added to it.
        stderr: Where git's stderr goes as it comes (it shows progress).

    Returns:
        How it went.
    """
    with tempfile.TemporaryDirectory(prefix="lfs-agent-clone-") as tmp:
        # Created by the filter when git got every file's content from it.
        smudged_all = Path(tmp) / "smudged-all"
        full_env = {
            **env,
            PULL_AFTER_ENV: str(GIT_WRITES_MAX),
            SMUDGED_ALL_ENV: str(smudged_all),
        }
        status, said = relay_stderr(cmd, full_env, stderr)
        return CloneRun(status, said, smudged_all.exists())


def relay_stderr(cmd: list[str], env: Mapping[str, str], out: BinaryIO) -> tuple[int, str]:
    """Run ``cmd``, passing its stderr on to ``out`` as it comes.

    Returns:
        Its exit status and the last :data:`STDERR_KEPT` bytes of its stderr, decoded.
    """
    proc = subprocess.Popen(cmd, env=dict(env), stderr=subprocess.PIPE)
    assert proc.stderr is not None
    kept = b""
    while chunk := os.read(proc.stderr.fileno(), RELAY_CHUNK):
        out.write(chunk)
        out.flush()
        kept = (kept + chunk)[-STDERR_KEPT:]
    return proc.wait(), kept.decode("utf-8", "replace")


def free_space_if_unwritable(said: str, dest: Path) -> int | None:
    """The bytes free where ``dest`` is, when git said it could not write its files.

    git names each file it could not write ("unable to write file ..."), never the
    cause, which is nearly always a full disk (or a file size limit).

    Args:
        said: The end of git's stderr.
        dest: The clone's directory (it may not exist: its nearest parent counts).

    Returns:
        The free bytes, or None when git did not say it could not write.
    """
    if not any(marker in said for marker in UNWRITABLE_MARKERS):
        return None
    where = dest
    while not where.exists() and where != where.parent:
        where = where.parent
    return shutil.disk_usage(where).free


def remote_from_default_branch(git: Git) -> bool:
    """Record the remote ``.lfsagent`` names on the remote's default branch, if any.

    For ``clone -b`` of a branch from before ``.lfsagent`` existed: the clone's own
    config then keeps the remote at the lowest precedence (as ``install`` records it).

    Returns:
        True when a remote was recorded.
    """
    remote = committed_remote(git, "refs/remotes/origin/HEAD")
    if remote is None:
        return False
    remember_remote(git, remote)
    return True


def set_up_submodules(
    top: Path,
    pull: Callable[[Path], None],
    failed: Callable[[str, LfsAgentError], None],
) -> bool:
    """After ``clone --recurse-submodules``: install and pull in every submodule.

    git checked them out through the clone's filter (the settings given before
    ``clone`` reach the submodules' clones too), which left the large files, and any it
    could not get, as pointers. A submodule that fails is named, and the others go on.

    Args:
        top: The clone's directory.
        pull: Downloads and writes a submodule's large files, given its directory.
        failed: Told of each submodule that failed: its path as shown from ``top``,
            and why.

    Returns:
        True when every submodule was set up.
    """
    ok = True
    for name, path in submodule_repos(Git(top)):
        try:
            install(Git(path))
            pull(path)
        except LfsAgentError as exc:
            failed(name, exc)
            ok = False
    return ok
