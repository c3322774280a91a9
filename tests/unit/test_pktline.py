"""pkt-line framing (gitprotocol-common "pkt-line Format")."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lfs_agent.errors import ProtocolError
from lfs_agent.pktline import MAX_PAYLOAD, PktLineReader, PktLineWriter, encode_packet


def reader(data: bytes) -> PktLineReader:
    return PktLineReader(io.BytesIO(data).read)


@pytest.mark.parametrize(
    ("payload", "framed"),
    [
        (b"a\n", b"0006a\n"),
        (b"a", b"0005a"),
        (b"foobar\n", b"000bfoobar\n"),
        (b"status=success\n", b"0013status=success\n"),
        (b"git-filter-client\n", b"0016git-filter-client\n"),
    ],
)
def test_encode_matches_gits_examples(payload, framed):
    assert encode_packet(payload) == framed
    assert reader(framed).read_packet() == payload


def test_empty_and_oversized_payloads_are_refused():
    with pytest.raises(ValueError, match="empty"):
        encode_packet(b"")
    with pytest.raises(ValueError, match="exceeds 65516"):
        encode_packet(b"x" * (MAX_PAYLOAD + 1))
    assert len(encode_packet(b"x" * MAX_PAYLOAD)) == 65520


def test_flush_and_empty_data_packet_both_end_a_list():
    r = reader(b"0000" + b"0004" + b"0008abcd")
    assert r.read_packet() is None
    assert r.read_packet() is None
    assert r.read_packet() == b"abcd"
    with pytest.raises(EOFError):
        r.read_packet()


def test_uppercase_hex_lengths_are_accepted():
    assert reader(b"000Afoobar").read_packet() == b"foobar"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"00zzabc", "invalid pkt-line length header"),
        (b"0001", "special packet"),
        (b"fff5" + b"x" * 10, "exceeds 65520"),
        (b"0010abc", "unexpected end of input"),
        (b"00", "unexpected end of input in pkt-line header"),
    ],
)
def test_malformed_framing_is_a_protocol_error(data, message):
    with pytest.raises(ProtocolError, match=message):
        reader(data).read_packet()


def test_text_lists_strip_one_lf_and_reject_non_utf8():
    assert reader(b"0006a\n0007b\n\n0005c0000").read_text_list() == ["a", "b\n", "c"]
    with pytest.raises(ProtocolError, match="not UTF-8"):
        reader(b"0005\xff0000").read_text_list()


def test_content_ending_without_a_flush_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="inside content"):
        list(reader(b"0008abcd").iter_content())


def test_writer_splits_content_into_max_size_packets():
    out = io.BytesIO()
    w = PktLineWriter(out.write, out.flush)
    w.write_content(b"y" * (MAX_PAYLOAD * 2 + 3))
    w.write_flush()
    r = reader(out.getvalue())
    sizes = [len(p) for p in r.iter_content()]
    assert sizes == [MAX_PAYLOAD, MAX_PAYLOAD, 3]


class ShortReads(io.RawIOBase):
    """A file whose reads return at most ``step`` bytes."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        n = min(self.step, len(buffer), len(self.data) - self.pos)
        buffer[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


@pytest.mark.parametrize(
    "size",
    [
        0,
        1,
        MAX_PAYLOAD,
        MAX_PAYLOAD + 1,
        16 * MAX_PAYLOAD,
        16 * MAX_PAYLOAD + 1,
        40 * MAX_PAYLOAD + 5,
    ],
)
@pytest.mark.parametrize("step", [1 << 20, 10_000])
def test_a_file_is_sent_as_full_packets_in_few_writes(size, step):
    data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    expected = io.BytesIO()
    PktLineWriter(expected.write, expected.flush).write_content(data)
    writes: list[int] = []
    out = io.BytesIO()

    def write(chunk: bytes | memoryview) -> None:
        writes.append(len(chunk))
        out.write(chunk)

    src = ShortReads(b"skipped" + data, step)
    src.pos = len(b"skipped")  # sent from the file's position
    assert PktLineWriter(write, out.flush).write_file(src) == size  # type: ignore[arg-type]
    assert out.getvalue() == expected.getvalue()
    assert len(writes) == -(-size // (16 * MAX_PAYLOAD))  # one write per 16 packets


class Trickle(io.RawIOBase):
    """A stream that returns at most ``step`` bytes per read, like a pipe."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(self.step, n if n >= 0 else self.step)
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk


@given(st.lists(st.binary(min_size=1, max_size=3000), max_size=8), st.integers(1, 70))
def test_round_trip_over_any_read_chunking(payloads, step):
    out = io.BytesIO()
    w = PktLineWriter(out.write, out.flush)
    for p in payloads:
        w.write_packet(p)
    w.write_flush()
    r = PktLineReader(Trickle(out.getvalue(), step).read)
    assert list(r.iter_content()) == payloads
