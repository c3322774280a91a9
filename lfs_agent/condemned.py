"""The collector's pending condemned list, as every writer that relies on the bucket reads it.

A collection (:mod:`lfs_agent.collect`) writes the objects it condemns to
``meta/gc/condemned/<run>/`` and then its state, ``meta/gc/state.json``; a sweep marks
the state ``sweeping`` before it reads the roots. A push or a tag record that skips an
object because the bucket holds it reads the state and the list once
(:class:`CondemnedCheck`) and, for a condemned object, confirms after publishing its
record that no sweep began meanwhile (docs/gc.md gives the argument).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lfs_agent.errors import ConfigError, TransferError
from lfs_agent.redact import redact_url

if TYPE_CHECKING:
    from lfs_agent.backends import RecordBackend
    from lfs_agent.gcrecords import CondemnedState

__all__ = [
    "CONDEMNED_PER_PART",
    "CONDEMNED_STATE_KEY",
    "MAX_CONDEMNED_PARTS",
    "CondemnedCheck",
    "check_run",
    "condemned_list_key",
    "read_condemned_state",
]

#: The collector's small state record every push reads once: which run condemned
#: objects, and whether its sweep has begun.
CONDEMNED_STATE_KEY = "meta/gc/state.json"
#: Most entries in one part of a condemned list.
CONDEMNED_PER_PART = 40_000


def condemned_list_key(run: str, part: int) -> str:
    """Part ``part`` of the list of objects run ``run`` condemned (immutable once written)."""
    return f"meta/gc/condemned/{run}/{part:05d}.json"


#: Most parts a condemned list may have (40 million objects): a state naming more was
#: not written by lfs-agent, and reading it would let the bucket stall every push.
MAX_CONDEMNED_PARTS = 1000
_RUN = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")


def check_run(run: str, where: str) -> str:
    """Refuse a run name lfs-agent would not have written (it becomes part of a key)."""
    if not _RUN.fullmatch(run):
        raise ConfigError(f"record {where} names a bad gc run {run[:80]!r}: delete it")
    return run


def read_condemned_state(records: RecordBackend) -> CondemnedState | None:
    """The collector's state, validated; None when no list is pending.

    Raises:
        ConfigError: the state is not one lfs-agent writes (a bad run name, more parts
            than :data:`MAX_CONDEMNED_PARTS`).
    """
    data = records.get_meta(CONDEMNED_STATE_KEY)
    if data is None:
        return None
    from lfs_agent.gcrecords import CondemnedState, parse_record

    state: CondemnedState = parse_record(CondemnedState, data, CONDEMNED_STATE_KEY)
    check_run(state.run, CONDEMNED_STATE_KEY)
    if not 0 < state.parts <= MAX_CONDEMNED_PARTS or state.state not in ("condemned", "sweeping"):
        raise ConfigError(f"record {CONDEMNED_STATE_KEY} is not one lfs-agent writes: delete it")
    return state


class CondemnedCheck:
    """What a writer that relies on objects the bucket holds checks (docs/gc.md).

    A push or a tag record that skips an object because the bucket has it may be
    racing a collection that condemned the object. :meth:`begin` reads the state (one
    small GET) and, while a list is pending, the list (once per run per clone, kept
    in ``cache_dir``). The writer then publishes its record and, for the condemned
    objects it relies on, calls :meth:`confirm`: if a sweep began (or ended) since
    :meth:`begin`, the sweep may not have seen the record, and the writer must run
    again.

    Args:
        records: The bucket's records.
        url: The bucket's URL, for messages.
        cache_dir: Where condemned lists are kept between pushes.
    """

    def __init__(self, records: RecordBackend, url: str, cache_dir: Path) -> None:
        self._records = records
        self._url = url
        self._cache_dir = cache_dir
        self._state: CondemnedState | None = None
        self._condemned: frozenset[str] = frozenset()

    def _read_state(self) -> CondemnedState | None:
        return read_condemned_state(self._records)

    def begin(self) -> None:
        """Read the state and, while a list is pending, the list.

        Raises:
            TransferError: the list vanished while the state still names it (a sweep
                is ending): run again.
        """
        self._state = self._read_state()
        if self._state is None:
            return
        oids: set[str] = set()
        for part in range(self._state.parts):
            listed = self._part(self._state.run, part)
            if listed is None:
                if self._read_state() is None:  # swept and tidied since: nothing pending
                    self._state = None
                    return
                raise TransferError(
                    f"a garbage collection of {redact_url(self._url)} is ending its sweep: "
                    "run the command again in a minute"
                )
            oids.update(listed)
        self._condemned = frozenset(oids)
        self._forget_other_runs(self._state.run)

    def _forget_other_runs(self, run: str) -> None:
        """Remove the cached lists of runs other than ``run``: they are swept."""
        try:
            cached = list(self._cache_dir.glob("condemned-*.json"))
        except OSError:
            return
        for path in cached:
            if not path.name.startswith(f"condemned-{run}-"):
                path.unlink(missing_ok=True)

    def _part(self, run: str, part: int) -> list[str] | None:
        """One part of a run's list, from this clone's cache, else the bucket; None if gone."""
        key = condemned_list_key(run, part)
        cached = self._cache_dir / f"condemned-{run}-{part:05d}.json"
        data: bytes | None
        try:
            data = cached.read_bytes()
        except OSError:
            data = self._records.get_meta(key)
            if data is None:
                return None
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            temp = cached.with_name(f".{cached.name}.{secrets.token_hex(4)}")
            temp.write_bytes(data)
            os.replace(temp, cached)
        from lfs_agent.gcrecords import CondemnedList, parse_record

        listed: CondemnedList = parse_record(CondemnedList, data, key)
        return listed.oids

    def condemned(self, oids: Iterable[str]) -> list[str]:
        """Those of ``oids`` the pending list condemns (as read by :meth:`begin`)."""
        return [o for o in oids if o in self._condemned]

    def confirm(self, relied: Sequence[str]) -> None:
        """After publishing the record naming ``relied`` (condemned objects): no sweep began.

        Raises:
            TransferError: a sweep began or ended since :meth:`begin`, or was already
                running: it may not have read the record.
        """
        if not relied or self._state is None:
            return
        now = self._read_state()
        if self._state.state == "condemned" and now == self._state:
            return
        more = f" and {len(relied) - 1} more" if len(relied) > 1 else ""
        raise TransferError(
            f"a garbage collection of {redact_url(self._url)} is sweeping (or was stopped "
            f"while sweeping) objects this command reuses ({relied[0]}{more}): run it again "
            "once the collection ends, or run 'lfs-agent gc --remote' to finish the sweep"
        )
