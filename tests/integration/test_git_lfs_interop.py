"""Files written by lfs-agent match what the real git-lfs client writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lfs_agent.install import _lfs_endpoint
from lfs_agent.pathmatch import PathFilter
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
    for flags in ([], ["-l"], ["-s"], ["-n"], ["-n", "-s"]):
        assert (
            agent("ls-files", *flags, cwd=repo).stdout
            == git("lfs", "ls-files", *flags, cwd=repo).stdout
        )


def test_ls_files_history_debug_json_and_filters_match_git_lfs(make_repo):
    repo = make_repo("r")
    git("lfs", "install", "--local", cwd=repo)
    git("lfs", "track", "*.bin", cwd=repo)
    (repo / "a.bin").write_bytes(b"alpha\n")
    (repo / "d").mkdir()
    (repo / "d" / "b.bin").write_bytes(b"beta\n")
    (repo / "d" / "c<&>.bin").write_bytes("ç\n".encode())
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "one", cwd=repo)
    git("rm", "-q", "d/b.bin", cwd=repo)
    git("commit", "-qm", "drop b", cwd=repo)
    (repo / "a.bin").write_bytes(b"changed\n")  # no longer "checked out"
    for flags in (
        ["--json"],
        ["--json", "-a"],
        ["--json", "--deleted"],
        ["--json", "-l", "-s", "-n"],
        ["-d"],
        ["-d", "-a"],
        ["-a"],
        ["--deleted", "-l"],
        ["-a", "-I", "d/*"],
        ["-a", "-X", "d/*"],
        ["-a", "-n", "-I", "a.bin,d/b.bin"],
        ["--json", "-I", "*<*"],
        ["--json", "-I", "nothing"],
        ["HEAD~1", "--json"],
    ):
        ours = agent("ls-files", *flags, cwd=repo)
        assert ours.returncode == 0, ours.stderr
        assert ours.stdout == git("lfs", "ls-files", *flags, cwd=repo).stdout, flags


#: Sizes on each side of git-lfs's rounding: to a tenth, shown below 10, not from 10.
SIZES = [1, 9, 10, 999, 1000, 1049, 1050, 9949, 9950, 10_000, 99_949, 99_950, 999_499]
SIZES += [999_500, 10**6, 3 * 10**6, 4 * 10**7, 10**9, 15 * 10**11, 10**15]  # git-lfs: to PB


def test_sizes_read_as_git_lfs_writes_them(make_repo):
    # Pointers only (no objects): ls-files reads their sizes from the tree.
    repo = make_repo("r")
    git("lfs", "install", "--local", cwd=repo)
    (repo / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    git("add", ".gitattributes", cwd=repo)
    for size in SIZES:
        text = f"version https://git-lfs.github.com/spec/v1\noid sha256:{size:064x}\nsize {size}\n"
        blob = git("hash-object", "-w", "--stdin", cwd=repo, input=text.encode())
        entry = f"100644,{blob.stdout.decode().strip()},{size}.bin"
        git("update-index", "--add", "--cacheinfo", entry, cwd=repo)
    git("commit", "-qm", "sizes", cwd=repo)
    ours = agent("ls-files", "-s", cwd=repo).stdout.decode().splitlines()
    assert ours == git("lfs", "ls-files", "-s", cwd=repo).stdout.decode().splitlines()
    assert len(ours) == len(SIZES)


#: Tracked paths for the pattern comparison: depths, names that recur at several
#: depths, a space, and brackets in a name.
PATTERN_PATHS = [
    "a.bin",
    "b1.bin",
    "b2.bin",
    "bb.bin",
    "br[a]c.bin",
    "data/d.bin",
    "data/raw/d.bin",
    "deep/a/b/c/z.bin",
    "models/m1.bin",
    "models/sub/m2.bin",
    "models2/m.bin",
    "sp ace/s.bin",
    "x/a.bin",
    "x/models/n.bin",
    "x/y/a.bin",
]
#: Each is given to git-lfs and to lfs-agent as --include and as --exclude. Left out:
#: a lone "[", which git-lfs 3.3 takes to match the files of any subdirectory (and
#: lfs-agent, as git does, as a literal "[").
INCLUDE_PATTERNS = [
    "*.bin", "a.bin", "x/a.bin", "/a.bin", "a.bin/", "models", "models/", "/models",
    "models/*", "models/**", "models*", "models/sub", "models/m1.bin/", "./models",
    "**/a.bin", "x/**/a.bin", "**/models", "**/models/*", "**/sub/**", "**/y/*", "**/c",
    "**", "*", "*/", "?", "*a*", "m*", "b*", "*.BIN", "*/a.bin", "x", "x/", "x/*", "x/**",
    "x/y", "/x/y/a.bin", "d*/", "data/raw", "data/raw/", "raw", "data/*.bin",
    "deep/**", "deep/**/z.bin", "deep/*/z.bin", "deep/a", "deep/a/", "a/b",
    "b?.bin", "b[12].bin", "b[!1].bin", "b[^1].bin", "b[0-9].bin", "[a-b]*.bin", "b[",
    "br[a]c.bin", "br\\[a\\]c.bin", "\\*.bin", "sp ace", "sp?ace", "x?a.bin", "data?raw",
]  # fmt: skip


@pytest.fixture(scope="module")
def pattern_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One repository for all the pattern tests, made before the per-test environment."""
    repo = tmp_path_factory.mktemp("patterns")
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Test Author",
        "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Committer",
        "GIT_COMMITTER_EMAIL": "committer@example.com",
    }
    git("init", "-q", cwd=repo, env=env)
    git("lfs", "install", "--local", cwd=repo, env=env)
    git("lfs", "track", "*.bin", cwd=repo, env=env)
    for name in PATTERN_PATHS:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(name)
    git("add", "-A", cwd=repo, env=env)
    git("commit", "-qm", "paths", cwd=repo, env=env)
    listed = git("lfs", "ls-files", "-n", cwd=repo).stdout.decode().splitlines()
    assert sorted(listed) == sorted(PATTERN_PATHS)
    return repo


