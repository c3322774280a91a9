"""Untrusted text on a terminal: the one way it is rendered.

File names, metrics records, URLs and a remote's messages come from whoever controls
a repository or a bucket. Printed raw, an escape sequence among them could move the
cursor, rewrite earlier lines or retitle the window. :func:`printable` shows each
control character visibly instead, and :func:`quote_path` quotes a file name that holds
one as git quotes the paths it shows.
"""

from __future__ import annotations

import re

__all__ = ["printable", "quote_path"]

# C0 and C1 controls, DEL, the bidirectional overrides and isolates that reorder what a
# terminal shows ("Trojan Source"), and lone surrogates (bytes that were not UTF-8, or a
# JSON "\ud800"), which no terminal can be sent.
_CONTROLS = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_CONTROL_RE = re.compile(f"[{_CONTROLS}]")
# What makes git quote a path (core.quotePath=false): controls, '"' and '\'.
_PATH_QUOTE_RE = re.compile(f'[{_CONTROLS}"\\\\]')
# git's C-style escapes; every other quoted character is written as octal bytes.
_C_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
}


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    r"""``text`` with every control character shown as an escape (``\x1b``).

    Args:
        text: Untrusted text.
        keep_newlines: Let ``\n`` through (for multi-line messages); tabs and every
            other control character are still escaped.
    """
    if text.isprintable():  # the common case: no control character can be in it
        return text
    if keep_newlines:
        return "\n".join(_CONTROL_RE.sub(_escape, line) for line in text.split("\n"))
    return _CONTROL_RE.sub(_escape, text)


def _quote_char(match: re.Match[str]) -> str:
    char = match.group()
    escape = _C_ESCAPES.get(char)
    if escape is not None:
        return escape
    code = ord(char)
    # A byte that was not UTF-8 (decoded with surrogateescape) is shown as that byte.
    data = (
        bytes([code - 0xDC00])
        if 0xDC80 <= code <= 0xDCFF
        else char.encode("utf-8", "surrogatepass")
    )
    return "".join(f"\\{byte:03o}" for byte in data)


def quote_path(path: str) -> str:
    r"""``path`` as git shows it: as is, or in double quotes with C-style escapes.

    A path holding a control character, ``"`` or ``\`` is quoted (``"a\033b"``), as
    ``git ls-files`` and ``git status`` do; any other path is unchanged.
    """
    if _PATH_QUOTE_RE.search(path) is None:
        return path
    return '"' + _PATH_QUOTE_RE.sub(_quote_char, path) + '"'
