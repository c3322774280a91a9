"""Git LFS pointer files: the canonical encoding and git-lfs's lenient parser.

Implements git-lfs ``docs/spec.md`` and mirrors ``lfs/pointer.go`` (``DecodeFrom``,
``decodeKV``) so that every pointer git-lfs writes parses here and every pointer written
here is byte-identical to git-lfs's. Validation is strict at this boundary:

* the key order is fixed: ``version``, then ``oid``, then ``size``; ``ext-<digit>-<name>``
  lines may appear anywhere before ``size``;
* ``oid`` is ``sha256:`` followed by exactly 64 lowercase hex digits;
* ``size`` is a non-negative decimal (Go's ``ParseInt`` also takes ``+`` and leading
  zeros: such pointers parse but are flagged non-canonical);
* blobs of 1024 bytes or more are never pointers (git-lfs ``BlobSizeCutoff``);
* an empty blob is the pointer of the empty object.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from lfs_agent.errors import InvalidOidError, NotAPointerError

__all__ = [
    "EMPTY_OID",
    "MAX_POINTER_SIZE",
    "SPEC_URL",
    "Pointer",
    "PointerExtension",
    "is_valid_oid",
    "parse_pointer",
    "validate_oid",
]

#: The version line value git-lfs writes.
SPEC_URL = "https://git-lfs.github.com/spec/v1"
#: Version values git-lfs accepts when parsing (``v1Aliases``).
ACCEPTED_VERSIONS = (SPEC_URL, "https://hawser.github.com/spec/v1", "http://git-media.io/v/2")
#: A blob of this many bytes or more is never a pointer (git-lfs ``BlobSizeCutoff``).
MAX_POINTER_SIZE = 1024
#: sha256 of zero bytes: the oid of the empty object, which is never stored or sent.
EMPTY_OID = hashlib.sha256(b"").hexdigest()

_OID_RE = re.compile(r"[0-9a-f]{64}")
_HEADER_RE = re.compile(rb"git-media|hawser|git-lfs")
# git-lfs's extRE is ``\Aext-\d{1}-\w+``: anchored at the start only.
_EXT_KEY_RE = re.compile(r"ext-\d-\w+")
# Go strconv.ParseInt(v, 10, 64): optional sign, decimal digits, no underscores.
_SIZE_RE = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = 2**63 - 1
_POINTER_KEYS = ("version", "oid", "size")
# The canonical encoding, which nearly every pointer has: one match instead of the parser.
_CANONICAL_RE = re.compile(
    b"version "
    + re.escape(SPEC_URL.encode())
    + rb"\noid sha256:([0-9a-f]{64})\nsize ([1-9][0-9]{0,18})\n"
)


def is_valid_oid(oid: object) -> bool:
    """Return True when ``oid`` is 64 lowercase hex digits (a sha256 in git-lfs form)."""
    return isinstance(oid, str) and _OID_RE.fullmatch(oid) is not None


def validate_oid(oid: object) -> str:
    """Return ``oid`` unchanged if valid.

    Raises:
        InvalidOidError: for anything but 64 lowercase hex digits, so that input like
            ``../../x`` can never reach a file-system path.
    """
    if not is_valid_oid(oid):
        raise InvalidOidError(oid)
    assert isinstance(oid, str)
    return oid


class PointerExtension(NamedTuple):
    """One ``ext-<priority>-<name> sha256:<oid>`` line (experimental in git-lfs)."""

    priority: int
    name: str
    oid: str


class Pointer:
    """An LFS pointer: the oid and size of the real content. Immutable and hashable.

    A plain class, not a dataclass: git spawns us for every filter run and hook, and
    ``dataclasses`` costs start-up (it imports ``inspect``).

    Attributes:
        oid: sha256 of the content, 64 lowercase hex digits.
        size: Content length in bytes.
        extensions: Extension lines, sorted by priority.
        canonical: True when :meth:`encode` reproduces the parsed bytes exactly; always
            True for pointers built in code. Not part of equality.
    """

    __slots__ = ("canonical", "extensions", "oid", "size")
    oid: str
    size: int
    extensions: tuple[PointerExtension, ...]
    canonical: bool

    def __init__(
        self,
        oid: str,
        size: int,
        extensions: tuple[PointerExtension, ...] = (),
        canonical: bool = True,
    ) -> None:
        validate_oid(oid)
        if size < 0:
            raise ValueError(f"pointer size must be >= 0, got {size}")
        for name, value in (
            ("oid", oid),
            ("size", size),
            ("extensions", extensions),
            ("canonical", canonical),
        ):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Pointer is immutable: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Pointer is immutable: cannot delete {name}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pointer):
            return NotImplemented
        return (self.oid, self.size, self.extensions) == (other.oid, other.size, other.extensions)

    def __hash__(self) -> int:
        return hash((self.oid, self.size, self.extensions))

    def __reduce__(
        self,
    ) -> tuple[type[Pointer], tuple[str, int, tuple[PointerExtension, ...], bool]]:
        # copy and pickle rebuild through __init__: __setattr__ refuses their way
        return (Pointer, (self.oid, self.size, self.extensions, self.canonical))

    def __repr__(self) -> str:
        return (
            f"Pointer(oid={self.oid!r}, size={self.size!r}, extensions={self.extensions!r}, "
            f"canonical={self.canonical!r})"
        )

    def encode(self) -> bytes:
        """Return the canonical pointer bytes, identical to git-lfs's.

        The empty object encodes as zero bytes, as git-lfs does.
        """
        if self.size == 0:
            return b""
        lines = [f"version {SPEC_URL}\n"]
        lines.extend(f"ext-{e.priority}-{e.name} sha256:{e.oid}\n" for e in self.extensions)
        lines.append(f"oid sha256:{self.oid}\n")
        lines.append(f"size {self.size}\n")
        return "".join(lines).encode("ascii")


def _parse_oid_value(value: str) -> str:
    kind, sep, oid = value.partition(":")
    if not sep:
        raise NotAPointerError(f"invalid oid value: {value!r}")
    if kind != "sha256":
        raise NotAPointerError(f"invalid oid type: {kind!r}")
    if not is_valid_oid(oid):
        raise NotAPointerError(f"invalid oid: {oid!r}")
    return oid


def _parse_size(value: str) -> int:
    if _SIZE_RE.fullmatch(value) is None:
        raise NotAPointerError(f"invalid size: {value!r}")
    size = int(value)
    if size < 0 or size > _INT64_MAX:
        raise NotAPointerError(f"invalid size: {value!r}")
    return size


def _parse_extensions(raw: dict[str, str]) -> tuple[PointerExtension, ...]:
    extensions = []
    seen: set[int] = set()
    for key, value in raw.items():
        parts = key.split("-", 2)
        if len(parts) != 3:  # pragma: no cover - _EXT_KEY_RE guarantees three parts
            raise NotAPointerError(f"invalid extension key: {key!r}")
        priority = int(parts[1])
        if priority in seen:
            raise NotAPointerError(f"duplicate extension priority: {priority}")
        seen.add(priority)
        extensions.append(PointerExtension(priority, parts[2], _parse_oid_value(value)))
    return tuple(sorted(extensions))


def parse_pointer(data: bytes) -> Pointer:
    """Parse ``data`` the way git-lfs does and return the pointer it describes.

    Args:
        data: The whole blob (not a prefix of it): a blob of 1024 bytes or more is
            rejected outright, as git-lfs's scanners and clean filter do.

    Returns:
        The pointer, with ``canonical`` telling whether ``data`` is its exact encoding.
        Zero bytes parse as the empty object's pointer.

    Raises:
        NotAPointerError: with a ``reason`` naming what is wrong.
    """
    if len(data) >= MAX_POINTER_SIZE:
        raise NotAPointerError(f"{len(data)} bytes is too large: pointers are under 1024")
    if not data:
        return Pointer(EMPTY_OID, 0)
    if (match := _CANONICAL_RE.fullmatch(data)) and (size := int(match[2])) <= _INT64_MAX:
        return Pointer(match[1].decode("ascii"), size)
    if _HEADER_RE.search(data) is None:
        raise NotAPointerError("invalid header")
    try:
        text = data.strip().decode("utf-8")
    except UnicodeDecodeError:
        raise NotAPointerError("not UTF-8 text") from None

    values: dict[str, str] = {}
    ext_values: dict[str, str] = {}
    expected_index = 0
    for number, raw_line in enumerate(text.split("\n")):
        line = raw_line.removesuffix("\r")
        if not line:
            continue
        key, sep, value = line.partition(" ")
        if not sep:
            raise NotAPointerError(f"error reading line {number}: {line!r}")
        if expected_index >= len(_POINTER_KEYS):
            raise NotAPointerError(f"extra line: {line!r}")
        expected = _POINTER_KEYS[expected_index]
        if key != expected:
            if _EXT_KEY_RE.match(key) is None:
                raise NotAPointerError(f"expected key {expected!r}, got {key!r}")
            ext_values[key] = value
            continue
        values[key] = value
        expected_index += 1

    version = values.get("version", "")
    if not version:
        raise NotAPointerError("missing version")
    if version not in ACCEPTED_VERSIONS:
        raise NotAPointerError(f"invalid version: {version!r}")
    if "oid" not in values:
        raise NotAPointerError("missing oid")
    oid = _parse_oid_value(values["oid"])
    if "size" not in values:
        raise NotAPointerError("missing size")
    size = _parse_size(values["size"])
    extensions = _parse_extensions(ext_values)

    pointer = Pointer(oid, size, extensions)
    return Pointer(oid, size, extensions, canonical=pointer.encode() == data)
