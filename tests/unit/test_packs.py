"""Dedup planning, pack building and rebuilding objects from packs."""

from __future__ import annotations

import hashlib
import io
import random
import threading
import tracemalloc
from pathlib import Path

import pytest

from lfs_agent.chunking import (
    CHUNKER,
    ChunkRef,
    Manifest,
    Run,
    chunk_file,
    decode_footer,
    decode_manifest,
    encode_manifest,
)
from lfs_agent.errors import IntegrityError
from lfs_agent.packs import (
    BadChunkError,
    Location,
    Plan,
    iter_pack,
    plan_dedup,
    plan_requests,
    rebuild,
    write_packs,
)


class Bucket:
    """Packs by name in a directory; records every ranged read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(exist_ok=True)
        self.reads: list[tuple[str, int, int]] = []
        self.lock = threading.Lock()

    def add(self, packs) -> None:
        for pack in packs:
            pack.path.rename(self.root / pack.name)

    def read_range(self, pack: str, offset: int, length: int) -> bytes:
        with self.lock:
            self.reads.append((pack, offset, length))
        with open(self.root / pack, "rb") as f:
            f.seek(offset)
            return f.read(length)


def data_of(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def push(path: Path, bucket: Bucket, tmp: Path, known=None) -> tuple[Manifest, Plan, int]:
    chunked = chunk_file(path, whole=True)
    assert chunked.sha256 is not None
    plan = plan_dedup(chunked.chunks, known or {})
    result = write_packs(path, chunked.chunks, plan, tmp)
    bucket.add(result.packs)
    manifest = Manifest(chunked.sha256, chunked.size, tuple(chunked.chunks), tuple(result.runs))
    # what a reader gets back from the bucket is what was written
    return (
        decode_manifest(encode_manifest(manifest), oid=manifest.oid, size=manifest.size),
        plan,
        result.new_bytes,
    )


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    path = tmp_path / "tmp"
    path.mkdir()
    return path


def test_a_second_version_sends_only_its_new_chunks_and_rebuilds(tmp_path, tmp):
    v1 = data_of(6 << 20, seed=1)
    v2 = v1[: 2 << 20] + data_of(300_000, seed=2) + v1[(2 << 20) + 300_000 :] + b"tail" * 1000
    bucket = Bucket(tmp_path / "bucket")
    (tmp_path / "v1").write_bytes(v1)
    (tmp_path / "v2").write_bytes(v2)
    m1, plan1, new1 = push(tmp_path / "v1", bucket, tmp)
    assert new1 == len(v1) and plan1.reused_bytes == 0
    m2, plan2, new2 = push(tmp_path / "v2", bucket, tmp, known=m1.locations())
    assert 300_000 <= new2 <= 300_000 + 4 * CHUNKER.max + 4000
    assert plan2.new_bytes == new2 and plan2.reused_bytes == len(v2) - new2
    assert len(m2.runs) <= 5
    assert list(tmp.iterdir()) == []  # every pack was moved to the bucket
    out = tmp_path / "out"
    pointer = rebuild(m2, bucket.read_range, out)
    assert out.read_bytes() == v2
    assert pointer.oid == hashlib.sha256(v2).hexdigest() and pointer.size == len(v2)


def test_packs_are_cut_by_size_and_count_and_named_by_their_bytes(tmp_path, tmp):
    path = tmp_path / "f"
    path.write_bytes(data_of(3 << 20, seed=3))
    chunked = chunk_file(path)
    plan = plan_dedup(chunked.chunks, {})
    result = write_packs(path, chunked.chunks, plan, tmp, max_bytes=1 << 20, max_chunks=10)
    assert len(result.packs) >= 3
    seen = []
    for pack in result.packs:
        body = pack.path.read_bytes()
        assert pack.size == len(body) <= 1 << 20
        assert pack.name == hashlib.sha256(body).hexdigest()
        entries = decode_footer(body, len(body), pack=pack.name)
        assert len(entries) == pack.chunks <= 10
        for entry, data in iter_pack(pack.path):
            assert hashlib.sha256(data).digest() == entry.digest
            seen.append(entry.digest)
    assert seen == [c.digest for c in chunked.chunks]
    assert sum(r.length for r in result.runs) == chunked.size


def test_a_chunk_repeated_in_one_file_is_stored_once(tmp_path, tmp):
    block = data_of(1 << 20, seed=4)
    path = tmp_path / "f"
    path.write_bytes(block + data_of(100_000, seed=5) + block)
    chunked = chunk_file(path, whole=True)
    result = write_packs(path, chunked.chunks, plan_dedup(chunked.chunks, {}), tmp)
    assert result.new_bytes < chunked.size - (1 << 20) + 3 * CHUNKER.max
    bucket = Bucket(tmp_path / "bucket")
    bucket.add(result.packs)
    assert chunked.sha256 is not None
    manifest = Manifest(chunked.sha256, chunked.size, tuple(chunked.chunks), tuple(result.runs))
    rebuild(manifest, bucket.read_range, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == path.read_bytes()


def test_a_source_changed_since_chunked_is_refused_and_no_pack_left(tmp_path, tmp):
    path = tmp_path / "f"
    path.write_bytes(data_of(2 << 20, seed=6))
    chunked = chunk_file(path)
    with open(path, "r+b") as f:
        f.seek(1 << 20)
        f.write(b"changed")
    with pytest.raises(IntegrityError, match="changed since it was chunked"):
        write_packs(path, chunked.chunks, plan_dedup(chunked.chunks, {}), tmp)
    assert list(tmp.iterdir()) == []


def refs(*lengths: int, tag: int = 0) -> list[ChunkRef]:
    return [
        ChunkRef(bytes([tag, i % 256, i // 256]) * 10 + b"xx", n) for i, n in enumerate(lengths)
    ]


def test_planner_reuses_contiguous_old_ranges():
    old = refs(*[100] * 40)
    known = {c.digest: ("p" * 64, i * 100, 100) for i, c in enumerate(old)}
    new = old[:10] + refs(100, 100, tag=9) + old[12:]
    plan = plan_dedup(new, known)
    assert plan.reuse[:10] == [Location("p" * 64, i * 100, 100) for i in range(10)]
    assert plan.reuse[10:12] == [None, None]
    assert plan.new_bytes == 200 and plan.reused_bytes == 3800


def test_planner_ignores_a_known_hash_of_another_length():
    old = refs(100, 100)
    known = {old[0].digest: ("p" * 64, 0, 999)}
    assert plan_dedup(old, known).reuse == [None, None]


def ranges_of(plan: Plan) -> int:
    """The reads a reader of the new version needs: stretches of old or of new chunks."""
    ranges, previous = 0, ...
    for loc in plan.reuse:
        if loc is None:
            ranges += previous is not None
        else:
            follows = isinstance(previous, Location) and (previous.pack, previous.offset + 100) == (
                loc.pack,
                loc.offset,
            )
            ranges += not follows
        previous = loc
    return ranges


def test_planner_refuses_to_reference_tiny_scattered_ranges():
    """Every other chunk known, each in a range of one: the defragmentation rule stops it."""
    count = 4000
    old = refs(*[100] * count, tag=1)
    new = [c if i % 2 else ChunkRef(b"n" * 20 + i.to_bytes(12), 100) for i, c in enumerate(old)]
    known = {c.digest: ("p" * 64, i * 300, 100) for i, c in enumerate(old)}  # never adjacent
    unruled = plan_dedup(new, known, min_chunks_per_range=0)
    assert sum(loc is not None for loc in unruled.reuse) == count // 2
    assert ranges_of(unruled) == count  # a read per chunk
    plan = plan_dedup(new, known)
    assert 0 < sum(loc is not None for loc in plan.reuse) < count // 2 // 4
    assert count / ranges_of(plan) >= 7  # about 8 chunks per read, as the rule keeps


def test_requests_coalesce_near_runs_and_split_large_ones():
    pack_a, pack_b = "a" * 64, "b" * 64
    chunks = tuple(ChunkRef(bytes([i]) * 32, 100_000) for i in range(200))
    runs = (
        Run(pack_a, 0, 10 * 100_000),  # chunks 0-9
        Run(pack_b, 0, 100_000),  # chunk 10
        Run(pack_a, 1_500_000, 10 * 100_000),  # 500 kB after the first run: coalesced
        Run(pack_a, 40_000_000, 179 * 100_000),  # 17.9 MB: split
    )
    manifest = Manifest("c" * 64, 200 * 100_000, chunks, runs)
    requests = plan_requests(manifest)
    a = [r for r in requests if r.pack == pack_a]
    assert (a[0].start, a[0].end) == (0, 2_500_000)
    assert len(a) == 3 and all(r.end - r.start <= 16 * 1024 * 1024 for r in a)
    assert (a[1].start, a[2].end) == (40_000_000, 57_900_000)
    assert sum(len(r.items) for r in requests) == 200


def built_pair(tmp_path: Path, tmp: Path) -> tuple[Bucket, Manifest, bytes]:
    data = data_of(3 << 20, seed=8)
    path = tmp_path / "f"
    path.write_bytes(data)
    bucket = Bucket(tmp_path / "bucket")
    manifest, _, _ = push(path, bucket, tmp)
    return bucket, manifest, data


def test_rebuild_takes_streams_and_reads_in_parallel(tmp_path, tmp):
    bucket, manifest, data = built_pair(tmp_path, tmp)
    out = tmp_path / "out"
    rebuild(
        manifest,
        lambda p, o, n: io.BytesIO(bucket.read_range(p, o, n)),
        out,
        workers=4,
        max_request=256 * 1024,
    )
    assert out.read_bytes() == data
    assert len(bucket.reads) >= 12


def corrupt(bucket: Bucket, manifest: Manifest, index: int) -> tuple[str, int]:
    placement = list(manifest.placements())[index]
    path = bucket.root / placement.pack
    body = bytearray(path.read_bytes())
    body[placement.pack_offset + 5] ^= 0xFF
    path.write_bytes(bytes(body))
    return placement.pack, placement.pack_offset


def test_a_corrupt_chunk_is_named_and_nothing_is_left(tmp_path, tmp):
    bucket, manifest, _ = built_pair(tmp_path, tmp)
    pack, offset = corrupt(bucket, manifest, 7)
    out = tmp_path / "out"
    with pytest.raises(BadChunkError) as err:
        rebuild(manifest, bucket.read_range, out, workers=2)
    assert not out.exists()
    assert (err.value.pack, err.value.offset) == (pack, offset)
    assert err.value.chunk == manifest.chunks[7].digest.hex()
    assert pack in str(err.value) and "\n" not in str(err.value)
    assert bucket.reads[-1] == (pack, offset, manifest.chunks[7].length)  # fetched again alone


def test_a_chunk_bad_once_is_fetched_again_alone(tmp_path, tmp):
    bucket, manifest, data = built_pair(tmp_path, tmp)
    flaky = {"left": 1}

    def read_range(pack, offset, length):
        body = bytearray(bucket.read_range(pack, offset, length))
        if flaky["left"] and length > 1000:
            flaky["left"] -= 1
            body[1000] ^= 1
        return body

    rebuild(manifest, read_range, tmp_path / "out", workers=1)
    assert (tmp_path / "out").read_bytes() == data
    assert any(n == manifest.chunks[0].length for _, _, n in bucket.reads[1:])


def test_a_short_range_is_refused(tmp_path, tmp):
    bucket, manifest, _ = built_pair(tmp_path, tmp)
    with pytest.raises(BadChunkError, match="cut short"):
        rebuild(manifest, lambda p, o, n: bucket.read_range(p, o, n)[: n // 2], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_chunks_that_hash_right_but_are_not_the_object_are_refused(tmp_path, tmp):
    """A manifest naming the wrong chunks (each one fine) fails on the whole file's oid."""
    bucket, manifest, _ = built_pair(tmp_path, tmp)
    lying = manifest._replace(oid="d" * 64)
    with pytest.raises(IntegrityError, match="its manifest is wrong"):
        rebuild(lying, bucket.read_range, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rebuild_memory_stays_far_below_the_object(tmp_path, tmp):
    data = data_of(64 << 20, seed=9)
    path = tmp_path / "f"
    path.write_bytes(data)
    del data
    bucket = Bucket(tmp_path / "bucket")
    tracemalloc.start()
    try:
        manifest, _, _ = push(path, bucket, tmp)
        _, push_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()

        def streamed(pack, offset, length):
            f = open(bucket.root / pack, "rb")  # noqa: SIM115 - closed by rebuild
            f.seek(offset)
            return _Bounded(f, length)

        rebuild(manifest, streamed, tmp_path / "out", workers=4)
        _, rebuild_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert push_peak < 8 << 20, push_peak
    assert rebuild_peak < 8 << 20, rebuild_peak
    assert hashlib.sha256((tmp_path / "out").read_bytes()).hexdigest() == manifest.oid


class _Bounded:
    def __init__(self, f, length):
        self.f, self.left = f, length

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data

    def close(self):
        self.f.close()


def test_a_failed_rebuild_reads_no_more(tmp_path, tmp):
    _, manifest, _ = built_pair(tmp_path, tmp)
    reads = []

    def read_range(pack, offset, length):
        reads.append(offset)
        raise OSError("connection reset")

    with pytest.raises(OSError, match="connection reset"):
        rebuild(manifest, read_range, tmp_path / "out", workers=2, max_request=128 * 1024)
    assert len(plan_requests(manifest, max_request=128 * 1024)) > 10
    assert len(reads) <= 4  # the reads already running, not every one left
    assert not (tmp_path / "out").exists()
