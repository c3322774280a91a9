"""Repositories registered in a bucket, and the objects each keeps reachable.

Garbage collection of a bucket shared by several repositories and many clones needs
to know, from the bucket alone, every object any of them still uses. Each repository
publishes that itself, under ``meta/repos/<id>/``:

- a **push record** (``pushes/<stamp>.json``) from every push (the pre-push hook,
  ``lfs-agent push`` and the transfer agent that git-lfs drives): the objects of the
  history the push adds (``new ^ old`` for each updated ref, the old side as the server
  reported it, never a stale remote-tracking ref) and, under a policy other than
  ``history``, the trees of the new tips. It is written before the push's refs land,
  so nothing can be reachable from a ref before it is in a record. Records are only
  ever added: two clones pushing at once never overwrite each other.
- a **snapshot** (``snapshots/<stamp>.json``) from ``lfs-agent gc --refresh``: every
  object the repository's retention policy keeps, derived from the git server's refs
  fetched afresh. Its ``basis`` is the store's time just before that fetch: a push
  record older than ``basis`` minus the longest push (the sweep delay) belongs to a
  push whose refs had landed, or failed, by then, so the snapshot supersedes it.

The objects a repository keeps are its latest snapshot's and those of the push
records it does not supersede (:func:`load_repositories`). That only ever errs on the
side of keeping: a branch deleted without lfs-agent keeps its objects until the next
snapshot. The id of a repository is derived from its git remote's URL, without
credentials (:func:`repository_id`).

The same module holds the pusher's half of the collector's protocol
(:class:`PushRecorder`): before a push relies on an object the bucket already holds,
it learns whether a collection has condemned it, and if so publishes its record and
checks that no sweep began meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from lfs_agent.errors import ConfigError, GitError, TransferError
from lfs_agent.git import Git
from lfs_agent.redact import redact_text, redact_url
from lfs_agent.retention import Policy, policy_pointers
from lfs_agent.scan import ZERO_OID, PointerFile, rev_list_pointers, tree_pointers

if TYPE_CHECKING:
    from lfs_agent.backends import Entry, RecordBackend
    from lfs_agent.gcrecords import CondemnedState, PushRecord, Snapshot
    from lfs_agent.remote import Collector, Remote

__all__ = [
    "CONDEMNED_STATE_KEY",
    "REPOS_PREFIX",
    "PushRecorder",
    "Repository",
    "condemned_list_key",
    "load_repositories",
    "publish_snapshot",
    "pushed_reach",
    "repository_id",
    "snapshot_tips",
]

#: Where repositories register.
REPOS_PREFIX = "meta/repos/"
#: The collector's small state record every push reads once: which run condemned
#: objects, and whether its sweep has begun.
CONDEMNED_STATE_KEY = "meta/gc/state.json"
#: Most oids in one record: keeps a record well under the records' size cap.
OIDS_PER_RECORD = 100_000
_ID = re.compile(r"[0-9a-f]{16}")
#: Where fetched refs of the server go for a snapshot: out of the user's way.
SNAPSHOT_REFS = "refs/lfs-agent/gc"


#: Most entries in one part of a condemned list.
CONDEMNED_PER_PART = 40_000


def condemned_list_key(run: str, part: int) -> str:
    """Part ``part`` of the list of objects run ``run`` condemned (immutable once written)."""
    return f"meta/gc/condemned/{run}/{part:05d}.json"


def _stamp() -> str:
    """A key part that sorts by time and never collides: ``20261205T070102Z-1a2b3c4d``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


def _normalized_url(url: str, git: Git) -> str:
    """The remote's URL as every clone spells it: no credentials, no ``.git``, no slash."""
    url = url.strip()
    if "://" not in url and not re.match(r"^[\w.-]+@[\w.-]+:", url):
        path = Path(url)
        if not path.is_absolute():
            path = Path(git.output(["rev-parse", "--show-toplevel"]).strip()) / path
        url = "file://" + os.path.realpath(path)
    url = redact_url(url).rstrip("/")
    return url.removesuffix(".git").rstrip("/")


class RepoIdentity(NamedTuple):
    """A repository as registered: its id and its remote's URL."""

    id: str
    url: str


