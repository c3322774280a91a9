"""The global install: only what it wrote is recorded, and uninstall takes only that back.

Real git on the user's global config, which the suite keeps in a temp ``HOME``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lfs_agent.errors import ConfigError
from lfs_agent.git import Git
from lfs_agent.global_install import (
    REPLACED_PREFIX,
    global_filter_settings,
    install_global,
    uninstall_global,
)
from lfs_agent.install import INSTALLED_KEY, filter_settings

PYTHON = "/opt/py thon/bin/python3"


def global_value(git: Git, key: str) -> str | None:
    found = git.run(["config", "--global", "--get", key], check=False)
    return found.stdout.decode().strip() if found.returncode == 0 else None


def global_config() -> bytes:
    return Path(os.environ["GIT_CONFIG_GLOBAL"]).read_bytes()


def test_the_global_filter_runs_the_filter_that_adds_hooks_first():
    settings = global_filter_settings(PYTHON)
    assert (
        settings["filter.lfs.process"]
        == "'/opt/py thon/bin/python3' -m lfs_agent global-filter-process"
    )
    repo_settings = filter_settings(PYTHON)
    assert {k: v for k, v in settings.items() if k != "filter.lfs.process"} == {
        k: v for k, v in repo_settings.items() if k != "filter.lfs.process"
    }


def test_a_key_that_already_held_our_value_is_not_recorded_nor_removed(tmp_path: Path):
    git = Git(tmp_path)
    git.run(["config", "--global", "filter.lfs.required", "true"])
    install_global(git, python=PYTHON)
    recorded = (global_value(git, INSTALLED_KEY) or "").split(",")
    assert "filter.lfs.required" not in recorded
    assert "filter.lfs.process" in recorded
    uninstall_global(git)
    assert global_value(git, "filter.lfs.required") == "true"
    assert global_value(git, "filter.lfs.process") is None
    assert global_value(git, INSTALLED_KEY) is None


def test_a_key_someone_changed_since_is_left_alone(tmp_path: Path):
    git = Git(tmp_path)
    install_global(git, python=PYTHON)
    git.run(["config", "--global", "filter.lfs.clean", "other-tool clean %f"])
    uninstall_global(git)
    assert global_value(git, "filter.lfs.clean") == "other-tool clean %f"
    assert global_value(git, "filter.lfs.smudge") is None


def test_a_foreign_value_is_kept_aside_with_force_and_put_back(tmp_path: Path):
    git = Git(tmp_path)
    git.run(["config", "--global", "filter.lfs.smudge", "git-lfs smudge -- %f"])
    before = global_config()
    with pytest.raises(ConfigError, match="git-lfs's filter"):
        install_global(git, python=PYTHON)
    assert global_config() == before
    report = install_global(git, force=True, python=PYTHON)
    assert report.messages and "filter.lfs.smudge" in report.messages[0]
    assert global_value(git, REPLACED_PREFIX + "filter.lfs.smudge") == "git-lfs smudge -- %f"
    assert global_value(git, "filter.lfs.smudge") == filter_settings(PYTHON)["filter.lfs.smudge"]
    report = uninstall_global(git)
    assert report.messages == ["restored filter.lfs.smudge in your global git config"]
    assert global_config() == before
