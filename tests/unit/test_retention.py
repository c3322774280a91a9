"""Retention: the policy vocabulary, git-lfs's prune rules, and the pointers each keeps.

The history is real: a git repository whose commits are dated days apart with
``GIT_COMMITTER_DATE``, holding pointer files (no filter is needed to list them).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lfs_agent.errors import ConfigError
from lfs_agent.git import Git
from lfs_agent.retention import (
    DAY,
    MAX_DAYS,
    Policy,
    PruneRules,
    parse_days,
    policy_pointers,
    prune_rule_pointers,
    recent_refs,
    ref_tips,
    remote_to_check,
    unpushed_pointers,
    window_pointers,
)
from tests.conftest import git
from tests.helpers import pointer_bytes, sha256

#: The clock every test counts back from: whole seconds, as git stores dates.
NOW = float(int(time.time()))


# --- Policy.parse and parse_days ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("history", Policy("history")),
        ("tips+tags", Policy("tips+tags")),
        ("recent:30d", Policy("recent", 30)),
        ("recent:0d", Policy("recent", 0)),
        ("  recent:7d\n", Policy("recent", 7)),
    ],
)
def test_policy_parse_reads_the_three_forms(text: str, policy: Policy):
    assert Policy.parse(text) == policy
    assert Policy.parse(str(policy)) == policy


@pytest.mark.parametrize(
    "text", ["", "all", "tips", "tips+tag", "recent", "recent:30", "recent:d", "recent:-3d",
             "recent:3w", "recent:123456d", "History"],
)  # fmt: skip
def test_policy_parse_refuses_anything_else_naming_the_forms(text: str):
    with pytest.raises(ConfigError) as caught:
        Policy.parse(text)
    message = str(caught.value)
    assert repr(text.strip()) in message
    assert "history, tips+tags or recent:<N>d" in message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("14d", 14 * DAY), ("24h", 24 * 3600), ("30m", 1800), ("0s", 0), (" 5s ", 5)],
)
def test_parse_days_reads_durations(text: str, seconds: float):
    assert parse_days(text, "--older-than") == seconds


@pytest.mark.parametrize("text", ["14", "1w", "-1d", "", "d", "1.5d", "14 d"])
def test_parse_days_refuses_anything_else_naming_the_flag(text: str):
    with pytest.raises(ConfigError) as caught:
        parse_days(text, "--older-than")
    assert str(caught.value).startswith("--older-than must be a duration such as 14d")
    assert repr(text) in str(caught.value)


# --- PruneRules from git config -------------------------------------------------------


def test_prune_rules_default_to_git_lfs_s():
    assert PruneRules.from_config({}) == PruneRules(7, True, 0, 3, None)
    rules = PruneRules.from_config({"remote.origin.url": "/srv/repo.git"})
    assert rules == PruneRules(refs_days=7, remote_refs=True, commits_days=0, offset_days=3)
    assert rules.remote == "origin"


def test_prune_rules_read_the_lfs_keys():
    rules = PruneRules.from_config(
        {
            "lfs.fetchrecentrefsdays": "14",
            "lfs.fetchrecentremoterefs": "false",
            "lfs.fetchrecentcommitsdays": "2",
            "lfs.pruneoffsetdays": "0",
            "lfs.pruneremotetocheck": "upstream",
            "remote.upstream.url": "/srv/repo.git",
        }
    )
    assert rules == PruneRules(14, False, 2, 0, "upstream")
    assert rules.without_recent() == PruneRules(0, False, 0, 0, "upstream")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("lfs.fetchrecentrefsdays", "seven"),
        ("lfs.fetchrecentcommitsdays", "-1"),
        ("lfs.pruneoffsetdays", "2.5"),
        ("lfs.pruneoffsetdays", str(MAX_DAYS + 1)),
    ],
)
def test_a_bad_day_count_is_refused_naming_the_key_and_the_fix(key: str, value: str):
    with pytest.raises(ConfigError) as caught:
        PruneRules.from_config({key: value})
    message = str(caught.value)
    assert message.startswith(f"{key} must be a whole number of days from 0 to {MAX_DAYS}")
    assert repr(value) in message and f"'git config {key} " in message


def test_a_bad_flag_is_refused_and_git_s_booleans_are_read():
    assert not PruneRules.from_config({"lfs.fetchrecentremoterefs": "off"}).remote_refs
    assert PruneRules.from_config({"lfs.fetchrecentremoterefs": "Yes"}).remote_refs
    with pytest.raises(ConfigError, match=r"lfs\.fetchrecentremoterefs must be true or false"):
        PruneRules.from_config({"lfs.fetchrecentremoterefs": "sometimes"})


def test_the_remote_to_check_must_be_a_configured_remote():
    assert remote_to_check({}) is None
    assert remote_to_check({"remote.origin.url": "x"}) == "origin"
    assert remote_to_check({"lfs.pruneremotetocheck": "fork", "remote.origin.url": "x"}) is None
    assert remote_to_check({"lfs.pruneremotetocheck": "fork", "remote.fork.url": "x"}) == "fork"


def test_prune_rules_read_reads_every_scope_of_git_config(tmp_path: Path):
    repo = tmp_path / "repo"
    git("init", "-q", str(repo), cwd=tmp_path)
    git("config", "lfs.pruneoffsetdays", "9", cwd=repo)
    assert PruneRules.read(Git(repo)) == PruneRules(offset_days=9, remote=None)
    env = {**os.environ, "GIT_CONFIG_COUNT": "1"}
    env |= {"GIT_CONFIG_KEY_0": "lfs.fetchRecentRefsDays", "GIT_CONFIG_VALUE_0": "1"}
    assert PruneRules.read(Git(repo, env=env)).refs_days == 1  # keys in any case


# --- a dated history ------------------------------------------------------------------


class History:
    """A repository whose commits are dated so many days before :data:`NOW`."""

    def __init__(self, root: Path) -> None:
        self.repo = root / "repo"
        git("init", "-q", "-b", "main", str(self.repo), cwd=root)
        self.git = Git(self.repo)

    def commit(self, age_days: float, files: dict[str, bytes | None]) -> str:
        """Write (or, for None, delete) ``files`` as pointers and commit them."""
        for name, data in files.items():
            path = self.repo / name
            if data is None:
                path.unlink()
            else:
                path.write_bytes(pointer_bytes(data))
        git("add", "-A", cwd=self.repo)
        date = f"@{int(NOW - age_days * DAY)} +0000"
        env = {**os.environ, "GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date}
        git("commit", "-q", "-m", f"{age_days} days ago", cwd=self.repo, env=env)
        return self.git.output(["rev-parse", "HEAD"])


def oids(files) -> set[str]:
    return {f.pointer.oid for f in files}


V1, V2, V3, F, OLD = b"v1", b"v2", b"v3", b"feature", b"old topic"


@pytest.fixture
def history(tmp_path: Path) -> History:
    """main: a.bin v1 (40 days ago), v2 (20), v3 (9); feature at 5 days, old-topic at 30.

    Tags: ``v1`` (lightweight) at the first commit, ``rel`` (annotated) at the second.
    """
    h = History(tmp_path)
    h.commit(40, {"a.bin": V1})
    git("tag", "v1", cwd=h.repo)
    git("checkout", "-q", "-b", "old-topic", cwd=h.repo)
    h.commit(30, {"old.bin": OLD})
    git("checkout", "-q", "main", cwd=h.repo)
    h.commit(20, {"a.bin": V2})
    git("tag", "-a", "-m", "release", "rel", cwd=h.repo)
    h.commit(9, {"a.bin": V3})
    git("checkout", "-q", "-b", "feature", cwd=h.repo)
    h.commit(5, {"f.bin": F})
    git("checkout", "-q", "main", cwd=h.repo)
    return h


def test_policy_pointers_history_keeps_every_commit_s(history: History):
    kept = oids(policy_pointers(history.git, ["main", "feature"], Policy("history")))
    assert kept == {sha256(d) for d in (V1, V2, V3, F)}


def test_policy_pointers_tips_and_tags_keeps_only_their_trees(history: History):
    kept = oids(policy_pointers(history.git, ["main", "feature"], Policy("tips+tags")))
    assert kept == {sha256(V3), sha256(F)}
    with_tags = policy_pointers(history.git, ref_tips(history.git), Policy("tips+tags"))
    # v1 and the annotated rel are tags; old-topic a branch: each tree is kept.
    assert oids(with_tags) == {sha256(d) for d in (V1, V2, V3, F, OLD)}


def test_policy_pointers_recent_adds_the_commits_of_the_last_days(history: History):
    policy = Policy.parse("recent:15d")
    kept = oids(policy_pointers(history.git, ["main", "feature"], policy, now=NOW))
    assert kept == {sha256(V3), sha256(F)}
    policy = Policy.parse("recent:25d")
    kept = oids(policy_pointers(history.git, ["main", "feature"], policy, now=NOW))
    assert kept == {sha256(V2), sha256(V3), sha256(F)}
    assert policy_pointers(history.git, [], policy) == []


def test_ref_tips_lists_heads_tags_and_remote_tracking_refs(history: History):
    g = history.git
    commit = g.output(["rev-parse", "feature"])
    g.run(["update-ref", "refs/remotes/origin/topic", commit])
    tips = ref_tips(g)
    assert g.output(["rev-parse", "refs/tags/rel"]) in tips  # the tag object itself
    assert g.output(["rev-parse", "old-topic"]) in tips and commit in tips
    assert len(tips) == len(set(tips))
    assert ref_tips(g, remote_refs=False).count(commit) == 1  # feature's own


def test_recent_refs_by_tip_date_remote_ones_when_asked(history: History):
    g = history.git
    name = {r: g.output(["rev-parse", r]) for r in ("main", "feature", "old-topic", "v1")}
    assert set(recent_refs(g, NOW - 10 * DAY, remote_refs=True)) == {
        name["main"],
        name["feature"],
    }
    # rel is annotated: git-lfs dates only refs that name a commit, so its commit (20
    # days old, no other ref's tip) is not among them.
    assert set(recent_refs(g, NOW - 35 * DAY, remote_refs=True)) == {
        name["main"],
        name["feature"],
        name["old-topic"],
    }
    assert name["v1"] in recent_refs(g, NOW - 41 * DAY, remote_refs=True)
    # old-topic's commit is left only as a remote-tracking ref's tip.
    g.run(["update-ref", "refs/remotes/origin/old-topic", name["old-topic"]])
    g.run(["branch", "-f", "old-topic", name["feature"]])
    assert name["old-topic"] in recent_refs(g, NOW - 35 * DAY, remote_refs=True)
    assert name["old-topic"] not in recent_refs(g, NOW - 35 * DAY, remote_refs=False)


def test_window_pointers_keeps_the_versions_the_window_replaced(history: History):
    g = history.git
    # Since 17 days ago on main: the 9-day commit, made on the 20-day one.
    assert oids(window_pointers(g, "main", NOW - 17 * DAY)) == {sha256(V3), sha256(V2)}
    assert oids(window_pointers(g, "main", NOW - 25 * DAY)) == {sha256(d) for d in (V1, V2, V3)}
    assert oids(window_pointers(g, "feature", NOW - 6 * DAY)) == {sha256(V3), sha256(F)}


def test_prune_rules_keep_head_and_refs_committed_within_days_plus_offset(history: History):
    g = history.git
    head = g.rev_parse("HEAD")
    keep = lambda rules: oids(prune_rule_pointers(g, rules, head, now=NOW))  # noqa: E731
    assert keep(PruneRules()) == {sha256(V3), sha256(F)}
    # 4 days: feature (5 days old) is not recent; the offset brings it back.
    assert keep(PruneRules(refs_days=4, offset_days=0)) == {sha256(V3)}
    assert keep(PruneRules(refs_days=4, offset_days=1)) == {sha256(V3), sha256(F)}
    # The offset only widens a rule that is on.
    assert keep(PruneRules(refs_days=0, offset_days=100)) == {sha256(V3)}
    assert keep(PruneRules().without_recent()) == {sha256(V3)}
    # 31 days and the offset: old-topic, 30 days old, is recent too.
    assert keep(PruneRules(refs_days=28)) == {sha256(d) for d in (V3, F, OLD, V1)}
    assert keep(PruneRules(refs_days=28, offset_days=0)) == {sha256(V3), sha256(F)}
    assert prune_rule_pointers(g, PruneRules(refs_days=0), None, now=NOW) == []


def test_prune_rules_commits_window_counts_back_from_each_tip(history: History):
    g = history.git
    head = g.rev_parse("HEAD")
    keep = lambda rules: oids(prune_rule_pointers(g, rules, head, now=NOW))  # noqa: E731
    # main's tip is 9 days old: 5 + 3 days before it reach 17 days ago, so the 9-day
    # commit's previous version (v2) is kept, and v1 is not.
    assert keep(PruneRules(commits_days=5)) == {sha256(V3), sha256(V2), sha256(F)}
    # However short the window, a commit inside it keeps what it replaced.
    assert keep(PruneRules(commits_days=1, offset_days=0)) == {sha256(V3), sha256(V2), sha256(F)}
    # 12 days before main's tip: the 20-day commit is inside, v1 its previous version.
    assert keep(PruneRules(commits_days=9)) == {sha256(d) for d in (V1, V2, V3, F)}
    assert keep(PruneRules(commits_days=5, offset_days=7)) == {sha256(d) for d in (V1, V2, V3, F)}


def test_unpushed_pointers_are_those_the_remote_refs_lack(history: History, tmp_path: Path):
    g = history.git
    bare = tmp_path / "server.git"
    git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    git("remote", "add", "origin", str(bare), cwd=history.repo)
    assert oids(unpushed_pointers(g, "origin")) == {sha256(d) for d in (V1, V2, V3, F, OLD)}
    git("push", "-q", "origin", "main~1:refs/heads/main", "old-topic", cwd=history.repo)
    assert oids(unpushed_pointers(g, "origin")) == {sha256(V3), sha256(F)}
    assert unpushed_pointers(g, None) == []
