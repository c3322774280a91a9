"""Thin, typed wrappers around git plumbing commands.

Everything git-facing is ``bytes`` until the edge; paths come back as ``str`` decoded
with ``surrogateescape`` so that any byte sequence survives a round trip. Only this
module spawns git, so tests can inject a different runner or working directory.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

from lfs_agent.errors import GitError
from lfs_agent.log import get_logger

__all__ = ["ConfigEntry", "Git", "RepoPaths"]

logger = get_logger(__name__)

#: git-config scopes that belong to this repository rather than the user or machine.
REPO_SCOPES = frozenset({"local", "worktree", "command"})


class RepoPaths(NamedTuple):
    """Where a repository lives on disk.

    Attributes:
        git_dir: This work tree's git dir (``.git/worktrees/<n>`` in a linked worktree).
        common_dir: The dir shared by all worktrees; ``lfs/`` lives under it.
        work_tree: The top level of the work tree, or None in a bare repository.
    """

    git_dir: Path
    common_dir: Path
    work_tree: Path | None


class ConfigEntry(NamedTuple):
    """One ``key=value`` line of ``git config -l`` with the scope it came from."""

    scope: str
    key: str
    value: str


class Git:
    """Runs git in one directory.

    Args:
        cwd: Directory git runs in; None for the process's current directory.
        env: Full environment for git; None inherits ours. Only the CLI decides this.
    """

    def __init__(self, cwd: Path | str | None = None, env: Mapping[str, str] | None = None) -> None:
        # Directory every git command runs in (git finds the repository from it).
        self.cwd = Path(cwd) if cwd is not None else None
        # Environment for every git child; None means inherit.
        self.env = dict(env) if env is not None else None

    def run(
        self,
        args: Sequence[str],
        *,
        input: bytes | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``git <args>`` and return the completed process (stdout as bytes).

        Raises:
            GitError: when git exits non-zero and ``check`` is true, with git's message.
        """
        cmd = ["git", *args]
        logger.debug("run %s", " ".join(cmd))
        try:
            proc = subprocess.run(
                cmd, input=input, capture_output=True, cwd=self.cwd, env=self.env, check=False
            )
        except FileNotFoundError:
            raise GitError("git is not installed or not on PATH") from None
        if check and proc.returncode != 0:
            message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            detail = message[-1] if message else f"exit {proc.returncode}"
            raise GitError(f"git {args[0]} failed: {detail}")
        return proc

    def output(self, args: Sequence[str]) -> str:
        """Run git and return stdout decoded, with the final newline stripped."""
        return self.run(args).stdout.decode("utf-8", "surrogateescape").rstrip("\n")

    @cached_property
    def paths(self) -> RepoPaths:
        """The repository's git dir, common dir and work tree.

        Raises:
            GitError: outside a repository.
        """
        base = [
            "rev-parse",
            "--path-format=absolute",
            "--git-dir",
            "--git-common-dir",
            "--is-bare-repository",
        ]
        # One call in a work tree; --show-toplevel fails in a bare repository (or inside
        # the git dir), hence the second try without it.
        proc = self.run([*base, "--show-toplevel"], check=False)
        if proc.returncode != 0:
            proc = self.run(base, check=False)
        if proc.returncode != 0:
            raise GitError("not a git repository (or any parent up to the file system root)")
        found = proc.stdout.decode("utf-8", "surrogateescape").splitlines()
        git_dir, common_dir, bare = found[:3]
        work_tree = Path(found[3]) if len(found) > 3 and bare != "true" else None
        return RepoPaths(Path(git_dir), Path(common_dir), work_tree)

    def config_entries(self, extra_args: Sequence[str] = ()) -> list[ConfigEntry]:
        """All config entries git sees, in git's order (later entries win).

        Args:
            extra_args: e.g. ``["-f", path]`` or ``["--blob", "HEAD:.lfsagent"]`` to read
                one file instead of the repository's whole configuration.
        """
        proc = self.run(["config", *extra_args, "--list", "-z", "--show-scope"], check=False)
        if proc.returncode != 0:
            return []
        entries = []
        fields = proc.stdout.split(b"\0")
        for scope, item in zip(fields[0::2], fields[1::2], strict=False):
            key, _, value = item.decode("utf-8", "surrogateescape").partition("\n")
            entries.append(ConfigEntry(scope.decode(), key, value))
        return entries

    def config_get(self, key: str, *, file: Path | None = None) -> str | None:
        """Return the last value of ``key`` (or None), from ``file`` when given."""
        where = ["-f", str(file)] if file is not None else []
        proc = self.run(["config", *where, "--get", key], check=False)
        if proc.returncode != 0:
            return None
        return proc.stdout.decode("utf-8", "surrogateescape").rstrip("\n")

    def config_set(self, key: str, value: str, *, file: Path | None = None) -> None:
        """Set ``key`` to exactly one ``value`` (``--replace-all``), in ``file`` if given."""
        where = ["-f", str(file)] if file is not None else ["--local"]
        self.run(["config", *where, "--replace-all", key, value])

    def config_unset(self, key: str, *, file: Path | None = None) -> None:
        """Remove every value of ``key``; a missing key is not an error."""
        where = ["-f", str(file)] if file is not None else ["--local"]
        self.run(["config", *where, "--unset-all", key], check=False)

    def rev_parse(self, rev: str) -> str | None:
        """Return the full object id of ``rev``, or None when it does not resolve."""
        proc = self.run(["rev-parse", "--verify", "--quiet", rev + "^{commit}"], check=False)
        if proc.returncode != 0:
            return None
        return proc.stdout.decode().strip()
