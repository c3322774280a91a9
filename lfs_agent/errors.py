"""The one exception hierarchy of lfs-agent, classified by what a caller should do.

::

    LfsAgentError                    base; ``code`` + ``as_dict()`` for git-lfs
    ├── ConfigError                  bad or missing setting; fix the config
    ├── GitError                     a git command failed or this is not a repo
    ├── ProtocolError                malformed pkt-line / JSON-lines input
    ├── NotAPointerError             bytes are not an LFS pointer (``reason``)
    ├── InvalidOidError              not 64 lowercase hex; never reaches a path
    ├── IntegrityError               size or sha256 does not match the oid
    ├── ObjectNotFoundError          the store or the remote lacks the object
    ├── BackendError                 a remote refused or failed; fatal
    │   ├── BackendUnavailableError  the SDK for a scheme is not installed
    │   └── RetriableError           worth retrying: throttled, 5xx, a reset connection
    │       └── UnreachableError     no connection at all: the next object fares the same
    ├── LocalError                   this machine's file failed: a full disk ...
    │   └── UnsafePathError          a write would go through a symbolic link
    └── TransferError                orchestration failed for some objects

Callers ask "is it retriable?" rather than "which vendor raised it?": backends translate
vendor exceptions into these classes with ``raise ... from exc``.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "ConfigError",
    "GitError",
    "IntegrityError",
    "InvalidOidError",
    "LfsAgentError",
    "LocalError",
    "NotAPointerError",
    "ObjectNotFoundError",
    "ProtocolError",
    "RetriableError",
    "TransferError",
    "UnreachableError",
    "UnsafePathError",
    "agent_error",
]


class LfsAgentError(Exception):
    """Base of every error lfs-agent raises on purpose.

    Attributes:
        code: The integer git-lfs shows as ``[code]`` in ``error transferring`` lines.
    """

    code: int = 1

    def as_dict(self) -> dict[str, int | str]:
        """Return the ``{"code", "message"}`` object the custom transfer protocol uses."""
        return {"code": self.code, "message": str(self)}


class ConfigError(LfsAgentError):
    """A setting is missing, malformed or not allowed where it was found."""

    code = 2


class GitError(LfsAgentError):
    """A git command failed, or the current directory is not in a repository."""

    code = 2


class ProtocolError(LfsAgentError):
    """The peer (git or git-lfs) sent something the protocol does not allow."""

    code = 32


class NotAPointerError(LfsAgentError):
    """The bytes are not a valid Git LFS pointer.

    Attributes:
        reason: Why parsing failed, in git-lfs's words where it has them.
    """

    code = 3

    def __init__(self, reason: str) -> None:
        super().__init__(f"not a pointer: {reason}")
        self.reason = reason


class InvalidOidError(LfsAgentError):
    """An oid that is not 64 lowercase hex digits; it must never become a path."""

    code = 22

    def __init__(self, oid: object) -> None:
        shown = repr(oid) if not isinstance(oid, str) else repr(oid[:80])
        super().__init__(f"invalid oid {shown}: expected 64 lowercase hex digits")


class IntegrityError(LfsAgentError):
    """Bytes whose size or sha256 do not match the oid they claim to be."""

    code = 6


class ObjectNotFoundError(LfsAgentError):
    """The object is neither in the local store nor on the remote that was asked."""

    code = 404


class BackendError(LfsAgentError):
    """A remote failed in a way retrying will not fix (auth, missing bucket, ...)."""

    code = 5


class BackendUnavailableError(BackendError):
    """The optional SDK behind a URL scheme is not installed; the message says how."""

    code = 7


class RetriableError(BackendError):
    """A transient failure (throttling, 5xx, reset connection).

    Backends retry within their own bounds, waiting as long as a remote asks
    (``Retry-After``): what reaches a caller outlasted those tries.
    """

    code = 8


class UnreachableError(RetriableError):
    """The remote could not be reached at all: refused, no route, no such host.

    Every other object would fail the same way, so a remote takes no request after the
    first one (``remote.Remote.reaching``).
    """


class LocalError(LfsAgentError):
    """A file on this machine could not be read or written: a full disk, say."""


class UnsafePathError(LocalError):
    """A path lfs-agent will not write to: it is, or lies below, a symbolic link."""


def agent_error(exc: LfsAgentError | OSError) -> LfsAgentError:
    """``exc`` itself, or the :class:`LocalError` an OSError means, in the system's words.

    For the places that report failures one object at a time (a batch, a transfer, a
    smudge): a full disk fails that object, with its reason ("No space left on
    device", and the file when the system names one), not the whole command.
    """
    if isinstance(exc, LfsAgentError):
        return exc
    reason = exc.strerror or str(exc)
    return LocalError(f"{reason}: {exc.filename}" if exc.filename else reason)


class TransferError(LfsAgentError):
    """Some objects of a push or fetch failed; the message lists them."""

    code = 2
