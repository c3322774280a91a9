"""The path matcher against simple references, on random patterns and paths."""

from __future__ import annotations

import fnmatch
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from lfs_agent.pathmatch import PathFilter, compile_pattern, pattern_error


def reference(pattern: str) -> re.Pattern[str]:
    """The regex translation the matcher replaced: right, but exponential on some shapes.

    One deliberate change: a bracket never matches "/" (as in git and git-lfs).
    Only well-formed, backslash-free brackets are generated, where the two agree.
    """
    anchored = "/" in pattern.rstrip("/")
    body = pattern.strip("/")
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if body.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if body.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = body.find("]", i + 2)
            if end == -1:
                out.append(re.escape(c))
            else:
                # A "[" inside is a member; escaped, Python does not read it as a nested set.
                cls = body[i + 1 : end].replace("[", "\\[")
                if cls.startswith("!"):
                    cls = "^" + cls[1:]
                out.append(f"(?!/)[{cls}]")
                i = end
        elif c == "\\" and i + 1 < len(body):
            i += 1
            out.append(re.escape(body[i]))
        else:
            out.append(re.escape(c))
        i += 1
    prefix = "" if anchored else "(?:.*/)?"
    return re.compile(prefix + "".join(out) + "(?:/.*)?", re.DOTALL)


#: Pattern pieces over a small alphabet, so that random paths often match.
PIECES = ["a", "b", ".", "/", "*", "**", "**/", "?", "[ab]", "[!a]", "[a-b]", "\\*", "\\a", "["]
patterns = st.lists(st.sampled_from(PIECES), max_size=8).map("".join)
#: Any string over the path alphabet: also empty names, and leading or trailing slashes.
paths = st.text(alphabet="ab./*[", max_size=12)
#: Names as git lists them.
tidy_paths = st.lists(st.text(alphabet="ab.*", min_size=1, max_size=4), min_size=1, max_size=4)


@settings(max_examples=500, deadline=None)
@given(pattern=patterns, path=paths)
def test_matches_the_regex_translation(pattern, path):
    assert pattern_error(pattern) is None
    expected = reference(pattern).fullmatch(path) is not None
    assert compile_pattern(pattern).fullmatch(path) is expected


#: Pieces of one name, where fnmatch agrees with git's wildmatch.
NAME_PIECES = ["a", "b", "*", "**", "?", "[ab]", "[!a]", "[]a]", "[!]]", "[", "]", "!"]


@settings(max_examples=300, deadline=None)
@given(
    pattern=st.lists(st.sampled_from(NAME_PIECES), max_size=8).map("".join),
    name=st.text(alphabet="ab[]!*", max_size=10),
)
def test_within_one_name_matches_fnmatch(pattern, name):
    assert compile_pattern(pattern).fullmatch(name) is fnmatch.fnmatchcase(name, pattern)


@settings(max_examples=300, deadline=None)
@given(pattern=st.text(max_size=20), path=st.text(max_size=30))
def test_any_pattern_compiles_and_matches_without_raising(pattern, path):
    compiled = compile_pattern(pattern)
    error = pattern_error(pattern)
    assert error is None or (isinstance(error, str) and error)
    assert compiled.error == error
    result = compiled.fullmatch(path)
    assert isinstance(result, bool)
    if error is not None:
        assert result is False
        assert PathFilter(exclude=[pattern]).allows(path)


@settings(max_examples=300, deadline=None)
@given(pattern=patterns, names=tidy_paths, below=tidy_paths)
def test_a_matched_directory_takes_its_contents_along(pattern, names, below):
    directory = "/".join(names)
    if compile_pattern(pattern).fullmatch(directory):
        assert compile_pattern(pattern).fullmatch(directory + "/" + "/".join(below))


@settings(max_examples=300, deadline=None)
@given(
    include=st.lists(patterns.filter(bool), max_size=3),
    exclude=st.lists(patterns.filter(bool), max_size=3),
    names=tidy_paths,
)
def test_exclusion_wins_and_no_include_means_everything(include, exclude, names):
    path = "/".join(names)
    excluded = any(reference(p).fullmatch(path) for p in exclude)
    included = not include or any(reference(p).fullmatch(path) for p in include)
    assert PathFilter(include, exclude).allows(path) is (included and not excluded)
