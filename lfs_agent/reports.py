"""The documents ``--json`` prints: one pydantic model per command's output.

Scripts read these instead of the text meant for people. ``ls-files`` follows git-lfs's
own ``git lfs ls-files --json`` field for field (``commands/command_ls_files.go``), so a
script written for git-lfs reads ours unchanged; the others are lfs-agent's own.

Imported only when ``--json`` is given: pydantic is too slow to import on every hook
and filter run (start-up is tested).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from lfs_agent.pointer import Pointer
    from lfs_agent.progress import Progress
    from lfs_agent.sync import BatchResult, BatchWatch

__all__ = [
    "FsckReport",
    "LsFilesEntry",
    "LsFilesReport",
    "StatusEntry",
    "StatusReport",
    "TransferFailure",
    "TransferLog",
    "TransferObject",
    "TransferReport",
    "dump_go_json",
]


class _Report(BaseModel):
    """Frozen, and strict about unknown fields: a test parsing our output sees drift."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class LsFilesEntry(_Report):
    """One file, as git-lfs's ``lsFilesObject``.

    Attributes:
        name: Repository-relative path.
        size: Object size in bytes.
        checkout: The work-tree file exists with the object's size (git-lfs's test).
        downloaded: The object is in the local store.
        oid_type: Always ``sha256``.
        oid: The object id.
        version: The pointer's spec URL.
    """

    name: str
    size: int
    checkout: bool
    downloaded: bool
    oid_type: str
    oid: str
    version: str


class LsFilesReport(_Report):
    """``ls-files --json``; ``files`` is null when there are none, as git-lfs prints it."""

    files: list[LsFilesEntry] | None


class StatusEntry(_Report):
    """One LFS file in ``status --json``."""

    name: str
    oid: str
    size: int


class StatusReport(_Report):
    """``status --json``.

    Attributes:
        branch: The checked-out branch; empty on a detached HEAD.
        upstream: The branch's upstream; empty when it has none.
        to_push: Objects in commits the upstream lacks; null without an upstream.
        staged: Pointers staged for commit.
        unstaged: LFS files modified in the work tree and not staged.
    """

    branch: str
    upstream: str
    to_push: list[StatusEntry] | None
    staged: list[StatusEntry]
    unstaged: list[StatusEntry]


class FsckReport(_Report):
    """``fsck --json``: each problem list holds the lines the text output shows.

    Attributes:
        ok: Nothing is wrong (the exit status is 0 exactly then).
        checked: Local objects checked.
        corrupt: Local objects whose content does not hash to their oid.
        missing: Objects HEAD needs that the store lacks.
        non_canonical: Pointers not in git-lfs's canonical form.
        remote: The remote checked with ``--remote``; null without it.
        remote_problems: What the remote check found.
    """

    ok: bool
    checked: int
    corrupt: list[str]
    missing: list[str]
    non_canonical: list[str]
    remote: str | None
    remote_problems: list[str]


class TransferObject(_Report):
    """One object a transfer handled."""

    oid: str
    size: int


class TransferFailure(TransferObject):
    """An object that failed, with the reason the text output gives."""

    reason: str


class TransferReport(_Report):
    """``push``, ``fetch``, ``pull`` and ``clone`` with ``--json``.

    Attributes:
        operation: ``upload`` or ``download``.
        remote: The remote's URL (without credentials); empty when none was needed.
        done: Objects moved.
        skipped: Objects that needed no transfer (already there).
        failed: Objects that failed, each with its reason.
        bytes_moved: Sum of the sizes of ``done``.
        checked_out: Files written to the work tree (pull and clone); null otherwise.
        error: The message of the error that ended the command, null on success; it
            also covers failures of no one object (objects missing locally before a
            push, a remote that cannot be reached).
    """

    operation: str
    remote: str
    done: list[TransferObject]
    skipped: list[TransferObject]
    failed: list[TransferFailure]
    bytes_moved: int
    checked_out: int | None = None
    error: str | None = None


def dump_go_json(report: BaseModel) -> str:
    """``report`` as Go's ``json.Encoder`` with a one-space indent writes it.

    git-lfs prints with ``SetIndent("", " ")`` and Go's default HTML escaping of
    ``<``, ``>`` and ``&``; matching it keeps byte-for-byte parity for scripts that
    compare outputs. Non-ASCII text stays as UTF-8, as Go leaves it.
    """
    text = json.dumps(report.model_dump(mode="json"), indent=1, ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


class TransferLog:
    """A batch watch that notes each object's end for the JSON summary.

    The batch raises on any failure and its result goes with it, so what the document
    says is gathered here as objects end: an object that moved bytes is done, one that
    ended cleanly without moving any was already there.

    Args:
        inner: The watch to pass everything on to (the progress line).
    """

    def __init__(self, inner: BatchWatch) -> None:
        self._inner = inner
        # Workers end objects concurrently.
        self._lock = threading.Lock()
        # oid -> net bytes moved so far, from the progress deltas.
        self._moved: dict[str, int] = {}
        self._done: list[TransferObject] = []
        self._skipped: list[TransferObject] = []
        self._failed: list[TransferFailure] = []

    def progress(self, pointer: Pointer) -> Progress:
        """Count ``pointer``'s bytes, and pass them on."""
        report = self._inner.progress(pointer)

        def counted(delta: int) -> None:
            with self._lock:
                self._moved[pointer.oid] = self._moved.get(pointer.oid, 0) + delta
            report(delta)

        return counted

    def done(self, pointer: Pointer, error: BaseException | None) -> None:
        """``pointer``'s transfer ended: note how, and pass it on."""
        item = TransferObject(oid=pointer.oid, size=pointer.size)
        with self._lock:
            moved = self._moved.pop(pointer.oid, 0)
            if error is not None:
                self._failed.append(TransferFailure(**item.model_dump(), reason=str(error)))
            elif moved > 0 or pointer.size == 0:
                self._done.append(item)
            else:
                self._skipped.append(item)
        self._inner.done(pointer, error)

    def report(
        self,
        operation: str,
        remote: str,
        result: BatchResult | None = None,
        *,
        already: Sequence[Pointer] = (),
        checked_out: int | None = None,
        error: str | None = None,
    ) -> TransferReport:
        """The document: from ``result`` when the batch returned one, else as noted.

        Args:
            operation: ``upload`` or ``download``.
            remote: The remote's URL, without credentials.
            result: The batch's own account, when it did not raise.
            already: Objects left out of the batch because they were present.
            checked_out: Files written to the work tree, for pull and clone.
            error: The message of the error that ended the batch.
        """
        if result is not None:
            done = [TransferObject(oid=p.oid, size=p.size) for p in result.done]
            skipped = [TransferObject(oid=p.oid, size=p.size) for p in result.skipped]
        else:
            done, skipped = list(self._done), list(self._skipped)
        skipped += [TransferObject(oid=p.oid, size=p.size) for p in already]
        return TransferReport(
            operation=operation,
            remote=remote,
            done=done,
            skipped=skipped,
            failed=sorted(self._failed, key=lambda f: f.oid),
            bytes_moved=sum(o.size for o in done),
            checked_out=checked_out,
            error=error,
        )
