"""Include/exclude path patterns: semantics, invalid patterns, and bounded cost."""

from __future__ import annotations

import threading
import time

import pytest

from lfs_agent.pathmatch import CompiledPattern, PathFilter, compile_pattern, pattern_error

#: (pattern, path, selected) for paths as git lists them. Where the paths are those of
#: the git-lfs comparison in the integration tests, the answers are git-lfs 3.3's.
PATH_CASES = [
    # No slash: a file or directory name at any depth.
    ("*.bin", "a.bin", True),
    ("*.bin", "deep/a/b/c/z.bin", True),
    ("*.BIN", "a.bin", False),
    ("a.bin", "x/a.bin", True),
    ("a.bin", "xa.bin", False),
    ("models", "models/sub/m2.bin", True),
    ("models", "x/models/n.bin", True),
    ("models", "models2/m.bin", False),
    ("raw", "data/raw/d.bin", True),
    ("models*", "models2/m.bin", True),
    ("*", "a.bin", True),
    ("?", "x/a.bin", True),
    ("?", "a.bin", False),
    ("sp ace", "sp ace/s.bin", True),
    ("sp?ace", "sp ace/s.bin", True),
    # A trailing slash alone does not anchor.
    ("a.bin/", "x/a.bin", True),
    ("models/", "models/m1.bin", True),
    ("d*/", "deep/a/b/c/z.bin", True),
    # A slash anywhere else anchors at the top.
    ("/a.bin", "a.bin", True),
    ("/a.bin", "x/a.bin", False),
    ("/models", "x/models/n.bin", False),
    ("x/a.bin", "x/a.bin", True),
    ("x/a.bin", "y/x/a.bin", False),
    ("models/sub", "models/sub/m2.bin", True),
    ("data/raw", "data/raw/d.bin", True),
    ("data/raw/", "data/raw/d.bin", True),
    ("deep/a", "deep/a/b/c/z.bin", True),
    ("a/b", "deep/a/b/c/z.bin", False),
    ("./models", "models/m1.bin", False),
    # "*" and "?" stay within a name; a directory they match takes its contents along.
    ("models/*", "models/m1.bin", True),
    ("models/*", "models/sub/m2.bin", True),
    ("models/*", "models2/m.bin", False),
    ("*/a.bin", "x/a.bin", True),
    ("*/a.bin", "x/y/a.bin", False),
    ("deep/*/z.bin", "deep/a/b/c/z.bin", False),
    ("data?raw", "data/raw/d.bin", False),
    ("data/*.bin", "data/raw/d.bin", False),
    # "**" crosses directories; "**/" is zero or more of them.
    ("**", "deep/a/b/c/z.bin", True),
    ("**/a.bin", "a.bin", True),
    ("**/a.bin", "x/y/a.bin", True),
    ("x/**/a.bin", "x/a.bin", True),
    ("x/**/a.bin", "x/y/a.bin", True),
    ("x/**/a.bin", "a.bin", False),
    ("deep/**/z.bin", "deep/a/b/c/z.bin", True),
    ("**/models/*", "x/models/n.bin", True),
    ("**/sub/**", "models/sub/m2.bin", True),
    ("**/y/*", "x/y/a.bin", True),
    ("models/**", "models2/m.bin", False),
    ("a**b", "a/x/b", True),
    # Brackets and escapes.
    ("b[12].bin", "b1.bin", True),
    ("b[12].bin", "bb.bin", False),
    ("b[!1].bin", "b1.bin", False),
    ("b[!1].bin", "b2.bin", True),
    ("b[^1].bin", "bb.bin", True),
    ("b[0-9].bin", "bb.bin", False),
    ("[a-b]*.bin", "br[a]c.bin", True),
    ("br[a]c.bin", "br[a]c.bin", False),
    ("br\\[a\\]c.bin", "br[a]c.bin", True),
    ("\\*.bin", "a.bin", False),
    ("\\*.bin", "*.bin", True),
    ("b[", "b[", True),
    ("b[", "b1.bin", False),
    ("a\\", "a\\", True),
    ("sp[[:space:]]ace", "sp ace/s.bin", True),
    ("sp[[:space:]]ace", "sp:]ace", False),
    ("x[!a]y", "x/y", False),
]


@pytest.mark.parametrize(("pattern", "path", "selected"), PATH_CASES)
def test_a_pattern_selects_what_git_lfs_selects(pattern, path, selected):
    assert compile_pattern(pattern).fullmatch(path) is selected
    assert PathFilter([pattern]).allows(path) is selected
    assert PathFilter(exclude=[pattern]).allows(path) is not selected


XLFD = "-*-*-*-*-*-*-12-*-*-*-m-*-*-*"
FONT = "-adobe-courier-bold-o-normal--12-120-75-75-{}-70-iso8859-1"

