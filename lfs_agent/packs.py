"""Packs of chunks: which chunks a new version needs, writing them, and rebuilding objects.

A push of a chunked object (not wired yet) takes three steps here: :func:`plan_dedup`
decides which chunks of the new version are already in the bucket's packs (from the
manifests of earlier versions) and which must be sent, refusing to reference ranges so
short that a reader would need a request per few chunks; :func:`write_packs` copies the
new chunks from the file into pack files of at most 64 MiB and 8,192 chunks, each named
by its sha256, and gives the manifest's runs. A fetch takes one: :func:`rebuild` fetches
the runs' ranges (coalesced, split when large), writes each chunk at its offset while
checking its sha256, and checks the whole file against its oid.

Memory stays bounded: a pack is built in a temp file, a chunk at a time (at most the
chunker's largest, 128 KiB), never in memory; a rebuild holds one read per thread (at
most 16 MiB when ``read_range`` returns bytes, a chunk when it returns a stream) and a
MiB of checked chunks waiting to be written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, NamedTuple, Protocol

from lfs_agent.chunking import (
    FOOTER_MAX_BYTES,
    PACK_MAX_BYTES,
    PACK_MAX_CHUNKS,
    ChunkRef,
    Manifest,
    PackEntry,
    Run,
    decode_footer,
    encode_footer,
    footer_size,
)
from lfs_agent.errors import IntegrityError, LocalError
from lfs_agent.hashing import BackgroundHash, RangeHash
from lfs_agent.pointer import Pointer

__all__ = [
    "COALESCE_GAP",
    "MAX_REQUEST",
    "BadChunkError",
    "BuiltPack",
    "Location",
    "PackResult",
    "Plan",
    "ReadRange",
    "Request",
    "iter_pack",
    "plan_dedup",
    "plan_requests",
    "rebuild",
    "runs_of",
    "write_packs",
]

#: Runs of one pack closer than this are fetched in one request (the gap is read and dropped).
COALESCE_GAP = 1024 * 1024
#: A request covers at most this many bytes: larger runs are split, at chunk boundaries.
MAX_REQUEST = 16 * 1024 * 1024
#: xet's defragmentation rule: keep the referenced ranges at this many chunks on average.
MIN_CHUNKS_PER_RANGE = 8.0
#: ... down to this fraction of it once dedup is allowed again (hysteresis).
HYSTERESIS = 0.5
#: The rolling average is over this many of the latest ranges.
FRAGMENTATION_WINDOW = 128
#: Mode of pack and rebuilt files, before the umask.
_FILE_MODE = 0o644


class Location(NamedTuple):
    """Where a chunk is: a pack's name (its sha256), the chunk's offset and length."""

    pack: str
    offset: int
    length: int


class Plan(NamedTuple):
    """For each chunk of the new version, where it already is, or None: to be sent."""

    reuse: list[Location | None]
    new_bytes: int
    reused_bytes: int


class _Fragmentation:
    """xet's rolling estimate of chunks per referenced range, with hysteresis.

    Every range the new version's reader would fetch counts: a stretch of old chunks in
    one pack, or a stretch of new ones. While the average over the latest ranges is
    below the target, a dedup range no longer than the average is refused (its chunks
    are sent again), which raises the average; the target then stays at its full
    value until dedup is allowed again, and drops to half of it after that.
    """

    def __init__(self, target: float, hysteresis: float, window: int) -> None:
        self._ranges: deque[int] = deque()
        self._total = 0
        self._window = window
        self._target = target
        self._hysteresis = hysteresis
        self._low = True

    def add(self, chunks: int) -> None:
        self._ranges.append(chunks)
        self._total += chunks
        if len(self._ranges) > self._window:
            self._total -= self._ranges.popleft()

    def extend(self, chunks: int) -> None:
        if self._ranges:
            self._ranges[-1] += chunks
            self._total += chunks
        else:
            self.add(chunks)

    def allow(self, chunks: int) -> bool:
        if len(self._ranges) < self._window:
            return True  # too few ranges for an estimate
        average = self._total / len(self._ranges)
        target = self._target * (self._hysteresis if self._low else 1.0)
        if average < target:
            # xet refuses ranges shorter than the average; one as short as it does not
            # raise it either, and refusing those too leaves no fixed point at one chunk
            # per range.
            if chunks <= average:
                self._low = False
                return False
        else:
            self._low = True
        return True


def plan_dedup(
    chunks: Sequence[ChunkRef],
    known: Mapping[bytes, tuple[str, int, int]],
    *,
    min_chunks_per_range: float = MIN_CHUNKS_PER_RANGE,
    hysteresis: float = HYSTERESIS,
    window: int = FRAGMENTATION_WINDOW,
) -> Plan:
    """Decide which chunks of a new version to reference where they are, which to send.

    Args:
        chunks: The new version's chunks, in file order.
        known: ``digest -> (pack, offset, length)`` of chunks already in the bucket,
            from the manifests of earlier versions (:meth:`Manifest.locations`).
        min_chunks_per_range: The average chunks per range the rule keeps.
        hysteresis: The fraction of it tolerated once dedup is allowed again.
        window: How many of the latest ranges the average is over.

    Returns:
        Per chunk, its location to reference, or None to send it.
    """
    estimate = _Fragmentation(min_chunks_per_range, hysteresis, window)
    reuse: list[Location | None] = []
    new_bytes = reused_bytes = 0
    previous: Location | None = None  # the last chunk's location, None if it is new
    index = 0
    while index < len(chunks):
        found = _known(known, chunks[index])
        if found is None:
            if index and previous is None:
                estimate.extend(1)
            else:
                estimate.add(1)
            reuse.append(None)
            new_bytes += chunks[index].length
            previous = None
            index += 1
            continue
        stretch = [found]  # the chunks that follow it in the same pack
        while index + len(stretch) < len(chunks):
            after = _known(known, chunks[index + len(stretch)])
            last = stretch[-1]
            if (
                after is None
                or after.pack != last.pack
                or after.offset != last.offset + last.length
            ):
                break
            stretch.append(after)
        size = sum(loc.length for loc in stretch)
        if estimate.allow(len(stretch)):
            if previous is not None and _follows(previous, found):
                estimate.extend(len(stretch))
            else:
                estimate.add(len(stretch))
            reuse.extend(stretch)
            reused_bytes += size
            previous = stretch[-1]
        else:
            if index and previous is None:
                estimate.extend(len(stretch))
            else:
                estimate.add(len(stretch))
            reuse.extend([None] * len(stretch))
            new_bytes += size
            previous = None
        index += len(stretch)
    return Plan(reuse, new_bytes, reused_bytes)


def _known(known: Mapping[bytes, tuple[str, int, int]], chunk: ChunkRef) -> Location | None:
    found = known.get(chunk.digest)
    if found is None or found[2] != chunk.length:
        return None
    return Location(*found)


def _follows(previous: Location, location: Location) -> bool:
    return location.pack == previous.pack and location.offset == previous.offset + previous.length


class BuiltPack(NamedTuple):
    """A pack written to a temp file: its name (sha256), file, size and chunk count."""

    name: str
    path: Path
    size: int
    chunks: int


class PackResult(NamedTuple):
    """What :func:`write_packs` made: the packs to upload, the manifest's runs, new bytes."""

    packs: list[BuiltPack]
    runs: list[Run]
    new_bytes: int


