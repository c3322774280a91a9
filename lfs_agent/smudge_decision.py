"""What a smudge answers: one pure decision shared by both of git's filter forms.

The single-shot ``smudge`` command and the long-running filter process receive the
same facts (the blob git has, whether the store holds its object, the settings in
force) and must answer them alike; :func:`decide_smudge` is the one table they both
read, so that a rule (``GIT_LFS_SKIP_SMUDGE``, ``lfs.skipdownloaderrors``, the fetch
patterns) cannot hold in one form and not in the other. It does no I/O: the callers
learn the facts and act on the answer. A fact that costs a system call is learned
only once the answer depends on it: the first answer for a pointer may be
:attr:`SmudgeAction.LOOK_UP` (is it in the store?), and a failed download is decided
again as such.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from lfs_agent.pointer import Pointer

__all__ = ["Delay", "ObjectState", "SmudgeAction", "SmudgeRules", "decide_smudge"]


class SmudgeAction(enum.Enum):
    """What to give git for one blob."""

    #: Not a pointer: the content as it is.
    PASS_THROUGH = "pass-through"
    #: The empty object's (empty) pointer: no bytes.
    EMPTY = "empty"
    #: The pointer, as asked (skip-smudge), or for the ``pull`` that follows to write.
    LEAVE_POINTER = "leave-pointer"
    #: The pointer: the fetch include/exclude patterns leave this path out.
    EXCLUDED = "excluded"
    #: Look the object up in the store, and decide again with what was found: the
    #: answer depends on it (a skipped pointer, say, never costs a look).
    LOOK_UP = "look-up"
    #: The stored object's bytes.
    SEND = "send"
    #: Download the object now, then send it.
    DOWNLOAD = "download"
    #: Download the object in the background and answer ``status=delayed``. The
    #: filter may still download it at once when that is cheaper than the request
    #: a delay costs git (a hard link from a folder bucket): a fact it learns from
    #: the remote, so only when this is the answer.
    DELAY = "delay"
    #: The object cannot be had: the file fails (``status=error``; the single-shot
    #: command raises).
    FAIL = "fail"
    #: The object cannot be had: the pointer, the failure having been logged
    #: (``lfs.skipdownloaderrors``, or left for the ``pull`` that follows to report).
    KEEP_FAILED = "keep-failed"
    #: A delayed download failed: the pointer, and the failure recorded for the
    #: post-checkout hook to fail the command, when that hook is installed (a fact
    #: learned from the disk, so only when this is the answer); without it the file
    #: fails, as for :attr:`FAIL`.
    REPORT_FAILED = "report-failed"
    #: The download git allowed to delay failed at once: answer ``status=delayed``
    #: and list the path as a failed delayed download, so git goes on with the
    #: other files where ``status=error`` would stop its checkout halfway.
    DELAY_FAILED = "delay-failed"


class ObjectState(enum.Enum):
    """What is known of the pointer's object."""

    #: Not looked up yet.
    UNKNOWN = "unknown"
    #: In the store with the pointer's size, or downloaded and ready to send.
    PRESENT = "present"
    #: Not in the store, and no download tried yet.
    MISSING = "missing"
    #: Its download failed (the caller holds the error).
    FAILED = "failed"


class Delay(enum.Enum):
    """Whether git lets this smudge be answered later (gitattributes(5) "Delay")."""

    #: Not allowed: the single-shot command, or git sent no ``can-delay=1``.
    NO = "no"
    #: Allowed: git sent ``can-delay=1`` and the filter agreed ``delay``.
    ALLOWED = "allowed"
    #: git's follow-up request for a path answered ``status=delayed`` before: it comes
    #: from a checkout, which runs the post-checkout hook afterwards.
    FOLLOW_UP = "follow-up"


class SmudgeRules(NamedTuple):
    """The settings a smudge decision reads; fixed for a process.

    Attributes:
        skip: Leave every pointer as it is (``GIT_LFS_SKIP_SMUDGE``).
        keep_failures: An object that cannot be had leaves its pointer instead of
            failing the file (``lfs.skipdownloaderrors``, or a ``pull`` follows).
        has_remote: A remote is configured to download missing objects from.
        leave_larger_than: Objects over this many bytes are left as pointers, even
            when stored, for the ``pull`` that follows (``lfs-agent clone``); None
            for no limit.
    """

    skip: bool = False
    keep_failures: bool = False
    has_remote: bool = True
    leave_larger_than: int | None = None


def decide_smudge(
    pointer: Pointer | None,
    rules: SmudgeRules,
    state: ObjectState = ObjectState.UNKNOWN,
    *,
    excluded: bool = False,
    delay: Delay = Delay.NO,
) -> SmudgeAction:
    """Decide what git gets for a blob.

    The rules apply in this order:

    1. Not a pointer: its content, as it is.
    2. Skip-smudge: the pointer; the empty object: nothing.
    3. Over ``leave_larger_than``: the pointer, even when stored.
    4. Not looked up yet: look it up. Present: the object.
    5. Missing: the pointer when the fetch patterns exclude the path; else a
       download, in the background when git allows it; without a remote, a failure
       (never delayed: nothing would be waited for).
    6. Failed: delayed when git allows it; else the pointer when failures are kept;
       else, for a delayed path's follow-up, the pointer reported to the hook; else
       the file fails.

    Args:
        pointer: The parsed pointer, or None when the blob is not one.
        rules: The settings in force.
        state: What is known of its object (ignored without a pointer).
        excluded: The fetch include/exclude patterns leave the path out.
        delay: Whether git lets the answer come later.

    Returns:
        The action to take.
    """
    if pointer is None:
        return SmudgeAction.PASS_THROUGH
    if rules.skip:
        return SmudgeAction.LEAVE_POINTER
    if pointer.size == 0:
        return SmudgeAction.EMPTY
    if rules.leave_larger_than is not None and pointer.size > rules.leave_larger_than:
        return SmudgeAction.LEAVE_POINTER
    if state is ObjectState.UNKNOWN:
        return SmudgeAction.LOOK_UP
    if state is ObjectState.PRESENT:
        return SmudgeAction.SEND
    if state is ObjectState.MISSING:
        if excluded:
            return SmudgeAction.EXCLUDED
        if rules.has_remote:
            return SmudgeAction.DELAY if delay is Delay.ALLOWED else SmudgeAction.DOWNLOAD
        return SmudgeAction.KEEP_FAILED if rules.keep_failures else SmudgeAction.FAIL
    if delay is Delay.ALLOWED:
        return SmudgeAction.DELAY_FAILED
    if rules.keep_failures:
        return SmudgeAction.KEEP_FAILED
    if delay is Delay.FOLLOW_UP:
        return SmudgeAction.REPORT_FAILED
    return SmudgeAction.FAIL
