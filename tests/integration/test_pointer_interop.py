"""Our pointers are byte-identical to the real git-lfs client's."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfs_agent.pointer import parse_pointer
from tests.conftest import agent, git, needs_git_lfs
from tests.helpers import random_bytes

SIZES = [0, 1, 100, 1023, 1024, 65519, 65520, 65521, 3 * 1024 * 1024]

pytestmark = [pytest.mark.integration, needs_git_lfs]


@pytest.mark.parametrize("size", SIZES)
def test_clean_output_equals_git_lfs_clean_and_pointer_file(repo: Path, size: int):
    data = random_bytes(size, seed=size)
    (repo / "f.bin").write_bytes(data)
    theirs = git("lfs", "clean", "f.bin", cwd=repo, input=data).stdout
    ours = agent("clean", "f.bin", cwd=repo, input=data)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs
    # `git lfs pointer --file` prints the pointer (plus a header on stderr).
    pointer_file = git("lfs", "pointer", "--file", "f.bin", cwd=repo).stdout
    if size:
        assert ours.stdout == pointer_file
    assert parse_pointer(ours.stdout).size == size


def test_pointer_inputs_pass_through_clean_exactly_as_git_lfs_does(repo: Path):
    real = git("lfs", "clean", "a", cwd=repo, input=b"hello world\n").stdout
    cases = {
        "canonical": real,
        "crlf": real.replace(b"\n", b"\r\n"),
        "no-final-lf": real.rstrip(b"\n"),
        "extra-line": real + b"extra\n",
        "uppercase": real.replace(b"a948904f", b"A948904F"),
        "padded": real + b"\n" * 1024,
    }
    for name, data in cases.items():
        theirs = git("lfs", "clean", "a", cwd=repo, input=data).stdout
        ours = agent("clean", "a", cwd=repo, input=data)
        assert ours.stdout == theirs, name
    # The pass-through cases are really passed through, the others really hashed.
    assert agent("clean", "a", cwd=repo, input=cases["crlf"]).stdout == cases["crlf"]
    assert agent("clean", "a", cwd=repo, input=cases["extra-line"]).stdout != cases["extra-line"]


def test_objects_land_where_git_lfs_puts_them(make_repo):
    ours_repo, theirs_repo = make_repo("ours"), make_repo("theirs")
    data = random_bytes(5000, seed=7)
    agent("clean", "x", cwd=ours_repo, input=data)
    git("lfs", "clean", "x", cwd=theirs_repo, input=data)

    def objects(root: Path) -> list[str]:
        base = root / ".git" / "lfs" / "objects"
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())

    assert objects(ours_repo) == objects(theirs_repo)
    assert len(objects(ours_repo)) == 1
