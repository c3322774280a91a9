"""Content-defined chunks of large objects: marker, boundaries, manifest, pack footer.

The bucket's format marker says how chunks are cut; the manifest lists an object's
chunks; the footer indexes a pack. A chunked object is stored as its chunks' bytes in
packs plus one manifest. Boundaries come from FastCDC 2020 (``pyfastcdc``) with the
parameters the bucket's marker (``lfs-agent.json``) records, so every client cuts the
same file the same way and an edit only changes the chunks around it: the ones after it
re-synchronise. Each chunk is named by its sha256.

Everything decoded here comes from a bucket anyone with write access may have changed:
the marker, manifests and pack footers are each validated as hostile input (bounded
sizes, offsets inside the pack, lengths adding up, oids and pack names checked) and
refused in one line naming the thing. Nothing here reads a bucket; :mod:`lfs_agent.packs`
builds packs and rebuilds objects from these parts.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import mmap
import os
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lfs_agent.errors import ConfigError, IntegrityError
from lfs_agent.pointer import is_valid_oid

if TYPE_CHECKING:
    from pyfastcdc import FastCDC

__all__ = [
    "CHUNKER",
    "DEFAULT_FORMAT",
    "FOOTER_MAX_BYTES",
    "FORMAT",
    "MARKER_KEY",
    "PACK_MAX_BYTES",
    "PACK_MAX_CHUNKS",
    "BucketFormat",
    "ChunkRef",
    "Chunked",
    "ChunkerParams",
    "Manifest",
    "PackEntry",
    "Run",
    "chunk_file",
    "decode_footer",
    "decode_manifest",
    "encode_footer",
    "encode_manifest",
    "footer_size",
    "manifest_limit",
    "parse_bucket_format",
]

#: The bucket format that stores chunked objects (1: whole objects only).
FORMAT = 2
#: The marker's key at the bucket prefix's root.
MARKER_KEY = "lfs-agent.json"
#: Most bytes a pack holds, footer included (64 MiB, as xet's xorbs).
PACK_MAX_BYTES = 64 * 1024 * 1024
#: Most chunks a pack holds.
PACK_MAX_CHUNKS = 8192
#: Bytes per chunk of the sha256 digest.
DIGEST_SIZE = 32
#: Bytes a batch of chunks handed to a hashing thread adds up to.
_BATCH_BYTES = 8 * 1024 * 1024
#: Batches that may wait for the hashing threads: bounds what is queued.
_BATCHES_AHEAD = 4


class ChunkerParams(BaseModel):
    """FastCDC 2020 parameters: every client of a bucket cuts with the same ones.

    pyfastcdc's real mean chunk is about ``avg + min`` (cut-point skipping), so 56 KiB
    gives the ~64 KiB chunks xet found the best trade-off between dedup and metadata.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    algo: Literal["fastcdc2020"] = "fastcdc2020"
    min: int = Field(default=8192, ge=64, le=1024 * 1024)
    avg: int = Field(default=57344, ge=256, le=4 * 1024 * 1024)
    max: int = Field(default=131072, ge=1024, le=16 * 1024 * 1024)
    seed: int = Field(default=0, ge=0, lt=2**64)


class BucketFormat(BaseModel):
    """The marker ``lfs-agent.json``: the bucket's format and how its chunks are cut."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    format: int = FORMAT
    chunker: ChunkerParams = Field(default_factory=ChunkerParams)
    chunk_hash: Literal["sha256"] = "sha256"

    def encode(self) -> bytes:
        """The marker's bytes, as written once to the bucket."""
        return self.model_dump_json().encode() + b"\n"


#: The chunker of format 2 buckets this client creates.
CHUNKER = ChunkerParams()
#: The marker this client writes to a bucket that has none.
DEFAULT_FORMAT = BucketFormat()


