"""Files written by lfs-agent match what the real git-lfs client writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import agent, git, needs_git_lfs

pytestmark = [pytest.mark.integration, needs_git_lfs]

PATTERNS = ["*.h5", "my file.bin", "data/**", "a#b", 'c"d', "sub/dir/*.x"]


def lines(repo: Path) -> list[bytes]:
    # git-lfs orders the lines of one `track` call by Go map iteration, which varies
    # between runs: compare the lines, not their order within a call.
    return sorted((repo / ".gitattributes").read_bytes().splitlines(keepends=True))


def test_track_writes_the_same_gitattributes_lines_as_git_lfs(make_repo):
    ours, theirs = make_repo("ours"), make_repo("theirs")
    for batch in (PATTERNS[:3], PATTERNS[3:], ["*.h5"]):
        out = agent("track", *batch, cwd=ours)
        ref = git("lfs", "track", *batch, cwd=theirs)
        assert out.stdout == ref.stdout
    assert lines(ours) == lines(theirs)
    assert len(lines(ours)) == len(PATTERNS)
    out = agent("untrack", "*.h5", cwd=ours)
    ref = git("lfs", "untrack", "*.h5", cwd=theirs)
    assert out.stdout == ref.stdout
    assert lines(ours) == lines(theirs)


def test_track_appends_after_a_file_without_final_newline(make_repo):
    ours, theirs = make_repo("ours"), make_repo("theirs")
    for repo in (ours, theirs):
        (repo / ".gitattributes").write_text("*.txt text")
    agent("track", "*.bin", cwd=ours)
    git("lfs", "track", "*.bin", cwd=theirs)
    assert (ours / ".gitattributes").read_bytes() == (theirs / ".gitattributes").read_bytes()


def test_ls_files_matches_git_lfs(make_repo, tmp_path: Path):
    repo = make_repo("r")
    git("lfs", "install", "--local", cwd=repo)
    git("lfs", "track", "*.bin", cwd=repo)
    (repo / "a.bin").write_bytes(b"alpha\n")
    (repo / "sub").mkdir()
    (repo / "sub" / "b.bin").write_bytes(b"beta" * 1000)
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "x", cwd=repo)
    for flags in ([], ["-l"], ["-s"]):
        assert (
            agent("ls-files", *flags, cwd=repo).stdout
            == git("lfs", "ls-files", *flags, cwd=repo).stdout
        )
