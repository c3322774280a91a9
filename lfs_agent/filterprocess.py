"""git's long-running filter process: ``lfs-agent filter-process``.

gitattributes(5) "Long Running Filter Process" and "Delay": a handshake, then one
request after another over pkt-lines until git closes our stdin. Each clean and smudge
is :mod:`lfs_agent.gitfilter`'s; a smudge answers as
:func:`lfs_agent.smudge_decision.decide_smudge` says, delayed when git allows it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from typing import BinaryIO

from lfs_agent.errors import (
    LfsAgentError,
    ObjectNotFoundError,
    ProtocolError,
    agent_error,
)
from lfs_agent.gitfilter import (
    clean,
    no_remote,
    split_pointer,
)
from lfs_agent.hashing import CHUNK_SIZE
from lfs_agent.log import DEBUG, ERROR, get_logger
from lfs_agent.pathmatch import PathFilter
from lfs_agent.pktline import PktLineReader, PktLineWriter
from lfs_agent.pointer import Pointer
from lfs_agent.smudge_decision import (
    Delay,
    ObjectState,
    SmudgeAction,
    SmudgeRules,
    decide_smudge,
)
from lfs_agent.smudge_downloads import DelayedDownloads, ReadingFetch, Unverified
from lfs_agent.store import ObjectStore, corrupt_error

__all__ = ["FilterProcess"]

logger = get_logger(__name__)


#: Handshake lines.
WELCOME_CLIENT = "git-filter-client"
WELCOME_SERVER = "git-filter-server"
VERSION = "version=2"
#: Capabilities we implement, in the order we answer them.
CAPABILITIES = ("clean", "smudge", "delay")
#: Request keys and values.
KEY_COMMAND = "command"
KEY_PATHNAME = "pathname"
KEY_CAN_DELAY = "can-delay"
COMMAND_CLEAN = "clean"
COMMAND_SMUDGE = "smudge"
COMMAND_LIST_AVAILABLE = "list_available_blobs"
#: Response statuses.
STATUS_SUCCESS = "status=success"
STATUS_ERROR = "status=error"
STATUS_DELAYED = "status=delayed"


class FilterProcess:
    """Serves git's long-running filter protocol, version 2.

    Args:
        reader: Packets from git (our stdin).
        writer: Packets to git (our stdout).
        store: The local object store.
        fetch: Downloads a missing object (a :data:`ReadingFetch`); None when no remote
            is set.
        path_filter: Paths whose missing objects may be downloaded (fetch include and
            exclude); others are left as pointers.
        skip_smudge: Leave every pointer as it is (``GIT_LFS_SKIP_SMUDGE``).
        skip_download_errors: When a download fails, log it and leave the pointer in the
            work tree instead of failing the file (git-lfs ``lfs.skipdownloaderrors``).
        concurrency: Parallel downloads for delayed smudges.
        in_background: Whether a missing object is worth a delayed smudge (downloaded
            in the background while git goes on); when it says no, the smudge downloads
            it at once. Default: always delay when git allows it.
        restaged: Files lfs-agent has just written from the store, path -> oid
            (:data:`RESTAGE_ENV`): a clean of one of them must be that object, and is
            only hashed (see :func:`clean`); any other path gets an ordinary clean (git
            may re-clean other files too: a split index, racily clean entries).
        pull_after: Set for ``lfs-agent clone``'s checkout (:data:`PULL_AFTER_ENV`):
            objects over this many bytes are left as pointers, as are those that cannot
            be had (no remote, a failed download; logged at debug level only), for the
            ``pull`` that follows: it writes large files itself, without git holding
            them in memory, and reports what is missing once.
        hook_reports_failures: Whether lfs-agent's post-checkout hook is installed: a
            delayed smudge whose download failed then gets its pointer, and the hook
            fails the command (git itself would end a checkout with status 0).
            Without it, the smudge fails, and git fails the command (a clone's
            checkout) or at worst stops it halfway.
    """

    def __init__(
        self,
        reader: PktLineReader,
        writer: PktLineWriter,
        store: ObjectStore,
        *,
        fetch: ReadingFetch | None = None,
        path_filter: PathFilter | None = None,
        skip_smudge: bool = False,
        skip_download_errors: bool = False,
        concurrency: int = 8,
        in_background: Callable[[Pointer], bool] | None = None,
        restaged: Mapping[str, str] | None = None,
        pull_after: int | None = None,
        hook_reports_failures: Callable[[], bool] = lambda: False,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.store = store
        self.fetch = fetch
        self.path_filter = path_filter or PathFilter()
        self.restaged = dict(restaged or {})
        # What a smudge answers (see decide_smudge). A failed download leaves the
        # pointer (instead of failing the file) when errors are skipped, or when a pull
        # follows, whose to report it is.
        self.rules = SmudgeRules(
            skip=skip_smudge,
            keep_failures=skip_download_errors or pull_after is not None,
            has_remote=fetch is not None,
            leave_larger_than=pull_after,
        )
        self._failure_level = ERROR if pull_after is None else DEBUG
        self.in_background = in_background
        # Whether our post-checkout hook will fail the command for a delayed smudge
        # left as a pointer; asked at the first such failure.
        self._hook_reports = hook_reports_failures
        self._hook_answer: bool | None = None
        # Capabilities agreed in the handshake (a subset of CAPABILITIES).
        self.capabilities: set[str] = set()
        # Background downloads for smudges answered "delayed".
        self.delayed = (
            DelayedDownloads(fetch, concurrency, failure_level=self._failure_level)
            if fetch
            else None
        )
        # Paths whose blob should have been a pointer but was not (reported at exit).
        self.not_pointers: list[str] = []
        # Pointers given to smudge, and those answered with their content (or left as
        # pointers because the fetch patterns exclude them): see smudged_every_pointer.
        self._pointers_given = 0
        self._pointers_settled = 0

    def handshake(self) -> None:
        """Exchange welcome, version and capabilities with git.

        Raises:
            ProtocolError: when git is not speaking version 2 of the filter protocol.
        """
        try:
            welcome = self.reader.read_text_list()
        except EOFError:
            raise ProtocolError("git closed the filter before the handshake") from None
        if not welcome or welcome[0] != WELCOME_CLIENT:
            raise ProtocolError(
                f"bad filter handshake: expected {WELCOME_CLIENT!r}, got {welcome[:1]}"
            )
        if VERSION not in welcome[1:]:
            raise ProtocolError(f"git offers no filter protocol version we speak: {welcome[1:]}")
        self.writer.write_text_list([WELCOME_SERVER, VERSION])
        self.writer.push()
        offered = {
            line.removeprefix("capability=")
            for line in self.reader.read_text_list()
            if line.startswith("capability=")
        }
        self.capabilities = {c for c in CAPABILITIES if c in offered}
        if self.delayed is None:
            self.capabilities.discard("delay")
        self.writer.write_text_list(
            [f"capability={c}" for c in CAPABILITIES if c in self.capabilities]
        )
        self.writer.push()

    @property
    def smudged_every_pointer(self) -> bool:
        """Whether every pointer given to smudge got its content (fetch patterns aside).

        False as soon as one was left a pointer (skipped, too large for ``pull_after``,
        not to be had) or failed, or is still delayed.
        """
        return self._pointers_given == self._pointers_settled

    def serve(self) -> None:
        """Handshake, then answer requests until git closes our input."""
        self.handshake()
        try:
            while True:
                try:
                    request = self._read_request()
                except EOFError:
                    return
                command = request.get(KEY_COMMAND, "")
                if command == COMMAND_CLEAN:
                    self._clean(request)
                elif command == COMMAND_SMUDGE:
                    self._smudge(request)
                elif command == COMMAND_LIST_AVAILABLE:
                    self._list_available()
                else:
                    logger.error("unknown filter command %r", command)
                    self.writer.write_text_list([STATUS_ERROR])
                self.writer.push()  # one write to git per reply
        finally:
            if self.delayed is not None:
                self.delayed.close()
            if self.not_pointers:
                logger.warning(
                    "Encountered %d file(s) that should have been pointers, but weren't:\n\t%s",
                    len(self.not_pointers),
                    "\n\t".join(self.not_pointers),
                )

    def _read_request(self) -> dict[str, str]:
        request: dict[str, str] = {}
        for line in self.reader.read_text_list():
            key, _, value = line.partition("=")
            request.setdefault(key, value)
        return request

    def _clean(self, request: dict[str, str]) -> None:
        path = request.get(KEY_PATHNAME, "")
        content = self.reader.iter_content()
        try:
            result = clean(self.store, content, self.restaged.get(path))
        except ProtocolError:
            raise  # the stream itself is broken: nothing more can be read or answered
        except (LfsAgentError, OSError) as exc:
            for _ in content:  # read the rest: git must not see a reply before the flush
                pass
            logger.error("clean %s failed: %s", path, agent_error(exc))
            self.writer.write_text_list([STATUS_ERROR])
            return
        self._reply(result)

    def _reply(self, data: bytes) -> None:
        self.writer.write_text_list([STATUS_SUCCESS])
        if data:
            self.writer.write_content(data)
        self.writer.write_flush()
        self.writer.write_flush()

    def _smudge(self, request: dict[str, str]) -> None:
        """Answer a smudge as :func:`decide_smudge` says.

        The object is looked up, downloaded (now, or in the background when git allows
        it), or not, as the decision asks; a failed download is decided again.
        """
        path = request.get(KEY_PATHNAME, "")
        content = self.reader.iter_content()
        if self.delayed is not None and KEY_CAN_DELAY not in request:
            taken = self.delayed.take(path)
            if taken is not None:
                for _ in content:  # git sends empty content for a delayed path
                    pass
                self._smudge_delayed(path, *taken)
                return
        head, pointer = split_pointer(content)
        if pointer is not None and pointer.size:
            self._pointers_given += 1
        can_delay = request.get(KEY_CAN_DELAY) == "1" and "delay" in self.capabilities
        delay = Delay.ALLOWED if can_delay else Delay.NO
        excluded = pointer is not None and not self.path_filter.allows(path)
        action = decide_smudge(pointer, self.rules, excluded=excluded, delay=delay)
        if action is SmudgeAction.PASS_THROUGH:
            self._pass_through(path, head, content)
            return
        assert pointer is not None  # every other action is for a pointer
        source: BinaryIO | None = None
        if action is SmudgeAction.LOOK_UP:
            try:
                source = self.store.open(pointer)  # opened once, to be sent
                state = ObjectState.PRESENT
            except ObjectNotFoundError:  # absent, or the wrong size: fetch it
                state = ObjectState.MISSING
            action = decide_smudge(pointer, self.rules, state, excluded=excluded, delay=delay)
        if action is SmudgeAction.DELAY and not self._worth_delaying(pointer):
            action = SmudgeAction.DOWNLOAD
        unverified: Unverified | None = None
        failure: LfsAgentError | None = None
        if action is SmudgeAction.DOWNLOAD:
            assert self.fetch is not None  # downloads are decided only with a remote
            try:
                unverified = self.fetch(pointer)
                action = SmudgeAction.SEND
            except (LfsAgentError, OSError) as exc:  # OSError: this machine's, a full disk
                failure = agent_error(exc)
                action = decide_smudge(
                    pointer, self.rules, ObjectState.FAILED, excluded=excluded, delay=delay
                )
        if action is SmudgeAction.SEND:
            self._send_object(path, pointer, source, unverified)
        elif action is SmudgeAction.EMPTY:
            self._reply(b"")
        elif action in (SmudgeAction.LEAVE_POINTER, SmudgeAction.EXCLUDED):
            self._reply(head)
            if action is SmudgeAction.EXCLUDED:  # as the user asked: settled
                self._pointers_settled += 1
        elif action in (SmudgeAction.DELAY, SmudgeAction.DELAY_FAILED):
            assert self.delayed is not None  # delay is only agreed when fetch is set
            if failure is None:
                self.delayed.add(path, pointer)
            else:  # failed as a delayed download would: git goes on
                self.delayed.add_failed(path, pointer, failure)
            self.writer.write_text_list([STATUS_DELAYED])
        else:  # the object cannot be had, now
            reason = str(failure) if failure is not None else no_remote(pointer)
            logger.log(self._failure_level, "%s: %s", path, reason)
            if action is SmudgeAction.KEEP_FAILED:
                self._reply(head)
            else:
                self.writer.write_text_list([STATUS_ERROR])

    def _smudge_delayed(
        self, path: str, pointer: Pointer, downloaded: bool, unverified: Unverified | None
    ) -> None:
        """Answer git's follow-up smudge of a path answered "delayed" before.

        A failed download was logged when it failed.
        """
        state = ObjectState.PRESENT if downloaded else ObjectState.FAILED
        action = decide_smudge(pointer, self.rules, state, delay=Delay.FOLLOW_UP)
        if action is SmudgeAction.SEND:
            self._send_object(path, pointer, unverified=unverified)
        elif action is SmudgeAction.KEEP_FAILED:
            self._reply(pointer.encode())
        elif action is SmudgeAction.REPORT_FAILED and self._hook_reports_failures():
            assert self.delayed is not None  # a follow-up comes only for a delayed path
            self._record_failure(path, self.delayed.error_of(pointer))
            self._reply(pointer.encode())
        else:  # git fails the command (a clone: "checkout failed")
            self.writer.write_text_list([STATUS_ERROR])

    def _hook_reports_failures(self) -> bool:
        if self._hook_answer is None:
            self._hook_answer = self._hook_reports()
        return self._hook_answer

    def _record_failure(self, path: str, reason: str) -> None:
        """Record a delayed smudge left as a pointer, for the post-checkout hook.

        Written at once: git keeps this process running until it exits itself, after
        the hook has run.
        """
        from lfs_agent import smudge_failures

        try:
            smudge_failures.record(self.store.tmp_dir, {path: reason})
        except OSError as exc:  # the failure itself was logged already
            logger.debug("cannot record the failed smudge of %s: %s", path, exc)

    def _worth_delaying(self, pointer: Pointer) -> bool:
        """Whether to download ``pointer``'s object in the background (see __init__)."""
        if self.in_background is None:
            return True
        try:
            return self.in_background(pointer)
        except LfsAgentError:  # the remote cannot be set up: the download says why
            return True

    def _send_object(
        self,
        path: str,
        pointer: Pointer,
        source: BinaryIO | None = None,
        unverified: Unverified | None = None,
    ) -> None:
        """Reply with the stored object (``source``, when the caller opened it already).

        An ``unverified`` download is sent instead, and checked as it goes.
        """
        if unverified is not None:
            self._send_unverified(path, pointer, unverified)
            return
        if source is None:
            try:
                source = self.store.open(pointer)
            except LfsAgentError as exc:
                logger.error("%s: %s", path, exc)
                self.writer.write_text_list([STATUS_ERROR])
                return
        with source:
            if self._stream(path, pointer, source) is None:
                return
        self._end_content()

    def _stream(
        self,
        path: str,
        pointer: Pointer,
        source: BinaryIO,
        tap: Callable[[memoryview], object] | None = None,
    ) -> int | None:
        """Send ``status=success`` and ``source``'s bytes (given to ``tap`` as well).

        Returns:
            The bytes sent, for the caller to end the reply; None when reading failed,
            and the reply was ended with ``status=error``.
        """
        self.writer.write_text_list([STATUS_SUCCESS])
        try:
            return self.writer.write_file(source, tap)
        except OSError as exc:
            logger.error("%s: reading object %s failed: %s", path, pointer.oid, exc)
            self.writer.write_flush()
            self.writer.write_text_list([STATUS_ERROR])
            return None

    def _send_unverified(self, path: str, pointer: Pointer, unverified: Unverified) -> None:
        """Reply with a download nobody has read yet, hashing it while it is sent.

        This saves reading a large object once more before sending it. It enters the
        store only once it hashes right. A wrong hash is known only after git has the
        bytes: the reply then ends in an error, which git takes as the filter failing,
        and writes nothing (its size was checked before, so only content corrupted
        in place gets this far).
        """
        digest = hashlib.sha256()
        try:
            try:
                src = open(unverified.path, "rb")  # noqa: SIM115 - closed below
            except OSError as exc:
                logger.error("%s: reading object %s failed: %s", path, pointer.oid, exc)
                self.writer.write_text_list([STATUS_ERROR])
                return
            with src:
                sent = self._stream(path, pointer, src, digest.update)
            if sent is None:
                return
            if sent != pointer.size or digest.hexdigest() != pointer.oid:
                error = corrupt_error(pointer, sent, digest.hexdigest(), unverified.source)
                logger.error("%s: %s; not written", path, error)
                self.writer.write_flush()
                self.writer.write_text_list([STATUS_ERROR])
                return
            self.store.publish_verified(unverified.path, pointer)
        finally:
            unverified.discard()
        self._end_content()

    def _end_content(self) -> None:
        """End a reply whose content was all sent: git now has that file's content."""
        self.writer.write_flush()
        self.writer.write_flush()
        self._pointers_settled += 1

    def _pass_through(self, path: str, head: bytes, rest: Iterator[bytes]) -> None:
        """Answer non-pointer content with itself.

        The content is spooled to a temp file so that all input is read before any
        output is written (git does not read our reply until it has sent everything).
        """
        import tempfile  # rare (a smudge of non-pointer content); it costs start-up

        if head:
            self.not_pointers.append(path)
        with tempfile.TemporaryFile(dir=self._spool_dir()) as spool:
            spool.write(head)
            for chunk in rest:
                spool.write(chunk)
            spool.seek(0)
            self.writer.write_text_list([STATUS_SUCCESS])
            while chunk := spool.read(CHUNK_SIZE):
                self.writer.write_content(chunk)
        self.writer.write_flush()
        self.writer.write_flush()

    def _spool_dir(self) -> str:
        return str(self.store.ensure_tmp())

    def _list_available(self) -> None:
        paths = self.delayed.wait_available() if self.delayed is not None else []
        self.writer.write_text_list([f"{KEY_PATHNAME}={p}" for p in paths])
        self.writer.write_text_list([STATUS_SUCCESS])
