"""Pointer encoding and git-lfs's parsing rules (protocols.md section 1)."""

from __future__ import annotations

import copy
import pickle

import pytest

from lfs_agent.errors import InvalidOidError, NotAPointerError
from lfs_agent.pointer import EMPTY_OID, Pointer, PointerExtension, parse_pointer, validate_oid
from tests.helpers import pointer_bytes, sha256

HELLO_OID = "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447"
HELLO = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447\n"
    b"size 12\n"
)


def test_encode_matches_the_spec_example_byte_for_byte():
    assert Pointer(HELLO_OID, 12).encode() == HELLO
    assert len(HELLO) == 127


def test_the_empty_object_encodes_as_zero_bytes_and_parses_back():
    assert Pointer(EMPTY_OID, 0).encode() == b""
    parsed = parse_pointer(b"")
    assert (parsed.oid, parsed.size, parsed.canonical) == (EMPTY_OID, 0, True)


def test_canonical_pointer_parses_as_canonical():
    p = parse_pointer(HELLO)
    assert (p.oid, p.size, p.extensions, p.canonical) == (HELLO_OID, 12, (), True)


def test_canonical_sizes_at_the_int64_bound_parse_like_git_lfs():
    largest = HELLO.replace(b"size 12", b"size 9223372036854775807")
    assert parse_pointer(largest).size == 2**63 - 1
    assert parse_pointer(largest).canonical
    with pytest.raises(NotAPointerError, match="invalid size"):
        parse_pointer(HELLO.replace(b"size 12", b"size 9223372036854775808"))


def test_a_size_0_pointer_parses_as_the_empty_object_but_not_canonical():
    p = parse_pointer(HELLO.replace(b"size 12", b"size 0"))
    assert (p.oid, p.size, p.canonical) == (HELLO_OID, 0, False)


@pytest.mark.parametrize(
    "version", ["https://hawser.github.com/spec/v1", "http://git-media.io/v/2"]
)
def test_older_version_strings_are_accepted_but_not_canonical(version):
    data = HELLO.replace(b"https://git-lfs.github.com/spec/v1", version.encode())
    p = parse_pointer(data)
    assert p.oid == HELLO_OID
    assert not p.canonical


@pytest.mark.parametrize(
    "data",
    [
        HELLO.replace(b"\n", b"\r\n"),
        HELLO.rstrip(b"\n"),
        HELLO.replace(b"size 12", b"size +12"),
        HELLO.replace(b"size 12", b"size 0012"),
        b"\n" + HELLO + b"\n\n",
        HELLO.replace(b"\noid", b"\n\noid"),
    ],
    ids=["crlf", "no-final-newline", "plus-sign", "leading-zeros", "blank-lines", "inner-blank"],
)
def test_lenient_forms_parse_and_are_flagged_non_canonical(data):
    p = parse_pointer(data)
    assert (p.oid, p.size) == (HELLO_OID, 12)
    assert p.canonical is False


def test_extension_lines_parse_sorted_and_encode_between_version_and_oid():
    ext0 = sha256(b"zero")
    ext1 = sha256(b"one")
    data = (
        b"version https://git-lfs.github.com/spec/v1\n"
        + f"ext-1-bar sha256:{ext1}\next-0-foo sha256:{ext0}\n".encode()
        + HELLO.split(b"\n", 1)[1]
    )
    p = parse_pointer(data)
    assert p.extensions == (PointerExtension(0, "foo", ext0), PointerExtension(1, "bar", ext1))
    assert not p.canonical  # priorities were not ascending
    assert p.encode() == (
        b"version https://git-lfs.github.com/spec/v1\n"
        + f"ext-0-foo sha256:{ext0}\next-1-bar sha256:{ext1}\n".encode()
        + HELLO.split(b"\n", 1)[1]
    )
    assert parse_pointer(p.encode()).canonical