def repository_id(git: Git, remote: str) -> RepoIdentity:
    """The registration of the repository behind git remote ``remote`` (a name or URL).

    The id is the first 16 hex digits of the sha256 of the remote's URL without
    credentials, so every clone of one repository registers under one id; two URLs of
    one server (ssh and https) make two registrations, which only keeps more.

    Raises:
        ConfigError: ``remote`` is neither a git remote nor a URL.
    """
    url = remote
    if remote in git.output(["remote"]).split():
        url = git.output(["remote", "get-url", remote]).strip()
    if not url:
        raise ConfigError(f"git remote {remote!r} has no URL")
    shown = _normalized_url(url, git)
    return RepoIdentity(hashlib.sha256(shown.encode()).hexdigest()[:16], shown)


def pushed_reach(
    git: Git, updates: Sequence[tuple[str, str, str]], policy: Policy
) -> list[PointerFile]:
    """The pointers a push makes reachable, for its record.

    Args:
        git: The pushing repository.
        updates: ``(ref, new commit, old commit as the server has it)`` per updated ref;
            ZERO_OID for a new ref (old) or a deletion (new).
        policy: The repository's retention policy: other than ``history``, the new
            tips' trees are added, since a tip may bring back an old object.
    """
    include = [new for _, new, _ in updates if new != ZERO_OID]
    exclude = [old for _, new, old in updates if old not in (ZERO_OID, new)]
    found = {f.pointer.oid: f for f in rev_list_pointers(git, include, exclude)}
    if policy.kind != "history":
        for tip in include:
            commit = git.rev_parse(tip)
            if commit is not None:
                for f in tree_pointers(git, commit):
                    found.setdefault(f.pointer.oid, f)
    return list(found.values())


class PushRecorder:
    """A push's part in the collector's protocol, for one repository and one bucket.

    Call :meth:`begin` before the push stats anything, :meth:`add` with what the push
    makes reachable, :meth:`reused` with the objects it skipped because the bucket had
    them, and :meth:`publish` before the push's refs may land.

    Args:
        remote: The bucket.
        repo: The pushing repository's registration.
        by: ``pre-push``, ``push`` or ``transfer``, for the record.
        cache_dir: Where condemned lists are kept between pushes (one GET per run).
    """

    def __init__(self, remote: Remote, repo: RepoIdentity, by: str, cache_dir: Path) -> None:
        self._remote = remote
        self._repo = repo
        self._by = by
        self._cache_dir = cache_dir
        self._key = f"{REPOS_PREFIX}{repo.id}/pushes/{_stamp()}"
        self._refs: dict[str, str] = {}
        self._oids: dict[str, None] = {}
        self._state: CondemnedState | None = None
        self._condemned: frozenset[str] | None = None
        self._published = 0

    @property
    def _records(self) -> RecordBackend:
        return self._remote.records

    def _read_state(self) -> CondemnedState | None:
        data = self._records.get_meta(CONDEMNED_STATE_KEY)
        if data is None:
            return None
        from lfs_agent.gcrecords import CondemnedState, parse_record

        state: CondemnedState = parse_record(CondemnedState, data, CONDEMNED_STATE_KEY)
        return state

    def begin(self) -> None:
        """Read the collector's state: the one small GET a push adds."""
        self._state = self._read_state()

    @property
    def oids(self) -> list[str]:
        """Every object the record names so far."""
        return list(self._oids)

    def add(self, oids: Iterable[str], refs: Mapping[str, str] | None = None) -> None:
        """Objects (and refs) the push makes reachable."""
        self._oids.update(dict.fromkeys(oids))
        self._refs.update(refs or {})

    def _condemned_oids(self) -> frozenset[str]:
        """The oids of the pending run's condemned list, read once per run per clone."""
        if self._state is None:
            return frozenset()
        if self._condemned is None:
            run = self._state.run
            if not re.fullmatch(r"[0-9A-Za-z-]{1,64}", run):
                raise ConfigError(f"record {CONDEMNED_STATE_KEY} names a bad run {run[:80]!r}")
            oids: set[str] = set()
            for part in range(self._state.parts):
                oids.update(self._condemned_part(run, part))
            self._condemned = frozenset(oids)
        return self._condemned

    def _condemned_part(self, run: str, part: int) -> list[str]:
        """One part of a run's list: from this clone's cache, else from the bucket."""
        key = condemned_list_key(run, part)
        cached = self._cache_dir / f"condemned-{run}-{part:05d}.json"
        data: bytes | None
        try:
            data = cached.read_bytes()
        except OSError:
            data = self._records.get_meta(key)
            if data is None:
                # The run was swept and its list removed since begin(): whatever this
                # push reuses may have been deleted, and nothing says which.
                raise TransferError(
                    f"a garbage collection of {redact_url(self._remote.url)} swept objects "
                    "while this push ran: push again"
                ) from None
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            temp = cached.with_name(f".{cached.name}.{secrets.token_hex(4)}")
            temp.write_bytes(data)
            os.replace(temp, cached)
        from lfs_agent.gcrecords import CondemnedList, parse_record

        listed: CondemnedList = parse_record(CondemnedList, data, key)
        return listed.oids

    def reused(self, oids: Iterable[str]) -> None:
        """The push relies on these objects, which the bucket already held.

        Raises:
            TransferError: a collection condemned one of them and began its sweep
                before this push's record was published, or the list the push read
                the state of was swept (and removed) meanwhile: the push must run
                again (the object is then uploaded afresh if the sweep deleted it).
        """
        wanted = [o for o in oids if o in self._condemned_oids()]
        if not wanted:
            return
        self.add(wanted)
        self.publish()
        now = self._read_state()
        if self._state is not None and (self._state.state != "condemned" or now != self._state):
            raise TransferError(
                f"a garbage collection of {redact_url(self._remote.url)} is sweeping objects "
                f"this push reuses ({wanted[0]}"
                + (f" and {len(wanted) - 1} more" if len(wanted) > 1 else "")
                + "): push again in a minute"
            )

    def publish(self) -> None:
        """Write the record (again, if it grew): before the push's refs may land."""
        oids = list(self._oids)
        if not oids and not self._refs:
            return
        if len(oids) == self._published and self._published:
            return
        for part, start in enumerate(range(0, max(len(oids), 1), OIDS_PER_RECORD)):
            # The fields of gcrecords.PushRecord, written without loading pydantic.
            record = {
                "version": 1,
                "repo": self._repo.id,
                "url": self._repo.url,
                "by": self._by,
                "refs": self._refs,
                "oids": oids[start : start + OIDS_PER_RECORD],
            }
            self._records.put_meta(f"{self._key}-{part}.json", json.dumps(record).encode())
        self._published = len(oids)


