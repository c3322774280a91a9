"""The record of installed keys: what ``uninstall`` reads back is what install wrote."""

from __future__ import annotations

from pathlib import Path

from lfs_agent.git import Git
from lfs_agent.install import (
    INSTALLED_KEY,
    install,
    is_ours,
    merged_record,
    recorded_keys,
    uninstall,
)
from tests.conftest import git


def test_the_record_lists_each_key_once_old_ones_first():
    assert recorded_keys(None) == []
    assert recorded_keys(",a,,b,") == ["a", "b"]
    assert merged_record(None, ["a", "b"]) == "a,b"
    assert merged_record("b,c", ["a", "b"]) == "b,c,a"
    assert merged_record("", []) == ""


def test_only_lfs_agent_s_own_values_are_ours():
    assert is_ours("'/usr/bin/python3' -m lfs_agent filter-process")
    assert is_ours("lfs-agent smudge -- %f")
    assert not is_ours("git-lfs filter-process")
    assert not is_ours(None)


def test_uninstall_removes_exactly_the_recorded_keys(tmp_path: Path):
    git("init", "-q", str(tmp_path / "repo"), cwd=tmp_path)
    repo = Git(tmp_path / "repo")
    git("config", "user.signingkey", "mine", cwd=tmp_path / "repo")
    install(repo, python="/usr/bin/python3")
    install(repo, python="/usr/bin/python3")  # twice: the record lists each key once
    recorded = recorded_keys(repo.config_get(INSTALLED_KEY))
    assert sorted(recorded) == sorted(set(recorded))
    assert "filter.lfs.process" in recorded
    uninstall(repo)
    local = git("config", "--local", "--list", cwd=tmp_path / "repo").stdout.decode()
    assert "filter.lfs" not in local and INSTALLED_KEY not in local
    assert "user.signingkey=mine" in local