BAD_OID = "A948904F2F0F479B8F8197694B30184B0D2ED1C1CD2A1EC0FB85D299A192A447"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"hello world\n", "invalid header"),
        (b"x" * 1024, "1024 bytes is too large"),
        (HELLO + b" " * (1024 - len(HELLO)), "too large"),
        (HELLO + b"extra stuff\n", "extra line"),
        (HELLO.replace(HELLO_OID.encode(), BAD_OID.encode()), "invalid oid"),
        (HELLO.replace(b"sha256:", b"sha1:"), "invalid oid type: 'sha1'"),
        (HELLO.replace(b"sha256:", b"sha256"), "invalid oid value"),
        (HELLO.replace(HELLO_OID.encode(), HELLO_OID[:63].encode()), "invalid oid"),
        (HELLO.replace(b"size 12", b"size -12"), "invalid size: '-12'"),
        (HELLO.replace(b"size 12", b"size 1_2"), "invalid size"),
        (HELLO.replace(b"size 12", b"size twelve"), "invalid size"),
        (HELLO.replace(b"size 12", b"size 99999999999999999999"), "invalid size"),
        (HELLO.replace(b"size 12\n", b""), "missing size"),
        (
            b"oid sha256:" + HELLO_OID.encode() + b"\nsize 12\nversion git-lfs\n",
            "expected key 'version', got 'oid'",
        ),
        (
            b"version https://git-lfs.github.com/spec/v1\nsize 12\noid sha256:"
            + HELLO_OID.encode()
            + b"\n",
            "expected key 'oid', got 'size'",
        ),
        (
            HELLO.replace(
                b"https://git-lfs.github.com/spec/v1", b"https://git-lfs.github.com/spec/v2"
            ),
            "invalid version",
        ),
        (HELLO.replace(b"version https", b"versionhttps"), "error reading line 0"),
        (HELLO.replace(b"version ", b"version \xff"), "not UTF-8"),
    ],
    ids=[
        "plain-text",
        "1024-bytes",
        "padded-to-1024",
        "extra-line",
        "uppercase-oid",
        "sha1",
        "no-colon",
        "short-oid",
        "negative-size",
        "underscore-size",
        "word-size",
        "int64-overflow",
        "missing-size",
        "wrong-order-version",
        "wrong-order-oid",
        "unknown-version",
        "no-space",
        "not-utf8",
    ],
)
def test_malformed_pointers_are_rejected_with_their_reason(data, reason):
    with pytest.raises(NotAPointerError) as info:
        parse_pointer(data)
    assert reason in info.value.reason


def test_duplicate_extension_priorities_are_rejected():
    ext = sha256(b"e")
    data = (
        b"version https://git-lfs.github.com/spec/v1\n"
        + f"ext-0-a sha256:{ext}\next-0-b sha256:{ext}\n".encode()
        + HELLO.split(b"\n", 1)[1]
    )
    with pytest.raises(NotAPointerError, match="duplicate extension priority: 0"):
        parse_pointer(data)


def test_missing_version_is_not_a_pointer():
    data = b"ext-0-foo sha256:" + HELLO_OID.encode() + b"\n# git-lfs\n"
    with pytest.raises(NotAPointerError):
        parse_pointer(data)


@pytest.mark.parametrize("oid", ["../../x", "", "a" * 63, "g" * 64, "A" * 64, None, 12, "a" * 65])
def test_invalid_oids_never_validate(oid):
    with pytest.raises(InvalidOidError):
        validate_oid(oid)


def test_pointer_rejects_a_negative_size():
    with pytest.raises(ValueError, match="size must be >= 0"):
        Pointer(HELLO_OID, -1)


def test_pointer_rejects_an_invalid_oid():
    with pytest.raises(InvalidOidError):
        Pointer("../" + HELLO_OID[3:], 12)


def test_pointers_are_values_whose_equality_ignores_canonical():
    lenient = parse_pointer(HELLO.replace(b"size 12", b"size 012"))
    assert not lenient.canonical
    built = Pointer(HELLO_OID, 12)
    assert lenient == built and hash(lenient) == hash(built)
    assert len({lenient, built, Pointer(HELLO_OID, 13)}) == 2
    assert built != Pointer(HELLO_OID, 12, (PointerExtension(0, "foo", HELLO_OID),))
    assert built != (HELLO_OID, 12)
    with pytest.raises(AttributeError, match="immutable"):
        built.size = 13  # type: ignore[misc]
    assert repr(built).startswith(f"Pointer(oid='{HELLO_OID}', size=12,")
    for same in (copy.copy(lenient), copy.deepcopy(lenient), pickle.loads(pickle.dumps(lenient))):
        assert same == lenient and same.canonical is False


def test_helper_matches_encoder():
    assert pointer_bytes(b"hello world\n") == HELLO