class _PackFile:
    """One pack being written to a temp file, hashed (by a second thread) as it grows."""

    def __init__(self, directory: Path) -> None:
        while True:
            self.path = directory / f"pack-{os.getpid()}-{os.urandom(8).hex()}"
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
                break
            except FileExistsError:  # pragma: no cover - 64 random bits
                continue
        self._file = os.fdopen(fd, "wb", buffering=1024 * 1024)
        self._hash = BackgroundHash()
        self.entries: list[PackEntry] = []
        self.size = 0

    def fits(self, length: int, max_bytes: int, max_chunks: int) -> bool:
        count = len(self.entries) + 1
        return count <= max_chunks and self.size + length + footer_size(count) <= max_bytes

    def add(self, digest: bytes, data: bytes) -> int:
        offset = self.size
        self._file.write(data)
        self._hash.update(data)
        self.entries.append(PackEntry(digest, offset, len(data)))
        self.size += len(data)
        return offset

    def finish(self) -> BuiltPack:
        footer = encode_footer(self.entries)
        self._file.write(footer)
        self._hash.update(footer)
        self._file.close()
        return BuiltPack(self._hash.hexdigest(), self.path, self._hash.size, len(self.entries))

    def discard(self) -> None:
        self._hash.close()
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def write_packs(
    source: Path,
    chunks: Sequence[ChunkRef],
    plan: Plan,
    directory: Path,
    *,
    max_bytes: int = PACK_MAX_BYTES,
    max_chunks: int = PACK_MAX_CHUNKS,
) -> PackResult:
    """Copy the chunks ``plan`` leaves to send from ``source`` into new packs.

    Each chunk is read from ``source`` and hashed again before it is written, so a file
    changed since it was chunked is refused rather than stored under the old hashes.
    A chunk the new version holds twice is written once. Packs are temp files in
    ``directory`` (``pack-<pid>-<hex>``), named by the sha256 of their bytes; the
    caller uploads them before the manifest that names them, then removes them. On
    failure none is left.

    Raises:
        IntegrityError: a chunk of ``source`` no longer hashes as it did.
        LocalError: reading ``source`` or writing a pack failed.
    """
    if len(plan.reuse) != len(chunks):
        raise ValueError(f"a plan of {len(plan.reuse)} chunks for {len(chunks)} chunks")
    max_bytes = min(max_bytes, PACK_MAX_BYTES)
    max_chunks = min(max_chunks, PACK_MAX_CHUNKS)
    built: list[BuiltPack] = []
    current: _PackFile | None = None
    written: dict[bytes, tuple[int, int]] = {}  # digest -> (pack index, offset)
    placed: list[Location | tuple[int, int, int]] = []
    new_bytes = 0
    try:
        with open(source, "rb", buffering=0) as src:
            offset = 0
            for chunk, location in zip(chunks, plan.reuse, strict=True):
                if location is not None:
                    placed.append(location)
                elif chunk.digest in written:
                    index, at = written[chunk.digest]
                    placed.append((index, at, chunk.length))
                else:
                    data = _read_chunk(src, offset, chunk, source)
                    if current is not None and not current.fits(len(data), max_bytes, max_chunks):
                        built.append(current.finish())
                        current = None
                    if current is None:
                        current = _PackFile(directory)
                    at = current.add(chunk.digest, data)
                    written[chunk.digest] = (len(built), at)
                    placed.append((len(built), at, chunk.length))
                    new_bytes += len(data)
                offset += chunk.length
        if current is not None:
            built.append(current.finish())
            current = None
    except BaseException as exc:
        if current is not None:
            current.discard()
        for pack in built:
            with contextlib.suppress(FileNotFoundError):
                pack.path.unlink()
        if isinstance(exc, OSError):
            raise LocalError(f"writing packs of {source}: {exc.strerror or exc}") from exc
        raise
    locations = [
        p if isinstance(p, Location) else Location(built[p[0]].name, p[1], p[2]) for p in placed
    ]
    return PackResult(built, runs_of(locations), new_bytes)


