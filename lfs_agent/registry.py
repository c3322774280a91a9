"""Repositories registered in a bucket, and the objects each keeps reachable.

Garbage collection of a bucket shared by several repositories and many clones needs
to know, from the bucket alone, every object any of them still uses. Each repository
publishes that itself, under ``meta/repos/<id>/``:

- a **push record** (``pushes/<stamp>.json``) from every push (the pre-push hook,
  ``lfs-agent push`` and the transfer agent that git-lfs drives): the objects of the
  history the push adds (``new ^ old`` for each updated ref, the old side as the server
  reported it, never a stale remote-tracking ref) and, under a policy other than
  ``history``, the trees of the new tips. It is written before the push's refs land.
  Records are only ever added: two clones pushing at once never overwrite each other.
  A ref that moves without one (``--no-verify``, a branch restored on the server's web
  page) is covered once the next snapshot sees it (docs/gc.md says what that leaves).
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
from urllib.parse import urlsplit, urlunsplit

from lfs_agent.condemned import CondemnedCheck
from lfs_agent.errors import ConfigError, GitError
from lfs_agent.git import Git
from lfs_agent.redact import redact_text, redact_url
from lfs_agent.retention import Policy, policy_pointers
from lfs_agent.scan import ZERO_OID, PointerFile, rev_list_pointers, tree_pointers

if TYPE_CHECKING:
    from lfs_agent.backends import Entry, RecordBackend
    from lfs_agent.gcrecords import PushRecord, Snapshot
    from lfs_agent.remote import Collector, Remote

__all__ = [
    "REPOS_PREFIX",
    "PushRecorder",
    "Repository",
    "load_repositories",
    "publish_snapshot",
    "pushed_reach",
    "repository_id",
    "snapshot_tips",
]

#: Where repositories register.
REPOS_PREFIX = "meta/repos/"
#: Most oids in one record: keeps a record well under the records' size cap.
OIDS_PER_RECORD = 100_000
_ID = re.compile(r"[0-9a-f]{16}")
#: Where fetched refs of the server go for a snapshot: out of the user's way.
SNAPSHOT_REFS = "refs/lfs-agent/gc"


def new_stamp() -> str:
    """A key part that sorts by time and never collides: ``20261205T070102Z-1a2b3c4d``.

    Also a collection's run name.
    """
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


def _normalized_url(url: str, git: Git) -> str:
    """The remote's URL as every clone spells it: no credentials, no ``.git``, no slash."""
    url = url.strip()
    if "://" not in url and not re.match(r"^[\w.-]+@[\w.-]+:", url):
        path = Path(url)
        if not path.is_absolute():
            path = Path(git.output(["rev-parse", "--show-toplevel"]).strip()) / path
        url = "file://" + os.path.realpath(path)
    if "://" in url:
        # No user-info (a token would change the id, and must not be stored), no query.
        parts = urlsplit(url)
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        url = urlunsplit((parts.scheme.lower(), host, parts.path, "", ""))
    url = redact_url(url).rstrip("/")
    return url.removesuffix(".git").rstrip("/")


class RepoIdentity(NamedTuple):
    """A repository as registered: its id and its remote's URL."""

    id: str
    url: str


