"""Retention policies: which objects of a repository's history are kept.

One policy vocabulary for the bucket's garbage collection and the local ``prune``:

- ``history``: every object of every commit reachable from the refs (git-lfs's promise
  for a server: any checkout of any commit works).
- ``tips+tags``: only the trees of branch tips and tags (DVC's ``gc -a -T``).
- ``recent:<N>d``: the tips and tags, plus every commit made in the last N days
  (git-lfs's ``fetch --recent``, lakeFS's retention days).

Anything but ``history`` means that checking out an old commit may find its large files
gone; that is the policy's point, so it is always chosen explicitly.

``prune`` without a policy follows git-lfs's own rules instead (:class:`PruneRules`):
the refs whose tip was committed in the last days, the commits of the days before each
such tip, and the commits not yet pushed, with windows read from git-lfs's ``lfs.*`` keys.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from lfs_agent.errors import ConfigError
from lfs_agent.git import Git
from lfs_agent.scan import PointerFile, rev_list_pointers, tree_pointers

__all__ = [
    "DAY",
    "Policy",
    "PruneRules",
    "parse_days",
    "policy_pointers",
    "prune_rule_pointers",
    "recent_refs",
    "ref_tips",
    "remote_to_check",
    "unpushed_pointers",
    "window_pointers",
]

#: Seconds in a day.
DAY = 86400
_RECENT = re.compile(r"recent:(\d{1,5})d")
_DURATION = re.compile(r"(\d{1,6})([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": DAY}
#: Most days any of git-lfs's day counts may be set to: a century.
MAX_DAYS = 36500
_TRUE = frozenset({"true", "yes", "on", "1"})
# git reads an empty value as false, too.
_FALSE = frozenset({"false", "no", "off", "0", ""})


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


class PruneRules(NamedTuple):
    """git-lfs's prune rules: which refs and commits are recent enough to keep.

    The defaults are git-lfs's. A day count of 0 turns its rule off; the offset is
    added to a rule only while the rule is on.
    """

    #: ``lfs.fetchrecentrefsdays``: refs whose tip was committed in these last days
    #: (plus the offset) keep the objects of their tip.
    refs_days: int = 7
    #: ``lfs.fetchrecentremoterefs``: remote-tracking refs count as refs above.
    remote_refs: bool = True
    #: ``lfs.fetchrecentcommitsdays``: on HEAD and each recent ref, the commits of
    #: these days (plus the offset) before its tip keep their objects.
    commits_days: int = 0
    #: ``lfs.pruneoffsetdays``: days added to the two windows above, so that what
    #: ``fetch --recent`` downloads stays a few days longer.
    offset_days: int = 3
    #: ``lfs.pruneremotetocheck``: the git remote whose remote-tracking refs say which
    #: commits are pushed; None when no such remote is configured.
    remote: str | None = "origin"

    @classmethod
    def from_config(cls, config: Mapping[str, str]) -> PruneRules:
        """The rules git config sets, git-lfs's defaults for the keys it does not.

        Args:
            config: git config entries, keyed as ``git config --list`` prints them (the
                last value of each key).

        Raises:
            ConfigError: for a day count that is not a whole number from 0 to
                :data:`MAX_DAYS`, or a flag that is not one of git's booleans.
        """
        return cls(
            refs_days=_days(config, "lfs.fetchrecentrefsdays", 7),
            remote_refs=_flag(config, "lfs.fetchrecentremoterefs", True),
            commits_days=_days(config, "lfs.fetchrecentcommitsdays", 0),
            offset_days=_days(config, "lfs.pruneoffsetdays", 3),
            remote=remote_to_check(config),
        )

    @classmethod
    def read(cls, git: Git) -> PruneRules:
        """The rules of the repository ``git`` runs in, from every scope of its git config.

        Only git config: git-lfs does not read these keys from a committed
        ``.lfsconfig`` either, since they decide what is deleted on this machine.
        """
        return cls.from_config({e.key: e.value for e in git.config_entries()})

    def without_recent(self) -> PruneRules:
        """These rules with the recent refs and commits turned off (``prune --recent``)."""
        return self._replace(refs_days=0, commits_days=0)


def remote_to_check(config: Mapping[str, str]) -> str | None:
    """The git remote whose refs say what is pushed, or None when there is none.

    ``lfs.pruneremotetocheck``, else ``origin``, as git-lfs; None when git config has
    no such remote (git-lfs then keeps every object; here the bucket check stands).

    Args:
        config: git config entries, keyed as ``git config --list`` prints them.
    """
    remote = config.get("lfs.pruneremotetocheck", "").strip() or "origin"
    return remote if f"remote.{remote}.url" in config else None


def _days(config: Mapping[str, str], key: str, default: int) -> int:
    """A whole number of days from 0 to :data:`MAX_DAYS` set at ``key``, or ``default``."""
    if key not in config:
        return default
    text = config[key].strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_DAYS:
        raise ConfigError(
            f"{key} must be a whole number of days from 0 to {MAX_DAYS}, got {config[key]!r}: "
            f"set it with 'git config {key} {default}'"
        )
    return int(text)


def _flag(config: Mapping[str, str], key: str, default: bool) -> bool:
    """One of git's booleans set at ``key``, or ``default``."""
    if key not in config:
        return default
    value = config[key].strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(
        f"{key} must be true or false (or yes/no, on/off, 1/0), got {config[key]!r}: "
        f"set it with 'git config {key} {str(default).lower()}'"
    )


