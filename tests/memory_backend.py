"""A backend holding objects and records in dicts: the reference for unit tests.

It implements :class:`lfs_agent.backends.Backend` as plainly as it can be, so that a
test of what sits above a backend (the transfer queue, the transfer agent, the filter)
sees only that layer's behaviour. Tests set up what the remote holds through
:attr:`MemoryBackend.objects` (wrong bytes under an oid make a corrupt object), make
requests for an oid fail through :attr:`MemoryBackend.errors`, and read back the
requests made in :attr:`MemoryBackend.calls`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lfs_agent.backends import Backend, Capability, check_source
from lfs_agent.errors import LfsAgentError, ObjectNotFoundError
from lfs_agent.pointer import Pointer
from lfs_agent.progress import Progress


class MemoryBackend:
    """A remote in memory.

    Args:
        url: The remote's URL, for messages.
        max_workers: Parallel transfers beyond which it gets no faster (None: no bound).
    """

    def __init__(self, url: str = "memory://bucket", max_workers: int | None = None) -> None:
        self.url = url
        self.max_workers = max_workers
        # It answers many stats at once (stat_many) and keeps records (put_meta...).
        self.capabilities = frozenset({Capability.LISTING, Capability.RECORDS})
        # oid -> the bytes the remote holds for it (not necessarily that object's).
        self.objects: dict[str, bytes] = {}
        # Record key -> its bytes (put_meta, get_meta, list_meta).
        self.meta: dict[str, bytes] = {}
        # oid -> the error every request for it raises, as a failing remote would.
        self.errors: dict[str, LfsAgentError] = {}
        # (method, oid) of every request, in the order they came, from any thread.
        self.calls: list[tuple[str, str]] = []
        self.closed = False
        self._lock = threading.Lock()

    def _request(self, method: str, oid: str) -> None:
        with self._lock:
            self.calls.append((method, oid))
        if oid in self.errors:
            raise self.errors[oid]

    def calls_of(self, method: str) -> list[str]:
        """The oids ``method`` was called for, in order."""
        with self._lock:
            return [oid for name, oid in self.calls if name == method]

    def stat(self, oid: str) -> int | None:
        """The size of what the remote holds for ``oid``, or None."""
        self._request("stat", oid)
        data = self.objects.get(oid)
        return None if data is None else len(data)

    def stat_many(self, oids: Sequence[str]) -> dict[str, int | None]:
        """Nothing: a stat costs no more than a listing here."""
        return {}

    def upload(
        self, oid: str, src_path: Path, size: int, progress: Progress, checked: bool = False
    ) -> None:
        """Keep the file's bytes, once they are checked to be ``oid``'s."""
        self._request("upload", oid)
        check_source(oid, src_path, size, checked)
        data = src_path.read_bytes()
        self.objects[oid] = data
        progress(len(data))

    def download(self, oid: str, dest_path: Path, size: int, progress: Progress) -> Pointer | None:
        """Write what the remote holds for ``oid``; its hash, taken as it was written."""
        self._request("download", oid)
        data = self.objects.get(oid)
        if data is None:
            raise ObjectNotFoundError(f"object {oid} is not on remote {self.url}")
        dest_path.write_bytes(data)
        progress(len(data))
        return Pointer(hashlib.sha256(data).hexdigest(), len(data))

    def put_meta(self, key: str, data: bytes) -> None:
        """Keep a record."""
        self.meta[key] = data

    def get_meta(self, key: str) -> bytes | None:
        """A record, or None."""
        return self.meta.get(key)

    def list_meta(self, prefix: str) -> list[str]:
        """The keys of records under ``prefix``, sorted."""
        return sorted(key for key in self.meta if key.startswith(prefix))

    def close(self) -> None:
        """Note that the backend was closed."""
        self.closed = True

    def opener(self) -> Callable[[str, Mapping[str, str], Path | None], Backend]:
        """An ``opener`` for :class:`lfs_agent.remote.Remote` that opens this backend."""
        return lambda url, options, state_dir: self