def _read_chunk(src: BinaryIO, offset: int, chunk: ChunkRef, source: Path) -> bytes:
    data = os.pread(src.fileno(), chunk.length, offset)
    if len(data) != chunk.length or hashlib.sha256(data).digest() != chunk.digest:
        raise IntegrityError(
            f"{source} changed since it was chunked (chunk at byte {offset}): chunk it again"
        )
    return data


def runs_of(locations: Sequence[Location]) -> list[Run]:
    """The manifest's runs: consecutive chunks stored consecutively in one pack, merged."""
    runs: list[Run] = []
    for loc in locations:
        if runs and runs[-1].pack == loc.pack and runs[-1].offset + runs[-1].length == loc.offset:
            last = runs[-1]
            runs[-1] = Run(last.pack, last.offset, last.length + loc.length)
        else:
            runs.append(Run(loc.pack, loc.offset, loc.length))
    return runs


class Readable(Protocol):
    """A stream of a pack range's bytes: what ``read_range`` may return."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes; fewer only at the end."""


#: Fetches ``length`` bytes at ``offset`` of pack ``pack``: bytes, or a stream of them.
ReadRange = Callable[[str, int, int], "bytes | bytearray | memoryview | Readable"]


class _Item(NamedTuple):
    """One chunk of a request: where it is in the pack and where it goes in the file."""

    pack_offset: int
    length: int
    digest: bytes
    targets: list[int]


class Request(NamedTuple):
    """One ranged read of a pack, and the chunks it carries."""

    pack: str
    start: int
    end: int
    items: list[_Item]


