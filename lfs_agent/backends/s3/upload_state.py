"""What a multipart upload leaves behind to be resumed: its id, under a lock per object.

The state of an upload of ``oid`` is ``<state_dir>/s3-upload-<oid>.json`` (the
repository's ``lfs/tmp``, where ``prune`` finds the states of dead uploads), written as
soon as S3 gives the upload its id, before any part is sent, and dropped once the upload
is completed or aborted. It names the bucket, key, size and part size, so that a state
for other bytes or another layout of parts is never used. The parts already sent are
not recorded: S3 lists them (ListParts), and each is kept only when its checksum (or
MD5 ETag) matches the local bytes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["UploadState"]

logger = logging.getLogger(__name__)


class UploadState:
    """The resumable state of one object's multipart upload.

    Args:
        state_dir: Where states are kept; None keeps none (no resuming, no lock).
        oid: The object uploaded.
        fields: What the upload is (bucket, key, size, part size): a state saved with
            other fields is not this upload's.
    """

    def __init__(self, state_dir: Path | None, oid: str, fields: dict[str, object]) -> None:
        self.oid = oid
        self.path = state_dir / f"s3-upload-{oid}.json" if state_dir else None
        self._fields = fields

    def load(self) -> str | None:
        """The upload id saved for this very upload, or None."""
        if self.path is None or not self.path.exists():
            return None
        try:
            state = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        if any(state.get(k) != v for k, v in self._fields.items()):
            return None
        upload_id = state.get("upload_id")
        return upload_id if isinstance(upload_id, str) else None

    def save(self, upload_id: str) -> None:
        """Remember ``upload_id`` (atomically: a killed write leaves the old state)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_suffix(".tmp")
        temp.write_text(
            json.dumps({**self._fields, "upload_id": upload_id, "started": time.time()})
        )
        os.replace(temp, self.path)

    def drop(self) -> None:
        """Forget the upload (completed or aborted)."""
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    @contextlib.contextmanager
    def locked(self) -> Iterator[bool]:
        """Hold the state alone; yield whether another upload held it first.

        Two pushes from one repository share ``state_dir``: unlocked, both would continue
        the same multipart upload and both complete it, and one of them fail. The lock
        file stays, as the download side's ``<oid>.lock`` does: removing it could let two
        later uploads lock two different files of the same name.
        """
        if self.path is None:
            yield False
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                waited = False
            except BlockingIOError:
                logger.debug("waiting for another upload of %s to end", self.oid)
                fcntl.flock(lock, fcntl.LOCK_EX)
                waited = True
            # Fresh, so that cleaning stale temp files spares it while it is held.
            os.utime(lock.fileno())
            yield waited