#: (pattern, name, match) from git's and git-lfs's wildmatch tests, on one path name.
#: Where the two disagree, git's answer; a lone "[" is a literal, as git has it.
WILDMATCH_CASES = [
    ("foo", "foo", True),
    ("bar", "foo", False),
    ("???", "foo", True),
    ("??", "foo", False),
    ("*", "foo", True),
    ("f*", "foo", True),
    ("*f", "foo", False),
    ("*foo*", "foo", True),
    ("*ob*a*r*", "foobar", True),
    ("*ab", "aaaaaaabababab", True),
    ("foo\\*", "foo*", True),
    ("foo\\*bar", "foobar", False),
    ("f\\\\oo", "f\\oo", True),
    ("*[al]?", "ball", True),
    ("[ten]", "ten", False),
    ("**[!te]", "ten", True),
    ("**[!ten]", "ten", False),
    ("t[a-g]n", "ten", True),
    ("t[!a-g]n", "ten", False),
    ("t[!a-g]n", "ton", True),
    ("t[^a-g]n", "ton", True),
    ("]", "]", True),
    ("foo*bar", "foo/baz/bar", False),
    ("foo?bar", "foo/bar", False),
    ("foo[/]bar", "foo/bar", False),
    ("f[^eiu][^eiu][^eiu][^eiu][^eiu]r", "foo/bar", False),
    ("f[^eiu][^eiu][^eiu][^eiu][^eiu]r", "foo-bar", True),
    ("*.txt", "你好-世界.txt", True),
    ("a[c-c]st", "acrt", False),
    ("a[c-c]rt", "acrt", True),
    ("@foo", "foo", False),
    ("\\[ab]", "[ab]", True),
    ("[[]ab]", "[ab]", True),
    ("[[:]ab]", "[ab]", True),
    ("[[:digit]ab]", "[ab]", True),
    ("[\\[:]ab]", "[ab]", True),
    ("\\??\\?b", "?a?b", True),
    ("[[:alpha:]][[:digit:]][[:upper:]]", "a1B", True),
    ("[[:digit:][:upper:][:space:]]", "a", False),
    ("[[:digit:][:upper:][:space:]]", "A", True),
    ("[[:digit:][:upper:][:space:]]", "1", True),
    ("[[:digit:][:upper:][:space:]]", ".", False),
    ("[[:digit:][:punct:][:space:]]", ".", True),
    ("[[:xdigit:]]", "5", True),
    ("[[:xdigit:]]", "f", True),
    ("[[:xdigit:]]", "D", True),
    ("[[:xdigit:]]", "g", False),
    (
        "[[:alnum:][:alpha:][:blank:][:cntrl:][:digit:][:graph:][:lower:]"
        "[:print:][:punct:][:space:][:upper:][:xdigit:]]",
        "_",
        True,
    ),
    (
        "[^[:alnum:][:alpha:][:blank:][:cntrl:][:digit:][:lower:][:space:]"
        "[:upper:][:xdigit:]]",
        ".",
        True,
    ),
    ("[a-c[:digit:]x-z]", "5", True),
    ("[a-c[:digit:]x-z]", "b", True),
    ("[a-c[:digit:]x-z]", "y", True),
    ("[a-c[:digit:]x-z]", "q", False),
    ("[\\\\-^]", "]", True),
    ("[\\\\-^]", "[", False),
    ("[!", "ab", False),
    ("[-", "ab", False),
    ("[-]", "-", True),
    ("[a-", "-", False),
    ("[!a-", "-", False),
    ("[---]", "-", True),
    ("[------]", "-", True),
    ("[!------]", "a", True),
    ("[a^bc]", "^", True),
    ("[\\]", "\\", False),
    ("[\\\\]", "\\", True),
    ("[!\\\\]", "\\", False),
    ("[A-\\\\]", "G", True),
    ("b*a", "aaabbb", False),
    ("*ba*", "aabcaa", False),
    ("[,]", ",", True),
    ("[\\\\,]", ",", True),
    ("[\\\\,]", "\\", True),
    ("[,-.]", "-", True),
    ("[,-.]", "+", False),
    ("[,-.]", "-.]", False),
    (XLFD, FONT.format("m"), True),
    (XLFD, FONT.format("X"), False),
    (XLFD, FONT.format("/"), False),
    ("**/*a*b*g*n*t", "abcd/abcdefg/abcdefghijk/abcdefghijklmnop.txt", True),
    ("**/*a*b*g*n*t", "abcd/abcdefg/abcdefghijk/abcdefghijklmnop.txtz", False),
    ("file[[:space:]]with[[:space:]]spaces.\\#", "file with spaces.#", True),
    ("foo", "FOO", False),
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "name", "match"), WILDMATCH_CASES)
def test_wildmatch_cases(pattern, name, match):
    assert compile_pattern(pattern).fullmatch(name) is match


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("[z-a]", "reversed range z-a"),
        ("data/[9-0]*.bin", "reversed range 9-0"),
        ("[[:nope:]]", "unknown character class [:nope:]"),
        ("[[::]ab]", "unknown character class [::]"),
        ("[[:digit:][:upper:][:spaci:]]", "unknown character class [:spaci:]"),
    ],
)
def test_an_invalid_pattern_is_named_and_never_matches(pattern, reason):
    assert pattern_error(pattern) == reason
    assert compile_pattern(pattern).error == reason
    for path in ("z", "a", "b", "data/5.bin", "[ab]", "1", ""):
        assert compile_pattern(pattern).fullmatch(path) is False


