"""Clone assembly: the directory git would pick, the clone command, a full disk told."""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import pytest

from lfs_agent.clone import (
    clone_command,
    clone_directory,
    free_space_if_unwritable,
    relay_stderr,
)


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://example.com/org/models.git", "models"),
        ("https://example.com/org/models/", "models"),
        ("git@example.com:models.git", "models"),
        ("/srv/repos/data", "data"),
        ("/srv/.git", ".git"),
        ("https://example.com/", "example.com"),
    ],
)
def test_the_directory_is_the_humanish_part_of_the_url(url: str, name: str):
    assert clone_directory(url) == name


def test_the_filter_is_set_for_the_checkout_and_written_into_the_clone(tmp_path: Path):
    cmd = clone_command(
        "https://example.com/m.git",
        tmp_path / "m",
        python="/usr/bin/python3",
        branch="dev",
        depth=1,
        partial="blob:none",
        config=["core.autocrlf=false"],
        include=["*.bin", "data/**"],
    )
    at = cmd.index("clone")
    before, after = cmd[:at], cmd[at + 1 :]
    # Before "clone": for the checkout only, outranking a filter in the environment.
    assert "filter.lfs.required=false" in before and "filter.lfs.smudge=" in before
    assert any(a.startswith("filter.lfs.process=/usr/bin/python3") for a in before)
    # After: kept in the clone's config, with the fetch patterns as one comma list.
    assert "filter.lfs.required=true" in after
    assert "lfs-agent.fetchinclude=*.bin,data/**" in after
    assert not any("fetchexclude" in a for a in after)
    assert after[after.index("--branch") + 1] == "dev"
    assert after[after.index("--depth") + 1] == "1"
    assert "--filter=blob:none" in after and "--recurse-submodules" not in after
    assert after[after.index("--config") + 1] == "core.autocrlf=false"
    assert after[-3:] == ["--", "https://example.com/m.git", str(tmp_path / "m")]


def test_a_full_disk_is_told_only_when_git_could_not_write(tmp_path: Path):
    dest = tmp_path / "not" / "yet" / "there"
    said = "error: unable to write file big.bin\nfatal: unable to checkout working tree\n"
    assert free_space_if_unwritable(said, dest) == pytest.approx(
        shutil.disk_usage(tmp_path).free, rel=0.01
    )
    assert free_space_if_unwritable("fatal: repository not found\n", dest) is None


def test_stderr_is_relayed_as_it_comes_and_its_end_kept():
    out = io.BytesIO()
    script = "import sys; sys.stderr.write('x' * 70000 + 'end'); sys.exit(3)"
    status, tail = relay_stderr([sys.executable, "-c", script], {}, out)
    assert status == 3
    assert out.getvalue() == b"x" * 70000 + b"end"
    assert tail.endswith("end") and len(tail) == 64 * 1024
