"""Failed delayed smudges, handed from git's filter process to the post-checkout hook.

git lets the filter delay a smudge and ask for it later. When a delayed file never
arrives, git says "'<path>' was not filtered properly" and still ends the checkout with
status 0, so ``git checkout v2 && python eval.py`` would go on without the model. The
filter therefore gives such a file its pointer (the work tree stays consistent, and
``lfs-agent pull`` completes it later) and records the failure here; the post-checkout
hook, whose exit status git's checkout takes as its own, reports it and fails.

A record belongs to one git command: it is named by the process id of the git that
ran the filter, which is also the git that runs the hook (found by walking up the
process tree, on systems with ``/proc``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from lfs_agent.pids import alive

__all__ = ["RECORD_PREFIX", "git_pid", "record", "take"]

#: Record files in the store's ``tmp/``: ``<prefix><git's pid>``.
RECORD_PREFIX = "smudge-failed-"
#: How far up the process tree a git process is looked for (hook shims, ``sh -c``).
_MAX_DEPTH = 8


def _parent_and_name(pid: int) -> tuple[int, str] | None:
    """The parent pid and command name of ``pid``, from ``/proc``; None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    name = text[text.find("(") + 1 : text.rfind(")")]
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return int(fields[1]), name
    except (IndexError, ValueError):
        return None


def _ancestors() -> Iterator[tuple[int, str]]:
    """``(pid, name)`` of this process's parent, its parent, and so on."""
    pid = os.getppid()
    for _ in range(_MAX_DEPTH):
        found = _parent_and_name(pid)
        if found is None:
            return
        yield pid, found[1]
        if found[0] <= 1:
            return
        pid = found[0]


def git_pid() -> int:
    """The pid of the nearest git process above this one (the parent without /proc)."""
    for pid, name in _ancestors():
        if name == "git":
            return pid
    return os.getppid()


def record(tmp_dir: Path, failures: Mapping[str, str]) -> None:
    """Add ``failures`` (path -> reason) to the record of the git command running us."""
    if not failures:
        return
    tmp_dir.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps([path, reason]) + "\n" for path, reason in failures.items())
    fd = os.open(
        tmp_dir / f"{RECORD_PREFIX}{git_pid()}",
        os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
    )
    try:
        os.write(fd, lines.encode("utf-8", "surrogateescape"))
    finally:
        os.close(fd)


def take(tmp_dir: Path) -> dict[str, str]:
    """Read and remove the failures recorded by the git command running this hook.

    Records of git processes that have ended (a command without a post-checkout hook,
    such as ``merge``) are removed too.

    Returns:
        path -> reason, empty when nothing failed.
    """
    mine = {f"{RECORD_PREFIX}{pid}" for pid, _ in _ancestors()} or {
        f"{RECORD_PREFIX}{os.getppid()}"
    }
    failures: dict[str, str] = {}
    try:
        entries = [e for e in os.scandir(tmp_dir) if e.name.startswith(RECORD_PREFIX)]
    except OSError:
        return failures
    for entry in entries:
        if entry.name in mine:
            failures.update(_read(Path(entry.path)))
        elif _owner_alive(entry.name.removeprefix(RECORD_PREFIX)):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
    return failures


def _read(path: Path) -> dict[str, str]:
    failures: dict[str, str] = {}
    with contextlib.suppress(OSError), open(path, "rb") as f:
        for line in f.read(1 << 20).decode("utf-8", "surrogateescape").splitlines():
            with contextlib.suppress(ValueError, TypeError):
                path_, reason = json.loads(line)
                failures[str(path_)] = str(reason)
    return failures


def _owner_alive(pid: str) -> bool:
    """Whether the git process a record is named by still runs (it may add to it)."""
    return pid.isdigit() and alive(int(pid))
