"""lfs_agent.termtext: untrusted text shown with its control characters escaped."""

from __future__ import annotations

import pytest

from lfs_agent.termtext import printable, quote_path


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, ünïcödé ✓", "plain text, ünïcödé ✓"),
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
        ("\x1b[2J", "\\x1b[2J"),
        ("a\tb\rc\x00d\x7f", "a\\x09b\\x0dc\\x00d\\x7f"),
        ("\x9b2J", "\\x9b2J"),  # C1: the one-character CSI
        # Bidirectional overrides and isolates ("Trojan Source").
        ("admin\u202e\u2066txt.exe\u2069", "admin\\u202e\\u2066txt.exe\\u2069"),
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),
        # Lone surrogates (bytes that were not UTF-8) cannot be written to a terminal.
        ("caf\udce9", "caf\\udce9"),
        ("two\nlines", "two\\x0alines"),
    ],
)
def test_printable_escapes_controls(text: str, shown: str):
    assert printable(text) == shown
    shown.encode("ascii" if text.isascii() else "utf-8")  # always writable


def test_printable_can_keep_newlines_but_nothing_else():
    assert printable("one\x1b[2J\ntwo\r\n", keep_newlines=True) == "one\\x1b[2J\ntwo\\x0d\n"


def test_printable_returns_clean_text_itself():
    text = "nothing to escape here"
    assert printable(text) is text


@pytest.mark.parametrize(
    ("path", "quoted"),
    [
        ("models/weights.bin", "models/weights.bin"),
        ("données/modèle.bin", "données/modèle.bin"),  # as git with core.quotePath=false
        ("with space.bin", "with space.bin"),
        # git's C-style quoting: \a \b \t \n \v \f \r \" \\, octal for the rest.
        ("t\x1b]0;pwned\x07.bin", '"t\\033]0;pwned\\a.bin"'),
        ("e\x1b[2Jvil.bin", '"e\\033[2Jvil.bin"'),
        ("a\tb\nc\rd\x7f", '"a\\tb\\nc\\rd\\177"'),
        ('quote".bin', '"quote\\".bin"'),
        ("back\\slash", '"back\\\\slash"'),
        # Non-UTF-8 bytes (decoded with surrogateescape) as the bytes git shows.
        ("caf\udce9.bin", '"caf\\351.bin"'),
        # Controls beyond ASCII: their UTF-8 bytes, as git's default quoting writes them.
        ("evil\u202egnp.exe", '"evil\\342\\200\\256gnp.exe"'),
        ("c1\x9b", '"c1\\302\\233"'),
    ],
)
def test_quote_path_quotes_as_git_does(path: str, quoted: str):
    assert quote_path(path) == quoted
