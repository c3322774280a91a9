"""Round-trip properties of the pointer codec."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from lfs_agent.errors import NotAPointerError
from lfs_agent.pointer import Pointer, PointerExtension, parse_pointer

oids = st.binary(min_size=1, max_size=8).map(lambda b: hashlib.sha256(b).hexdigest())
extensions = st.lists(
    st.tuples(st.integers(0, 9), st.from_regex(r"[a-z_]{1,10}", fullmatch=True), oids),
    max_size=3,
    unique_by=lambda e: e[0],
).map(lambda items: tuple(sorted(PointerExtension(*e) for e in items)))


@given(oid=oids, size=st.integers(1, 2**63 - 1), exts=extensions)
def test_parse_of_encode_is_identity_and_canonical(oid, size, exts):
    pointer = Pointer(oid, size, exts)
    parsed = parse_pointer(pointer.encode())
    assert parsed == pointer
    assert parsed.canonical


@given(st.binary(max_size=1100))
def test_parser_never_raises_anything_but_not_a_pointer(data):
    try:
        pointer = parse_pointer(data)
    except NotAPointerError:
        return
    assert len(data) < 1024
    if pointer.size:  # a size-0 pointer always re-encodes as the empty object
        assert parse_pointer(pointer.encode()) == pointer
