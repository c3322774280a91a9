"""Small helpers shared by tests (not fixtures)."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pointer_bytes(data: bytes) -> bytes:
    if not data:
        return b""
    return (
        b"version https://git-lfs.github.com/spec/v1\n"
        + f"oid sha256:{sha256(data)}\nsize {len(data)}\n".encode()
    )


def random_bytes(size: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes."""
    return random.Random(seed).randbytes(size)


def write_random(path: Path, size: int, seed: int = 0) -> str:
    """Write ``size`` deterministic bytes to ``path`` in chunks; return their sha256."""
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        remaining = size
        counter = seed * 1_000_003
        while remaining > 0:
            chunk = hashlib.sha256(counter.to_bytes(8, "big")).digest() * 2048
            chunk = chunk[: min(len(chunk), remaining)]
            f.write(chunk)
            digest.update(chunk)
            remaining -= len(chunk)
            counter += 1
    return digest.hexdigest()


def tree_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777