def snapshot_tips(git: Git, remote: str) -> dict[str, str]:
    """Fetch every branch and tag of git remote ``remote``; their names and commits.

    They are fetched into ``refs/lfs-agent/gc/<remote>/``, with ``--prune``, so that the
    user's refs are untouched and a deleted branch leaves the snapshot.

    Raises:
        GitError: the fetch failed.
    """
    base = f"{SNAPSHOT_REFS}/{hashlib.sha256(remote.encode()).hexdigest()[:12]}"
    proc = git.run(
        [
            "fetch",
            "--quiet",
            "--no-tags",
            "--prune",
            "--no-write-fetch-head",
            remote,
            f"+refs/heads/*:{base}/heads/*",
            f"+refs/tags/*:{base}/tags/*",
        ],
        check=False,
    )
    if proc.returncode != 0:
        said = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(
            f"cannot fetch the refs of git remote {remote!r}"
            + (f": {redact_text(said[-1])}" if said else "")
        )
    refs: dict[str, str] = {}
    for line in git.output(
        ["for-each-ref", "--format=%(refname) %(objectname)", base]
    ).splitlines():
        name, _, sha = line.partition(" ")
        refs["refs/" + name.removeprefix(base + "/")] = sha
    return refs


def _snapshot_key(repo_id: str, basis: float) -> str:
    """Where a snapshot goes: named by its basis, so the newest is found by listing."""
    return (
        f"{REPOS_PREFIX}{repo_id}/snapshots/{round(basis * 1000):015d}-{secrets.token_hex(4)}.json"
    )


def _basis_of(key: str) -> float:
    """The basis a snapshot's key names, in seconds; -1 for a key not named so."""
    match = re.fullmatch(r"(\d{15})-[0-9a-f]{8}\.json", key.rsplit("/", 1)[-1])
    return int(match[1]) / 1000 if match else -1.0


def publish_snapshot(
    git: Git,
    collector: Collector,
    remote: str,
    repo: RepoIdentity,
    policy: Policy,
    *,
    write: bool = True,
) -> Snapshot:
    """Derive the repository's reachable objects afresh and (unless ``write`` is off) publish them.

    The store's time is taken first (a marker record), then the refs are fetched, so
    that every push whose refs landed before the fetch is older than the ``basis``.

    Args:
        git: A clone of the repository.
        collector: :attr:`Remote.collector` of the bucket.
        remote: The git remote to fetch the refs from.
        repo: Its registration.
        policy: What to keep.
        write: Publish the snapshot; off for a dry run, which takes the local clock.
    """
    marker_key = f"{REPOS_PREFIX}{repo.id}/refresh/{_stamp()}.json"
    from lfs_agent.gcrecords import Snapshot

    basis = collector.put_meta_entry(marker_key, b"{}").modified if write else time.time()
    refs = snapshot_tips(git, remote)
    oids = sorted({f.pointer.oid for f in policy_pointers(git, list(refs.values()), policy)})
    snapshot = Snapshot(
        repo=repo.id, url=repo.url, policy=str(policy), basis=basis, refs=refs, oids=oids
    )
    if write:
        data = snapshot.model_dump_json().encode()
        collector.put_meta(_snapshot_key(repo.id, basis), data)
        marker = collector.stat_entry(marker_key)
        if marker is not None:
            collector.delete_entries([marker])
    return snapshot