def lfs_selects(repo: Path, *flags: str) -> set[str]:
    return set(git("lfs", "ls-files", "-n", *flags, cwd=repo).stdout.decode().splitlines())


@pytest.mark.parametrize("pattern", INCLUDE_PATTERNS)
def test_include_and_exclude_patterns_select_what_git_lfs_selects(pattern_repo, pattern):
    included = {p for p in PATTERN_PATHS if PathFilter([pattern]).allows(p)}
    assert included == lfs_selects(pattern_repo, "-I", pattern)
    excluded = {p for p in PATTERN_PATHS if PathFilter(exclude=[pattern]).allows(p)}
    assert excluded == lfs_selects(pattern_repo, "-X", pattern)


@pytest.mark.parametrize(
    ("include", "exclude"),
    [("models", "models/sub"), ("*.bin", "x/**"), ("x/**,data", "*/a.bin"), ("b*", "b?.bin")],
)
def test_include_with_exclude_selects_what_git_lfs_selects(pattern_repo, include, exclude):
    ours = PathFilter(include.split(","), exclude.split(","))
    selected = {p for p in PATTERN_PATHS if ours.allows(p)}
    assert selected == lfs_selects(pattern_repo, "-I", include, "-X", exclude)
    assert selected  # each pair leaves something, so an empty answer would show


@pytest.mark.parametrize(
    "url",
    [
        "https://host.example/org/repo.git",
        "https://host.example/org/repo/",
        "http://user@host.example:8080/r.git",
        "git@host.example:org/repo",
        "user@host.example:/abs/repo.git",
        "ssh://git@host.example:2222/org/repo",
        "git+ssh://git@host.example/org/repo.git",
        "ssh://host.example/~user/repo.git",
        "git://host.example/org/repo.git",
        "file:///srv/repo.git",
        "server.git",  # a path, relative to the work tree: it exists
    ],
)
def test_the_endpoint_a_remote_scopes_is_the_one_git_lfs_derives(make_repo, url):
    repo = make_repo("r")
    git("init", "-q", "--bare", str(repo / "server.git"), cwd=repo)
    git("remote", "add", "origin", url, cwd=repo)
    env = git("lfs", "env", cwd=repo).stdout.decode().splitlines()
    (endpoint,) = [line for line in env if line.startswith("Endpoint=")]
    assert endpoint.split("=", 1)[1].split(" (auth=")[0] == _lfs_endpoint(url, repo)