def ref_tips(git: Git, remote_refs: bool = True) -> list[str]:
    """The object names of the local branches, the tags and the remote-tracking refs.

    What a policy keeps for prune: every ref of the repository but the stash, whose
    commits are the current work's and kept as such.

    Args:
        git: Runs git in the repository.
        remote_refs: Include ``refs/remotes/``.
    """
    patterns = ["refs/heads", "refs/tags"] + (["refs/remotes"] if remote_refs else [])
    listed = git.output(["for-each-ref", "--format=%(objectname)", *patterns])
    return list(dict.fromkeys(listed.split()))


def recent_refs(git: Git, since: float, remote_refs: bool) -> list[str]:
    """The commits at the tip of refs committed at or after ``since``.

    As git-lfs finds "recent refs": every ref under ``refs/`` that names a commit (an
    annotated tag names a tag object, so it is not one), by its committer date;
    remote-tracking refs only when ``remote_refs``.

    Args:
        git: Runs git in the repository.
        since: Seconds since the epoch.
        remote_refs: Count ``refs/remotes/`` too.
    """
    listed = git.output(
        ["for-each-ref", "--format=%(objectname) %(committerdate:unix) %(refname)", "refs"]
    )
    found: dict[str, None] = {}
    for line in listed.splitlines():
        name, date, ref = [*line.split(" ", 2), "", ""][:3]
        if not date.isdigit() or (ref.startswith("refs/remotes/") and not remote_refs):
            continue
        if int(date) >= since:
            found[name] = None
    return list(found)


def window_pointers(git: Git, commit: str, since: float) -> list[PointerFile]:
    """The pointers any checkout of ``commit``'s history since ``since`` had.

    git-lfs keeps, for a ref's recent commits, the previous version of each LFS file a
    commit made at or after ``since`` changed. Those versions are the files of those
    commits and of their parents, so that is what is listed: the trees of the commits
    reachable from ``commit`` dated at or after ``since`` (by their committer), and the
    trees of the older parents they were made on.

    Args:
        git: Runs git in the repository.
        commit: Where the walk starts.
        since: Seconds since the epoch.
    """
    start = int(since)
    listed = git.output(["rev-list", f"--since={start}", "--parents", commit, "--"])
    inside: set[str] = set()
    parents: dict[str, None] = {}
    for line in listed.splitlines():
        names = line.split()
        if names:
            inside.add(names[0])
            parents.update(dict.fromkeys(names[1:]))
    found = {f.pointer.oid: f for f in rev_list_pointers(git, [commit], since=start)}
    for parent in parents:
        if parent not in inside:
            for f in tree_pointers(git, parent):
                found.setdefault(f.pointer.oid, f)
    return list(found.values())


def unpushed_pointers(git: Git, remote: str | None) -> list[PointerFile]:
    """The pointers of commits on local branches and tags not on ``remote``'s refs.

    git-lfs's "unpushed" rule: its pre-push hook uploads the objects of commits before
    git sends them, so what the remote-tracking refs hold is pushed and the rest may
    not be.

    Args:
        git: Runs git in the repository.
        remote: A git remote's name; None: no remote to compare with, nothing listed.
    """
    if remote is None:
        return []
    tips = git.output(["for-each-ref", "--format=%(objectname)", "refs/heads", "refs/tags"])
    return rev_list_pointers(git, list(dict.fromkeys(tips.split())), not_remote=remote)


def prune_rule_pointers(
    git: Git, rules: PruneRules, head: str | None, now: float | None = None
) -> list[PointerFile]:
    """The pointers git-lfs's recent refs and recent commits rules keep.

    The tree of ``head`` and of each recent ref's tip; with a commits window, the
    :func:`window_pointers` of each of those, counted back from its own tip's date.
    Unpushed commits and the index are the caller's (see :func:`unpushed_pointers`).

    Args:
        git: Runs git in the repository.
        rules: The windows.
        head: The commit checked out; None on an unborn branch.
        now: The time the refs window counts back from; None: the clock's.
    """
    now = time.time() if now is None else now
    commits: dict[str, None] = {}
    if head is not None:
        commits[head] = None
    if rules.refs_days > 0:
        since = now - (rules.refs_days + rules.offset_days) * DAY
        commits.update(dict.fromkeys(recent_refs(git, since, rules.remote_refs)))
    found: dict[str, PointerFile] = {}
    for commit in commits:
        for f in tree_pointers(git, commit):
            found.setdefault(f.pointer.oid, f)
    if rules.commits_days > 0:
        window = (rules.commits_days + rules.offset_days) * DAY
        for commit in commits:
            date = git.output(["show", "-s", "--format=%ct", commit])
            for f in window_pointers(git, commit, int(date) - window):
                found.setdefault(f.pointer.oid, f)
    return list(found.values())