class Repository(NamedTuple):
    """A registered repository as the collector sees it."""

    id: str
    url: str
    #: The snapshot the roots come from, or None when it has none.
    snapshot: Snapshot | None
    #: Its key, when it has one.
    snapshot_key: str | None
    #: Push records not superseded by the snapshot.
    pushes: list[PushRecord]
    #: Records (push records, older snapshots, markers) the snapshot supersedes.
    superseded: list[Entry]
    #: The store's time of the latest push record.
    last_push: float | None

    def oids(self) -> set[str]:
        """Every object this repository keeps."""
        keep = set(self.snapshot.oids) if self.snapshot else set()
        for record in self.pushes:
            keep.update(record.oids)
        return keep


def load_repositories(
    collector: Collector, push_window: float, own: Snapshot | None = None
) -> list[Repository]:
    """Every registered repository, with the records that keep its objects.

    Args:
        collector: :attr:`Remote.collector` of the bucket.
        push_window: The longest a push may take from its record to its refs (the
            sweep delay): a push record this much older than a snapshot's basis is
            superseded by it.
        own: A snapshot made but not published (a dry run): it stands as its
            repository's latest.

    Raises:
        ConfigError: a record is unreadable (never skipped: a root left out is an
            object lost).
    """
    by_repo: dict[str, list[Entry]] = {}
    for entry in collector.list_entries(REPOS_PREFIX):
        parts = entry.key.split("/")
        if len(parts) != 5 or not _ID.fullmatch(parts[2]) or parts[3] not in _KINDS:
            raise ConfigError(
                f"record {entry.key} is not where lfs-agent writes records: delete it"
            )
        by_repo.setdefault(parts[2], []).append(entry)
    if own is not None:
        by_repo.setdefault(own.repo, [])
    return [
        _repository(
            collector, repo_id, entries, push_window, own if own and own.repo == repo_id else None
        )
        for repo_id, entries in sorted(by_repo.items())
    ]


#: What a repository's records are: push records, snapshots, refresh markers.
_KINDS = ("pushes", "snapshots", "refresh")


def _repository(
    collector: Collector,
    repo_id: str,
    entries: list[Entry],
    push_window: float,
    own: Snapshot | None,
) -> Repository:
    """One repository from its records' entries."""
    from lfs_agent.gcrecords import PushRecord, Snapshot, parse_record

    snapshots = sorted(
        (e for e in entries if e.key.split("/")[3] == "snapshots"), key=lambda e: _basis_of(e.key)
    )
    latest: Snapshot | None = own
    latest_key: str | None = None
    if latest is None:
        for entry in reversed(snapshots):
            data = collector.get_meta(entry.key)
            if data is not None:  # else deleted since listed: an older one stands in
                latest = parse_record(Snapshot, data, entry.key)
                if _basis_of(entry.key) != round(latest.basis * 1000) / 1000:
                    raise ConfigError(
                        f"record {entry.key} names a basis its key does not: delete it"
                    )
                latest_key = entry.key
                break
    pushes: list[PushRecord] = []
    superseded: list[Entry] = []
    last_push = None
    url = latest.url if latest else ""
    for entry in entries:
        kind = entry.key.split("/")[3]
        old = latest is not None and entry.modified < latest.basis - push_window
        if kind == "snapshots":
            if (
                latest is not None
                and entry.key != latest_key
                and _basis_of(entry.key) < latest.basis
            ):
                superseded.append(entry)
        elif kind == "refresh":
            if old:  # a refresh that never finished, long before the snapshot
                superseded.append(entry)
        else:
            last_push = max(last_push or 0.0, entry.modified)
            if old:
                superseded.append(entry)
                continue
            data = collector.get_meta(entry.key)
            if data is None:
                continue
            record: PushRecord = parse_record(PushRecord, data, entry.key)
            url = url or record.url
            pushes.append(record)
    return Repository(repo_id, url, latest, latest_key, pushes, superseded, last_push)
