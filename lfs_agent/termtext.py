"""Untrusted text on a terminal: the one way it is rendered.

File names, metrics records, URLs and a remote's messages come from whoever controls
a repository or a bucket. Printed raw, an escape sequence among them could move the
cursor, rewrite earlier lines or retitle the window. :func:`printable` shows each
control character visibly instead, as git quotes such bytes in the paths it shows.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 and C1 controls, DEL, and the bidirectional overrides and isolates that reorder
# what a terminal shows ("Trojan Source").
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


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
    if keep_newlines:
        return "\n".join(_CONTROL_RE.sub(_escape, line) for line in text.split("\n"))
    return _CONTROL_RE.sub(_escape, text)