@pytest.mark.parametrize(
    "pattern",
    ["*.bin", "models/", "[a-z]", "[a-a]", "b[", "[!", "[z-", "a\\", "[[:space:]]", "**", "/"],
)
def test_valid_patterns_have_no_error(pattern):
    assert pattern_error(pattern) is None


def test_path_filter_ignores_an_invalid_pattern_without_raising():
    assert PathFilter(["[z-a]"]).allows("b") is False  # includes nothing
    assert PathFilter(["[z-a]"])  # but still restricts
    assert PathFilter(exclude=["[z-a]"]).allows("b") is True  # excludes nothing
    both = PathFilter(["[z-a]", "*.bin"], ["[[:nope:]]", "x/**"])
    assert both.allows("a.bin")
    assert not both.allows("x/a.bin")
    assert not both.allows("a.txt")


def test_path_filter_combines_include_and_exclude():
    assert not PathFilter()
    assert PathFilter().allows("anything/at/all")
    assert PathFilter(["", ""], [""]).allows("a") and not PathFilter([""], [""])
    models = PathFilter(["models"], ["models/sub"])
    assert models.allows("models/m1.bin")
    assert not models.allows("models/sub/m2.bin")
    assert not models.allows("data/d.bin")
    assert not PathFilter(["*.bin"], ["*.bin"]).allows("a.bin")  # exclusion wins
    assert PathFilter(exclude=["*.tmp"]).allows("a.bin")
    assert PathFilter(["models"]).include == ("models",)


def test_compile_pattern_is_cached_and_answers_with_bools():
    compiled = compile_pattern("models/*")
    assert isinstance(compiled, CompiledPattern)
    assert compile_pattern("models/*") is compiled
    assert compiled.pattern == "models/*"
    assert compiled.error is None
    assert compiled.fullmatch("models/a") is True
    assert compiled.fullmatch("data/a") is False


PATHOLOGICAL = [
    ("**a**a**a**a**a**a**a**a**a**z", "a" * 200),
    ("*a*a*a*a*a*a*a*a*a*a*a*a*z", "a" * 200),
    ("**/a" * 12 + "/z", "a/" * 100),
    ("[a-z]*" * 20 + "0", "a" * 200),
    ("**a" + "?" * 60 + "c", "ab" * 100),
]


@pytest.mark.parametrize(("pattern", "path"), PATHOLOGICAL)
def test_pathological_patterns_return_quickly(pattern, path):
    # A backtracking regex takes hours or more on each of these; the bound is generous.
    started = time.monotonic()
    assert compile_pattern(pattern).fullmatch(path) is False
    assert PathFilter([pattern]).allows(path) is False
    assert PathFilter(exclude=[pattern]).allows(path) is True
    assert time.monotonic() - started < 1.0


def test_a_long_pattern_on_a_long_path_stays_polynomial():
    pattern = "**a" * 300 + "**z"
    started = time.monotonic()
    assert compile_pattern(pattern).fullmatch("a" * 4000) is False
    assert compile_pattern(pattern).fullmatch("a" * 3999 + "z") is True
    assert compile_pattern(pattern).fullmatch("a" * 299 + "z") is False
    assert time.monotonic() - started < 5.0


def test_the_cache_of_states_is_bounded_and_threads_agree():
    compiled = CompiledPattern(
        "**/[a-m]*x?/**", max_edges=50
    )  # uncached: starts from an empty cache
    # Many different characters, so the cache fills and starts afresh many times.
    paths = [f"{chr(0x100 + i)}/{'mq'[i % 2]}{chr(0x200 + i)}x{i % 10}/f" for i in range(400)]
    expected = [CompiledPattern("**/[a-m]*x?/**").fullmatch(p) for p in paths]
    results: list[list[bool]] = []

    def run() -> None:
        results.append([compiled.fullmatch(p) for p in paths])

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 4
    assert any(expected) and not all(expected)
    assert compiled._dfa.edges <= 51
