"""Backend options (``lfs-agent.<scope>.<name>``), read once, typed and bounded.

git config and ``.lfsagent`` hand every value over as text. Each backend reads its
options through one :class:`Options`, so every kind of value is parsed the same way
everywhere and a bad one is refused when the backend is opened, in one line that names
the key, says what it accepts and repeats what it got::

    lfs-agent.http.max-attempts must be a whole number from 1 to 100, got 'five'

Kinds: text, a choice among fixed words, whole numbers, seconds, sizes (bytes, or with
a K/M/G suffix: ``8M``, ``8MiB``, ``1G``) and git's booleans (``true``/``false``,
``yes``/``no``, ``on``/``off``, ``1``/``0``, in any case). Numbers are bounded, so that
a typo (``max-attempts = 50000``) fails at once rather than after hours.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from lfs_agent.errors import ConfigError

__all__ = ["GIB", "KIB", "MAX_ATTEMPTS", "MAX_SECONDS", "MIB", "Options", "parse_size", "show_size"]

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
#: Most tries of one request any backend allows: with backoff, 100 is already hours.
MAX_ATTEMPTS = 100
#: Longest wait (seconds) any backend option allows: an hour.
MAX_SECONDS = 3600.0

_TRUE = frozenset({"true", "yes", "on", "1"})
# git reads an empty value as false, too.
_FALSE = frozenset({"false", "no", "off", "0", ""})


def parse_size(value: str) -> int:
    """Parse ``"8388608"``, ``"8M"``, ``"8MiB"``, ``"8mb"`` or ``"1G"`` into bytes.

    Raises:
        ValueError: for anything else (a fraction, a sign, another suffix).
    """
    text = value.strip().upper().removesuffix("IB").removesuffix("B")
    factor = 1
    if text and text[-1] in "KMG":
        factor = 1024 ** ("KMG".index(text[-1]) + 1)
        text = text[:-1]
    if not _is_digits(text):
        raise ValueError(f"not a size: {value!r}")
    return int(text) * factor


def show_size(size: int) -> str:
    """``size`` bytes in the largest binary unit that divides it: ``5MiB``, ``300``."""
    for unit, factor in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _is_digits(text: str) -> bool:
    # str.isdigit alone also takes other scripts' digits, which int() would accept too.
    return text.isascii() and text.isdigit()


def _show_seconds(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else str(seconds)


class Options:
    """The options of one scope (``http``, ``s3`` ...), read by kind.

    Each reader returns ``default`` when the option is not set; a default is taken as
    it is, never checked against the bounds.

    Args:
        options: Every ``lfs-agent.*`` setting, keyed ``<scope>.<name>``; None: none.
        scope: The backend's scope: ``s3`` reads ``s3.*``.
    """

    def __init__(self, options: Mapping[str, str] | None, scope: str) -> None:
        prefix = scope + "."
        self.scope = scope
        self._values = {
            key.removeprefix(prefix): value
            for key, value in (options or {}).items()
            if key.startswith(prefix)
        }

    def key(self, name: str) -> str:
        """The option's full name, as the user sets it: ``lfs-agent.s3.part-size``."""
        return f"lfs-agent.{self.scope}.{name}"

    def _bad(self, name: str, wants: str) -> ConfigError:
        return ConfigError(f"{self.key(name)} must be {wants}, got {self._values[name]!r}")

    def text(self, name: str, default: str | None = None) -> str | None:
        """The value as it is set (an empty value counts as not set)."""
        return self._values.get(name) or default

    def choice(self, name: str, default: str | None, choices: Sequence[str]) -> str | None:
        """One of ``choices`` (in any case; returned as spelled in ``choices``).

        Raises:
            ConfigError: for any other word.
        """
        if name not in self._values:
            return default
        value = self._values[name].strip().lower()
        for choice in choices:
            if value == choice.lower():
                return choice
        listed = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
        raise self._bad(name, listed)

    def whole(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        """A whole number from ``minimum`` to ``maximum``.

        Raises:
            ConfigError: for anything else (``five``, ``2.5``, ``0`` when 1 is least).
        """
        if name not in self._values:
            return default
        text = self._values[name].strip()
        number = int(text) if _is_digits(text.removeprefix("-")) else None
        if number is None or not minimum <= number <= maximum:
            raise self._bad(name, f"a whole number from {minimum} to {maximum}")
        return number

    def seconds(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        """A number of seconds (``2.5`` allowed) from ``minimum`` to ``maximum``.

        Raises:
            ConfigError: for anything else (``soon``, ``nan``, ``-1``, past an hour).
        """
        if name not in self._values:
            return default
        try:
            number = float(self._values[name].strip())
        except ValueError:
            number = math.nan
        if not minimum <= number <= maximum:  # nan is never within
            raise self._bad(
                name,
                f"a number of seconds from {_show_seconds(minimum)} to {_show_seconds(maximum)}",
            )
        return number

    def size(
        self, name: str, default: int, *, minimum: int, maximum: int, multiple_of: int = 1
    ) -> int:
        """A size in bytes from ``minimum`` to ``maximum`` (K/M/G suffixes allowed).

        Raises:
            ConfigError: for anything else, or a size not a multiple of ``multiple_of``.
        """
        if name not in self._values:
            return default
        try:
            size: int | None = parse_size(self._values[name])
        except ValueError:
            size = None
        if size is None or not minimum <= size <= maximum or size % multiple_of:
            kind = f"a multiple of {show_size(multiple_of)}" if multiple_of > 1 else "a size"
            raise self._bad(
                name,
                f"{kind} from {show_size(minimum)} to {show_size(maximum)} "
                "(bytes, or with a K/M/G suffix)",
            )
        return size

    def flag(self, name: str, default: bool) -> bool:
        """One of git's booleans: true/false, yes/no, on/off, 1/0, in any case.

        Raises:
            ConfigError: for any other word.
        """
        if name not in self._values:
            return default
        value = self._values[name].strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise self._bad(name, "true or false (or yes/no, on/off, 1/0)")
