"""Garbage collection of a bucket: ``lfs-agent gc --remote``, ``--undo`` and ``repos``.

A collection never deletes an object any registered repository or tag record still
reaches, while clones keep pushing. It runs in two phases, each under the collector's
lock (:class:`CollectorLock`, which pushes never take):

1. **Mark and condemn**: read every root (:func:`roots`: the registered repositories'
   snapshots and push records, and the metrics tag records), list ``objects/``, and
   write the objects that are unreachable and older than the grace period to a
   condemned list (``meta/gc/condemned/<run>/``) with their tags. Nothing is deleted.
2. **Sweep**, at least the sweep delay later (the next ``gc --remote``): mark the
   state ``sweeping``, list ``objects/`` again, read every root again, and delete a
   condemned object only if it is still unreachable and unchanged (same tag), in
   batches of at most 1,000, each journaled to ``meta/gc/log/<run>/`` for
   ``gc --undo`` on a versioned bucket.

A push that relies on an object the bucket holds reads the state once
(:class:`lfs_agent.condemned.CondemnedCheck`): if the object is condemned, it publishes its
record first and checks that no sweep began meanwhile, so a sweep either sees the
record or the push fails and runs again. docs/gc.md gives the whole argument. Every
time comes from the store's clock (the lock's and the records' modification times),
never the client's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from lfs_agent.backends import DELETE_BATCH, Deleted, Entry
from lfs_agent.condemned import (
    CONDEMNED_PER_PART,
    CONDEMNED_STATE_KEY,
    check_run,
    condemned_list_key,
    read_condemned_state,
)
from lfs_agent.errors import ConfigError, LfsAgentError
from lfs_agent.gclock import HEARTBEAT_SECONDS, CollectorLock
from lfs_agent.gcrecords import CondemnedList, CondemnedState, Snapshot, parse_record
from lfs_agent.redact import redact_url
from lfs_agent.registry import REPOS_PREFIX, Repository, load_repositories, new_stamp

if TYPE_CHECKING:
    from lfs_agent.remote import Collector

__all__ = [
    "CollectorLock",
    "GcOptions",
    "GcRun",
    "Roots",
    "collect",
    "forget_repository",
    "roots",
    "undo",
]

RUNS_PREFIX = "meta/gc/runs/"
LOG_PREFIX = "meta/gc/log/"
_OBJECT_KEY = re.compile(r"objects/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})")


class GcOptions(NamedTuple):
    """How a collection runs."""

    #: Objects younger than this (seconds, by the store's clock) are never condemned.
    grace: float
    #: The least time between condemning and sweeping (seconds): the longest push.
    sweep_after: float
    #: Report what would be condemned and deleted; write nothing.
    dry_run: bool = False


class GcObject(BaseModel):
    """An object a run condemned or deleted."""

    oid: str
    size: int
    #: On a versioned bucket, what ``gc --undo`` needs to bring it back.
    version: str = ""


class GcRun(BaseModel):
    """What one ``gc --remote`` did (or, with ``--dry-run``, would do).

    Also the run's record in the bucket (``meta/gc/runs/<run>.json``) and ``--json``'s
    document.
    """

    model_config = ConfigDict(extra="ignore")

    run: str
    dry_run: bool = False
    remote: str = ""
    #: The store's time the run started at.
    started: float = 0.0
    grace_seconds: float = 0.0
    sweep_after_seconds: float = 0.0
    repositories: int = 0
    tag_records: int = 0
    #: Objects the roots reach.
    reachable: int = 0
    #: The run whose condemned list this run swept, if any.
    swept_run: str | None = None
    deleted: list[GcObject] = Field(default_factory=list)
    deleted_bytes: int = 0
    #: Condemned objects a sweep kept: reachable again, or rewritten since.
    spared: int = 0
    condemned: list[GcObject] = Field(default_factory=list)
    condemned_bytes: int = 0
    #: When the pending condemned list may be swept (store time), if one is pending.
    sweep_due: float | None = None
    #: Whether deletions can be undone (bucket versioning).
    versioned: bool = False


class Roots(NamedTuple):
    """Everything that keeps objects alive, read from the bucket."""

    oids: frozenset[str]
    repositories: list[Repository]
    tag_records: int


def _tag_record_oids(collector: Collector) -> tuple[set[str], int]:
    """Objects the metrics tag records pin (current and earlier versions of each tag)."""
    from lfs_agent.metrics import HISTORY_PREFIX, TAGS_PREFIX, TagRecord

    oids: set[str] = set()
    count = 0
    for prefix in (TAGS_PREFIX, HISTORY_PREFIX):
        for entry in collector.list_entries(prefix):
            if entry.key.endswith("/") or entry.key.rsplit("/", 1)[-1].startswith("."):
                continue  # a "folder" marker, or a temp file
            data = collector.get_meta(entry.key)
            if data is None:
                continue  # forgotten meanwhile
            try:
                record = TagRecord.from_json(data, entry.key)
            except LfsAgentError as exc:
                raise ConfigError(
                    f"{exc}: a collection reads every tag record; fix or delete it "
                    "('lfs-agent metrics forget TAG')"
                ) from None
            oids.update(a.oid for a in record.artifacts)
            count += 1
    return oids, count


def roots(
    collector: Collector,
    push_window: float,
    own: Snapshot | None = None,
    fresh_since: float | None = None,
) -> Roots:
    """Read every root from the bucket.

    Args:
        collector: The bucket.
        push_window: The sweep delay (see :func:`lfs_agent.registry.load_repositories`).
        own: A snapshot of the collecting repository made but not published (a dry
            run): it stands in for that repository's published one.
        fresh_since: Refuse a repository whose snapshot is older than this (store
            time): the start of the grace period. Then every object old enough to be
            condemned was pushed before some snapshot's fetch, which saw its refs,
            whether or not its push left a record (a push with ``--no-verify``, a
            branch restored on the server's web page).

    Raises:
        ConfigError: no repository is registered, one has never been refreshed (or
            not within the grace period), or a record is unreadable: collecting then
            could delete what they reach.
    """
    repos = load_repositories(collector, push_window, own)
    if not repos:
        raise ConfigError(
            f"no repository is registered in {redact_url(collector.url)}: run "
            "'lfs-agent gc --refresh' in a clone of every repository that uses it"
        )
    never = [r for r in repos if r.snapshot is None]
    if never:
        listed = ", ".join(f"{r.id} ({r.url})" for r in never[:3])
        raise ConfigError(
            f"{len(never)} registered repositor{'y has' if len(never) == 1 else 'ies have'} "
            f"never been refreshed: {listed}; run 'lfs-agent gc --refresh' in a clone of "
            "each, or 'lfs-agent repos forget ID' for one that is gone"
        )
    stale = [r for r in repos if fresh_since is not None and r.snapshot.basis < fresh_since]  # type: ignore[union-attr]
    if stale:
        listed = ", ".join(f"{r.id} ({r.url})" for r in stale[:3])
        raise ConfigError(
            f"{len(stale)} registered repositor{'y was' if len(stale) == 1 else 'ies were'} "
            f"last refreshed before the grace period began: {listed}; run 'lfs-agent gc "
            "--refresh' in a clone of each (a scheduled CI job can), or 'lfs-agent repos "
            "forget ID' for one that is gone"
        )
    keep: set[str] = set()
    for repo in repos:
        keep.update(repo.oids())
    tagged, count = _tag_record_oids(collector)
    keep.update(tagged)
    return Roots(frozenset(keep), repos, count)


def _objects(collector: Collector) -> Iterator[tuple[str, Entry]]:
    """Every object key of the bucket with its oid; other keys under ``objects/`` are left."""
    for entry in collector.list_entries("objects/"):
        match = _OBJECT_KEY.fullmatch(entry.key)
        if match and match[3].startswith(match[1] + match[2]):
            yield match[3], entry


def _object_entry(oid: str, size: int, modified: float, tag: str) -> Entry:
    return Entry(f"objects/{oid[:2]}/{oid[2:4]}/{oid}", size, modified, tag)


def _read_condemned(collector: Collector, state: CondemnedState) -> list[tuple[str, Entry]]:
    """The entries of a pending condemned list, as its run listed them."""
    found: list[tuple[str, Entry]] = []
    for part in range(state.parts):
        key = condemned_list_key(state.run, part)
        data = collector.get_meta(key)
        if data is None:
            raise ConfigError(
                f"part {key} of the pending condemned list is missing: delete "
                f"{CONDEMNED_STATE_KEY} to start over (nothing is deleted then)"
            )
        listed: CondemnedList = parse_record(CondemnedList, data, key)
        found.extend((e[0], _object_entry(*e)) for e in listed.entries)
    return found


def collect(
    collector: Collector,
    options: GcOptions,
    refresh: Callable[[bool], Snapshot | None] | None = None,
    heartbeat: float = HEARTBEAT_SECONDS,
    checkpoint: Callable[[str], None] = lambda step: None,
) -> GcRun:
    """One ``gc --remote``: sweep a due condemned list, then condemn anew.

    A list not yet due is left waiting, and nothing new is condemned (that would
    restart its clock). With a sweep delay of 0 the new list is swept at once: only
    safe while no push can be running.

    Args:
        collector: The bucket.
        options: Grace period, sweep delay, dry run.
        refresh: Re-derives the collecting repository's snapshot, publishing it when
            passed True (not in a dry run); None outside a repository.
        heartbeat: Seconds between lock renewals.
        checkpoint: Called with a step's name between the steps whose order the
            safety argument rests on: tests interleave pushes there, and stop a
            collection there as a kill would.

    Raises:
        LockHeld: another collection runs.
        ConfigError: the roots cannot be read completely (see :func:`roots`).
    """
    run = new_stamp()
    report = GcRun(
        run=run,
        dry_run=options.dry_run,
        remote=redact_url(collector.url),
        grace_seconds=options.grace,
        sweep_after_seconds=options.sweep_after,
        versioned=collector.versioned(),
    )
    lock = None if options.dry_run else CollectorLock(collector, run, heartbeat)
    now = time.time() if lock is None else lock.acquire()
    report.started = now
    try:
        if lock is not None:
            _remove_leftovers(collector, now)
        checkpoint("locked")
        made = refresh(not options.dry_run) if refresh is not None else None
        own = made if options.dry_run else None
        checkpoint("refreshed")
        state = read_condemned_state(collector)
        if state is not None:
            # Never sooner, nor with a narrower window, than the list was condemned for.
            options = options._replace(sweep_after=max(options.sweep_after, state.sweep_after))
            due = state.condemned_at + options.sweep_after
            if now < due and state.state == "condemned":
                report.sweep_due = due
                _count_roots(
                    report, roots(collector, options.sweep_after, own, now - options.grace)
                )
                return report
            sweep = _Sweep(collector, options, report, lock, own, checkpoint, now)
            sweep.run(state, _read_condemned(collector, state))
        condemned = _condemn(collector, options, report, now, own, checkpoint)
        if condemned is not None and options.sweep_after <= 0:
            _Sweep(collector, options, report, lock, own, checkpoint, now).run(*condemned)
            report.sweep_due = None
        if lock is not None:
            lock.check()
            # The run's summary: its deletions are in its journal, its list under condemned/.
            summary = report.model_dump_json(exclude={"deleted", "condemned"})
            collector.put_meta(f"{RUNS_PREFIX}{run}.json", summary.encode())
        return report
    finally:
        if lock is not None:
            lock.release()


def _remove_leftovers(collector: Collector, now: float) -> None:
    """Remove what killed collections left: lists no state names, old clock probes.

    Under the lock, so no other collection is writing a list.
    """
    state = read_condemned_state(collector)
    keep = f"meta/gc/condemned/{state.run}/" if state is not None else None
    stale = [
        e
        for e in collector.list_entries("meta/gc/condemned/")
        if keep is None or not e.key.startswith(keep)
    ]
    stale += [e for e in collector.list_entries("meta/gc/clock/") if e.modified < now - 3600]
    for start in range(0, len(stale), DELETE_BATCH):
        collector.delete_entries(stale[start : start + DELETE_BATCH])


def _count_roots(report: GcRun, found: Roots) -> None:
    report.repositories = len(found.repositories)
    report.tag_records = found.tag_records
    report.reachable = len(found.oids)


def _condemn(  # noqa: PLR0917 - the run's context, from one caller
    collector: Collector,
    options: GcOptions,
    report: GcRun,
    now: float,
    own: Snapshot | None,
    checkpoint: Callable[[str], None],
) -> tuple[CondemnedState, list[tuple[str, Entry]]] | None:
    """Mark: write down the unreachable objects older than the grace period.

    Returns:
        The new state and its entries; None when nothing was condemned.
    """
    found = roots(collector, options.sweep_after, own, now - options.grace)
    _count_roots(report, found)
    checkpoint("condemn-roots")
    cutoff = now - options.grace
    # A dry run deleted nothing, but the real run would have: those are not condemned.
    gone = {o.oid for o in report.deleted} if options.dry_run else set()
    entries = sorted(
        (oid, entry.size, entry.modified, entry.tag)
        for oid, entry in _objects(collector)
        if oid not in found.oids and entry.modified < cutoff and oid not in gone
    )
    checkpoint("condemn-listed")
    report.condemned = [GcObject(oid=e[0], size=e[1]) for e in entries]
    report.condemned_bytes = sum(e[1] for e in entries)
    if not entries:
        return None
    run = report.run
    parts = (len(entries) + CONDEMNED_PER_PART - 1) // CONDEMNED_PER_PART
    state = CondemnedState(
        run=run,
        state="condemned",
        condemned_at=now,
        parts=parts,
        count=len(entries),
        sweep_after=options.sweep_after,
    )
    if not options.dry_run:
        for part in range(parts):
            chunk = entries[part * CONDEMNED_PER_PART : (part + 1) * CONDEMNED_PER_PART]
            body = CondemnedList(run=run, entries=chunk).model_dump_json().encode()
            written = collector.put_meta_entry(condemned_list_key(run, part), body)
        checkpoint("condemn-written")
        # The state is what pushes read: written once and last, so a push that sees it
        # finds the whole list. The list's time is the store's, as it was written.
        state = state.model_copy(update={"condemned_at": written.modified})
        collector.put_meta(CONDEMNED_STATE_KEY, state.model_dump_json().encode())
    report.sweep_due = state.condemned_at + options.sweep_after
    return state, [(e[0], _object_entry(*e)) for e in entries]


class _LogPart(BaseModel):
    """One batch of a run's deletions, journaled for ``gc --undo``."""

    run: str
    #: ``[key, size, version]`` per deleted object.
    deleted: list[tuple[str, int, str]] = Field(default_factory=list)


class _Sweep:
    """The second phase: delete the condemned objects still unreachable and unchanged.

    The order is the safety argument's (docs/gc.md): the state says ``sweeping``
    first, then the objects are listed, then the roots are read, so a push either
    published its record before the roots were read, or saw the sweep and failed.
    """

    def __init__(  # noqa: PLR0917 - the run's context, from one caller
        self,
        collector: Collector,
        options: GcOptions,
        report: GcRun,
        lock: CollectorLock | None,
        own: Snapshot | None,
        checkpoint: Callable[[str], None],
        now: float,
    ) -> None:
        self.collector = collector
        self.options = options
        self.report = report
        self.lock = lock
        self.own = own
        self.checkpoint = checkpoint
        self.now = now

    def run(self, state: CondemnedState, condemned: list[tuple[str, Entry]]) -> None:
        """Sweep ``state``'s list (``condemned``, as its run listed the objects)."""
        collector, report, lock = self.collector, self.report, self.lock
        report.swept_run = state.run
        if lock is not None:
            sweeping = state.model_copy(update={"state": "sweeping"})
            collector.put_meta(CONDEMNED_STATE_KEY, sweeping.model_dump_json().encode())
        self.checkpoint("sweep-started")
        wanted = {entry.key: (oid, entry) for oid, entry in condemned}
        current = {entry.key: entry for _, entry in _objects(collector) if entry.key in wanted}
        self.checkpoint("sweep-listed")
        live = roots(collector, self.options.sweep_after, self.own, self.now - self.options.grace)
        _count_roots(report, live)
        self.checkpoint("sweep-roots")
        doomed = [
            entry
            for key, (oid, entry) in sorted(wanted.items())
            if oid not in live.oids and key in current and current[key].tag == entry.tag
        ]
        report.spared = len(wanted) - len(doomed)
        if lock is None:
            report.deleted = [GcObject(oid=_oid(e.key), size=e.size) for e in doomed]
            report.deleted_bytes = sum(e.size for e in doomed)
            return
        self._delete(state.run, doomed)
        report.spared = len(wanted) - len(report.deleted)
        self._tidy(state.run, live)

    def _delete(self, run: str, doomed: list[Entry]) -> None:
        """Delete in batches, each journaled for ``gc --undo`` as it is done."""
        assert self.lock is not None
        sizes = {e.key: e.size for e in doomed}
        for part, start in enumerate(range(0, len(doomed), DELETE_BATCH)):
            self.lock.check()
            deleted = self.collector.delete_entries(doomed[start : start + DELETE_BATCH])
            log = _LogPart(run=run, deleted=[(d.key, sizes[d.key], d.version) for d in deleted])
            self.collector.put_meta(
                f"{LOG_PREFIX}{run}/{part:05d}.json", log.model_dump_json().encode()
            )
            self.report.deleted.extend(
                GcObject(oid=_oid(d.key), size=sizes[d.key], version=d.version) for d in deleted
            )
            self.checkpoint("sweep-deleted")
        self.report.deleted_bytes = sum(o.size for o in self.report.deleted)

    def _tidy(self, run: str, live: Roots) -> None:
        """Remove the state (if it is still this list's), the list, then superseded records.

        The state goes first: pushes stop relying on the list before it vanishes, and
        a kill halfway leaves a list without a state, which nothing reads.
        """
        assert self.lock is not None
        self.lock.check()
        done = self.collector.stat_entry(CONDEMNED_STATE_KEY)
        current = read_condemned_state(self.collector)
        if done is not None and current is not None and current.run == run:
            self.collector.delete_entries([done])
        stale = list(self.collector.list_entries(f"meta/gc/condemned/{run}/"))
        stale += [entry for repo in live.repositories for entry in repo.superseded]
        for start in range(0, len(stale), DELETE_BATCH):
            self.collector.delete_entries(stale[start : start + DELETE_BATCH])


def _oid(key: str) -> str:
    return key.rsplit("/", 1)[-1]


class UndoReport(NamedTuple):
    """What ``gc --undo`` brought back."""

    restored: list[str]
    lost: list[str]


def undo(collector: Collector, run: str) -> UndoReport:
    """Bring back every object run ``run`` deleted, on a versioned bucket.

    Raises:
        ConfigError: the run is unknown, or the bucket keeps no earlier versions.
    """
    try:
        check_run(run, "--undo")
    except ConfigError:
        raise ConfigError(
            f"{run[:80]!r} is not a gc run: 'lfs-agent gc --remote' names its runs"
        ) from None
    parts = sorted(e.key for e in collector.list_entries(f"{LOG_PREFIX}{run}/"))
    if not parts:
        raise ConfigError(f"gc run {run} deleted nothing in {redact_url(collector.url)}")
    restored: list[str] = []
    lost: list[str] = []
    for key in parts:
        data = collector.get_meta(key)
        if data is None:
            continue
        log: _LogPart = parse_record(_LogPart, data, key)
        for deleted_key, _, version in log.deleted:
            if not _OBJECT_KEY.fullmatch(deleted_key):
                raise ConfigError(f"record {key} names {deleted_key[:80]!r}, not an object")
            if not version:
                raise ConfigError(
                    f"{redact_url(collector.url)} kept no earlier versions when run {run} "
                    "deleted: nothing can be brought back (enable bucket versioning first)"
                )
            ok = collector.undelete(Deleted(deleted_key, version))
            (restored if ok else lost).append(_oid(deleted_key))
    return UndoReport(restored, lost)


def forget_repository(collector: Collector, repo_id: str) -> int:
    """Delete every record of a registered repository; return how many.

    Its objects are then kept only by other roots and the grace period.

    Raises:
        ConfigError: no repository of that id is registered.
    """
    entries = (
        list(collector.list_entries(f"{REPOS_PREFIX}{repo_id}/"))
        if re.fullmatch(r"[0-9a-f]{16}", repo_id)
        else []
    )
    if not entries:
        raise ConfigError(
            f"no repository {repo_id!r} is registered in {redact_url(collector.url)}: "
            "'lfs-agent repos list' shows them"
        )
    removed = 0
    for start in range(0, len(entries), DELETE_BATCH):
        removed += len(collector.delete_entries(entries[start : start + DELETE_BATCH]))
    return removed
