"""Thin, typed wrappers around git plumbing commands.

Everything git-facing is ``bytes`` until the edge; paths come back as ``str`` decoded
with ``surrogateescape`` so that any byte sequence survives a round trip. Only this
module spawns git, so tests can inject a different runner or working directory.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

from lfs_agent.errors import GitError
from lfs_agent.log import get_logger

__all__ = [
    "ConfigEntry",
    "Git",
    "RepoPaths",
    "Started",
    "config_list",
    "config_list_args",
    "failure_reason",
    "lfs_filtered",
]

logger = get_logger(__name__)

#: git-config scopes that belong to this repository rather than the user or machine.
REPO_SCOPES = frozenset({"local", "worktree", "command"})


def failure_reason(proc: subprocess.CompletedProcess[bytes]) -> str:
    """What a failed git command said was wrong, in one line.

    git states the cause first (``fatal: Unable to create '.../index.lock': File
    exists.``, ``error: bad config line 1 ...``) and may follow it with advice or a
    summary: its first ``fatal:`` or ``error:`` line, without that word; else its last
    line.
    """
    lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    for line in lines:
        for prefix in ("fatal: ", "error: "):
            if line.startswith(prefix):
                return line[len(prefix) :]
    return lines[-1] if lines else f"exit {proc.returncode}"


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


class Started:
    """A git command running in the background (:meth:`Git.start`)."""

    def __init__(self, proc: subprocess.Popen[bytes], cmd: list[str], input: bytes | None) -> None:
        self._proc = proc
        self._cmd = cmd
        self._input = input

    def wait(self) -> subprocess.CompletedProcess[bytes]:
        """Send the input, then wait for the command; its output as bytes."""
        try:
            stdout, stderr = self._proc.communicate(self._input)
        except BaseException:
            self._proc.kill()
            self._proc.wait()
            raise
        return subprocess.CompletedProcess(self._cmd, self._proc.returncode, stdout, stderr)


def config_list_args(extra_args: Sequence[str] = ()) -> list[str]:
    """The arguments of ``git config`` listing entries with their scopes (see below)."""
    return ["config", *extra_args, "--list", "-z", "--show-scope"]


def config_list(proc: subprocess.CompletedProcess[bytes]) -> list[ConfigEntry]:
    """The entries a ``git config`` run with :func:`config_list_args` printed, in order.

    A failed run (a missing file or blob) has none.
    """
    if proc.returncode != 0:
        return []
    entries = []
    fields = proc.stdout.split(b"\0")
    for scope, item in zip(fields[0::2], fields[1::2], strict=False):
        key, _, value = item.decode("utf-8", "surrogateescape").partition("\n")
        entries.append(ConfigEntry(scope.decode(), key, value))
    return entries


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

    def start(self, args: Sequence[str], *, input: bytes | None = None) -> Started:
        """Start ``git <args>`` without waiting for it; :meth:`Started.wait` collects it.

        Commands that do not depend on each other can run side by side: most of what a
        short git command costs is git's own start.

        Raises:
            GitError: when git is not installed.
        """
        cmd = ["git", *args]
        logger.debug("run %s", " ".join(cmd))
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.cwd,
                env=self.env,
            )
        except FileNotFoundError:
            raise GitError("git is not installed or not on PATH") from None
        return Started(proc, cmd, input)

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
        proc = self.start(args, input=input).wait()
        if check and proc.returncode != 0:
            raise GitError(f"git {args[0]} failed: {failure_reason(proc)}")
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
        return config_list(self.run(config_list_args(extra_args), check=False))

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


def lfs_filtered(git: Git, paths: Iterable[str]) -> list[str]:
    """Those of ``paths`` whose ``filter`` attribute is ``lfs``, as ``git check-attr`` says.

    Raises:
        GitError: when git fails.
    """
    names = "".join(f"{p}\0" for p in paths).encode("utf-8", "surrogateescape")
    if not names:
        return []
    attrs = git.run(["check-attr", "-z", "--stdin", "filter"], input=names).stdout.split(b"\0")
    return [
        path.decode("utf-8", "surrogateescape")
        for path, _, value in zip(attrs[0::3], attrs[1::3], attrs[2::3], strict=False)
        if value == b"lfs"
    ]
