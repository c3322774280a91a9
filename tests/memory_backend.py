"""A backend holding objects and records in dicts: the reference for unit tests.

It implements :class:`lfs_agent.backends.Backend` as plainly as it can be, so that a
test of what sits above a backend (the transfer queue, the transfer agent, the filter)
sees only that layer's behaviour. Tests set up what the remote holds through
:attr:`MemoryBackend.objects` (wrong bytes under an oid make a corrupt object), make
requests for an oid fail through :attr:`MemoryBackend.errors`, and read back the
requests made in :attr:`MemoryBackend.calls`.

For garbage collection (:class:`lfs_agent.backends.CollectingBackend`) every write
through its methods stamps the key with the time and a new tag; bytes a test puts in the
dicts directly are stamped when first seen. ``versioned=True`` keeps deleted bytes for
:meth:`MemoryBackend.undelete`.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from lfs_agent.backends import (
    Backend,
    Capability,
    Deleted,
    Entry,
    check_meta_key,
    check_source,
    collect_key,
    collect_prefix,
    object_key,
)
from lfs_agent.errors import LfsAgentError, ObjectNotFoundError
from lfs_agent.pointer import Pointer
from lfs_agent.progress import Progress


class MemoryBackend:
    """A remote in memory.

    Args:
        url: The remote's URL, for messages.
        max_workers: Parallel transfers beyond which it gets no faster (None: no bound).
        versioned: Deleted keys stay recoverable (:meth:`undelete`).
    """

    def __init__(
        self,
        url: str = "memory://bucket",
        max_workers: int | None = None,
        versioned: bool = False,
    ) -> None:
        self.url = url
        self.max_workers = max_workers
        # It answers many stats at once (stat_many), keeps records (put_meta...) and can
        # be collected (list_entries...).
        self.capabilities = frozenset({Capability.LISTING, Capability.RECORDS, Capability.COLLECT})
        # oid -> the bytes the remote holds for it (not necessarily that object's).
        self.objects: dict[str, bytes] = {}
        # Record key -> its bytes (put_meta, get_meta, list_meta).
        self.meta: dict[str, bytes] = {}
        # oid -> the error every request for it raises, as a failing remote would.
        self.errors: dict[str, LfsAgentError] = {}
        # (method, oid) of every request, in the order they came, from any thread.
        self.calls: list[tuple[str, str]] = []
        self.closed = False
        # Key -> (when it was written, its tag); see the module docstring.
        self.stamps: dict[str, tuple[float, str]] = {}
        # Version -> (key, bytes) of deleted keys, on a versioned backend.
        self.deleted: dict[str, tuple[str, bytes]] = {}
        self._versioned = versioned
        self._tags = itertools.count(1)
        self._lock = threading.RLock()

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
        with self._lock:
            self.objects[oid] = data
            self._stamp(object_key(oid))
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
        with self._lock:
            self.meta[key] = data
            self._stamp(key)

    def get_meta(self, key: str) -> bytes | None:
        """A record, or None."""
        return self.meta.get(key)

    def list_meta(self, prefix: str) -> list[str]:
        """The keys of records under ``prefix``, sorted."""
        return sorted(key for key in self.meta if key.startswith(prefix))

    def _stamp(self, key: str) -> tuple[float, str]:
        self.stamps[key] = (time.time(), str(next(self._tags)))
        return self.stamps[key]

    def _where(self, key: str) -> tuple[dict[str, bytes], str]:
        """The dict that holds ``key`` and the key in it."""
        if key.startswith("objects/"):
            return self.objects, key.rpartition("/")[2]
        return self.meta, key

    def _keys(self) -> list[str]:
        return [*(object_key(oid) for oid in self.objects), *self.meta]

    def _entry(self, key: str) -> Entry | None:
        held, name = self._where(key)
        data = held.get(name)
        if data is None:
            return None
        modified, tag = self.stamps.get(key) or self._stamp(key)
        return Entry(key, len(data), modified, tag)

    def list_entries(self, prefix: str) -> Iterator[Entry]:
        """The keys under ``prefix``, as they were when the listing began."""
        base = collect_prefix(prefix, self.url)
        with self._lock:
            entries = [self._entry(k) for k in self._keys() if k.startswith(base)]
        yield from (e for e in entries if e is not None)

    def stat_entry(self, key: str) -> Entry | None:
        """The key now, or None."""
        with self._lock:
            return self._entry(collect_key(key, self.url))

    def create_meta(self, key: str, data: bytes) -> Entry | None:
        """Keep a record unless one is there; None then."""
        check_meta_key(key)
        with self._lock:
            if key in self.meta:
                return None
            self.put_meta(key, data)
            return self._entry(key)

    def delete_entries(self, entries: Sequence[Entry]) -> list[Deleted]:
        """Delete each key whose tag is still the entry's."""
        if len(entries) > 1000:
            raise ValueError(f"at most 1000 keys per delete, not {len(entries)}")
        for entry in entries:
            collect_key(entry.key, self.url)
        done = []
        with self._lock:
            for entry in entries:
                current = self._entry(entry.key)
                if current is None or current.tag != entry.tag:
                    continue
                held, name = self._where(entry.key)
                data = held.pop(name)
                del self.stamps[entry.key]
                version = ""
                if self._versioned:
                    version = f"v{next(self._tags)}"
                    self.deleted[version] = (entry.key, data)
                done.append(Deleted(entry.key, version))
        return done

    def versioned(self) -> bool:
        """As constructed."""
        return self._versioned

    def undelete(self, deleted: Deleted) -> bool:
        """Put the deleted bytes back, unless the key was written again since."""
        with self._lock:
            kept = self.deleted.pop(deleted.version, None)
            if kept is None or kept[0] != deleted.key:
                return False
            held, name = self._where(deleted.key)
            if name not in held:
                held[name] = kept[1]
                self._stamp(deleted.key)
            return True

    def close(self) -> None:
        """Note that the backend was closed."""
        self.closed = True

    def opener(self) -> Callable[[str, Mapping[str, str], Path | None], Backend]:
        """An ``opener`` for :class:`lfs_agent.remote.Remote` that opens this backend."""
        return lambda url, options, state_dir: self