def repository_id(git: Git, remote: str) -> RepoIdentity:
    """The registration of the repository behind git remote ``remote`` (a name or URL).

    The id is the first 16 hex digits of the sha256 of the remote's push URL without
    credentials (the URL git hands the pre-push hook), so every clone of one repository
    registers under one id, whichever command publishes; two URLs of one server (ssh and
    https) make two registrations, which only keeps more.

    Raises:
        ConfigError: ``remote`` is neither a git remote nor a URL.
    """
    url = remote
    if remote in git.output(["remote"]).split():
        url = git.output(["remote", "get-url", "--push", remote]).strip()
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
    """A push's record, and its part in the collector's protocol, for one bucket.

    Call :meth:`begin` before the push stats anything, :meth:`add` with what the push
    makes reachable, :meth:`reused` with the objects it skipped because the bucket had
    them, and :meth:`publish` before the push's refs may land.

    Args:
        remote: The bucket.
        repo: The pushing repository's registration.
        by: ``pre-push``, ``push``, ``transfer``, for the record.
        cache_dir: Where condemned lists are kept between pushes.
    """

    def __init__(self, remote: Remote, repo: RepoIdentity, by: str, cache_dir: Path) -> None:
        self._remote = remote
        self._repo = repo
        self._by = by
        self._key = f"{REPOS_PREFIX}{repo.id}/pushes/{new_stamp()}"
        self._refs: dict[str, str] = {}
        self._oids: dict[str, None] = {}
        self._check = CondemnedCheck(remote.records, remote.url, cache_dir)
        self._published = -1

    def begin(self) -> None:
        """Read the collector's state (and a pending list): see :class:`CondemnedCheck`."""
        self._check.begin()

    @property
    def oids(self) -> list[str]:
        """Every object the record names so far."""
        return list(self._oids)

    def add(self, oids: Iterable[str], refs: Mapping[str, str] | None = None) -> None:
        """Objects (and the refs and their new commits) the push makes reachable."""
        self._oids.update(dict.fromkeys(oids))
        self._refs.update(refs or {})

    def reused(self, oids: Iterable[str]) -> None:
        """The push relies on these objects, which the bucket already held.

        Raises:
            TransferError: a collection condemned one of them and a sweep began or
                ended since :meth:`begin`: the push must run again (the object is then
                uploaded afresh if the sweep deleted it).
        """
        wanted = self._check.condemned(oids)
        if not wanted:
            return
        self.add(wanted)
        self.publish()
        self._check.confirm(wanted)

    def publish(self) -> None:
        """Write the record (again, if it grew): before the push's refs may land."""
        oids = list(self._oids)
        if (not oids and not self._refs) or len(oids) == self._published:
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

    @property
    def _records(self) -> RecordBackend:
        return self._remote.records


def snapshot_tips(git: Git, remote: str) -> dict[str, str]:
    """Fetch every ref of git remote ``remote``; their names and object names.

    All of ``refs/*``, not only branches and tags: a push to ``refs/exps/run1`` or a
    review system's ``refs/changes/*`` keeps its objects as a branch does. They are
    fetched into ``refs/lfs-agent/gc/<remote>/``, with ``--prune``, so that the user's
    refs are untouched and a deleted ref leaves the snapshot.

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
            f"+refs/*:{base}/*",
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


def _check_history(git: Git, policy: Policy) -> None:
    """Refuse a shallow clone where the policy needs history it does not have.

    A snapshot made from a clone that sees one commit would leave every older model
    out: under ``history``, all of them would be collected.

    Raises:
        ConfigError: naming the fix.
    """
    if policy.kind == "tips+tags":
        return  # only the tips' trees: what a shallow fetch has
    if git.output(["rev-parse", "--is-shallow-repository"]).strip() == "true":
        raise ConfigError(
            f"this clone is shallow: it cannot see the history policy {policy} keeps; "
            "run 'git fetch --unshallow' first (in CI, check out with fetch-depth: 0)"
        )


def _snapshot_key(repo_id: str, basis: float, name: str, part: int) -> str:
    """Where part ``part`` of a snapshot goes (part 0, written last, counts the parts).

    Named by the basis, so that the newest snapshot is found by listing.
    """
    stamp = f"{round(basis * 1000):015d}-{name}"
    return f"{REPOS_PREFIX}{repo_id}/snapshots/{stamp}-{part:05d}.json"


_SNAPSHOT_NAME = re.compile(r"(\d{15})-([0-9a-f]{8})-(\d{5})\.json")


def _snapshot_name(key: str) -> tuple[float, str, int] | None:
    """A snapshot key's basis (seconds), name and part; None for a key not named so."""
    match = _SNAPSHOT_NAME.fullmatch(key.rsplit("/", 1)[-1])
    return (int(match[1]) / 1000, match[2], int(match[3])) if match else None


