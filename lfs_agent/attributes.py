"""git's attributes files as git-lfs reads them: syntax, macros, the patterns they set.

``track`` and ``git lfs track``'s listing both need every pattern that sets ``filter``
or ``lockable``, read with git-lfs's rules (a pattern ends at the first space, a quoted
one is unquoted as a Go string, macros expand one level deep), so that lfs-agent lists
and compares patterns exactly as git-lfs does. Reading follows no symbolic link in the
work tree.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from lfs_agent import worktree
from lfs_agent.errors import ConfigError, UnsafePathError
from lfs_agent.git import Git

__all__ = [
    "ATTRIBUTES_FILE",
    "MAX_ATTRIBUTES_SIZE",
    "AttributePattern",
    "attribute_patterns",
    "go_clean",
    "read_attributes",
    "work_tree",
    "work_tree_patterns",
]

#: The attributes file of each directory (``track`` edits the current directory's).
ATTRIBUTES_FILE = ".gitattributes"
#: The largest ``.gitattributes`` read (git itself reads at most 100 MiB).
MAX_ATTRIBUTES_SIZE = 100 * 1024 * 1024


def work_tree(git: Git) -> Path:
    """The top of ``git``'s work tree, which attributes files and submodules live in.

    Args:
        git: Runs git in the repository.

    Returns:
        The work tree's top directory.

    Raises:
        ConfigError: the repository is bare.
    """
    top = git.paths.work_tree
    if top is None:
        raise ConfigError("track needs a work tree")
    return top


def read_attributes(top: Path, rel: str = ATTRIBUTES_FILE) -> str | None:
    """The attributes file ``rel`` of the work tree, or None when there is none.

    A symbolic link there is refused, as git itself does not follow one to read
    attributes: it could make ``track`` read, and then rewrite, any file of the user's.

    Args:
        top: The work tree's top.
        rel: The file, relative to ``top``.

    Returns:
        Its text (undecodable bytes kept as surrogates, so that a rewrite keeps them).

    Raises:
        UnsafePathError: it, or a directory leading to it, is a symbolic link, or it is
            not a regular file.
    """
    try:
        with worktree.directory_of(top, rel) as (parent, name):
            try:
                st = parent.lstat(name)
            except FileNotFoundError:
                return None
            found = parent.read_regular(name, MAX_ATTRIBUTES_SIZE)
    except FileNotFoundError:
        return None
    if found is None:
        what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a small regular file"
        raise UnsafePathError(f"refusing to use {rel}: it is {what}")
    return found[0].decode("utf-8", "surrogateescape")


def _read_outside(path: Path) -> str | None:
    """An attributes file outside the work tree (the user's, the system's), if readable.

    A missing, unreadable or oversized file is skipped, as git skips it.

    Args:
        path: The file.

    Returns:
        Its text, or None.
    """
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_ATTRIBUTES_SIZE + 1)
    except OSError:
        return None
    if len(data) > MAX_ATTRIBUTES_SIZE:
        return None
    return data.decode("utf-8", "surrogateescape")


def go_clean(path: str) -> str:
    """``path`` as Go's ``filepath.Clean`` makes it, for patterns to compare as git-lfs's.

    Args:
        path: A slash-separated path or pattern.

    Returns:
        It without ``.``, empty parts and the ``..`` that can be resolved; ``.`` if empty.
    """
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts and parts[-1] != "..":
            parts.pop()
        elif part == ".." and rooted and not parts:
            continue
        else:
            parts.append(part)
    cleaned = "/".join(parts)
    return ("/" + cleaned) if rooted else (cleaned or ".")


class _Attr(NamedTuple):
    """One attribute of a line: ``key`` ``true``/``false``/a value, or unspecified."""

    key: str
    value: str
    unspecified: bool = False


class _Line(NamedTuple):
    """One line of an attributes file: a pattern's attributes or a macro's definition."""

    pattern: str | None
    macro: str
    attrs: tuple[_Attr, ...]


#: Escapes of a quoted pattern (Go's ``strconv.Unquote``).
_QUOTED_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}


def _unquote(quoted: str) -> str | None:
    """The pattern ``"..."`` stands for, as Go's ``strconv.Unquote`` reads it.

    Args:
        quoted: The pattern, quotes included.

    Returns:
        The pattern, or None when Go could not unquote it (git-lfs then drops the file).
    """
    body = quoted[1:-1].encode("utf-8", "surrogateescape")
    out = bytearray()
    at = 0
    while at < len(body):
        c = body[at]
        if c in b'"\n':  # a bare quote or newline inside
            return None
        if c != ord("\\"):
            out.append(c)
            at += 1
            continue
        kind = chr(body[at + 1]) if at + 1 < len(body) else ""
        if kind and kind in _QUOTED_ESCAPES:
            out.append(_QUOTED_ESCAPES[kind])
            at += 2
            continue
        if kind and kind in "xuU":
            width, base, digits = {"x": 2, "u": 4, "U": 8}[kind], 16, "0123456789abcdefABCDEF"
            start = at + 2
        elif kind and kind in "01234567":
            width, base, digits, start = 3, 8, "01234567", at + 1
        else:
            return None
        text = body[start : start + width].decode("latin-1")
        if len(text) != width or any(d not in digits for d in text):
            return None
        number = int(text, base)
        at = start + width
        if kind in "uU":
            if number > 0x10FFFF or 0xD800 <= number < 0xE000:
                return None
            out += chr(number).encode()
        elif number > 255:
            return None
        else:
            out.append(number)
    return out.decode("utf-8", "surrogateescape")


def _parse_attributes(text: str) -> tuple[list[_Line], str] | None:
    """The lines of an attributes file, as git-lfs parses them, and its line ending.

    Like git-lfs (not git): the pattern ends at the first space, attributes are
    separated by spaces, a quoted pattern is unquoted as a Go string. A quoted pattern
    that does not unquote makes the whole file unusable (None), as it does git-lfs.

    Args:
        text: The file's text.

    Returns:
        Its pattern and macro lines, and its line ending (CR LF when most lines end so,
        ``""`` when no line ends); None when it is unusable.
    """
    lf = crlf = 0
    lines = []
    parts = text.split("\n")
    last = parts.pop()
    raw_lines = []
    for part in parts:
        if part.endswith("\r"):
            crlf += 1
            raw_lines.append(part[:-1])
        else:
            lf += 1
            raw_lines.append(part)
    if last:
        raw_lines.append(last)
    for raw in raw_lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern: str | None = None
        macro = ""
        if line.startswith('"'):
            end = line.rfind('"')
            if end == 0:
                return None
            pattern = _unquote(line[: end + 1])
            if pattern is None:
                return None
            applied = line[end + 1 :].strip()
        else:
            first, _, applied = line.partition(" ")
            if first.startswith("[attr]"):
                macro = first[len("[attr]") :]
            else:
                pattern = first
        attrs = []
        for word in applied.split(" "):
            if not word:
                continue
            if word.startswith("-"):
                attrs.append(_Attr(word[1:], "false"))
            elif word.startswith("!"):
                attrs.append(_Attr(word[1:], "", unspecified=True))
            elif "=" in word:
                key, _, value = word.partition("=")
                attrs.append(_Attr(key, value))
            else:
                attrs.append(_Attr(word, "true"))
        lines.append(_Line(pattern or None, macro, tuple(attrs)))
    ending = "\r\n" if crlf > lf else ("" if lf == 0 else "\n")
    return lines, ending


class _Macros:
    """Attribute macros (``[attr]name ...``), expanded as git-lfs does: one level deep."""

    def __init__(self) -> None:
        self.macros: dict[str, tuple[_Attr, ...]] = {
            "binary": (_Attr("diff", "false"), _Attr("merge", "false"), _Attr("text", "false"))
        }

    def expand(self, lines: list[_Line], define: bool) -> list[tuple[str, list[_Attr]]]:
        """The patterns of ``lines`` with their macros expanded.

        Args:
            lines: An attributes file's lines.
            define: Learn the file's macro definitions (git-lfs takes them only from
                the top-level file and the files outside the work tree).

        Returns:
            Each pattern with its attributes, in the file's order.
        """
        result = []
        for line in lines:
            if line.pattern is None:
                if define:
                    self.macros[line.macro] = line.attrs
                continue
            attrs: list[_Attr] = []
            for attr in line.attrs:
                macro = self.macros.get(attr.key)
                if macro and attr.value == "true":
                    attrs.extend(macro)
                elif macro and attr.unspecified:
                    attrs.extend(_Attr(m.key, "", unspecified=True) for m in macro)
                attrs.append(attr)  # git keeps the macro's own name set too
            result.append((line.pattern, attrs))
        return result


class AttributePattern(NamedTuple):
    """A pattern of an attributes file that sets ``filter`` or ``lockable``.

    Attributes:
        path: The pattern joined to its file's directory, as ``git lfs track`` lists it.
        source: The file, relative to the work tree's top ("" for the user's and the
            system's files, as git-lfs shows them).
        tracked: Its filter is lfs.
        lockable: It sets ``lockable``.
        line_ending: Of its file (``""`` when the file has a single unterminated line).
    """

    path: str
    source: str
    tracked: bool
    lockable: bool
    line_ending: str


def _patterns_of(
    macros: _Macros, text: str | None, source: str, define: bool
) -> list[AttributePattern]:
    """The patterns of one attributes file that set ``filter`` or ``lockable``.

    Args:
        macros: The macros known so far (learning this file's when ``define``).
        text: The file's text, or None when there is none.
        source: The file, relative to the work tree's top ("" outside it).
        define: Learn the file's macro definitions.

    Returns:
        The patterns, joined to the file's directory.
    """
    parsed = _parse_attributes(text) if text is not None else None
    if parsed is None:
        return []
    lines, ending = parsed
    directory = source.rpartition("/")[0] or "."
    found = []
    for pattern, attrs in macros.expand(lines, define):
        has_filter = tracked = lockable = False
        for attr in attrs:
            if attr.key == "filter":
                has_filter, tracked = True, attr.value == "lfs"
            elif attr.key == "lockable" and attr.value == "true":
                lockable = True
        if has_filter or lockable:
            path = go_clean(f"{directory}/{pattern}")
            found.append(AttributePattern(path, source, tracked, lockable, ending))
    return found


def _work_tree_patterns(git: Git, top: Path, macros: _Macros) -> list[AttributePattern]:
    """The patterns of ``.git/info/attributes`` and of every ``.gitattributes``.

    The files are those git-lfs reads (tracked or untracked but not ignored), longest
    path first (its precedence order); only the top-level one and ``info/attributes``
    may define macros.

    Args:
        git: Runs git in the repository.
        top: The work tree's top.
        macros: The macros of the files outside the work tree.

    Returns:
        The patterns, file by file.
    """
    files: list[tuple[str, str, bool]] = []  # (full path, source, in the work tree)
    info = git.paths.git_dir / "info" / "attributes"
    if info.is_file():
        files.append((str(info), os.path.relpath(info, top), False))
    listing = Git(top, git.env).run(
        [
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            f":(top,glob)**/{ATTRIBUTES_FILE}",
        ]
    )
    names = listing.stdout.decode("utf-8", "surrogateescape").split("\0")
    for rel in dict.fromkeys(n for n in names if n):
        files.append((os.path.join(top, rel), go_clean(rel), True))
    files.sort(key=lambda f: -len(f[0]))
    found = []
    for full, source, inside in files:
        text = read_attributes(top, source) if inside else _read_outside(Path(full))
        define = source in (ATTRIBUTES_FILE,) or not inside
        found.extend(_patterns_of(macros, text, source, define))
    return found


def attribute_patterns(git: Git, outside: Sequence[Path] = ()) -> list[AttributePattern]:
    """Every pattern ``git lfs track`` lists, in its order.

    Args:
        git: Runs git in the repository.
        outside: The system's and then the user's attributes files (read first, for
            their macros, and listed last, the user's before the system's).

    Returns:
        The patterns, those of the deepest files first.

    Raises:
        UnsafePathError: a ``.gitattributes`` is a symbolic link.
    """
    top = work_tree(git)
    macros = _Macros()
    groups = [_patterns_of(macros, _read_outside(path), "", True) for path in outside]
    found = _work_tree_patterns(git, top, macros)
    for group in reversed(groups):
        found.extend(group)
    return found


def work_tree_patterns(git: Git, top: Path, outside: Sequence[Path] = ()) -> list[AttributePattern]:
    """The patterns of the work tree's attributes files, as ``track`` compares them.

    The files outside the work tree are read for their macros only: a pattern of the
    user's or the system's file does not make one of the work tree "already supported".

    Args:
        git: Runs git in the repository.
        top: The work tree's top (:func:`work_tree`).
        outside: As for :func:`attribute_patterns`.

    Returns:
        The patterns of ``.git/info/attributes`` and every ``.gitattributes``, longest
        path first.

    Raises:
        UnsafePathError: a ``.gitattributes`` is a symbolic link.
    """
    macros = _Macros()
    for path in outside:
        _patterns_of(macros, _read_outside(path), "", True)
    return _work_tree_patterns(git, top, macros)