def parse_bucket_format(data: bytes, where: str = MARKER_KEY) -> BucketFormat:
    """The bucket's marker, or a one-line error naming it and the way out.

    Raises:
        ConfigError: unreadable, a format from a newer lfs-agent, or parameters out of
            bounds.
    """
    if len(data) > 64 * 1024:
        raise ConfigError(f"{where} is {len(data)} bytes, too large for a format marker")
    try:
        marker = BucketFormat.model_validate_json(data)
    except ValidationError as exc:
        raise ConfigError(f"{where} is unreadable ({_first_error(exc)}): {_FIX_MARKER}") from None
    if marker.format > FORMAT:
        raise ConfigError(
            f"{where} says bucket format {marker.format}, newer than this lfs-agent "
            f"knows ({FORMAT}): upgrade lfs-agent to read this bucket"
        )
    if marker.format < FORMAT:
        raise ConfigError(f"{where} says bucket format {marker.format}: {_FIX_MARKER}")
    params = marker.chunker
    if not params.min <= params.avg <= params.max:
        raise ConfigError(
            f"{where} has chunk sizes min {params.min}, avg {params.avg}, max {params.max}, "
            f"not in order: {_FIX_MARKER}"
        )
    return marker


_FIX_MARKER = "restore it as lfs-agent wrote it, or ask who changed it"


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(map(str, first['loc'])) or 'document'}: {first['msg']}"


class ChunkRef(NamedTuple):
    """One chunk of an object: its sha256 (32 raw bytes) and its length."""

    digest: bytes
    length: int


class Chunked(NamedTuple):
    """A file cut into chunks, in file order; ``sha256`` only when it was asked for."""

    chunks: list[ChunkRef]
    size: int
    sha256: str | None


def _fastcdc(params: ChunkerParams) -> FastCDC:
    import pyfastcdc  # imported by the first cut: a compiled module, not needed to decode

    return pyfastcdc.FastCDC(params.avg, min_size=params.min, max_size=params.max, seed=params.seed)


