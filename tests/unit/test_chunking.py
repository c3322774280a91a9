"""Chunk boundaries, the format marker, and the manifest and pack-footer codecs."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import struct
import tracemalloc
from pathlib import Path

import pytest

from lfs_agent.chunking import (
    CHUNKER,
    DEFAULT_FORMAT,
    FOOTER_MAX_BYTES,
    PACK_MAX_BYTES,
    PACK_MAX_CHUNKS,
    ChunkRef,
    Manifest,
    PackEntry,
    Run,
    chunk_file,
    decode_footer,
    decode_manifest,
    encode_footer,
    encode_manifest,
    footer_size,
    manifest_limit,
    parse_bucket_format,
)
from lfs_agent.errors import ConfigError, IntegrityError

PACK = "ab" * 32


def data_of(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- the format marker -----------------------------------------------------------------


def test_marker_round_trips_with_the_documented_parameters():
    doc = json.loads(DEFAULT_FORMAT.encode())
    assert doc == {
        "format": 2,
        "chunker": {"algo": "fastcdc2020", "min": 8192, "avg": 57344, "max": 131072, "seed": 0},
        "chunk_hash": "sha256",
    }
    assert parse_bucket_format(DEFAULT_FORMAT.encode()) == DEFAULT_FORMAT


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"format": 3}, "upgrade lfs-agent"),
        ({"format": 1}, "bucket format 1"),
        ({"format": 2, "chunk_hash": "md5"}, "chunk_hash"),
        ({"format": 2, "chunker": {"algo": "rabin"}}, "chunker.algo"),
        ({"format": 2, "chunker": {"min": 1}}, "chunker.min"),
        ({"format": 2, "chunker": {"min": 65536, "avg": 32768}}, "not in order"),
        ({"format": 2, "chunker": {"seed": -1}}, "chunker.seed"),
        ({"format": "two"}, "format"),
    ],
)
def test_a_bad_marker_is_refused_in_one_line(doc, words):
    with pytest.raises(ConfigError, match=words) as err:
        parse_bucket_format(json.dumps(doc).encode())
    assert "\n" not in str(err.value)
    assert "lfs-agent.json" in str(err.value)


def test_a_huge_marker_is_refused_unread():
    with pytest.raises(ConfigError, match="too large"):
        parse_bucket_format(b" " * (1024 * 1024))


# --- boundaries ------------------------------------------------------------------------


def test_boundaries_are_those_of_fastcdc_2020_with_the_marker_parameters(tmp_path):
    """A change of library or parameters would move every chunk of every bucket."""
    data = data_of(1 << 20)
    chunked = chunk_file(write(tmp_path, "f", data), whole=True)
    assert [c.length for c in chunked.chunks] == [
        111090, 10489, 56796, 86090, 131072, 90228, 99418,
        125415, 131072, 75357, 10767, 93091, 23090, 4601,
    ]  # fmt: skip
    assert chunked.chunks[0].digest.hex().startswith("78eed16469f9ae9f")
    assert chunked.size == len(data)
    assert chunked.sha256 == hashlib.sha256(data).hexdigest()
    position = 0
    for chunk in chunked.chunks:
        assert chunk.digest == hashlib.sha256(data[position : position + chunk.length]).digest()
        position += chunk.length
    assert position == len(data)


def test_one_and_two_threads_agree(tmp_path):
    path = write(tmp_path, "f", data_of(20 << 20, seed=3))
    one = chunk_file(path, threads=1, whole=True)
    two = chunk_file(path, threads=2, whole=True)
    assert one == two
    assert one.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(one.chunks) > 200


def test_an_empty_file_has_no_chunks(tmp_path):
    chunked = chunk_file(write(tmp_path, "e", b""), whole=True)
    assert chunked == ([], 0, hashlib.sha256(b"").hexdigest())


def test_chunks_after_an_insertion_resynchronise(tmp_path):
    data = data_of(4 << 20)
    edited = data[: 1 << 20] + b"inserted bytes" + data[1 << 20 :]
    before = chunk_file(write(tmp_path, "a", data)).chunks
    after = chunk_file(write(tmp_path, "b", edited)).chunks
    old = {c.digest for c in before}
    changed = [c for c in after if c.digest not in old]
    assert 1 <= len(changed) <= 3  # the chunk around the insertion, perhaps its neighbour
    assert sum(c.length for c in changed) < 3 * CHUNKER.max
    # everything past the edit is the same chunk sequence again
    assert after[-len(before) // 2 :] == before[-len(before) // 2 :]


def test_memory_stays_far_below_the_file_size(tmp_path):
    size = 64 << 20
    path = tmp_path / "big"
    with open(path, "wb") as out:
        rng = random.Random(5)
        for _ in range(size >> 20):
            out.write(rng.randbytes(1 << 20))
    tracemalloc.start()
    try:
        chunked = chunk_file(path, whole=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert chunked.size == size
    assert peak < size // 32, f"peak {peak} bytes for a file of {size}"


# --- the manifest ----------------------------------------------------------------------


def manifest_of(data: bytes, tmp_path: Path, pack: str = PACK) -> Manifest:
    chunked = chunk_file(write(tmp_path, "m", data), whole=True)
    assert chunked.sha256 is not None
    return Manifest(
        chunked.sha256, chunked.size, tuple(chunked.chunks), (Run(pack, 0, chunked.size),)
    )


def test_manifest_round_trips_and_stays_below_a_thousandth(tmp_path):
    manifest = manifest_of(data_of(8 << 20), tmp_path)
    encoded = encode_manifest(manifest)
    assert decode_manifest(encoded, oid=manifest.oid, size=manifest.size) == manifest
    assert len(encoded) <= manifest.size // 1000
    assert len(encoded) <= manifest_limit(manifest.size)


def test_manifest_locations_name_each_chunk_in_its_pack(tmp_path):
    manifest = manifest_of(data_of(1 << 20), tmp_path)
    locations = manifest.locations()
    first, second = manifest.chunks[0], manifest.chunks[1]
    assert locations[first.digest] == (PACK, 0, first.length)
    assert locations[second.digest] == (PACK, first.length, second.length)


def tampered(manifest: Manifest, **changes) -> bytes:
    doc = json.loads(encode_manifest(manifest))
    doc.update(changes)
    return json.dumps(doc).encode()


def packed(chunks) -> str:
    return base64.b64encode(b"".join(struct.pack(">32sI", d, n) for d, n in chunks)).decode()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda m: {"format": 3}, "format 3"),
        (lambda m: {"oid": "cd" * 32}, "it describes"),
        (lambda m: {"size": m.size + 1}, "it describes"),
        (lambda m: {"chunks": "not base64!"}, "not base64"),
        (lambda m: {"chunks": packed(m.chunks)[:-8]}, "cut short|chunks add up"),
        (lambda m: {"chunks": packed([(b"x" * 32, 10), *m.chunks])}, "chunk 0 is 10 bytes"),
        (lambda m: {"chunks": packed([(b"x" * 32, 1 << 20)])}, "chunk 0 is 1048576 bytes"),
        (lambda m: {"runs": [["../../etc", 0, m.size]]}, "not a sha256"),
        (lambda m: {"runs": [[PACK, -1, m.size]]}, "not inside a pack"),
        (lambda m: {"runs": [[PACK, PACK_MAX_BYTES - 10, m.size]]}, "not inside a pack"),
        (lambda m: {"runs": [[PACK, 0, m.size - 1]]}, "ends inside a chunk"),
        (lambda m: {"runs": [[PACK, 0, m.chunks[0].length]]}, "runs end before"),
        (lambda m: {"runs": [[PACK, 0, m.size + 5]]}, "past the last chunk"),
        (lambda m: {"runs": "x"}, "runs"),
    ],
)
def test_a_hostile_manifest_is_refused_in_one_line(tmp_path, change, words):
    manifest = manifest_of(data_of(1 << 20), tmp_path)
    with pytest.raises(IntegrityError, match=words) as err:
        decode_manifest(
            tampered(manifest, **change(manifest)), oid=manifest.oid, size=manifest.size
        )
    message = str(err.value)
    assert "\n" not in message
    assert f"manifest of {manifest.oid}" in message


def test_an_oversized_manifest_is_refused_unparsed():
    with pytest.raises(IntegrityError, match="more than the"):
        decode_manifest(b"{" * 10_000, oid="cd" * 32, size=100)


# --- the pack footer -------------------------------------------------------------------


def entries_of(*lengths: int) -> list[PackEntry]:
    entries, offset = [], 0
    for n, length in enumerate(lengths):
        entries.append(PackEntry(bytes([n]) * 32, offset, length))
        offset += length
    return entries


def test_footer_round_trips_from_the_pack_tail():
    entries = entries_of(9000, 70000, 12)
    footer = encode_footer(entries)
    assert len(footer) == footer_size(3)
    pack_size = 9000 + 70000 + 12 + len(footer)
    assert decode_footer(footer, pack_size) == entries
    tail = b"\0" * 500 + footer  # more of the tail than the footer: fine
    assert decode_footer(tail, pack_size) == entries
    assert footer_size(PACK_MAX_CHUNKS) == FOOTER_MAX_BYTES


def hostile(entries, *, magic=b"LFSAPACK", version=1, count=None, flags=0):
    rows = b"".join(struct.pack(">32sQII", e.digest, e.offset, e.length, flags) for e in entries)
    n = len(entries) if count is None else count
    return rows + struct.pack(">8sII", magic, version, n)


@pytest.mark.parametrize(
    ("footer", "size", "words"),
    [
        (hostile(entries_of(100), magic=b"NOTAPACK"), 164, "no pack magic"),
        (hostile(entries_of(100), version=9), 164, "footer version 9"),
        (hostile(entries_of(100), count=0), 164, "0 chunks"),
        (hostile(entries_of(100), count=PACK_MAX_CHUNKS + 1), 164, "8193 chunks"),
        (hostile(entries_of(100), count=5), 164, "does not fit"),
        (hostile(entries_of(100), flags=1), 164, "flags 1"),
        (hostile([PackEntry(b"a" * 32, 8, 100)]), 164, "at 8, expected 0"),
        (hostile(entries_of(100)), 200, "chunks end at 100"),
        (hostile(entries_of(100)), 120, "the footer starts at 56"),
        (hostile(entries_of(1 << 20)), (1 << 20) + 64, "outside 1..131072"),
        (hostile(entries_of(100)), PACK_MAX_BYTES + 1, "pack size"),
        (b"short", 164, "tail bytes"),
    ],
)
def test_a_hostile_footer_is_refused_in_one_line(footer, size, words):
    with pytest.raises(IntegrityError, match=words) as err:
        decode_footer(footer, size, pack=PACK)
    assert "\n" not in str(err.value)
    assert PACK in str(err.value)


def test_chunk_ref_is_digest_and_length():
    assert ChunkRef(b"x" * 32, 5).length == 5


@pytest.mark.parametrize("threads", [1, 2])
def test_a_failure_midway_is_raised_as_itself(tmp_path, monkeypatch, threads):
    """The chunker still holds a view of the mapping then: closing it must not hide that."""
    import lfs_agent.chunking as chunking

    real = chunking._fastcdc

    class Interrupted:
        def __init__(self, params):
            self.cutter = real(params)

        def cut_buf(self, view):
            chunks = self.cutter.cut_buf(view)
            yield next(chunks)
            raise KeyboardInterrupt  # as Ctrl-C inside the cut loop

    monkeypatch.setattr(chunking, "_fastcdc", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        chunk_file(write(tmp_path, "f", data_of(20 << 20)), threads=threads)
