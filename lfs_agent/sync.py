"""Moving objects between the local store and a remote, verified and in parallel.

The backend only moves bytes. This layer decides what to move (skip what is already
there, dedupe, largest first), verifies every download against its size and sha256
before the store takes it, and runs transfers on a bounded thread pool.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from lfs_agent.backends import Backend, open_backend
from lfs_agent.errors import LfsAgentError
from lfs_agent.pointer import Pointer
from lfs_agent.progress import NULL_PROGRESS, Progress
from lfs_agent.store import ObjectStore

__all__ = ["BatchResult", "Remote"]

logger = logging.getLogger(__name__)


@dataclass
class BatchResult:
    """What a push or fetch of many objects did.

    Attributes:
        done: Objects transferred.
        skipped: Objects that needed no transfer (already present).
        failed: oid -> the error that stopped it.
    """

    done: list[Pointer] = field(default_factory=list)
    skipped: list[Pointer] = field(default_factory=list)
    failed: dict[str, LfsAgentError] = field(default_factory=dict)


class Remote:
    """One remote, opened lazily, shared by the threads of one command.

    Args:
        url: Normalized remote URL.
        options: ``lfs-agent.*`` settings passed to the backend.
        opener: Opens the backend; injected by tests.
    """

    def __init__(
        self,
        url: str,
        options: Mapping[str, str] | None = None,
        opener: Callable[[str, Mapping[str, str]], Backend] = open_backend,
    ) -> None:
        self.url = url
        self._options = dict(options or {})
        self._opener = opener
        # The backend client, created on first use and reused (connection pools).
        self._backend: Backend | None = None
        self._lock = threading.Lock()

    @property
    def backend(self) -> Backend:
        """The opened backend (opened on first access)."""
        with self._lock:
            if self._backend is None:
                self._backend = self._opener(self.url, self._options)
            return self._backend

    def close(self) -> None:
        """Close the backend if it was opened."""
        with self._lock:
            if self._backend is not None:
                self._backend.close()
                self._backend = None

    def download(
        self, store: ObjectStore, pointer: Pointer, progress: Progress = NULL_PROGRESS
    ) -> None:
        """Download ``pointer``'s object into ``store``, verified before it lands.

        Raises:
            ObjectNotFoundError: the remote lacks it.
            IntegrityError: the remote's bytes do not match the pointer.
            BackendError: the remote failed.
        """
        if store.contains(pointer):
            return
        temp = store.temp_path(pointer.oid)
        try:
            self.backend.download(pointer.oid, temp, pointer.size, progress)
            store.publish_file(temp, pointer)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def upload(
        self, store: ObjectStore, pointer: Pointer, progress: Progress = NULL_PROGRESS
    ) -> bool:
        """Upload the stored object unless the remote holds it with the right size.

        Returns:
            True when bytes were sent, False when the remote already had the object.
        """
        if pointer.size == 0:
            return False
        if self.backend.stat(pointer.oid) == pointer.size:
            return False
        path = store.object_path(pointer.oid)
        self.backend.upload(pointer.oid, path, pointer.size, progress)
        return True

    def run_batch(
        self,
        pointers: Iterable[Pointer],
        action: Callable[[Pointer], bool],
        concurrency: int,
        on_done: Callable[[Pointer, LfsAgentError | None], None] | None = None,
    ) -> BatchResult:
        """Run ``action`` for each distinct pointer, largest first, on a thread pool.

        Args:
            pointers: May repeat; each oid is handled once.
            action: Returns True when it transferred bytes, False when it skipped.
            concurrency: Worker threads.
            on_done: Called (from a worker thread) after each object.
        """
        unique = {p.oid: p for p in pointers if p.size > 0}
        ordered = sorted(unique.values(), key=lambda p: p.size, reverse=True)
        result = BatchResult()
        if not ordered:
            return result
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = {pool.submit(action, p): p for p in ordered}
            for future in as_completed(futures):
                pointer = futures[future]
                error: LfsAgentError | None = None
                try:
                    moved = future.result()
                except LfsAgentError as exc:
                    error = exc
                    result.failed[pointer.oid] = exc
                else:
                    (result.done if moved else result.skipped).append(pointer)
                if on_done is not None:
                    on_done(pointer, error)
        return result
