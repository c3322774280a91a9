"""What a failed request on the network means: its reason in a few words, and its kind.

Every network backend (HTTP, S3, GCS) turns the errors of its HTTP library into one of
:mod:`lfs_agent.errors`' classes here, so that the same failure reads the same whatever
the remote: "cannot reach <url>: Connection refused". Errors are recognised by class
name, so that no HTTP library is imported by this module.
"""

from __future__ import annotations

from collections.abc import Iterator

from lfs_agent.errors import LfsAgentError, RetriableError, UnreachableError

__all__ = [
    "causes",
    "connection_error",
    "is_unreachable",
    "masked_error",
    "network_reason",
]


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the errors behind it, breadth first.

    Followed: causes, contexts, urllib3's ``reason``, ``args``, and the values of
    botocore's ``kwargs`` (where it keeps the error it wraps).
    """
    pending: list[object] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [getattr(current, "reason", None), current.__cause__, current.__context__]
        pending += list(current.args)
        kwargs = getattr(current, "kwargs", None)
        pending += list(kwargs.values()) if isinstance(kwargs, dict) else []


def network_reason(exc: BaseException) -> str:
    """Why a request failed, in a few words: the system's reason at the root of ``exc``.

    HTTP libraries wrap a refused connection or a failed name lookup in errors whose
    text repeats the host and the object's URL ("HTTPConnectionPool(...): Max retries
    exceeded with url: ..."). Followed through their causes, contexts and reasons to
    the socket's error, that is "Connection refused", "Name or service not known" or
    "timed out": the same words for every object, so one line can name them all.
    """
    root = exc  # without a system's reason: the last error in the chain says most
    for current in causes(exc):
        root = current
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        if type(current) in (TimeoutError, ConnectionError):  # socket's own, no errno
            return str(current) or "timed out"
    text = str(root).strip()
    return text.splitlines()[0] if text else type(root).__name__


#: Errors (by class name, so that no HTTP library is imported here) meaning no
#: connection was made at all: urllib3's and botocore's, and the socket's own.
_NO_CONNECTION = frozenset(
    {
        "NewConnectionError",  # urllib3: refused, unreachable, no name (NameResolutionError)
        "ConnectTimeoutError",  # urllib3, botocore
        "EndpointConnectionError",  # botocore
        "ConnectionRefusedError",
        "gaierror",
    }
)


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the remote could not be reached at all.

    Then the next object would fare the same: the remote takes no more requests (see
    :class:`~lfs_agent.errors.UnreachableError`). A connection lost midway is not this.
    """
    return any(
        cls.__name__ in _NO_CONNECTION for current in causes(exc) for cls in type(current).__mro__
    )


def connection_error(what: str, exc: BaseException, note: str = "") -> RetriableError:
    """``<what>: <reason><note>`` for a request that failed on the network.

    The reason is :func:`network_reason`'s. The error is an
    :class:`~lfs_agent.errors.UnreachableError` when no connection was made at all,
    else a plain :class:`~lfs_agent.errors.RetriableError`.
    """
    kind = UnreachableError if is_unreachable(exc) else RetriableError
    return kind(f"{what}: {network_reason(exc)}{note}")


def masked_error(error: LfsAgentError) -> LfsAgentError:
    """``error`` with the credentials of any URL its text repeats masked.

    An endpoint URL, or an SDK's message quoting one, may carry user-info.
    """
    from lfs_agent.redact import redact_text

    text = redact_text(str(error))
    return error if text == str(error) else type(error)(text)
