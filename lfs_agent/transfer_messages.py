"""The pydantic models of git-lfs's custom transfer protocol messages.

Imported by :mod:`lfs_agent.transfer` at the first ``upload`` or ``download`` request,
not at start-up: git-lfs starts its agents one after another, each waiting for its
``init`` reply, and importing pydantic takes longer than the rest of that start-up. An
agent git-lfs never gives an object to never imports it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lfs_agent.errors import LfsAgentError

__all__ = [
    "CompleteEvent",
    "ErrorInfo",
    "ProgressEvent",
    "TransferRequest",
    "ValidationError",
    "error_info",
    "validation_message",
]


class _Message(BaseModel):
    """Lenient on input (unknown fields ignored), strict about the fields we use."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class TransferRequest(_Message):
    """An ``upload`` or ``download`` request for one object."""

    event: Literal["upload", "download"]
    oid: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    path: str | None = None
    action: dict[str, Any] | None = None


class ErrorInfo(_Message):
    """``{"code": int, "message": str}``: git-lfs prints ``[code] message``."""

    code: int
    message: str


class ProgressEvent(_Message):
    """Bytes moved so far for the current object."""

    event: Literal["progress"] = "progress"
    oid: str
    bytesSoFar: int  # protocol field name
    bytesSinceLast: int  # protocol field name


class CompleteEvent(_Message):
    """The end of one request: success (with ``path`` for downloads) or ``error``."""

    event: Literal["complete"] = "complete"
    oid: str
    path: str | None = None
    error: ErrorInfo | None = None


def error_info(exc: LfsAgentError) -> ErrorInfo:
    """The error of a failed request: the exception's protocol code and message."""
    return ErrorInfo(code=exc.code, message=str(exc))


def validation_message(exc: ValidationError) -> str:
    """One line naming each invalid field: ``size: Field required; ...``."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "request"
        problems.append(f"{where}: {err['msg']}")
    return "; ".join(problems)
