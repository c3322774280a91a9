"""track and untrack against the real git-lfs, run on identical repositories.

Each test builds the same repository twice, runs ``lfs-agent`` in one and ``git lfs``
in the other, and compares what a person sees: the output, every ``.gitattributes``
byte for byte (or line for line where git-lfs writes one call's new lines in Go map
order), and ``git status``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import agent, git, needs_git_lfs
from tests.helpers import pointer_bytes

pytestmark = [pytest.mark.integration, needs_git_lfs]

#: Files of the repositories below: (path, bytes).
FILES = {
    "a.bin": b"top level\n",
    "d.txt": b"text\n",
    "sub/b.bin": b"in sub\n",
    "sub/deep/c.bin": b"deeper\n",
    "sub/deep/keep.txt": b"not tracked\n",
    "other/o.bin": b"elsewhere\n",
}


def populate(repo: Path, files: dict[str, bytes], attributes: dict[str, bytes]) -> None:
    for name, data in {**files, **attributes}.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def committed_long_ago(repo: Path) -> None:
    """Commit everything with file times well before the index's: no entry is racy.

    git hashes again a file written in the second its index was written (racily clean);
    these are not, so only a changed stat makes git look at them again.
    """
    past = time.time() - 60
    for path in repo.rglob("*"):
        if ".git" not in path.relative_to(repo).parts and path.is_file():
            os.utime(path, (past, past))
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "files", cwd=repo)


def attribute_files(repo: Path) -> dict[str, list[bytes]]:
    """Every .gitattributes of the work tree: its lines, sorted (see the module doc)."""
    return {
        str(p.relative_to(repo)): sorted(p.read_bytes().splitlines(keepends=True))
        for p in sorted(repo.rglob(".gitattributes"))
        if ".git" not in p.relative_to(repo).parts[:-1]
    }


def status(repo: Path) -> bytes:
    return git("status", "--porcelain", cwd=repo).stdout


@pytest.fixture
def twins(make_repo: Callable[..., Path]) -> Callable[..., tuple[Path, Path]]:
    """Two identical repositories: ours (lfs-agent's filter) and theirs (git-lfs's)."""

    def make(
        attributes: dict[str, bytes] | None = None, files: dict[str, bytes] | None = None
    ) -> tuple[Path, Path]:
        ours, theirs = make_repo("ours"), make_repo("theirs")
        assert agent("install", cwd=ours).returncode == 0
        git("lfs", "install", "--local", cwd=theirs)
        for repo in (ours, theirs):
            populate(repo, FILES if files is None else files, attributes or {})
        return ours, theirs

    return make


def both(ours: Path, theirs: Path, *args: str, where: str = "") -> bytes:
    """Run ``track``/``untrack`` ARGS in both; assert the same output; return it."""
    mine = agent(*args, cwd=ours / where)
    ref = git("lfs", *args, cwd=theirs / where)
    assert mine.returncode == 0, mine.stderr
    assert mine.stdout == ref.stdout, (mine.stdout, ref.stdout)
    return mine.stdout


def test_track_in_a_subdirectory_writes_that_directory_s_gitattributes(twins):
    ours, theirs = twins()
    out = both(ours, theirs, "track", "*.bin", "deep/*.x", "/abs.y", "./dot.z", "x/**", where="sub")
    assert b'Tracking "dot.z"\n' in out
    assert not (ours / ".gitattributes").exists()
    assert attribute_files(ours) == attribute_files(theirs)
    assert b"/abs.y filter=lfs" in (ours / "sub/.gitattributes").read_bytes()
    for pattern in ("*.bin", "deep/*.x"):  # known from sub/.gitattributes, wherever asked
        both(ours, theirs, "track", pattern, where="sub")
    both(ours, theirs, "track", "sub/*.bin")  # the same pattern, seen from the top
    both(ours, theirs, "track", "*.bin", where="sub/deep")  # sub/deep/*.bin is new
    assert attribute_files(ours) == attribute_files(theirs)
    # "already supported" still rewrites the current directory's file: git-lfs creates
    # an empty one at the top.
    assert attribute_files(ours)[".gitattributes"] == []
    assert len(attribute_files(ours)["sub/deep/.gitattributes"]) == 1


def test_listing_names_every_attributes_file_in_git_lfs_s_order(twins):
    attributes = {
        ".gitattributes": (
            b"[attr]big filter=lfs diff=lfs merge=lfs -text\n/abs.y filter=lfs\n*.m big\n"
            b'\n# comment\n"q q.bin" filter=lfs\n*.tab\tfilter=lfs\n*.no -filter\n'
            b"*.lk lockable\ndir/ filter=lfs\n*.un !filter\n*.x  filter=lfs\n"
        ),
        "sub/.gitattributes": b"*.m big\n*.b filter=lfs diff=lfs merge=lfs -text\n",
        "sub/deep/.gitattributes": b"*.c filter=lfs\r\n",
        "other/.gitattributes": b"../up.w filter=lfs\n",
    }
    ours, theirs = twins(attributes)
    for repo in (ours, theirs):
        (repo / ".git/info/attributes").write_text("*.info filter=lfs\n")
        git("add", "sub/.gitattributes", cwd=repo)  # one tracked, the others untracked
    for where in ("", "sub/deep"):
        out = both(ours, theirs, "track", where=where)
    listed = out.decode()
    assert listed.startswith("Listing tracked patterns\n    sub/deep/*.c (sub/deep/.gitattributes)")
    assert "    up.w (other/.gitattributes)\n" in listed
    assert "    .git/info/*.info (.git/info/attributes)\n" in listed
    assert "    *.lk [lockable] (.gitattributes)\n" in listed
    assert listed.endswith(
        "Listing excluded patterns\n    *.no (.gitattributes)\n    *.un (.gitattributes)\n"
    )
    assert "sub/*.m" not in listed  # its macro is defined in a file read after it


def test_listing_without_any_pattern_prints_nothing(twins):
    ours, theirs = twins()
    assert both(ours, theirs, "track") == b""


@pytest.mark.parametrize(
    "before",
    [
        b"*.txt text\r\n\r\n*.bin text\r\n  \r\n*.x filter=lfs\r\n",  # CRLF, blank lines
        b"\n\n*.q filter=lfs",  # no final newline
        b"*.bin binary\n*.y -text\n",
    ],
)
def test_track_rewrites_gitattributes_as_git_lfs_does(twins, before: bytes):
    ours, theirs = twins({".gitattributes": before})
    for pattern in ("*.bin", "*.y", "*.x", "*.q", "a b#c.bin"):
        both(ours, theirs, "track", pattern)
        assert (ours / ".gitattributes").read_bytes() == (theirs / ".gitattributes").read_bytes()


def test_untrack_edits_the_current_directory_s_file(twins):
    attributes = {
        ".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n",
        "sub/.gitattributes": b"a filter=lfs\n\n*.k filter=lfs\r\nmy[[:space:]]f filter=lfs\nz",
    }
    ours, theirs = twins(attributes)
    out = both(ours, theirs, "untrack", "./a", "*.k", "my f", "*.bin", where="sub")
    assert out == b'Untracking "a"\nUntracking "*.k"\nUntracking "my f"\n'
    for name in attributes:
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name
    assert (ours / ".gitattributes").read_bytes() == attributes[".gitattributes"]
    assert both(ours, theirs, "untrack", "*.bin", where="sub/deep") == b""
    assert not (ours / "sub/deep/.gitattributes").exists()


def test_tracking_committed_files_marks_them_modified_and_git_add_stores_pointers(twins):
    ours, theirs = twins()
    for repo in (ours, theirs):
        committed_long_ago(repo)
        assert status(repo) == b""
    out = agent("track", "*.bin", cwd=ours / "sub")
    git("lfs", "track", "*.bin", cwd=theirs / "sub")
    err = out.stderr.decode()
    assert '"*.bin" covers 2 file(s) already in git' in err, err
    assert "'git add' them" in err
    assert (
        status(ours)
        == status(theirs)
        == (b" M sub/b.bin\n M sub/deep/c.bin\n?? sub/.gitattributes\n")
    )
    # a.bin and other/o.bin are not below sub/: untouched, still clean.
    git("add", "-A", cwd=ours)
    for name in ("sub/b.bin", "sub/deep/c.bin"):
        blob = git("cat-file", "-p", f":{name}", cwd=ours).stdout
        assert blob == pointer_bytes(FILES[name]), name
    assert git("cat-file", "-p", ":a.bin", cwd=ours).stdout == FILES["a.bin"]


def test_a_pattern_with_a_leading_slash_marks_only_this_directory_s_files(twins):
    ours, theirs = twins()
    for repo in (ours, theirs):
        committed_long_ago(repo)
    both(ours, theirs, "track", "/*.bin")
    assert status(ours) == status(theirs) == b" M a.bin\n?? .gitattributes\n"


def test_without_a_filter_the_count_says_to_install_first(make_repo):
    repo = make_repo("plain")
    populate(repo, FILES, {})
    committed_long_ago(repo)
    out = agent("track", "*.bin", cwd=repo)
    assert out.returncode == 0
    assert (
        "\"*.bin\" covers 4 file(s) already in git; run 'lfs-agent install'" in out.stderr.decode()
    )


def test_a_pattern_covering_gitattributes_itself_touches_nothing(twins):
    ours, theirs = twins({".gitattributes": b"*.txt text\n"})
    for repo in (ours, theirs):
        committed_long_ago(repo)
    out = both(ours, theirs, "track", "*")
    assert b"matches forbidden file '.gitattributes'" in out
    assert (ours / ".gitattributes").read_bytes() == (theirs / ".gitattributes").read_bytes()
    assert status(ours) == status(theirs) == b" M .gitattributes\n"


def test_marking_files_modified_follows_no_symbolic_link(make_repo, tmp_path: Path):
    repo = make_repo("links")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.bin").write_bytes(b"someone else's\n")
    (outside / "target.bin").write_bytes(b"linked to\n")
    populate(repo, {"d/x.bin": b"committed\n", "plain.bin": b"plain\n"}, {})
    os.symlink(outside / "target.bin", repo / "link.bin")
    committed_long_ago(repo)
    past = time.time() - 3600
    for path in outside.iterdir():
        os.utime(path, (past, past))
    before = {p.name: p.stat().st_mtime_ns for p in outside.iterdir()}
    shutil.rmtree(repo / "d")
    os.symlink(outside, repo / "d")  # d/x.bin now leads outside
    out = agent("track", "*.bin", cwd=repo)
    assert out.returncode == 0, out.stderr
    assert '"*.bin" covers 1 file(s) already in git' in out.stderr.decode()
    assert {p.name: p.stat().st_mtime_ns for p in outside.iterdir()} == before
    assert (repo / "plain.bin").stat().st_mtime > past + 3000
