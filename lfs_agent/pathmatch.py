"""gitignore-style path patterns, as git-lfs uses for ``--include``/``--exclude``.

A pattern without a slash matches a file name or a directory name at any depth
(``*.h5``, ``data``); a pattern with a slash is anchored at the top of the repository
(``models/*``, ``/data/raw``). ``*`` and ``?`` do not cross ``/``; ``**`` does. A pattern
that matches a directory matches everything below it. Exclusion wins over inclusion, and
an empty include list includes everything (git-lfs ``filepathfilter``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["PathFilter", "compile_pattern"]


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Translate one gitignore-style pattern into a regex over ``/``-separated paths."""
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
                cls = body[i + 1 : end].replace("\\", "\\\\")
                if cls.startswith("!"):
                    cls = "^" + cls[1:]
                out.append(f"[{cls}]")
                i = end
        elif c == "\\" and i + 1 < len(body):
            i += 1
            out.append(re.escape(body[i]))
        else:
            out.append(re.escape(c))
        i += 1
    prefix = "" if anchored else "(?:.*/)?"
    # The match may stop at a directory boundary: a directory pattern covers its contents.
    return re.compile(prefix + "".join(out) + "(?:/.*)?", re.DOTALL)


class PathFilter:
    """Decides which paths an include/exclude pair lets through.

    Args:
        include: Patterns a path must match (empty: every path matches).
        exclude: Patterns that reject a path even when included.
    """

    def __init__(self, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> None:
        self.include = tuple(p for p in include if p)
        self.exclude = tuple(p for p in exclude if p)

    def __bool__(self) -> bool:
        """True when the filter restricts anything."""
        return bool(self.include or self.exclude)

    def allows(self, path: str) -> bool:
        """True when ``path`` (repository-relative, ``/``-separated) passes."""
        if any(compile_pattern(p).fullmatch(path) for p in self.exclude):
            return False
        if not self.include:
            return True
        return any(compile_pattern(p).fullmatch(path) for p in self.include)