def plan_requests(
    manifest: Manifest, *, gap: int = COALESCE_GAP, max_request: int = MAX_REQUEST
) -> list[Request]:
    """The reads that fetch every chunk of ``manifest``.

    Chunks of one pack closer than ``gap`` share a read; a read stops growing at
    ``max_request`` bytes (at a chunk boundary). A chunk used at several offsets is
    read once. Reads are in file order of their first chunk.
    """
    by_pack: dict[str, dict[tuple[int, int, bytes], list[int]]] = {}
    first_use: dict[str, int] = {}
    for p in manifest.placements():
        first_use.setdefault(p.pack, p.offset)
        key = (p.pack_offset, p.length, p.digest)
        by_pack.setdefault(p.pack, {}).setdefault(key, []).append(p.offset)
    requests: list[Request] = []
    for pack in sorted(by_pack, key=first_use.__getitem__):
        current: Request | None = None
        for (at, length, digest), targets in sorted(by_pack[pack].items()):
            item = _Item(at, length, digest, targets)
            if (
                current is not None
                and at >= current.end  # overlapping chunks: a hostile manifest
                and at - current.end < gap
                and at + length - current.start <= max_request
            ):
                current.items.append(item)
                current = current._replace(end=at + length)
                requests[-1] = current
                continue
            current = Request(pack, at, at + length, [item])
            requests.append(current)
    return requests


class BadChunkError(IntegrityError):
    """A chunk fetched from a pack does not hash to its name, even fetched again alone.

    Attributes:
        pack: The pack's name.
        offset: The chunk's offset in the pack.
        length: The chunk's length.
        chunk: The chunk's sha256 (hex).
    """

    def __init__(self, pack: str, offset: int, length: int, chunk: str, reason: str) -> None:
        super().__init__(
            f"chunk {chunk} at {offset}+{length} of pack {pack} {reason}: "
            "fetch that range again, or run 'lfs-agent fsck --remote'"
        )
        self.pack = pack
        self.offset = offset
        self.length = length
        self.chunk = chunk


class _Reader:
    """Exactly-sized reads of what ``read_range`` returned: bytes or a stream."""

    def __init__(self, result: bytes | bytearray | memoryview | Readable) -> None:
        if isinstance(result, (bytes, bytearray, memoryview)):
            self._view: memoryview | None = memoryview(result)
            self._stream: Readable | None = None
        else:
            self._view, self._stream = None, result
        self._position = 0

    def read(self, length: int) -> bytes | memoryview:
        """Up to ``length`` bytes: fewer only when the range ends early."""
        if self._view is not None:
            data = self._view[self._position : self._position + length]
            self._position += len(data)
            return data
        assert self._stream is not None
        parts: list[bytes] = []
        got = 0
        while got < length:
            part = self._stream.read(min(length - got, 1024 * 1024))
            if not part:
                break
            if len(part) > length - got:  # a stream that ignores its bound
                part = part[: length - got]
            parts.append(part)
            got += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        """Close the stream, if it is one."""
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


def rebuild(
    manifest: Manifest,
    read_range: ReadRange,
    path: Path,
    *,
    workers: int = 4,
    retries: int = 1,
    gap: int = COALESCE_GAP,
    max_request: int = MAX_REQUEST,
) -> Pointer:
    """Write the object ``manifest`` describes to ``path``, every byte checked.

    ``path`` is created (it must not exist) and each chunk written at its offset as its
    read completes, reads running on ``workers`` threads; each chunk is checked against
    its sha256 before it is written, and the whole file against the manifest's oid and
    size (hashed in file order as its prefix completes). A chunk that does not hash
    right is fetched again alone, ``retries`` times. On any failure ``path`` is removed:
    nothing unverified is left as good.

    Args:
        manifest: The object's manifest, decoded by :func:`~lfs_agent.chunking.decode_manifest`.
        read_range: ``(pack, offset, length) -> bytes or a stream``: a ranged read.
        path: The file to create, in the store's ``tmp/``.
        workers: Reads at once.
        retries: Times a bad chunk is fetched again before giving up.
        gap: Coalesce reads of one pack closer than this.
        max_request: Split reads larger than this.

    Returns:
        The object's pointer, once its size and sha256 are checked.

    Raises:
        BadChunkError: a chunk that stayed bad, naming its pack and offset.
        IntegrityError: the whole file does not hash to the oid.
    """
    requests = plan_requests(manifest, gap=gap, max_request=max_request)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    try:
        with RangeHash(path) as hashed:

            def fetch(request: Request) -> None:
                _fetch(request, read_range, fd, hashed, retries)

            if workers <= 1 or len(requests) <= 1:
                for request in requests:
                    fetch(request)
            else:
                with ThreadPoolExecutor(workers, thread_name_prefix="rebuild") as pool:
                    futures = [pool.submit(fetch, r) for r in requests]
                    try:
                        for done in futures:
                            done.result()
                    except BaseException:
                        for future in futures:  # the object failed: fetch no more of it
                            future.cancel()
                        raise
            got = hashed.pointer()
        if got.size != manifest.size or got.oid != manifest.oid:
            raise IntegrityError(
                f"object {manifest.oid} rebuilt from its manifest is {got.size} bytes "
                f"hashing to {got.oid}: its manifest is wrong; push the object again"
            )
        return Pointer(manifest.oid, manifest.size)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    finally:
        os.close(fd)


