"""pkt-line framing, as git's long-running filter protocol uses it.

Implements gitprotocol-common(5) "pkt-line Format": four lowercase hex digits giving the
packet's total length (header included), then the payload. ``0000`` is a flush packet.
The largest packet is 65520 bytes, so a payload holds at most 65516 bytes. ``0004``
(an empty data packet) is never sent; git's reader treats it like a flush, and so do we.
``0001``-``0003`` are protocol-v2 markers that the filter protocol never uses.

The reader and writer work over plain ``read``/``write`` callables so tests can drive
them with ``io.BytesIO``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

from lfs_agent.errors import ProtocolError
from lfs_agent.log import DEBUG, get_logger

__all__ = [
    "FLUSH",
    "MAX_PAYLOAD",
    "PktLineReader",
    "PktLineWriter",
    "encode_packet",
]

logger = get_logger(__name__)

#: The flush packet.
FLUSH = b"0000"
#: The largest payload a packet may carry (LARGE_PACKET_DATA_MAX).
MAX_PAYLOAD = 65516
#: Bytes of the length header.
HEADER_SIZE = 4
# The only bytes a length header may hold.
_HEX_DIGITS = b"0123456789abcdefABCDEF"
#: Packets framed per write when sending a file (about 1 MiB).
PACKETS_PER_WRITE = 16
# Protocol messages are logged at debug level, truncated to this many bytes.
_LOG_BYTES = 80


def encode_packet(payload: bytes) -> bytes:
    """Return ``payload`` framed as one data packet.

    Raises:
        ValueError: for an empty payload or one over :data:`MAX_PAYLOAD` bytes.
    """
    if not payload:
        raise ValueError("empty pkt-line payloads are not allowed; send a flush instead")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"pkt-line payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return b"%04x" % (len(payload) + HEADER_SIZE) + payload


class PktLineReader:
    """Reads packets from a ``read(n)`` callable.

    Args:
        read: Returns up to ``n`` bytes, ``b""`` at EOF (e.g. ``stream.read``).
    """

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        # Asked once: a packet's debug record costs more than the rest of its handling.
        self._trace = logger.is_enabled_for(DEBUG)

    def _read_exact(self, size: int, what: str) -> bytes:
        data = self._read(size)
        if len(data) == size:
            return data
        parts = [data]
        got = len(data)
        while got < size:
            chunk = self._read(size - got)
            if not chunk:
                raise ProtocolError(f"unexpected end of input in pkt-line {what}")
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def read_packet(self) -> bytes | None:
        """Return the next packet's payload, or None for a flush packet.

        Raises:
            EOFError: at a clean end of input, before any byte of a packet.
            ProtocolError: for a malformed length or a truncated packet.
        """
        header = self._read(HEADER_SIZE)
        if not header:
            raise EOFError
        if len(header) < HEADER_SIZE:
            header += self._read_exact(HEADER_SIZE - len(header), "header")
        if header.translate(None, _HEX_DIGITS):  # int() would also take " 1f" or "+1f"
            raise ProtocolError(f"invalid pkt-line length header {header!r}")
        length = int(header, 16)
        if length in (0, HEADER_SIZE):
            if self._trace:
                logger.debug("git> 0000")
            return None
        if length < HEADER_SIZE:
            raise ProtocolError(f"unexpected pkt-line special packet {header!r}")
        if length > MAX_PAYLOAD + HEADER_SIZE:
            raise ProtocolError(f"pkt-line length {length} exceeds {MAX_PAYLOAD + HEADER_SIZE}")
        payload = self._read_exact(length - HEADER_SIZE, "payload")
        if self._trace:
            logger.debug("git> %r", payload[:_LOG_BYTES])
        return payload

    def read_text_list(self) -> list[str]:
        """Read text packets up to a flush; one trailing LF is stripped from each.

        Raises:
            EOFError: when input ends before the first packet.
            ProtocolError: for malformed framing or non-UTF-8 text.
        """
        lines = []
        while (packet := self.read_packet()) is not None:
            try:
                lines.append(packet.decode("utf-8").removesuffix("\n"))
            except UnicodeDecodeError:
                raise ProtocolError(f"pkt-line text is not UTF-8: {packet[:40]!r}") from None
        return lines

    def iter_content(self) -> Iterator[bytes]:
        """Yield data packets up to the next flush (binary content, untouched).

        Raises:
            ProtocolError: when input ends before the flush.
        """
        while True:
            try:
                packet = self.read_packet()
            except EOFError:
                raise ProtocolError("unexpected end of input inside content") from None
            if packet is None:
                return
            yield packet


class PktLineWriter:
    """Writes packets through a ``write(bytes)`` callable.

    Args:
        write: Accepts bytes (e.g. ``stream.write``); a memoryview it is given must be
            written or copied before it returns (its buffer is reused).
        flush: Pushes buffered bytes to the peer (e.g. ``stream.flush``).
    """

    def __init__(
        self, write: Callable[[bytes | memoryview], object], flush: Callable[[], object]
    ) -> None:
        self._write = write
        self._flush = flush
        # The buffer write_file frames packets in, made at its first use and reused.
        self._frame: bytearray | None = None
        self._trace = logger.is_enabled_for(DEBUG)  # asked once, as the reader does

    def write_packet(self, payload: bytes) -> None:
        """Write one data packet."""
        if self._trace:
            logger.debug("git< %r", payload[:_LOG_BYTES])
        self._write(encode_packet(payload))

    def write_text(self, line: str) -> None:
        """Write one text packet with its trailing LF."""
        self.write_packet(line.encode("utf-8") + b"\n")

    def write_flush(self) -> None:
        """Write a flush packet (buffered: call :meth:`push` when a reply is complete)."""
        if self._trace:
            logger.debug("git< 0000")
        self._write(FLUSH)

    def push(self) -> None:
        """Send everything buffered to the peer: once per complete reply, not per packet."""
        self._flush()

    def write_text_list(self, lines: list[str]) -> None:
        """Write text packets followed by a flush."""
        for line in lines:
            self.write_text(line)
        self.write_flush()

    def write_content(self, data: bytes | memoryview) -> None:
        """Write binary content split into packets of at most :data:`MAX_PAYLOAD` bytes."""
        view = memoryview(data)
        for start in range(0, len(view), MAX_PAYLOAD):
            chunk = view[start : start + MAX_PAYLOAD]
            self._write(b"%04x" % (len(chunk) + HEADER_SIZE))
            self._write(chunk)

    def write_file(self, src: BinaryIO, tap: Callable[[memoryview], object] | None = None) -> int:
        """Write ``src`` from its position to its end, framed as full-size packets.

        The bytes are read straight into a buffer that already holds the packets'
        headers, about 1 MiB at a time, which then goes out in one write: a write per
        MiB instead of two per packet. ``tap`` is given each packet's payload as it is
        read (to hash it); it must not keep the view, whose buffer is reused.

        Returns:
            The number of bytes sent.
        """
        if self._frame is None:  # 1 MiB: made once, not for every small file
            self._frame = bytearray(PACKETS_PER_WRITE * (HEADER_SIZE + MAX_PAYLOAD))
        frame = self._frame
        view = memoryview(frame)
        sent = 0
        while True:
            end = 0
            for _ in range(PACKETS_PER_WRITE):
                got = _fill(src, view[end + HEADER_SIZE : end + HEADER_SIZE + MAX_PAYLOAD])
                if got:
                    if tap is not None:
                        tap(view[end + HEADER_SIZE : end + HEADER_SIZE + got])
                    view[end : end + HEADER_SIZE] = b"%04x" % (got + HEADER_SIZE)
                    end += HEADER_SIZE + got
                    sent += got
                if got < MAX_PAYLOAD:
                    break
            if end:
                self._write(view[:end])
            if end < len(frame):  # the source ended
                return sent


def _fill(src: BinaryIO, buffer: memoryview) -> int:
    """Read into ``buffer`` until it is full or ``src`` ends; the bytes read."""
    got = 0
    while got < len(buffer):
        n = src.readinto(buffer[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got
