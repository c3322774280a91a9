"""git-lfs's custom transfer protocol: ``lfs-agent transfer``.

Implements git-lfs ``docs/custom-transfers.md`` in standalone mode (no LFS server; the
``action`` of each request is null). git-lfs starts the agent, sends one JSON object per
line on stdin and reads exactly one line per expected reply on stdout:

* ``init`` → ``{}``, or ``{"error": {"code", "message"}}``;
* ``upload``/``download`` → zero or more ``progress`` events, then one ``complete``
  (with ``path`` for downloads, or with ``error`` when that object failed);
* ``terminate`` (or EOF) → exit 0, no reply.

Requests are strictly serial within one process; git-lfs runs several processes for
parallelism. Stdout carries protocol lines only; diagnostics go to stderr via logging,
which git-lfs shows under ``GIT_TRACE=1``. A malformed request never ends the process:
a per-object error is sent when the oid is known, a top-level error otherwise.

Downloads are written to a temp file in the repository's ``lfs/tmp`` (same file system
as ``lfs/objects``, so git-lfs's rename works) and verified against size and sha256
before they are reported, so git-lfs never receives bytes that do not match.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lfs_agent.cancel import Cancelled
from lfs_agent.errors import IntegrityError, LfsAgentError, ProtocolError, agent_error
from lfs_agent.log import get_logger
from lfs_agent.pointer import Pointer, is_valid_oid
from lfs_agent.progress import ThrottledProgress
from lfs_agent.remote import Remote
from lfs_agent.store import ObjectStore

if TYPE_CHECKING:
    from pydantic import BaseModel

    from lfs_agent.registry import PushRecorder
    from lfs_agent.transfer_messages import TransferRequest

__all__ = ["InitRequest", "TransferAgent"]

logger = get_logger(__name__)

#: Event names of the protocol.
EVENT_INIT = "init"
EVENT_UPLOAD = "upload"
EVENT_DOWNLOAD = "download"
EVENT_TERMINATE = "terminate"
EVENT_PROGRESS = "progress"
EVENT_COMPLETE = "complete"
#: Error code for requests we cannot parse or accept (git-lfs shows it as ``[32]``).
CODE_BAD_REQUEST = 32
#: Error code for failures we did not classify.
CODE_INTERNAL = 1
# Requests are logged at debug level, truncated to this many characters.
_LOG_CHARS = 300


@dataclass(frozen=True)
class InitRequest:
    """``{"event":"init","operation":...,"remote":...,"concurrent":...,...}``.

    A dataclass, not a pydantic model like the other messages: it is parsed before the
    reply git-lfs waits for, and pydantic is imported only once an object arrives.
    """

    operation: Literal["upload", "download"]
    remote: str = ""
    concurrent: bool = True
    concurrenttransfers: int = 8

    @classmethod
    def parse(cls, message: dict[str, Any]) -> InitRequest:
        """Check the fields we use (unknown ones are ignored).

        Raises:
            ProtocolError: naming each bad field.
        """
        problems = []
        operation = message.get("operation")
        if operation not in (EVENT_UPLOAD, EVENT_DOWNLOAD):
            problems.append(f"operation: expected 'upload' or 'download', got {operation!r}")
        remote = message.get("remote", "")
        if not isinstance(remote, str):
            problems.append(f"remote: expected a string, got {remote!r}")
        concurrent = message.get("concurrent", True)
        if not isinstance(concurrent, bool):
            problems.append(f"concurrent: expected true or false, got {concurrent!r}")
        transfers = message.get("concurrenttransfers", 8)
        if not isinstance(transfers, int) or isinstance(transfers, bool):
            problems.append(f"concurrenttransfers: expected an integer, got {transfers!r}")
        if problems:
            raise ProtocolError("; ".join(problems))
        return cls(operation, remote, concurrent, transfers)  # type: ignore[arg-type]


class TransferAgent:
    """Serves one git-lfs worker's requests until ``terminate`` or EOF.

    Args:
        read_line: Returns the next line from git-lfs, ``""`` at EOF.
        write_line: Sends one protocol line (without newline) and flushes it.
        open_session: Called once at ``init``: returns the repository's object store
            (its ``tmp`` receives downloads) and the configured remote. A
            :class:`LfsAgentError` raised there becomes the init error reply.
        recorder_for: Called at an upload session's ``init`` with the remote and the
            git remote's name: the push's record in a bucket that can be garbage
            collected (:class:`lfs_agent.registry.PushRecorder`), or None.
    """

    def __init__(
        self,
        read_line: Callable[[], str],
        write_line: Callable[[str], None],
        open_session: Callable[[], tuple[ObjectStore, Remote]],
        recorder_for: Callable[[Remote, str], PushRecorder | None] | None = None,
    ) -> None:
        self._read_line = read_line
        self._write_line = write_line
        self._open_session = open_session
        self._recorder_for = recorder_for
        # The upload session's record, published when git-lfs ends the session.
        self.recorder: PushRecorder | None = None
        # Set at init: the store receiving downloads, and the remote reused by every
        # request of this process (one client, one connection pool).
        self.store: ObjectStore | None = None
        self.remote: Remote | None = None
        # "upload" or "download", fixed by init; requests of the other kind are refused.
        self.operation: str | None = None
        # Closes the remote of the session (at the end of serve, or at a new init).
        self._session_remote = contextlib.ExitStack()

    def send(self, message: BaseModel | dict[str, Any]) -> None:
        """Write one JSON line (only the fields that are set)."""
        data = message if isinstance(message, dict) else message.model_dump(exclude_none=True)
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            # git-lfs prints the message as it is: no credential, no control character.
            from lfs_agent.redact import redact_text
            from lfs_agent.termtext import printable

            data = {**data, "error": {**error, "message": printable(redact_text(error["message"]))}}
        line = json.dumps(data, separators=(",", ":"))
        logger.debug("agent> %s", line[:_LOG_CHARS])
        self._write_line(line)

    def serve(self) -> None:
        """Answer requests until ``terminate`` or end of input."""
        with self._session_remote:
            while line := self._read_line():
                if not line.strip():
                    continue
                logger.debug("agent< %s", line.rstrip("\n")[:_LOG_CHARS])
                try:
                    if self.handle(line) == EVENT_TERMINATE:
                        break
                except Cancelled:
                    # Nobody reads our replies any more; what a backend keeps to resume
                    # (S3's multipart state, a partial download) stays for the next run.
                    logger.info("git-lfs closed its end of the protocol: stopping")
                    return
            self._publish()

    def _publish(self) -> None:
        """Publish the upload session's record, before git-lfs lets git push the refs."""
        if self.recorder is None:
            return
        try:
            self.recorder.publish()
        except LfsAgentError as exc:
            logger.error("the push's record for garbage collection was not written: %s", exc)

    def handle(self, line: str) -> str | None:
        """Handle one request line; return its event name when it had one."""
        try:
            message = json.loads(line)
        except json.JSONDecodeError as exc:
            self._top_level_error(f"invalid JSON request: {exc.msg} at column {exc.colno}")
            return None
        if not isinstance(message, dict):
            self._top_level_error("invalid request: expected a JSON object")
            return None
        event = message.get("event")
        if event == EVENT_TERMINATE:
            return EVENT_TERMINATE
        if event == EVENT_INIT:
            self._init(message)
        elif event in (EVENT_UPLOAD, EVENT_DOWNLOAD):
            self._transfer(message)
        else:
            self._reject(message, f"unknown event {event!r}")
        return event if isinstance(event, str) else None

    def _top_level_error(self, text: str) -> None:
        logger.error("%s", text)
        self.send({"error": {"code": CODE_BAD_REQUEST, "message": text}})

    def _reject(self, message: dict[str, Any], text: str) -> None:
        """Refuse a request: per object when its oid is usable, top-level otherwise."""
        from lfs_agent.transfer_messages import CompleteEvent, ErrorInfo

        oid = message.get("oid")
        if isinstance(oid, str) and is_valid_oid(oid):
            logger.error("%s: %s", oid, text)
            self.send(CompleteEvent(oid=oid, error=ErrorInfo(code=CODE_BAD_REQUEST, message=text)))
        else:
            self._top_level_error(text)

    def _init(self, message: dict[str, Any]) -> None:
        try:
            init = InitRequest.parse(message)
        except ProtocolError as exc:
            self._top_level_error(f"invalid init request: {exc}")
            return
        try:
            store, remote = self._open_session()
        except LfsAgentError as exc:
            logger.error("init failed: %s", exc)
            self.send({"error": {"code": exc.code, "message": str(exc)}})
            return
        self._session_remote.close()  # an earlier init's remote
        self._session_remote.enter_context(remote)
        self.store, self.remote, self.operation = store, remote, init.operation
        self._publish()  # an earlier session's record
        self.recorder = None
        if init.operation == EVENT_UPLOAD and self._recorder_for is not None:
            try:
                self.recorder = self._recorder_for(remote, init.remote)
            except LfsAgentError as exc:
                logger.error("init failed: %s", exc)
                self.send({"error": {"code": exc.code, "message": str(exc)}})
                return
        logger.debug("init: %s via %s (git remote %r)", init.operation, remote.url, init.remote)
        self.send({})

    def _transfer(self, message: dict[str, Any]) -> None:
        from lfs_agent.transfer_messages import (
            CompleteEvent,
            ErrorInfo,
            ProgressEvent,
            TransferRequest,
            ValidationError,
            error_info,
            validation_message,
        )

        try:
            request = TransferRequest.model_validate(message)
        except ValidationError as exc:
            self._reject(
                message, f"invalid {message.get('event')} request: {validation_message(exc)}"
            )
            return
        if self.store is None or self.remote is None or self.operation is None:
            self._reject(message, f"{request.event} request before init")
            return
        if request.event != self.operation:
            self._reject(message, f"{request.event} request in a {self.operation} session")
            return

        def report(so_far: int, since: int) -> None:
            try:
                self.send(ProgressEvent(oid=request.oid, bytesSoFar=so_far, bytesSinceLast=since))
            except OSError:  # git-lfs is gone (Ctrl-C, or killed): stop at this chunk
                raise Cancelled from None

        progress = ThrottledProgress(report)
        try:
            if request.event == EVENT_UPLOAD:
                uploaded = self._upload(request, self.store, self.remote, progress)
                if self.recorder is not None:
                    self.recorder.add([request.oid])
                    if not uploaded:
                        # Reused, so possibly old: recorded before git-lfs hears it is
                        # done, so that a failure to record fails this object. (What
                        # was uploaded is new: the grace period covers it until the
                        # record written when the session ends.)
                        self.recorder.reused([request.oid])
                        self.recorder.publish()
                done = CompleteEvent(oid=request.oid)
            else:
                path = self._download(request, self.store, self.remote, progress)
                done = CompleteEvent(oid=request.oid, path=str(path))
        except (LfsAgentError, OSError) as exc:  # OSError: this machine's, a full disk
            failure = agent_error(exc)
            logger.error("%s %s failed: %s", request.event, request.oid, failure)
            progress.flush()
            self.send(CompleteEvent(oid=request.oid, error=error_info(failure)))
            return
        except Exception as exc:  # the request-loop boundary: keep serving
            logger.exception("%s %s failed", request.event, request.oid)
            progress.flush()
            error = ErrorInfo(code=CODE_INTERNAL, message=f"{type(exc).__name__}: {exc}")
            self.send(CompleteEvent(oid=request.oid, error=error))
            return
        progress.flush()
        self.send(done)

    @staticmethod
    def _upload(
        request: TransferRequest, store: ObjectStore, remote: Remote, progress: ThrottledProgress
    ) -> bool:
        """Send the object unless the bucket has it; return whether it was sent."""
        if not request.path:
            raise ProtocolError(f"upload of {request.oid} names no path")
        source = Path(request.path)
        try:
            actual = source.stat().st_size
        except OSError as exc:
            raise ProtocolError(
                f"upload of {request.oid}: cannot read {request.path}: {exc.strerror}"
            ) from None
        if not source.is_file() or actual != request.size:
            raise IntegrityError(
                f"upload of {request.oid}: {request.path} has {actual} bytes, "
                f"expected {request.size}"
            )
        # git-lfs names its store's file, which is ours: the record of our check holds.
        checked = store.is_checked(Pointer(request.oid, request.size), source)
        if not remote.upload_file(request.oid, source, request.size, progress, checked=checked):
            progress(request.size)  # the bucket already has it: report it as done
            return False
        return True

    @staticmethod
    def _download(
        request: TransferRequest, store: ObjectStore, remote: Remote, progress: ThrottledProgress
    ) -> Path:
        # The verified file stays in lfs/tmp for git-lfs to rename into its store.
        with remote.download_to_temp(store, Pointer(request.oid, request.size), progress) as path:
            return path