def chunk_file(
    path: Path,
    params: ChunkerParams = CHUNKER,
    *,
    whole: bool = False,
    threads: int | None = None,
) -> Chunked:
    """Cut the file at ``path`` into chunks and hash each one.

    The file is mapped, not read: memory held is the chunk list (about 40 bytes per
    64 KiB) plus the batches waiting for a hashing thread, never the file. Boundary
    detection (pyfastcdc) and sha256 both release the GIL, so with ``threads`` 2 this
    thread cuts while two others hash batches of chunks (and, with ``whole``, one more
    hashes the whole file in order). ``path`` must be a file nobody shortens meanwhile,
    such as a store object: a mapped file cut short under a reader kills it (SIGBUS).

    Args:
        path: The file; its size is taken once, before mapping it.
        params: The bucket's chunker.
        whole: Also compute the whole file's sha256 (its oid), in the same pass.
        threads: Hashing threads (None: 2 on a machine with two cores or more, else 1;
            1 hashes in this thread).

    Returns:
        The chunks in file order, the size, and the whole file's sha256 when asked.
    """
    if threads is None:
        threads = 2 if (os.cpu_count() or 1) >= 2 else 1
    with open(path, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        if size == 0:
            empty = hashlib.sha256().hexdigest() if whole else None
            return Chunked([], 0, empty)
        mapped = mmap.mmap(src.fileno(), size, access=mmap.ACCESS_READ)
        view = memoryview(mapped)
        try:
            chunks, oid = _cut_and_hash(view, params, whole, threads)
        finally:
            # After an interruption the chunker may still hold a view of the mapping:
            # it is then unmapped when the last view goes, not here.
            with contextlib.suppress(BufferError):
                view.release()
                mapped.close()
    return Chunked(chunks, size, oid)


def _boundaries(view: memoryview, params: ChunkerParams) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` of each chunk, the chunker's views dropped at once."""
    cutter = _fastcdc(params)
    for chunk in cutter.cut_buf(view):
        offset, length = chunk.offset, chunk.length
        del chunk  # holds a view of the mapping, which must be closed at the end
        yield offset, length


def _hash_batch(view: memoryview, batch: Sequence[tuple[int, int]]) -> list[ChunkRef]:
    sha = hashlib.sha256
    return [ChunkRef(sha(view[o : o + n]).digest(), n) for o, n in batch]


def _cut_and_hash(
    view: memoryview, params: ChunkerParams, whole: bool, threads: int
) -> tuple[list[ChunkRef], str | None]:
    digest = hashlib.sha256() if whole else None
    if threads <= 1:
        inline = _hash_batch(view, list(_boundaries(view, params)))
        if digest is not None:
            for start in range(0, len(view), _BATCH_BYTES):
                digest.update(view[start : start + _BATCH_BYTES])
        return inline, digest.hexdigest() if digest is not None else None

    def whole_range(start: int, end: int) -> None:
        assert digest is not None
        digest.update(view[start:end])

    chunks: list[ChunkRef] = []
    pending: list[Future[list[ChunkRef]]] = []
    with (
        ThreadPoolExecutor(threads, thread_name_prefix="chunk-hash") as pool,
        ThreadPoolExecutor(1, thread_name_prefix="whole-hash") as ordered,  # in file order
    ):
        whole_done: list[Future[None]] = []
        batch: list[tuple[int, int]] = []
        batch_bytes = 0
        batch_start = 0
        for offset, length in _boundaries(view, params):
            batch.append((offset, length))
            batch_bytes += length
            if batch_bytes >= _BATCH_BYTES:
                pending.append(pool.submit(_hash_batch, view, batch))
                if digest is not None:
                    whole_done.append(ordered.submit(whole_range, batch_start, offset + length))
                batch_start = offset + length
                batch, batch_bytes = [], 0
                while len(pending) > _BATCHES_AHEAD:  # bounds the queue, keeps order
                    chunks.extend(pending.pop(0).result())
                while whole_done and whole_done[0].done():
                    whole_done.pop(0).result()
        if batch:
            pending.append(pool.submit(_hash_batch, view, batch))
            if digest is not None:
                whole_done.append(ordered.submit(whole_range, batch_start, len(view)))
        for future in pending:
            chunks.extend(future.result())
        for done in whole_done:
            done.result()
    return chunks, digest.hexdigest() if digest is not None else None


class Run(NamedTuple):
    """Consecutive chunks of an object stored consecutively in one pack."""

    pack: str
    offset: int
    length: int


class Manifest(NamedTuple):
    """A chunked object: its chunks in file order and the pack ranges that hold them.

    The runs, in file order, add up to the object; each starts and ends on a chunk
    boundary, so a reader verifies every chunk it fetches.
    """

    oid: str
    size: int
    chunks: tuple[ChunkRef, ...]
    runs: tuple[Run, ...]

    def placements(self) -> Iterator[Placement]:
        """Each chunk with its offset in the object and where in a pack it is."""
        chunks = iter(self.chunks)
        position = 0
        for run in self.runs:
            used = 0
            while used < run.length:
                chunk = next(chunks)
                yield Placement(chunk.digest, chunk.length, position, run.pack, run.offset + used)
                used += chunk.length
                position += chunk.length

    def locations(self) -> dict[bytes, tuple[str, int, int]]:
        """``digest -> (pack, offset, length)`` of every chunk: what a next version reuses."""
        return {p.digest: (p.pack, p.pack_offset, p.length) for p in self.placements()}


class Placement(NamedTuple):
    """One chunk of a manifest: where it goes in the object and where a pack has it."""

    digest: bytes
    length: int
    offset: int
    pack: str
    pack_offset: int


_RECORD = struct.Struct(">32sI")


class _ManifestDoc(BaseModel):
    """The manifest as stored: JSON, the chunk list packed (sha256 + 4-byte length) in base64."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    format: int
    oid: str
    size: int = Field(ge=0, lt=2**63)
    chunk_hash: Literal["sha256"] = "sha256"
    chunks: str
    runs: list[tuple[str, int, int]]


def encode_manifest(manifest: Manifest) -> bytes:
    """The manifest's bytes: about 50 bytes a chunk, 0.07% of an object of 64 KiB chunks."""
    packed = b"".join(_RECORD.pack(c.digest, c.length) for c in manifest.chunks)
    doc = _ManifestDoc(
        format=FORMAT,
        oid=manifest.oid,
        size=manifest.size,
        chunks=base64.b64encode(packed).decode("ascii"),
        runs=[tuple(r) for r in manifest.runs],  # type: ignore[misc]
    )
    return doc.model_dump_json().encode()


def manifest_limit(size: int, params: ChunkerParams = CHUNKER) -> int:
    """Most bytes a valid manifest of an object of ``size`` bytes can take."""
    most_chunks = size // params.min + 1
    # Each chunk: 48 base64 characters, and at worst a run of its own (~100 bytes).
    return 4096 + most_chunks * 160


def decode_manifest(
    data: bytes,
    *,
    oid: str,
    size: int,
    params: ChunkerParams = CHUNKER,
    where: str = "",
) -> Manifest:
    """The manifest of object ``oid`` of ``size`` bytes, checked as hostile input.

    Args:
        data: The manifest's bytes, as read from the bucket.
        oid: The object it must describe (from its pointer).
        size: The object's size (from its pointer).
        params: The bucket's chunker: chunk lengths must be within its bounds.
        where: The manifest's key, for messages (default: ``manifest of <oid>``).

    Raises:
        IntegrityError: anything wrong, in one line naming the manifest.
    """
    what = where or f"manifest of {oid}"

    def bad(reason: str) -> IntegrityError:
        return IntegrityError(
            f"{what} is invalid ({reason}): push the object again, or remove the manifest"
        )

    limit = manifest_limit(size, params)
    if len(data) > limit:
        raise bad(f"{len(data)} bytes, more than the {limit} an object of {size} bytes needs")
    try:
        doc = _ManifestDoc.model_validate_json(data)
    except ValidationError as exc:
        raise bad(_first_error(exc)) from None
    if doc.format != FORMAT:
        raise bad(f"format {doc.format}, expected {FORMAT}")
    if doc.oid != oid or doc.size != size:
        raise bad(f"it describes {doc.oid[:80]!r} of {doc.size} bytes")
    try:
        packed = base64.b64decode(doc.chunks, validate=True)
    except (binascii.Error, ValueError):
        raise bad("its chunk list is not base64") from None
    if len(packed) % _RECORD.size:
        raise bad("its chunk list is cut short")
    chunks = tuple(ChunkRef(d, n) for d, n in _RECORD.iter_unpack(packed))
    total = 0
    for index, chunk in enumerate(chunks):
        last = index == len(chunks) - 1
        if not 0 < chunk.length <= params.max or (chunk.length < params.min and not last):
            raise bad(f"chunk {index} is {chunk.length} bytes, outside {params.min}..{params.max}")
        total += chunk.length
    if total != size:
        raise bad(f"its chunks add up to {total} bytes")
    runs = tuple(Run(*r) for r in doc.runs)
    _check_runs(runs, chunks, bad)
    return Manifest(oid, size, chunks, runs)


def _check_runs(
    runs: Sequence[Run], chunks: Sequence[ChunkRef], bad: Callable[[str], IntegrityError]
) -> None:
    """Runs name packs by hash, stay inside a pack, and start and end on chunk boundaries."""
    if len(runs) > max(len(chunks), 1):
        raise bad(f"{len(runs)} runs for {len(chunks)} chunks")
    lengths = iter(chunks)
    for index, run in enumerate(runs):
        if not is_valid_oid(run.pack):
            raise bad(f"run {index} names pack {run.pack[:80]!r}, not a sha256")
        if run.offset < 0 or run.length <= 0 or run.offset + run.length > PACK_MAX_BYTES:
            raise bad(f"run {index} ({run.offset}+{run.length}) is not inside a pack")
        covered = 0
        while covered < run.length:
            chunk = next(lengths, None)
            if chunk is None:
                raise bad(f"run {index} goes past the last chunk")
            covered += chunk.length
        if covered != run.length:
            raise bad(f"run {index} ends inside a chunk")
    if next(lengths, None) is not None:
        raise bad("its runs end before its chunks")


class PackEntry(NamedTuple):
    """A chunk in a pack: its sha256 (raw), offset and length."""

    digest: bytes
    offset: int
    length: int


_ENTRY = struct.Struct(">32sQII")  # digest, offset, length, flags (0: stored raw)
_TRAILER = struct.Struct(">8sII")  # magic, version, entry count
_MAGIC = b"LFSAPACK"
_FOOTER_VERSION = 1
#: Most bytes a pack's footer takes: a reader fetches the pack's last ones this many.
FOOTER_MAX_BYTES = PACK_MAX_CHUNKS * _ENTRY.size + _TRAILER.size


def footer_size(count: int) -> int:
    """Bytes of the footer of a pack of ``count`` chunks."""
    return count * _ENTRY.size + _TRAILER.size


def encode_footer(entries: Iterable[PackEntry]) -> bytes:
    """The index written after a pack's chunk bytes: entries, then count and magic.

    As restic's pack header, it sits at the end so a pack is written in one stream and
    can be read back (by ``fsck`` or a collection) without any manifest.
    """
    rows = [_ENTRY.pack(e.digest, e.offset, e.length, 0) for e in entries]
    return b"".join(rows) + _TRAILER.pack(_MAGIC, _FOOTER_VERSION, len(rows))


def decode_footer(
    tail: bytes | memoryview, pack_size: int, *, pack: str = "", params: ChunkerParams = CHUNKER
) -> list[PackEntry]:
    """The chunks a pack holds, from its last bytes, checked as hostile input.

    Args:
        tail: The pack's last bytes: at least its footer (the whole pack will do, or
            its last :data:`FOOTER_MAX_BYTES`).
        pack_size: The pack's size in bytes.
        pack: The pack's name, for messages.
        params: The bucket's chunker: chunk lengths must be within its bounds.

    Raises:
        IntegrityError: anything wrong, in one line naming the pack.
    """
    what = f"pack {pack}" if pack else "pack"

    def bad(reason: str) -> IntegrityError:
        return IntegrityError(f"{what} has an invalid footer ({reason}): remove the pack")

    tail = memoryview(tail)
    if not _TRAILER.size <= pack_size <= PACK_MAX_BYTES:
        raise bad(f"pack size {pack_size} outside {_TRAILER.size}..{PACK_MAX_BYTES}")
    if len(tail) < _TRAILER.size or len(tail) > pack_size:
        raise bad(f"{len(tail)} tail bytes given for a pack of {pack_size}")
    magic, version, count = _TRAILER.unpack(tail[-_TRAILER.size :])
    if magic != _MAGIC:
        raise bad("no pack magic at its end")
    if version != _FOOTER_VERSION:
        raise bad(f"footer version {version}, expected {_FOOTER_VERSION}")
    if not 0 < count <= PACK_MAX_CHUNKS:
        raise bad(f"{count} chunks, outside 1..{PACK_MAX_CHUNKS}")
    length = footer_size(count)
    if length > len(tail) or length > pack_size:
        raise bad(f"a footer of {length} bytes does not fit")
    data_end = pack_size - length
    table = tail[len(tail) - length : len(tail) - _TRAILER.size]
    entries: list[PackEntry] = []
    expected_offset = 0
    for index, (digest, offset, size, flags) in enumerate(_ENTRY.iter_unpack(table)):
        if flags != 0:
            raise bad(f"chunk {index} has flags {flags}, which this lfs-agent cannot read")
        if offset != expected_offset:
            raise bad(f"chunk {index} at {offset}, expected {expected_offset}")
        if not 0 < size <= params.max:
            raise bad(f"chunk {index} is {size} bytes, outside 1..{params.max}")
        expected_offset = offset + size
        entries.append(PackEntry(digest, offset, size))
    if expected_offset != data_end:
        raise bad(f"chunks end at {expected_offset}, the footer starts at {data_end}")
    return entries


def hex_of(digest: bytes) -> str:
    """A chunk's sha256 in hex, for messages and keys."""
    return digest.hex()
