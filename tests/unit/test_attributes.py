"""Attributes files read as git-lfs reads them: quoting, macros, order, no symbolic link.

Real git in a temp repository; the expected values are what ``git lfs track`` lists.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lfs_agent.attributes import (
    AttributePattern,
    attribute_patterns,
    go_clean,
    read_attributes,
    work_tree,
    work_tree_patterns,
)
from lfs_agent.errors import ConfigError, UnsafePathError
from lfs_agent.git import Git
from tests.conftest import git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    git("init", "-q", str(path), cwd=tmp_path)
    return path


def listed(repo: Path, outside: list[Path] | None = None) -> list[tuple[str, str, bool, bool]]:
    found = attribute_patterns(Git(repo), outside or [])
    return [(p.path, p.source, p.tracked, p.lockable) for p in found]


@pytest.mark.parametrize(
    ("path", "clean"),
    [
        ("./a/../b", "b"),
        ("sub/./x/", "sub/x"),
        ("../up", "../up"),
        ("/../x", "/x"),
        ("", "."),
        ("a/b/../../..", ".."),
    ],
)
def test_paths_are_cleaned_as_go_cleans_them(path: str, clean: str):
    assert go_clean(path) == clean


def test_patterns_are_joined_to_their_directory_deepest_file_first(repo: Path):
    (repo / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    (repo / "sub").mkdir()
    (repo / "sub" / ".gitattributes").write_text("*.psd filter=lfs\n*.txt -filter\n")
    (repo / ".git" / "info" / "attributes").write_text("*.iso filter=lfs\n")
    assert listed(repo) == [
        (".git/info/*.iso", ".git/info/attributes", True, False),
        ("sub/*.psd", "sub/.gitattributes", True, False),
        ("sub/*.txt", "sub/.gitattributes", False, False),
        ("*.bin", ".gitattributes", True, False),
    ]


def test_a_quoted_pattern_is_unquoted_as_a_go_string(repo: Path):
    (repo / ".gitattributes").write_text(
        '"a\\x20b.bin" filter=lfs\n"\\u00e9t\\303\\251.bin" filter=lfs\n'
    )
    assert [p[0] for p in listed(repo)] == ["a b.bin", "été.bin"]


def test_a_quoted_pattern_go_cannot_unquote_makes_its_file_unusable(repo: Path):
    (repo / ".gitattributes").write_text('*.bin filter=lfs\n"bad\\q.bin" filter=lfs\n')
    (repo / "sub").mkdir()
    (repo / "sub" / ".gitattributes").write_text("*.psd filter=lfs\n")
    assert [p[0] for p in listed(repo)] == ["sub/*.psd"]


def test_macros_expand_one_level_and_only_the_top_file_defines_them(repo: Path):
    (repo / ".gitattributes").write_text(
        "[attr]big filter=lfs diff=lfs merge=lfs -text\n"
        "[attr]huge big lockable\n"
        "*.bin big\n*.h huge\n*.lock binary lockable\n"
    )
    (repo / "sub").mkdir()
    (repo / "sub" / ".gitattributes").write_text("[attr]mine filter=lfs\n*.own mine\n")
    assert listed(repo) == [
        ("*.bin", ".gitattributes", True, False),
        ("*.h", ".gitattributes", False, True),
        ("*.lock", ".gitattributes", False, True),
    ]


def test_outside_files_lend_their_macros_and_are_listed_last_user_first(repo: Path, tmp_path: Path):
    system, user = tmp_path / "system", tmp_path / "user"
    system.write_text("[attr]heavy filter=lfs\n*.sys filter=lfs\n")
    user.write_text("*.usr filter=lfs\n")
    (repo / ".gitattributes").write_text("*.bin heavy\n")
    assert listed(repo, [system, user]) == [
        ("*.bin", ".gitattributes", True, False),
        ("*.usr", "", True, False),
        ("*.sys", "", True, False),
    ]
    top = work_tree(Git(repo))
    assert [p.path for p in work_tree_patterns(Git(repo), top, [system, user])] == ["*.bin"]


def test_the_line_ending_is_the_file_s_own(repo: Path):
    (repo / ".gitattributes").write_bytes(b"*.a filter=lfs\r\n*.b filter=lfs\r\n")
    (repo / "sub").mkdir()
    (repo / "sub" / ".gitattributes").write_bytes(b"*.c filter=lfs")
    found = attribute_patterns(Git(repo))
    assert found == [
        AttributePattern("sub/*.c", "sub/.gitattributes", True, False, ""),
        AttributePattern("*.a", ".gitattributes", True, False, "\r\n"),
        AttributePattern("*.b", ".gitattributes", True, False, "\r\n"),
    ]


def test_an_attributes_file_that_is_a_symbolic_link_is_refused(repo: Path, tmp_path: Path):
    secret = tmp_path / "secret"
    secret.write_text("*.bin filter=lfs\n")
    (repo / ".gitattributes").symlink_to(secret)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        read_attributes(repo)
    with pytest.raises(UnsafePathError):
        attribute_patterns(Git(repo))
    assert read_attributes(repo, "missing/.gitattributes") is None


def test_a_bare_repository_has_no_attributes_to_list(tmp_path: Path):
    git("init", "-q", "--bare", str(tmp_path / "bare.git"), cwd=tmp_path)
    with pytest.raises(ConfigError, match="work tree"):
        attribute_patterns(Git(tmp_path / "bare.git"))
