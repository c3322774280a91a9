r"""gitignore-style path patterns, as git-lfs uses for ``--include``/``--exclude``.

A pattern without a slash matches a file name or a directory name at any depth
(``*.h5``, ``data``); a pattern with a slash is anchored at the top of the repository
(``models/*``, ``/data/raw``). ``*`` and ``?`` do not cross ``/``; ``**`` does, and
``**/`` matches zero or more whole directories. A pattern that matches a directory
matches everything below it. Exclusion wins over inclusion, and an empty include list
includes everything (git-lfs ``filepathfilter``).

Bracket expressions follow git's wildmatch: ``[abc]``, ranges ``[a-z]``, negation with
``!`` or ``^``, a ``]`` first in the brackets is a member, ``\`` escapes inside them, and
POSIX classes such as ``[[:space:]]`` (``git lfs track`` writes a space that way). A
bracket expression never matches ``/``. A ``[`` without its closing ``]`` is a literal
``[``, and so is a trailing lone backslash.

Patterns may come from a ``.lfsconfig`` that someone else committed, so matching must
neither hang nor fail on them:

* Matching simulates the pattern as an automaton over the path, one character at a
  time, building the deterministic states it meets lazily and caching them: the work is
  at most proportional to (pattern length x path length), whatever the pattern's shape.
  A backtracking regex engine is exponential on patterns such as ``**a**a**a**z``.
* A pattern that cannot mean anything (a reversed range ``[z-a]``, an unknown class
  ``[[:nope:]]``) is *invalid*: :func:`pattern_error` says why, its compiled form matches
  nothing, and :class:`PathFilter` leaves it out, so an invalid include pattern includes
  nothing and an invalid exclude pattern excludes nothing. Nothing here raises on a bad
  pattern; callers that read patterns from configuration warn with :func:`pattern_error`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from functools import lru_cache

__all__ = ["MAX_EDGES", "CompiledPattern", "PathFilter", "compile_pattern", "pattern_error"]

#: A test on one character of the path.
_Test = Callable[[str], bool]

#: Cached transitions of one pattern before its cache starts afresh: bounds the memory a
#: pattern can hold however many different paths and characters it sees.
MAX_EDGES = 4096

# Identifiers of the deterministic states every pattern has (see ``_Dfa``).
_DEAD = 0
_MATCHED = 1
_START = 2


def _any(c: str) -> bool:
    return True


def _not_slash(c: str) -> bool:
    return c != "/"


def _is_slash(c: str) -> bool:
    return c == "/"


def _cntrl(c: str) -> bool:
    return c < " " or "\x7f" <= c < "\xa0"


def _graph(c: str) -> bool:
    return c.isprintable() and not c.isspace()


def _punct(c: str) -> bool:
    return _graph(c) and not c.isalnum()


#: The POSIX classes git's wildmatch knows, by name.
_POSIX: dict[str, _Test] = {
    "alnum": str.isalnum,
    "alpha": str.isalpha,
    "blank": " \t".__contains__,
    "cntrl": _cntrl,
    "digit": str.isdecimal,
    "graph": _graph,
    "lower": str.islower,
    "print": str.isprintable,
    "punct": _punct,
    "space": str.isspace,
    "upper": str.isupper,
    "xdigit": "0123456789abcdefABCDEF".__contains__,
}


class _InvalidPattern(ValueError):
    """A pattern that cannot mean anything; the message says why."""


class _Bracket:
    """The character test of one bracket expression, such as ``[!a-z[:space:]]``."""

    __slots__ = ("chars", "classes", "negated", "ranges")

    def __init__(self) -> None:
        self.negated = False
        self.chars: set[str] = set()
        self.ranges: list[tuple[str, str]] = []
        self.classes: list[_Test] = []

    def __call__(self, c: str) -> bool:
        # Not even a negated one matches the separator: git's wildmatch (in path mode)
        # and git-lfs's, which matches one path component at a time, agree on this.
        if c == "/":
            return False
        hit = (
            c in self.chars
            or any(lo <= c <= hi for lo, hi in self.ranges)
            or any(test(c) for test in self.classes)
        )
        return hit != self.negated


def _bracket(body: str, start: int) -> tuple[_Bracket, int] | None:
    """Parses the bracket expression opening at ``body[start]``.

    Returns:
        The expression and the index of its closing ``]``, or None when it has none
        (the ``[`` is then a literal).

    Raises:
        _InvalidPattern: For a reversed range or an unknown POSIX class.
    """
    end = len(body)
    out = _Bracket()
    i = start + 1
    if i < end and body[i] in "!^":
        out.negated = True
        i += 1
    first = True
    while i < end:
        c = body[i]
        if c == "]" and not first:
            return out, i
        first = False
        if body.startswith("[:", i):
            close = body.find("]", i + 2)
            if close == -1:
                return None
            if close - 1 >= i + 2 and body[close - 1] == ":":
                name = body[i + 2 : close - 1]
                test = _POSIX.get(name)
                if test is None:
                    raise _InvalidPattern(f"unknown character class [:{name}:]")
                out.classes.append(test)
                i = close + 1
                continue
            # No ":]" before the next "]": as in git, the "[" is an ordinary member.
        if c == "\\" and i + 1 < end:
            i += 1
            c = body[i]
        if i + 2 < end and body[i + 1] == "-" and body[i + 2] != "]":
            hi_at = i + 2
            if body[hi_at] == "\\" and hi_at + 1 < end:
                hi_at += 1
            hi = body[hi_at]
            if hi < c:
                raise _InvalidPattern(f"reversed range {c}-{hi}")
            out.ranges.append((c, hi))
            i = hi_at + 1
        else:
            out.chars.add(c)
            i += 1
    return None


class _Nfa:
    """The pattern as a nondeterministic automaton, one state per pattern element.

    Every state that consumes a character either stays (``*``, ``**``) or advances to
    the next state, so a step over all states at once is two mask operations (see
    :meth:`CompiledPattern._step`). ``free[s]`` lists the states ``s`` reaches without
    consuming anything.
    """

    def __init__(self) -> None:
        self.advance: list[_Test | None] = []
        self.stay: list[_Test | None] = []
        self.free: list[tuple[int, ...]] = []

    def add(
        self, advance: _Test | None = None, stay: _Test | None = None, free: tuple[int, ...] = ()
    ) -> int:
        """Appends a state and returns its number."""
        self.advance.append(advance)
        self.stay.append(stay)
        self.free.append(free)
        return len(self.free) - 1

    def any_dirs(self) -> None:
        """Adds ``(?:.*/)?``: nothing, or anything that ends with a ``/``."""
        s = len(self.free)
        self.add(free=(s + 1, s + 2))
        self.add(advance=_is_slash, stay=_any)

    def closures(self) -> list[int]:
        """The bit set of states each state reaches without consuming a character."""
        out = []
        for s in range(len(self.free)):
            seen = 0
            todo = [s]
            while todo:
                t = todo.pop()
                if not seen >> t & 1:
                    seen |= 1 << t
                    todo.extend(self.free[t])
            out.append(seen)
        return out


def _build(pattern: str) -> _Nfa:
    """Translates one pattern; the caller appends the final states.

    Raises:
        _InvalidPattern: For a bracket expression that cannot mean anything.
    """
    nfa = _Nfa()
    anchored = "/" in pattern.rstrip("/")
    body = pattern.strip("/")
    if not anchored:
        # A pattern without a slash may start at any directory boundary.
        nfa.any_dirs()
    i = 0
    while i < len(body):
        s = len(nfa.free)
        c = body[i]
        if body.startswith("**/", i):
            nfa.any_dirs()
            i += 3
            continue
        if body.startswith("**", i):
            nfa.add(stay=_any, free=(s + 1,))
            i += 2
            continue
        test: _Test
        if c == "*":
            nfa.add(stay=_not_slash, free=(s + 1,))
            i += 1
            continue
        if c == "?":
            test = _not_slash
        elif c == "[" and (parsed := _bracket(body, i)) is not None:
            test, i = parsed
        elif c == "\\" and i + 1 < len(body):
            i += 1
            test = body[i].__eq__
        else:
            test = c.__eq__
        nfa.add(advance=test)
        i += 1
    return nfa


class _Dfa:
    """The deterministic states of one pattern met so far, and their transitions.

    A state is the bit set of automaton states the path so far can be in. State
    ``_DEAD`` (no way on: no match) and ``_MATCHED`` (the pattern matched a directory the
    path is below: a match whatever follows) end a match early. ``chars`` caches, per
    character, the states that advance on it and those that stay on it.
    """

    __slots__ = ("chars", "edges", "ids", "masks", "rows")

    def __init__(self, start: int) -> None:
        self.masks = [0, -1, start]
        self.rows: list[dict[str, int]] = [{}, {}, {}]
        self.ids = {start: _START}
        self.chars: dict[str, tuple[int, int]] = {}
        self.edges = 0


class CompiledPattern:
    """One include/exclude pattern, ready to match paths.

    Args:
        pattern: The pattern as written.
        max_edges: How many transitions the cache of states holds before it starts
            afresh (:data:`MAX_EDGES`).

    Attributes:
        pattern: The pattern as written.
        error: Why the pattern is invalid, or None. An invalid pattern matches nothing.
    """

    __slots__ = (
        "_accept",
        "_advance",
        "_closure",
        "_dfa",
        "_free",
        "_lock",
        "_matched",
        "_max_edges",
        "_stay",
        "error",
        "pattern",
    )

    def __init__(self, pattern: str, max_edges: int = MAX_EDGES) -> None:
        self.pattern = pattern
        self._max_edges = max_edges
        self.error: str | None = None
        try:
            nfa = _build(pattern)
        except _InvalidPattern as exc:
            self.error = str(exc)
            nfa = _Nfa()
        # The pattern may stop at a directory boundary: a directory pattern covers its
        # contents. ``end`` is where the pattern is done; ``matched`` is after a "/".
        end = nfa.add(advance=_is_slash)
        matched = nfa.add(stay=_any)
        self._advance = [(1 << s, t) for s, t in enumerate(nfa.advance) if t is not None]
        self._stay = [(1 << s, t) for s, t in enumerate(nfa.stay) if t is not None]
        self._free = sum(1 << s for s, free in enumerate(nfa.free) if free)
        self._closure = nfa.closures()
        self._accept = 1 << end
        self._matched = 1 << matched
        # Threads of one filter process share the cache: one of them extends it at once.
        self._lock = threading.Lock()
        self._dfa = _Dfa(0 if self.error else self._closure[0])

    def __repr__(self) -> str:
        return f"CompiledPattern({self.pattern!r})"

    def fullmatch(self, path: str) -> bool:
        """True when the pattern matches ``path`` or a directory that ``path`` is under.

        Args:
            path: Repository-relative and ``/``-separated, as git lists it.
        """
        if self.error is not None:
            return False
        # This generation of the cache, kept for the whole path: a reset of the cache
        # by another thread cannot invalidate the state numbers used here.
        dfa = self._dfa
        rows = dfa.rows
        state = _START
        for c in path:
            nxt = rows[state].get(c)
            if nxt is None:
                nxt = self._step(dfa, state, c)
            if nxt < _START:
                return nxt == _MATCHED
            state = nxt
        return bool(dfa.masks[state] & self._accept)

    def _step(self, dfa: _Dfa, state: int, c: str) -> int:
        """Computes, caches and returns the state after ``state`` on ``c``."""
        with self._lock:
            nxt = dfa.rows[state].get(c)
            if nxt is not None:
                return nxt
            tests = dfa.chars.get(c)
            if tests is None:
                tests = (
                    sum(bit for bit, test in self._advance if test(c)),
                    sum(bit for bit, test in self._stay if test(c)),
                )
                dfa.chars[c] = tests
            here = dfa.masks[state]
            there = (here & tests[0]) << 1 | here & tests[1]
            # Only the states with free moves need their closure added.
            free = there & self._free
            while free:
                low = free & -free
                there |= self._closure[low.bit_length() - 1]
                free ^= low
            if there & self._matched:
                nxt = _MATCHED
            elif not there:
                nxt = _DEAD
            else:
                known = dfa.ids.get(there)
                if known is None:
                    known = len(dfa.masks)
                    dfa.masks.append(there)
                    dfa.rows.append({})
                    dfa.ids[there] = known
                nxt = known
            dfa.rows[state][c] = nxt
            dfa.edges += 1
            if dfa.edges > self._max_edges and self._dfa is dfa:
                # Later matches start a fresh cache; a match under way keeps the old one,
                # which grows by at most one state per remaining character of its path.
                self._dfa = _Dfa(dfa.masks[_START])
            return nxt


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> CompiledPattern:
    """Compiles one gitignore-style pattern; cached, as the same few recur.

    Never raises: an invalid pattern compiles to one that matches nothing and whose
    ``error`` says why (see :func:`pattern_error`).

    Args:
        pattern: An include/exclude pattern as written in configuration or on the
            command line.

    Returns:
        An object whose ``fullmatch(path)`` tells whether the pattern selects ``path``.
    """
    return CompiledPattern(pattern)


def pattern_error(pattern: str) -> str | None:
    """Why ``pattern`` is invalid, for a warning naming it; None when it is valid.

    An invalid pattern is ignored by :class:`PathFilter`: as an include pattern it
    includes nothing, as an exclude pattern it excludes nothing.

    Args:
        pattern: An include/exclude pattern as written.

    Returns:
        A short reason such as ``"reversed range z-a"``, or None.
    """
    return compile_pattern(pattern).error


class PathFilter:
    """Decides which paths an include/exclude pair lets through.

    Invalid patterns (see :func:`pattern_error`) are kept in ``include``/``exclude`` but
    never match: an include list of only invalid patterns lets nothing through.

    Args:
        include: Patterns a path must match (empty: every path matches).
        exclude: Patterns that reject a path even when included.
    """

    def __init__(self, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> None:
        self.include = tuple(p for p in include if p)
        self.exclude = tuple(p for p in exclude if p)
        self._include = [m for m in map(compile_pattern, self.include) if m.error is None]
        self._exclude = [m for m in map(compile_pattern, self.exclude) if m.error is None]

    def __bool__(self) -> bool:
        """True when the filter restricts anything."""
        return bool(self.include or self.exclude)

    def allows(self, path: str) -> bool:
        """True when ``path`` (repository-relative, ``/``-separated) passes."""
        if any(m.fullmatch(path) for m in self._exclude):
            return False
        if not self.include:
            return True
        return any(m.fullmatch(path) for m in self._include)
