"""``track`` and ``untrack``: editing a directory's ``.gitattributes`` as git-lfs 3.3 does.

The file is written as ``git lfs track`` writes it (same escapes, line endings and
order), so that switching between the two tools leaves no diff; files already in git
that a new pattern covers are marked modified, so that ``git add`` stores them as
pointers.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from lfs_agent import worktree
from lfs_agent.attributes import (
    ATTRIBUTES_FILE,
    AttributePattern,
    go_clean,
    read_attributes,
    work_tree,
    work_tree_patterns,
)
from lfs_agent.errors import UnsafePathError
from lfs_agent.git import Git, lfs_filtered

__all__ = [
    "LFS_ATTRIBUTES",
    "TrackResult",
    "attribute_line",
    "escape_pattern",
    "track",
    "unescape_pattern",
    "untrack",
]

#: The attributes ``git lfs track`` writes after a pattern.
LFS_ATTRIBUTES = "filter=lfs diff=lfs merge=lfs -text"


def _quoted(pattern: str) -> str:
    """Quote a pattern for a message as git-lfs does (Go ``%q``), so the output matches."""
    return json.dumps(pattern, ensure_ascii=False)


#: What ``git lfs track`` escapes in the patterns it writes, and how.
_ESCAPES = ((" ", "[[:space:]]"), ("#", "\\#"))


def escape_pattern(pattern: str) -> str:
    """Escape a pattern the way ``git lfs track`` does in ``.gitattributes``.

    A space would end the pattern, and a ``#`` could make the line a comment.

    Args:
        pattern: As given on the command line.

    Returns:
        The pattern as the file holds it.
    """
    for plain, escaped in _ESCAPES:
        pattern = pattern.replace(plain, escaped)
    return pattern


def unescape_pattern(pattern: str) -> str:
    """Undo :func:`escape_pattern`, as git-lfs does to compare and print patterns.

    Args:
        pattern: As the file holds it.

    Returns:
        The pattern as given on the command line.
    """
    for plain, escaped in _ESCAPES:
        pattern = pattern.replace(escaped, plain)
    return pattern


def attribute_line(pattern: str) -> str:
    """The ``.gitattributes`` line ``git lfs track PATTERN`` writes.

    Args:
        pattern: As given on the command line.

    Returns:
        The line, without its line ending.
    """
    return f"{escape_pattern(pattern)} {LFS_ATTRIBUTES}"


def _trim_current(pattern: str) -> str:
    """``pattern`` without a leading ``./`` (or dot-backslash), as git-lfs compares patterns."""
    if pattern.startswith(".\\"):
        return pattern[2:]
    return pattern.removeprefix("./")


def _prefix(git: Git) -> str:
    """The current directory below the work tree's top, where ``track`` edits the file.

    Args:
        git: Runs git in the current directory.

    Returns:
        ``""`` at the top, else ``"a/b/"``.
    """
    return git.output(["rev-parse", "--show-prefix"])


def _scan_lines(text: str) -> list[str]:
    """The lines of ``text`` as git-lfs reads them: CR LF ends a line as LF does.

    Args:
        text: An attributes file's text.

    Returns:
        Its lines, without their endings.
    """
    parts = text.split("\n")
    last = parts.pop()
    lines = [p[:-1] if p.endswith("\r") else p for p in parts]
    if last:
        lines.append(last)
    return lines


class TrackResult(NamedTuple):
    """What ``track`` did.

    Attributes:
        messages: git-lfs's lines (``Tracking "*.bin"`` ...).
        covered: For each new pattern, the files already in git that it covers,
            relative to the work tree's top; each was marked modified (its time set to
            the current time), so that ``git add`` stores it through the filter.
    """

    messages: list[str]
    covered: dict[str, list[str]]


def _line_ending(git: Git, known: list[AttributePattern]) -> str:
    """The line ending ``track`` writes: the top-level file's, else git's own.

    One ending for every line keeps a file that was all CR LF so, as git-lfs does.

    Args:
        git: Runs git in the repository.
        known: The work tree's patterns (:func:`attributes.work_tree_patterns`).

    Returns:
        CR LF or LF.
    """
    for found in known:
        if found.source == ATTRIBUTES_FILE and found.line_ending:
            return found.line_ending
    autocrlf = (git.config_get("core.autocrlf") or "").lower()
    return "\r\n" if autocrlf in ("true", "t", "1") else "\n"


def track(git: Git, patterns: list[str], outside: Sequence[Path] = ()) -> TrackResult:
    """Add ``patterns`` to the current directory's ``.gitattributes``, as ``git lfs track``.

    The file is rewritten as git-lfs rewrites it (blank lines dropped, one line ending,
    a line of the same pattern replaced in place, new ones appended), so that switching
    tools leaves no diff. A pattern some attributes file of the work tree already lists
    is "already supported". Files in git that a new pattern covers are marked modified,
    so that ``git add`` stores them as pointers.

    Args:
        git: Runs git in the current directory.
        patterns: As given on the command line.
        outside: See :func:`attributes.attribute_patterns` (read for their macros only).

    Returns:
        git-lfs's messages, and the files marked modified for each new pattern.

    Raises:
        UnsafePathError: an attributes file is a symbolic link.
    """
    top = work_tree(git)
    prefix = _prefix(git)
    here = prefix.rstrip("/") or "."
    known = work_tree_patterns(git, top, outside)
    ending = _line_ending(git, known)
    supported = {unescape_pattern(k.path) for k in known}
    messages = []
    changed: dict[str, str] = {}
    for given in patterns:
        pattern = _trim_current(given)
        if go_clean(f"{here}/{pattern}") in supported:
            messages.append(f"{_quoted(pattern)} already supported")
            continue
        escaped = escape_pattern(pattern)
        changed[pattern] = f"{escaped} {LFS_ATTRIBUTES}{ending}"
        messages.append(f"Tracking {_quoted(unescape_pattern(escaped))}")
    rel = prefix + ATTRIBUTES_FILE
    out = []
    for line in _scan_lines(read_attributes(top, rel) or ""):
        fields = line.split()
        if not fields:
            continue
        replaced = changed.pop(unescape_pattern(fields[0]), None)
        out.append(replaced if replaced is not None else line + ending)
    out.extend(changed.values())
    worktree.write_file(top, rel, "".join(out).encode("utf-8", "surrogateescape"))
    covered: dict[str, list[str]] = {}
    for pattern in changed:
        files = _files_matching(git, pattern)
        blocked = [f for f in files if f.rpartition("/")[2].startswith(_BLOCKED_NAMES)]
        for name in blocked:
            messages.append(
                f"Pattern '{pattern}' matches forbidden file '{name}'. If you would like to "
                f"track {name}, modify '.gitattributes' manually."
            )
        if not blocked:
            covered[pattern] = _mark_modified(git, top, prefix, files)
    return TrackResult(messages, covered)


#: Names git-lfs's ``track`` refuses to mark modified (a pattern that covers them is
#: written, and nothing is touched): ``git add`` would store ``.gitattributes`` itself
#: as a pointer.
_BLOCKED_NAMES = (".git", ".lfs")


def _files_matching(git: Git, pattern: str) -> list[str]:
    """Regular files in the index that ``git ls-files`` finds for ``pattern`` (as git-lfs).

    A pattern with a leading slash that has a ``*`` matches only in this directory, as
    in ``.gitattributes``.

    Args:
        git: Runs git in the current directory.
        pattern: As given on the command line, less a leading ``./``.

    Returns:
        The files, relative to the current directory, each once.
    """
    plain = pattern.removeprefix("/")
    if not plain:
        return []
    root_only = plain != pattern and "*" in plain
    out = git.run(["ls-files", "--cached", "-s", "-z", "--", plain]).stdout
    files = []
    for entry in out.decode("utf-8", "surrogateescape").split("\0"):
        meta, _, name = entry.partition("\t")
        if not name or meta.split(" ")[0] not in ("100644", "100755"):
            continue  # symbolic links and submodules are not filtered
        if root_only and "/" in name:
            continue
        files.append(name)
    return list(dict.fromkeys(files))


def _mark_modified(git: Git, top: Path, prefix: str, files: list[str]) -> list[str]:
    """Set the time of those of ``files`` that git filters through lfs to the current time.

    git then sees them changed and runs them through the filter at the next ``git add``
    or ``git status`` (git-lfs's ``track`` does the same). A file is touched through its
    directory's descriptor, following no symbolic link; one that is gone, or below a
    link, is left out.

    Args:
        git: Runs git in the current directory.
        top: The work tree's top.
        prefix: The current directory below ``top`` (``""`` or ``"a/b/"``).
        files: Relative to the current directory.

    Returns:
        The files touched, relative to ``top``.
    """
    if not files:
        return []
    lfs = lfs_filtered(git, files)
    now = time.time_ns()
    touched = []
    for name in lfs:
        rel = os.path.normpath(prefix + name)
        try:
            with worktree.directory_of(top, rel) as (parent, base):
                os.utime(base, ns=(now, now), dir_fd=parent.fd, follow_symlinks=False)
        except (OSError, UnsafePathError):
            continue
        touched.append(rel)
    return touched


def untrack(git: Git, patterns: list[str]) -> list[str]:
    """Remove ``patterns``' lfs lines from the current directory's ``.gitattributes``.

    As ``git lfs untrack``: a line naming ``filter=lfs`` goes when its first word (less a
    leading ``./``) is one of the patterns, escaped as ``track`` writes them; every other
    line is kept, ending in LF. Without such a file nothing is done.

    Args:
        git: Runs git in the current directory.
        patterns: As given on the command line.

    Returns:
        git-lfs's messages.
    """
    top = work_tree(git)
    rel = _prefix(git) + ATTRIBUTES_FILE
    text = read_attributes(top, rel)
    if text is None:
        return []
    wanted = {escape_pattern(_trim_current(p)) for p in patterns}
    kept = []
    messages = []
    for line in _scan_lines(text):
        if "filter=lfs" in line and _trim_current(line.split()[0]) in wanted:
            messages.append(f"Untracking {_quoted(unescape_pattern(line.split()[0]))}")
            continue
        kept.append(line + "\n")
    worktree.write_file(top, rel, "".join(kept).encode("utf-8", "surrogateescape"))
    return messages
