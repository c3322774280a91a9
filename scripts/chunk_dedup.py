"""Chunk-level dedup on synthetic version pairs: bytes a second version sends, and speed.

Each case writes a first version, stores it as packs in a folder "bucket" (as a push of
a chunked object would), then a second version planned against the first one's manifest,
and prints the bytes the second version sends as a share of its size, against the goal.
A last table gives chunking and hashing throughput next to plain sha256 of the same file,
and the rebuild of one second version from its packs. Run through ``scripts/chunk-dedup``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from lfs_agent.chunking import Manifest, chunk_file, encode_manifest
from lfs_agent.packs import plan_dedup, rebuild, write_packs

MIB = 1024 * 1024


class Pushed(NamedTuple):
    manifest: Manifest
    manifest_bytes: int
    new_bytes: int
    pack_bytes: int
    packs: int


class Bucket:
    """A folder of packs, as a folder remote would hold them."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp
        root.mkdir()
        tmp.mkdir()

    def push(self, path: Path, previous: Manifest | None) -> Pushed:
        chunked = chunk_file(path, whole=True)
        assert chunked.sha256 is not None
        known = previous.locations() if previous is not None else {}
        plan = plan_dedup(chunked.chunks, known)
        result = write_packs(path, chunked.chunks, plan, self.tmp)
        pack_bytes = 0
        for pack in result.packs:
            pack_bytes += pack.size
            pack.path.rename(self.root / pack.name)
        manifest = Manifest(chunked.sha256, chunked.size, tuple(chunked.chunks), tuple(result.runs))
        return Pushed(
            manifest,
            len(encode_manifest(manifest)),
            result.new_bytes,
            pack_bytes,
            len(result.packs),
        )

    def read_range(self, pack: str, offset: int, length: int) -> bytes:
        with open(self.root / pack, "rb", buffering=0) as f:
            return os.pread(f.fileno(), length, offset)


# --- synthetic files ---------------------------------------------------------------------


class Tensor(NamedTuple):
    name: str
    size: int


def model_layout(total: int) -> list[Tensor]:
    """A Llama-like float32 model: per layer q, k, v, o and two MLP matrices."""
    layers = 32
    unit = total // layers // 8
    tensors = []
    for layer in range(layers):
        for name, units in (("q", 1), ("k", 1), ("v", 1), ("o", 1), ("up", 2), ("down", 2)):
            tensors.append(Tensor(f"layers.{layer}.{name}", units * unit))
    return tensors


def write_model(
    path: Path,
    tensors: list[Tensor],
    seed: int,
    changed: Callable[[str], bool] = lambda name: False,
    metadata: dict[str, str] | None = None,
) -> None:
    """A safetensors-like file: 8-byte header length, JSON header, then the tensors.

    Tensors ``changed`` names get other values (a merged adapter, a fine-tune); the rest
    are the same bytes for the same ``seed``.
    """
    header: dict[str, object] = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    for tensor in tensors:
        shape = [tensor.size // 4]
        header[tensor.name] = {
            "dtype": "F32",
            "shape": shape,
            "data_offsets": [offset, offset + tensor.size],
        }
        offset += tensor.size
    blob = json.dumps(header, separators=(",", ":")).encode()
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(blob)) + blob)
        base = random.Random(seed)
        other = random.Random(seed + 1000)
        for tensor in tensors:
            same = base.randbytes(tensor.size)  # drawn either way: later tensors stay equal
            out.write(other.randbytes(tensor.size) if changed(tensor.name) else same)


def csv_rows(count: int, seed: int, start: int = 0) -> list[str]:
    rng = random.Random(seed)
    carriers = ["UA", "AA", "B6", "DL", "EV", "MQ", "US", "WN", "VX", "FL"]
    airports = ["EWR", "LGA", "JFK", "IAH", "MIA", "ATL", "ORD", "FLL", "IAD", "MCO", "SFO"]
    rows = []
    for i in range(start, start + count):
        day = i // 1000
        rows.append(
            f"{i},2013-{1 + day // 28 % 12:02d}-{1 + day % 28:02d},{rng.choice(carriers)},"
            f"{rng.randrange(1, 6000)},{rng.choice(airports)},{rng.choice(airports)},"
            f"{rng.randrange(-30, 300)},{rng.randrange(-60, 400)},{rng.randrange(80, 4983)}\n"
        )
    return rows


def write_csv(path: Path, rows: list[str]) -> None:
    with open(path, "w") as out:
        out.write("id,date,carrier,flight,origin,dest,dep_delay,arr_delay,distance\n")
        out.writelines(rows)


# --- the run -----------------------------------------------------------------------------


class Case(NamedTuple):
    name: str
    goal: str
    ok: bool
    size: int
    new_bytes: int
    manifest_bytes: int
    runs: int
    packs: int


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.2f}%"


