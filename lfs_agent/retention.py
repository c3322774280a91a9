"""Retention policies: which objects of a repository's history are kept.

One policy vocabulary for the bucket's garbage collection and the local ``prune``:

- ``history``: every object of every commit reachable from the refs (git-lfs's promise
  for a server: any checkout of any commit works).
- ``tips+tags``: only the trees of branch tips and tags (DVC's ``gc -a -T``).
- ``recent:<N>d``: the tips and tags, plus every commit made in the last N days
  (git-lfs's ``fetch --recent``, lakeFS's retention days).

Anything but ``history`` means that checking out an old commit may find its large files
gone; that is the policy's point, so it is always chosen explicitly.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import NamedTuple

from lfs_agent.errors import ConfigError
from lfs_agent.git import Git
from lfs_agent.scan import PointerFile, rev_list_pointers, tree_pointers

__all__ = ["DAY", "Policy", "parse_days", "policy_pointers"]

#: Seconds in a day.
DAY = 86400
_RECENT = re.compile(r"recent:(\d{1,5})d")
_DURATION = re.compile(r"(\d{1,6})([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": DAY}


class Policy(NamedTuple):
    """A retention policy: ``kind`` is ``history``, ``tips+tags`` or ``recent``."""

    kind: str
    #: For ``recent``: how many days of commits are kept besides the tips and tags.
    days: int = 0

    @classmethod
    def parse(cls, text: str) -> Policy:
        """``history``, ``tips+tags`` or ``recent:30d``.

        Raises:
            ConfigError: for anything else, naming the three forms.
        """
        text = text.strip()
        if text in ("history", "tips+tags"):
            return cls(text)
        match = _RECENT.fullmatch(text)
        if match:
            return cls("recent", int(match[1]))
        raise ConfigError(
            f"unknown retention policy {text!r}: use history, tips+tags or recent:<N>d "
            "(e.g. recent:30d)"
        )

    def __str__(self) -> str:
        return f"recent:{self.days}d" if self.kind == "recent" else self.kind


def parse_days(text: str, what: str) -> float:
    """A duration such as ``14d``, ``24h``, ``30m`` or ``0s``, in seconds.

    Raises:
        ConfigError: for anything else, naming ``what`` (the flag or key).
    """
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ConfigError(f"{what} must be a duration such as 14d, 24h, 30m or 0s, not {text!r}")
    return float(int(match[1]) * _UNIT[match[2]])


def policy_pointers(
    git: Git, tips: Sequence[str], policy: Policy, now: float | None = None
) -> list[PointerFile]:
    """The pointers ``policy`` keeps for a repository whose refs point at ``tips``.

    Args:
        git: Runs git in a repository holding the history of ``tips``.
        tips: Object names of the refs (branch tips and tags; tags are peeled).
        policy: What to keep.
        now: The time "recent" counts back from; None: the clock's.
    """
    if not tips:
        return []
    if policy.kind == "history":
        return rev_list_pointers(git, tips)
    found: dict[str, PointerFile] = {}
    for tip in dict.fromkeys(tips):
        commit = git.rev_parse(tip)
        if commit is None:
            continue  # a tag of a blob or a tree: no commit, nothing to keep
        for f in tree_pointers(git, commit):
            found.setdefault(f.pointer.oid, f)
    if policy.kind == "recent":
        since = int((time.time() if now is None else now) - policy.days * DAY)
        for f in rev_list_pointers(git, tips, since=since):
            found.setdefault(f.pointer.oid, f)
    return list(found.values())
