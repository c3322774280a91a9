"""The records of a bucket's registry and of its collector, as pydantic models.

Push records, snapshots, the collector's state and condemned lists are read back from
a bucket anyone with write access may have changed: each is validated (every oid
checked) before a collection trusts it, and an unreadable one stops the collection
with a message naming it. Imported only where records are read or built in full, so
that a push, which mostly writes one record, does not load pydantic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lfs_agent.errors import ConfigError

__all__ = [
    "SCHEMA_VERSION",
    "CondemnedList",
    "CondemnedState",
    "PushRecord",
    "Snapshot",
    "parse_record",
]

#: Record format version; readers refuse records from the future.
SCHEMA_VERSION = 1
_OID = re.compile(r"[0-9a-f]{64}")


class PushRecord(BaseModel):
    """What one push made reachable, published before its refs land."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: int = SCHEMA_VERSION
    repo: str
    #: The git remote's URL without credentials, for people.
    url: str
    #: What published it: ``pre-push``, ``push`` or ``transfer``.
    by: str
    #: Refs the push updated and their new commits (informational).
    refs: dict[str, str] = Field(default_factory=dict)
    oids: list[str] = Field(default_factory=list)


class Snapshot(BaseModel):
    """Every object a repository's policy keeps, as its git server's refs stood."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: int = SCHEMA_VERSION
    repo: str
    url: str
    policy: str
    #: The store's time just before the refs were fetched (seconds since the epoch).
    basis: float
    refs: dict[str, str] = Field(default_factory=dict)
    oids: list[str] = Field(default_factory=list)
    #: A snapshot too large for one record is written in parts; part 0 lists the refs.
    part: int = Field(default=0, ge=0, le=10_000)
    parts: int = Field(default=1, ge=1, le=10_000)


class CondemnedState(BaseModel):
    """The collector's state: the run whose condemned list is pending, and its phase."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: int = SCHEMA_VERSION
    run: str
    #: ``condemned`` (waiting for its sweep) or ``sweeping``.
    state: str
    #: The store's time when the list was written.
    condemned_at: float
    #: How many parts the list has (:func:`condemned_list_key`).
    parts: int = 0
    count: int = 0
    #: The sweep delay the list was condemned with: no sweep comes sooner.
    sweep_after: float = 0.0


class CondemnedList(BaseModel):
    """One part of a run's condemned list: ``[oid, size, modified, tag]`` per object."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: int = SCHEMA_VERSION
    run: str
    entries: list[tuple[str, int, float, str]] = Field(default_factory=list)

    @property
    def oids(self) -> list[str]:
        """The condemned objects' ids."""
        return [e[0] for e in self.entries]


def _check_oids(oids: Sequence[str], where: str) -> None:
    bad = next((o for o in oids if not _OID.fullmatch(o)), None)
    if bad is not None:
        raise ConfigError(f"record {where} names {bad[:80]!r}, which is not an object id")


def parse_record(model: type[BaseModel], data: bytes, where: str) -> Any:
    """A record read from the bucket, or a one-line error naming it and the way out."""
    try:
        record = model.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(
            f"record {where} is unreadable ({'.'.join(map(str, first['loc']))}: {first['msg']}): "
            "delete it, or forget its repository with 'lfs-agent repos forget ID'"
        ) from None
    if getattr(record, "version", SCHEMA_VERSION) > SCHEMA_VERSION:
        raise ConfigError(f"record {where} was written by a newer lfs-agent: upgrade lfs-agent")
    if isinstance(record, (PushRecord, Snapshot, CondemnedList)):
        _check_oids(record.oids, where)
    return record