def throughput(path: Path) -> list[tuple[str, float]]:
    size = path.stat().st_size

    def plain() -> None:
        digest = hashlib.sha256()
        with open(path, "rb", buffering=0) as f:
            while block := f.read(MIB):
                digest.update(block)

    measures: list[tuple[str, Callable[[], object]]] = [
        ("plain sha256 of the file (1 MiB reads)", plain),
        ("chunks + sha256 per chunk, 1 thread", lambda: chunk_file(path, threads=1)),
        ("chunks + sha256 per chunk, 2 threads", lambda: chunk_file(path, threads=2)),
        ("same + whole-file sha256, 1 thread", lambda: chunk_file(path, threads=1, whole=True)),
        ("same + whole-file sha256, 2 threads", lambda: chunk_file(path, threads=2, whole=True)),
    ]
    out = []
    for label, run in measures:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
        out.append((label, size / best / 1e6))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-mib", type=int, default=256, help="model size (MiB)")
    parser.add_argument("--csv-mib", type=int, default=64, help="CSV size, about (MiB)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="chunk-dedup-"))
    cases: list[Case] = []
    try:
        started = time.perf_counter()
        bucket = Bucket(work / "bucket", work / "tmp")
        tensors = model_layout(args.model_mib * MIB)

        def case(name: str, goal: str, limit: float, path: Path, base: Manifest) -> Pushed:
            pushed = bucket.push(path, base)
            size = pushed.manifest.size
            ok = pushed.new_bytes <= limit * size
            cases.append(
                Case(
                    name,
                    goal,
                    ok,
                    size,
                    pushed.new_bytes,
                    pushed.manifest_bytes,
                    len(pushed.manifest.runs),
                    pushed.packs,
                )
            )
            return pushed

        model = work / "model-v1.safetensors"
        write_model(model, tensors, seed=1)
        v1 = bucket.push(model, None)
        first = Case(
            "model v1 (stored whole as packs)",
            "",
            True,
            v1.manifest.size,
            v1.new_bytes,
            v1.manifest_bytes,
            len(v1.manifest.runs),
            v1.packs,
        )
        cases.append(first)

        # q and v are a quarter of a layer: 13 layers of 32, spread out, are 10%
        merged = {f"layers.{i * 32 // 13}.{n}" for i in range(13) for n in ("q", "v")}
        lora = work / "model-lora.safetensors"
        write_model(lora, tensors, seed=1, changed=merged.__contains__)
        lora_share = sum(t.size for t in tensors if t.name in merged) / v1.manifest.size
        lora_pushed = case(
            f"LoRA merged into q,v ({100 * lora_share:.1f}% of the bytes)",
            "<= 12%",
            0.12,
            lora,
            v1.manifest,
        )
        header = work / "model-header.safetensors"
        write_model(header, tensors, seed=1, metadata={"format": "pt", "note": "x" * 56})
        case("header +62 B, every offset shifted", "<= 1%", 0.01, header, v1.manifest)

        tuned = work / "model-tuned.safetensors"
        write_model(tuned, tensors, seed=1, changed=lambda name: True)
        full = bucket.push(tuned, v1.manifest)
        stored = full.pack_bytes + full.manifest_bytes
        cases.append(
            Case(
                "full fine-tune: packs + manifest",
                "<= 1.01x object",
                stored <= 1.01 * full.manifest.size,
                full.manifest.size,
                stored,
                full.manifest_bytes,
                len(full.manifest.runs),
                full.packs,
            )
        )

        row_count = args.csv_mib * MIB // 44  # rows of about 44 bytes
        rows = csv_rows(row_count, seed=2)
        csv_v1 = work / "flights-v1.csv"
        write_csv(csv_v1, rows)
        csv_base = bucket.push(csv_v1, None).manifest
        appended = work / "flights-append.csv"
        write_csv(appended, rows + csv_rows(row_count // 20, seed=3, start=row_count))
        case("CSV +5% rows appended", "<= 7%", 0.07, appended, csv_base)
        block = row_count // 100
        middle = row_count // 2
        edited = work / "flights-block.csv"
        write_csv(
            edited,
            rows[:middle] + csv_rows(block, seed=4, start=middle) + rows[middle + block :],
        )
        case("CSV 1% of rows edited, one block", "<= 3%", 0.03, edited, csv_base)
        build_seconds = time.perf_counter() - started

        print(f"{'case':44} {'size':>9} {'sent':>8} {'manifest':>9} {'runs':>5} {'packs':>5}  goal")
        for c in cases:
            mark = "" if not c.goal else ("ok" if c.ok else "MISSED")
            print(
                f"{c.name:44} {c.size / MIB:7.1f}Mi {pct(c.new_bytes, c.size):>8} "
                f"{pct(c.manifest_bytes, c.size):>9} {c.runs:5} {c.packs:5}  {c.goal} {mark}"
            )
        print(f"(all cases: {build_seconds:.1f} s)")
        print()
        print(f"throughput on the {args.model_mib} MiB model file (best of 3, MB/s):")
        for label, rate in throughput(model):
            print(f"  {label:44} {rate:8.0f}")
        start = time.perf_counter()
        with open(lora, "rb", buffering=0) as src, open(work / "copied", "wb") as dst:
            while block := src.read(MIB):
                dst.write(block)
        seconds = time.perf_counter() - start
        rate = lora_pushed.manifest.size / seconds / 1e6
        print(f"  {'plain copy of the LoRA version':44} {rate:8.0f}")
        start = time.perf_counter()
        rebuild(lora_pushed.manifest, bucket.read_range, work / "rebuilt")
        seconds = time.perf_counter() - start
        print(
            f"  {'rebuild of the LoRA version from packs':44} "
            f"{lora_pushed.manifest.size / seconds / 1e6:8.0f}"
            f"   ({len(lora_pushed.manifest.runs)} runs, every chunk and the oid checked)"
        )
        load = os.getloadavg()[0]
        print(f"(load average {load:.1f} on {os.cpu_count()} cores: threads pay only on idle ones)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    missed = [c.name for c in cases if not c.ok]
    if missed:
        print(f"goals missed: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
