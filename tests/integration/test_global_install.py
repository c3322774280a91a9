"""``install --global`` and ``uninstall --global`` through the command line.

Whatever install writes into the user's git config, uninstall takes out again: the file
reads byte for byte as before, a foreign filter replaced with ``--force`` included.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import agent, git

pytestmark = pytest.mark.integration


def global_config() -> bytes:
    return Path(os.environ["GIT_CONFIG_GLOBAL"]).read_bytes()


def install_global() -> None:
    out = agent("install", "--global", cwd=Path(os.environ["HOME"]))
    assert out.returncode == 0, out.stderr


def test_uninstall_global_leaves_the_global_config_exactly_as_before(tmp_path: Path):
    before = global_config()
    install_global()
    config = git("config", "--global", "--list", cwd=tmp_path).stdout.decode()
    assert "filter.lfs.process=" in config and "global-filter-process" in config
    assert "filter.lfs.required=true" in config
    assert agent("install", "--global", cwd=tmp_path).returncode == 0  # twice: no change
    assert agent("uninstall", "--global", cwd=tmp_path).returncode == 0
    assert global_config() == before


def test_a_foreign_global_filter_is_replaced_only_with_force_and_put_back(tmp_path: Path):
    git("config", "--global", "filter.lfs.process", "git-lfs filter-process", cwd=tmp_path)
    git("config", "--global", "filter.lfs.required", "true", cwd=tmp_path)
    before = global_config()
    out = agent("install", "--global", cwd=tmp_path)
    assert out.returncode == 2
    err = out.stderr.decode()
    assert "git-lfs's filter" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1
    assert global_config() == before
    out = agent("install", "--global", "--force", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    process = git("config", "--global", "filter.lfs.process", cwd=tmp_path).stdout
    assert b"lfs_agent global-filter-process" in process
    assert agent("uninstall", "--global", cwd=tmp_path).returncode == 0
    assert global_config() == before