def _basis_of(key: str) -> float:
    """The basis a snapshot's key names, in seconds; -1 for a key not named so."""
    named = _snapshot_name(key)
    return named[0] if named else -1.0


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
    from lfs_agent.gcrecords import Snapshot

    _check_history(git, policy)
    marker_key = f"{REPOS_PREFIX}{repo.id}/refresh/{new_stamp()}.json"
    basis = collector.put_meta_entry(marker_key, b"{}").modified if write else time.time()
    refs = snapshot_tips(git, remote)
    oids = sorted({f.pointer.oid for f in policy_pointers(git, list(refs.values()), policy)})
    parts = max(1, -(-len(oids) // OIDS_PER_RECORD))
    whole = Snapshot(
        repo=repo.id, url=repo.url, policy=str(policy), basis=basis, refs=refs, oids=oids
    )
    if write:
        name = secrets.token_hex(4)
        # Part 0 last: a reader that finds it finds the others.
        for part in reversed(range(parts)):
            chunk = oids[part * OIDS_PER_RECORD : (part + 1) * OIDS_PER_RECORD]
            one = whole.model_copy(
                update={
                    "oids": chunk,
                    "part": part,
                    "parts": parts,
                    "refs": refs if part == 0 else {},
                }
            )
            collector.put_meta(
                _snapshot_key(repo.id, basis, name, part), one.model_dump_json().encode()
            )
        marker = collector.stat_entry(marker_key)
        if marker is not None:
            collector.delete_entries([marker])
    return whole


class Repository(NamedTuple):
    """A registered repository as the collector sees it."""

    id: str
    url: str
    #: The snapshot the roots come from, or None when it has none.
    snapshot: Snapshot | None
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
        if entry.key.endswith("/"):
            continue  # a "folder" some S3 tools create: no record
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
    from lfs_agent.gcrecords import PushRecord, parse_record

    latest = own if own is not None else _latest_snapshot(collector, entries)
    pushes: list[PushRecord] = []
    superseded: list[Entry] = []
    last_push = None
    url = latest.url if latest else ""
    for entry in entries:
        kind = entry.key.split("/")[3]
        old = latest is not None and entry.modified < latest.basis - push_window
        if kind == "snapshots":
            # Keys hold the basis in whole milliseconds: compare like with like.
            if latest is not None and _basis_of(entry.key) < round(latest.basis * 1000) / 1000:
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
    return Repository(repo_id, url, latest, pushes, superseded, last_push)


def _latest_snapshot(collector: Collector, entries: list[Entry]) -> Snapshot | None:
    """The snapshot with the latest basis whose part 0 is there, all its parts joined.

    Raises:
        ConfigError: a snapshot key lfs-agent would not write, or a part missing or
            not matching its key.
    """
    from lfs_agent.gcrecords import Snapshot, parse_record

    found: dict[tuple[float, str], dict[int, Entry]] = {}
    for entry in entries:
        if entry.key.split("/")[3] != "snapshots":
            continue
        named = _snapshot_name(entry.key)
        if named is None:
            raise ConfigError(
                f"record {entry.key} is not where lfs-agent writes records: delete it"
            )
        found.setdefault(named[:2], {})[named[2]] = entry
    for (basis, _), parts in sorted(found.items(), reverse=True):
        if 0 not in parts:
            continue  # still being written, or part of a removed one
        first_data = collector.get_meta(parts[0].key)
        if first_data is None:
            continue  # removed since listed: an older one stands in
        first: Snapshot = parse_record(Snapshot, first_data, parts[0].key)
        oids = list(first.oids)
        for number in range(1, first.parts):
            other = parts.get(number)
            data = collector.get_meta(other.key) if other is not None else None
            if other is None or data is None:
                raise ConfigError(
                    f"part {number} of snapshot {parts[0].key} is missing: run "
                    "'lfs-agent gc --refresh' in a clone of that repository"
                )
            oids.extend(parse_record(Snapshot, data, other.key).oids)
        if round(first.basis * 1000) / 1000 != basis:
            raise ConfigError(f"record {parts[0].key} names a basis its key does not: delete it")
        return first.model_copy(update={"oids": oids})
    return None
