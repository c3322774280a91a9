"""Round-trip properties of pkt-line framing, read through pipes that split data anywhere.

A pipe hands the reader whatever the writer's writes left in it: a read may stop inside
a header or a payload, or take several packets at once. Whatever the split, the packets
read must be the packets written, flushes included, and input cut short must end in an
error, never in other packets.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st

from lfs_agent.errors import ProtocolError
from lfs_agent.pktline import FLUSH, MAX_PAYLOAD, PktLineReader, PktLineWriter, encode_packet

#: A packet: a payload, or None for a flush. Payloads at the size limit are built
#: from one byte, so that examples stay small to generate.
packets = st.one_of(
    st.none(),
    st.binary(min_size=1, max_size=200),
    st.builds(
        lambda size, byte: bytes([byte]) * size,
        st.sampled_from([MAX_PAYLOAD - 1, MAX_PAYLOAD]),
        st.integers(0, 255),
    ),
)
#: The sizes successive reads return at most (cycled): from one byte to several packets.
chunkings = st.lists(st.integers(1, 3 * (MAX_PAYLOAD + 4)), min_size=1, max_size=20)


class Pipe:
    """``data`` read back in pieces of the given sizes, in turn, as a pipe returns it."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self._stream = io.BytesIO(data)
        self._sizes: Iterator[int] = itertools.cycle(sizes)

    def read(self, n: int) -> bytes:
        return self._stream.read(min(n, next(self._sizes)))


def encode(sequence: list[bytes | None]) -> bytes:
    """``sequence`` as :class:`PktLineWriter` writes it."""
    out = io.BytesIO()
    writer = PktLineWriter(out.write, out.flush)
    for packet in sequence:
        if packet is None:
            writer.write_flush()
        else:
            writer.write_packet(packet)
    writer.push()
    return out.getvalue()


def decode(reader: PktLineReader) -> list[bytes | None]:
    """Every packet up to the end of input."""
    read: list[bytes | None] = []
    while True:
        try:
            read.append(reader.read_packet())
        except EOFError:
            return read


@given(st.lists(packets, max_size=12), chunkings)
def test_packets_read_back_as_written_whatever_the_reads_return(sequence, sizes):
    data = encode(sequence)
    assert data == b"".join(FLUSH if p is None else encode_packet(p) for p in sequence)
    assert decode(PktLineReader(Pipe(data, sizes).read)) == sequence


@given(st.binary(max_size=3 * MAX_PAYLOAD), chunkings)
def test_content_reads_back_whole_in_full_packets(content, sizes):
    out = io.BytesIO()
    writer = PktLineWriter(out.write, out.flush)
    writer.write_content(content)
    writer.write_flush()
    read = list(PktLineReader(Pipe(out.getvalue(), sizes).read).iter_content())
    assert b"".join(read) == content
    assert all(len(p) == MAX_PAYLOAD for p in read[:-1])
    assert all(0 < len(p) <= MAX_PAYLOAD for p in read)


@given(st.lists(packets, min_size=1, max_size=6), st.data(), chunkings)
def test_input_cut_short_ends_in_an_error_after_the_whole_packets(sequence, data, sizes):
    encoded = encode(sequence)
    cut = data.draw(st.integers(0, len(encoded) - 1), label="cut")
    reader = PktLineReader(Pipe(encoded[:cut], sizes).read)
    # The packets wholly before the cut, and where the last of them ends.
    whole, end = [], 0
    for packet in sequence:
        size = len(FLUSH if packet is None else encode_packet(packet))
        if end + size > cut:
            break
        whole.append(packet)
        end += size
    for packet in whole:
        assert reader.read_packet() == packet
    if cut == end:  # cut between packets: a clean end of input
        try:
            reader.read_packet()
        except EOFError:
            return
        raise AssertionError("read a packet past the end of input")
    try:
        reader.read_packet()
    except ProtocolError:
        return
    raise AssertionError("read a packet cut short")