def _fetch(
    request: Request, read_range: ReadRange, fd: int, hashed: RangeHash, retries: int
) -> None:
    reader = _Reader(read_range(request.pack, request.start, request.end - request.start))
    writes = _Writes(fd, hashed)
    try:
        position = request.start
        for item in request.items:
            skip = item.pack_offset - position
            while skip > 0:  # a gap between runs, read and dropped
                dropped = len(reader.read(min(skip, 1024 * 1024)))
                if not dropped:
                    break
                skip -= dropped
            data = reader.read(item.length)
            position = item.pack_offset + len(data)
            if len(data) != item.length or hashlib.sha256(data).digest() != item.digest:
                data = _fetch_again(request.pack, item, read_range, retries, len(data))
            for target in item.targets:
                writes.add(data, target)
        writes.flush()
    finally:
        reader.close()


class _Writes:
    """Checked chunks bound for consecutive offsets, written by one call per MiB or so.

    A chunk is about 64 KiB: a system call (and a hashing hand-over) per chunk would
    cost more than the bytes.
    """

    def __init__(self, fd: int, hashed: RangeHash) -> None:
        self._fd = fd
        self._hashed = hashed
        self._parts: list[bytes | memoryview] = []
        self._start = self._end = 0

    def add(self, data: bytes | memoryview, offset: int) -> None:
        if self._parts and offset != self._end:
            self.flush()
        if not self._parts:
            self._start = self._end = offset
        self._parts.append(data)
        self._end += len(data)
        if self._end - self._start >= 1024 * 1024:
            self.flush()

    def flush(self) -> None:
        if not self._parts:
            return
        parts, self._parts = self._parts, []
        offset = self._start
        while parts:
            written = os.pwritev(self._fd, parts, offset)
            offset += written
            while parts and written >= len(parts[0]):
                written -= len(parts.pop(0))
            if written:
                parts[0] = memoryview(parts[0])[written:]
        self._hashed.written(self._start, self._end)


def _fetch_again(
    pack: str, item: _Item, read_range: ReadRange, retries: int, first: int
) -> bytes | memoryview:
    reason = "does not hash right" if first == item.length else f"was cut short at {first} bytes"
    for _ in range(retries):
        reader = _Reader(read_range(pack, item.pack_offset, item.length))
        try:
            data = reader.read(item.length)
        finally:
            reader.close()
        if len(data) == item.length and hashlib.sha256(data).digest() == item.digest:
            return data
        reason = (
            "does not hash right" if len(data) == item.length else f"was cut short at {len(data)}"
        )
    raise BadChunkError(pack, item.pack_offset, item.length, item.digest.hex(), reason)


def iter_pack(path: Path) -> Iterator[tuple[PackEntry, bytes]]:
    """Each chunk of a pack file with its bytes, from its footer (for ``fsck`` and tests)."""
    with open(path, "rb", buffering=0) as pack:
        size = os.fstat(pack.fileno()).st_size
        tail_size = min(size, FOOTER_MAX_BYTES)
        tail = os.pread(pack.fileno(), tail_size, size - tail_size)
        for entry in decode_footer(tail, size, pack=path.name):
            yield entry, os.pread(pack.fileno(), entry.length, entry.offset)
