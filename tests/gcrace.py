"""A seeded scheduler of pushes and garbage collections sharing one bucket.

Three clones of one repository (a bare server repository on disk) push, tag, create
and delete branches, force-push, bring an old model back, and collect the bucket,
while a scheduler seeded by one number decides, at every checkpoint, which operation
goes on, which one is killed (a ``kill -9``: it never goes on, and whatever it wrote
stays), and when the store's clock moves.

Determinism: every operation runs in its own thread but only one runs at a time; each
one blocks at its checkpoints until the scheduler lets it go on. The checkpoints are
those of :func:`lfs_agent.collect.collect`, those between the steps of a push (in the
order of the CLI's pre-push path: ``PushRecorder.begin``, the uploads, ``add`` and
``reused``, ``publish``, then the server's ref update), and two in a refresh: once
its marker fixed the basis, and once the refs are fetched (before the snapshot is
written). Half the collections refresh no snapshot (run outside a clone of this
repository), so that push records alone keep what pushes add between refreshes.

The store's clock: every key written through :class:`ClockedBackend` is given the
scheduler's time, so that a sweep delay of a few ticks stands for hours, and a push
takes as long as the scheduler says. The argument the collector rests on assumes
that a push lands its refs within the sweep delay of its first read of the state;
the scheduler kills a push that would take longer, as the model allows (a killed
push never lands its refs).

Git objects are written by this module (loose objects, zlib), the clones share the
server's object database (their own refs, their own condemned-list cache), and refs
land with ``git update-ref`` checking the old value the push saw, as a server's
receive-pack does.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfs_agent.backends import Capability, Deleted, Entry, object_key
from lfs_agent.collect import GcOptions, collect
from lfs_agent.condemned import CONDEMNED_STATE_KEY, condemned_list_key
from lfs_agent.errors import ConfigError, TransferError
from lfs_agent.gclock import LOCK_KEY, LockHeld
from lfs_agent.git import Git
from lfs_agent.metrics import (
    HISTORY_PREFIX,
    TAGS_PREFIX,
    Artifact,
    TagRecord,
    push_record_with_objects,
)
from lfs_agent.registry import (
    PushRecorder,
    RepoIdentity,
    publish_snapshot,
    pushed_reach,
    repository_id,
)
from lfs_agent.remote import Remote
from lfs_agent.retention import Policy
from lfs_agent.scan import ZERO_OID, pre_push_pointers
from lfs_agent.store import ObjectStore
from lfs_agent.sync import push

#: The store's time of tick 0 (any fixed epoch second: records show it).
BASE = 1_800_000_000.0
#: The sweep delay, in ticks: the longest a push may take.
SWEEP_AFTER = 8.0
#: The grace period, in the same ticks: a collection refuses a repository whose snapshot
#: is older, so collections that refresh nothing run only while a refresh is this recent.
GRACE = 3 * SWEEP_AFTER
#: The collector's lock renewal: never within a schedule (a kill stops it anyway).
HEARTBEAT = 3600.0
HISTORY = Policy("history")
FILES = ("a.bin", "b.bin")

#: What an actor may do, and how often.
KINDS: dict[str, float] = {
    "push": 3.0,
    "revert": 2.0,
    "force-push": 1.5,
    "branch-create": 1.5,
    "branch-delete": 1.0,
    "git-tag": 1.0,
    "metrics-tag": 1.0,
    "gc": 4.0,
    "refresh": 1.0,
}


class Killed(BaseException):
    """Raised in a killed operation's thread when the schedule ends: it stops there.

    A BaseException, so that no ``except LfsAgentError`` or ``finally`` of the code
    under test can carry on as if it had failed normally; its writes raise it too.
    """


class RefRejected(Exception):
    """The server's ref was not what the push saw (receive-pack's check)."""


class HarnessError(Exception):
    """The harness lost its own footing (a deadlock, a key written behind its back)."""


# --- git objects ------------------------------------------------------------------------


def write_object(objects: Path, kind: str, body: bytes) -> str:
    """Store a loose git object; return its name."""
    data = f"{kind} {len(body)}\0".encode() + body
    sha = hashlib.sha1(data).hexdigest()
    path = objects / sha[:2] / sha[2:]
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        temp = path.with_name(path.name + ".tmp")
        temp.write_bytes(zlib.compress(data, 1))
        os.replace(temp, path)
    return sha


def pointer_text(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


@dataclass
class Model:
    """What the harness made: commits with their LFS files, objects with their bytes."""

    #: commit -> (parents, {path: oid})
    commits: dict[str, tuple[tuple[str, ...], dict[str, str]]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    #: Objects in the order they were made: "long ago" is the front.
    order: list[str] = field(default_factory=list)
    made: int = 0

    def copy(self) -> Model:
        return Model(dict(self.commits), dict(self.sizes), list(self.order), self.made)

    def reachable(self, tips: Sequence[str]) -> set[str]:
        """Every LFS object of every commit reachable from ``tips`` (policy history)."""
        seen: set[str] = set()
        oids: set[str] = set()
        stack = list(tips)
        while stack:
            commit = stack.pop()
            if commit in seen:
                continue
            seen.add(commit)
            parents, files = self.commits[commit]
            oids.update(files.values())
            stack.extend(parents)
        return oids

    def history(self, tip: str) -> list[str]:
        """Commits reachable from ``tip``, first-parent first."""
        out: list[str] = []
        commit: str | None = tip
        while commit is not None:
            out.append(commit)
            parents = self.commits[commit][0]
            commit = parents[0] if parents else None
        return out


class Repo:
    """The server repository and the shared LFS store of the clones, with the model."""

    def __init__(self, root: Path, model: Model) -> None:
        self.root = root
        self.server = root / "server.git"
        self.objects = self.server / "objects"
        self.store = ObjectStore(root / "lfs")
        self.model = model

    def new_object(self) -> str:
        """A new model file's bytes: in every clone's store (each has pulled it)."""
        self.model.made += 1
        data = f"model {self.model.made} ".encode() * (1 + self.model.made % 7)
        oid = hashlib.sha256(data).hexdigest()
        path = self.store.object_path(oid)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.model.sizes[oid] = len(data)
        self.model.order.append(oid)
        return oid

    def commit(self, parents: Sequence[str], files: dict[str, str]) -> str:
        entries = b""
        for name in sorted(files):
            oid = files[name]
            blob = write_object(self.objects, "blob", pointer_text(oid, self.model.sizes[oid]))
            entries += f"100644 {name}\0".encode() + bytes.fromhex(blob)
        tree = write_object(self.objects, "tree", entries)
        stamp = 1_700_000_000 + len(self.model.commits)
        body = f"tree {tree}\n" + "".join(f"parent {p}\n" for p in parents)
        body += (
            f"author A <a@example.com> {stamp} +0000\ncommitter A <a@example.com> {stamp} +0000\n"
        )
        body += f"\ncommit {len(self.model.commits)}\n"
        sha = write_object(self.objects, "commit", body.encode())
        self.model.commits[sha] = (tuple(parents), dict(files))
        return sha

    def refs(self) -> dict[str, str]:
        """The server's refs, read by git."""
        out = subprocess.run(
            ["git", "for-each-ref", "--format=%(refname) %(objectname)"],
            cwd=self.server,
            capture_output=True,
            check=True,
            text=True,
        ).stdout
        return dict(line.split(" ", 1) for line in out.splitlines())

    def update_ref(self, ref: str, new: str, old: str) -> None:
        """Land one ref as receive-pack does: only if it still is what the push saw."""
        args = ["update-ref", "-d", ref, old] if new == ZERO_OID else ["update-ref", ref, new, old]
        proc = subprocess.run(["git", *args], cwd=self.server, capture_output=True, check=False)
        if proc.returncode != 0:
            raise RefRejected(f"{ref} moved since the push read it")


# --- the store's clock, and kills -------------------------------------------------------


class Clock:
    """The scheduler's time, and the store's time of every key written through it."""

    def __init__(self) -> None:
        self.tick = 1.0
        self._seq = 0
        #: key -> (tag, store time) of the last write through a ClockedBackend.
        self.times: dict[str, tuple[str, float]] = {}

    def advance(self, ticks: float) -> None:
        self.tick += ticks
        self._seq = 0

    def stamp(self) -> float:
        """The store's time of a write now: later than every earlier write."""
        self._seq += 1
        return BASE + self.tick + self._seq * 1e-4

    def adopt(self, entries: Iterator[Entry]) -> None:
        """Keys already in the bucket: written long before, past the grace period."""
        for entry in entries:
            self.times[entry.key] = (entry.tag, BASE - 10 * GRACE)

    def age(self, key: str, ticks: float) -> None:
        """Make ``key`` look written ``ticks`` before now (a dead lock going stale)."""
        tag, _ = self.times[key]
        self.times[key] = (tag, BASE + self.tick - ticks)


class ClockedBackend:
    """One operation's view of the bucket: the store's times from :class:`Clock`.

    Also where a killed operation is stopped: once its op is killed, every write or
    delete raises :class:`Killed`, so nothing it would do after its death (a release
    of its lock, a delete) reaches the bucket.
    """

    def __init__(self, inner: Any, world: World, op: Op | None) -> None:
        self._inner = inner
        self._world = world
        self._op = op
        self.url = inner.url
        self.max_workers = 1
        self.capabilities = inner.capabilities
        self.meta_max_bytes = getattr(inner, "meta_max_bytes", 1 << 20)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _alive(self) -> None:
        if self._op is not None and self._op.killed:
            raise Killed(self._op.name)

    def _stamped(self, key: str) -> Entry:
        entry = self._inner.stat_entry(key)
        if entry is None:
            raise HarnessError(f"{key} vanished as it was written")
        when = self._world.clock.stamp()
        self._world.clock.times[key] = (entry.tag, when)
        return entry._replace(modified=when)

    def _timed(self, entry: Entry) -> Entry:
        known = self._world.clock.times.get(entry.key)
        if known is None or known[0] != entry.tag:
            raise HarnessError(f"{entry.key} was written behind the clock's back")
        return entry._replace(modified=known[1])

    # Writes.
    def upload(
        self, oid: str, src_path: Path, size: int, progress: Any, checked: bool = False
    ) -> None:
        self._alive()
        self._inner.upload(oid, src_path, size, progress, checked)
        self._stamped(object_key(oid))

    def put_meta(self, key: str, data: bytes) -> None:
        if "/snapshots/" in key and self._op is not None:
            # The refs are fetched, the snapshot not yet published.
            self._op.checkpoint("refresh-fetched")
        self._alive()
        self._inner.put_meta(key, data)
        self._stamped(key)
        if "/refresh/" in key and self._op is not None:
            # The basis of a snapshot is fixed: the fetch of the refs comes next.
            self._op.checkpoint("refresh-marked")

    def create_meta(self, key: str, data: bytes) -> Entry | None:
        self._alive()
        entry = self._inner.create_meta(key, data)
        return None if entry is None else self._stamped(key)

    def delete_entries(self, entries: Sequence[Entry]) -> list[Deleted]:
        self._alive()
        real = []
        for entry in entries:
            now = self._inner.stat_entry(entry.key)
            # The entry as the store describes it, for the store's conditional delete.
            if now is not None and self._timed(now) == entry:
                real.append(now)
        deleted: list[Deleted] = self._inner.delete_entries(real)
        objects = [d.key for d in deleted if d.key.startswith("objects/")]
        if objects and self._op is not None:
            self._op.deleted_objects += len(objects)
            self._world.log.append(f"    deleted {', '.join(k[-8:] for k in objects)}")
        return deleted

    def undelete(self, deleted: Deleted) -> bool:
        raise HarnessError("no undo in a race")

    # Reads.
    def list_entries(self, prefix: str) -> Iterator[Entry]:
        for entry in list(self._inner.list_entries(prefix)):
            yield self._timed(entry)

    def stat_entry(self, key: str) -> Entry | None:
        entry = self._inner.stat_entry(key)
        return None if entry is None else self._timed(entry)


# --- operations ---------------------------------------------------------------------------


class Op:
    """One actor's operation, in a thread that runs only when the scheduler says."""

    def __init__(self, world: World, actor: int, kind: str, body: Callable[[Op], str]) -> None:
        self.world = world
        self.actor = actor
        self.kind = kind
        self.name = f"c{actor}:{kind}#{len(world.ops)}"
        self._body = body
        self._go = threading.Semaphore(0)
        self._back = threading.Semaphore(0)
        self.at = "spawned"
        self.done = False
        self.killed = False
        self.outcome = ""
        self.error: BaseException | None = None
        #: The tick of its first read of the collector's state (a push), if it read it.
        self.began: float | None = None
        self.deleted_objects = 0
        self.swept = False
        #: A revert that brings back an object a pending list condemns.
        self.revert_condemned = False
        #: The tag record a metrics-tag operation wrote (pushed again if told to).
        self.record: TagRecord | None = None
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()

    def remote(self) -> Remote:
        inner = self.world.inner
        return Remote(inner.url, opener=lambda *_: ClockedBackend(inner, self.world, self))

    def checkpoint(self, step: str) -> None:
        """Wait here until the scheduler lets this operation go on (or killed it)."""
        self.at = step
        self._back.release()
        self._go.acquire()
        if self.killed:
            raise Killed(step)

    def _run(self) -> None:
        try:
            self._go.acquire()
            if self.killed:
                raise Killed(self.at)
            self.outcome = self._body(self)
        except Killed:
            self.outcome = f"killed at {self.at}"
        except BaseException as exc:
            self.error = exc
            self.outcome = f"{type(exc).__name__}: {exc}"
        finally:
            self.done = True
            self._back.release()

    def step(self) -> None:
        """Let it run to its next checkpoint, or to its end."""
        self._go.release()
        if not self._back.acquire(timeout=60):
            raise HarnessError(f"{self.name} did not reach a checkpoint after {self.at}")

    def unblock(self) -> None:
        """End a killed operation's thread: it raises :class:`Killed` where it waits."""
        self._go.release()
        self.thread.join(60)
        if self.thread.is_alive():
            raise HarnessError(f"killed {self.name} did not stop")


@dataclass
class Tally:
    """What the schedules exercised, summed over all of them."""

    kills: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    sweeps_deleting: int = 0
    condemning: int = 0
    pushes_failed_by_sweep: int = 0
    reverts_to_condemned: int = 0
    bound_kills: int = 0
    lock_held: int = 0
    #: Collections that refreshed nothing, refused while the snapshot was too old.
    stale_refusals: int = 0
    ref_rejected: int = 0


class World:
    """One schedule: the repository, the bucket, the clock, the actors' operations."""

    def __init__(self, root: Path, repo: Repo, inner: Any, tally: Tally) -> None:
        self.root = root
        self.repo = repo
        self.inner = inner
        self.tally = tally
        self.clock = Clock()
        self.clock.adopt(inner.list_entries("objects/"))
        self.clock.adopt(inner.list_entries("meta/"))
        self.ops: list[Op] = []
        self.log: list[str] = []
        self.server_refs = repo.refs()
        self.tags = 0
        self._identities: dict[int, RepoIdentity] = {}

    def clone(self, actor: int) -> Git:
        return Git(self.root / f"c{actor}")

    def identity(self, actor: int) -> RepoIdentity:
        """:func:`repository_id` of a clone's origin, asked once (it never changes here)."""
        if actor not in self._identities:
            self._identities[actor] = repository_id(self.clone(actor), "origin")
        return self._identities[actor]

    # --- reading the bucket behind everyone's back (no clock, no checkpoint) ---
    def condemned_now(self) -> set[str]:
        data = self.inner.get_meta(CONDEMNED_STATE_KEY)
        if data is None:
            return set()
        state = json.loads(data)
        oids: set[str] = set()
        for part in range(state.get("parts", 0)):
            listed = self.inner.get_meta(condemned_list_key(state["run"], part))
            if listed is not None:
                oids.update(e[0] for e in json.loads(listed)["entries"])
        return oids

    def tag_record_oids(self) -> set[str]:
        oids: set[str] = set()
        for prefix in (TAGS_PREFIX, HISTORY_PREFIX):
            for key in self.inner.list_meta(prefix):
                data = self.inner.get_meta(key)
                if data is not None:
                    oids.update(a["oid"] for a in json.loads(data)["artifacts"])
        return oids

    def missing(self) -> list[str]:
        """Objects the server's refs (all history) or a tag record reach, not in the bucket."""
        refs = self.repo.refs()
        wanted = self.repo.model.reachable(list(refs.values())) | self.tag_record_oids()
        return sorted(o for o in wanted if self.inner.stat(o) is None)


# The operations. Each returns a word for the log; a push follows cmd_pre_push/_upload.


def _push(op: Op, updates: list[tuple[str, str, str | None]], force: bool) -> str:
    """Push ``(ref, new, expected old)`` as the pre-push path does, then land the refs.

    ``expected old`` is the commit the clone built on (None: any, a forced push); the
    server's old value is read when the push starts, as git's advertisement gives it.
    """
    world = op.world
    git = world.clone(op.actor)
    op.checkpoint("push-start")
    lines, landing = [], []
    for ref, new, expected in updates:
        old = world.server_refs.get(ref, ZERO_OID)
        if not force and expected is not None and old != expected:
            return "rejected (not a fast-forward)"
        lines.append(f"{ref} {new} {ref} {old}")
        landing.append((ref, new, old))
    files = pre_push_pointers(git, "origin", lines)
    if files or any(new != ZERO_OID for _, new, _ in landing):
        with op.remote() as remote:
            recorder: PushRecorder | None = None
            if remote.can(Capability.COLLECT):
                repo = world.identity(op.actor)
                cache = world.root / f"c{op.actor}" / "lfs-agent" / "gc"
                recorder = PushRecorder(remote, repo, "pre-push", cache)
                recorder.add(
                    f.pointer.oid for f in pushed_reach(git, landing, HISTORY) if f.pointer.size
                )
                if not recorder.oids:
                    recorder = None
                else:
                    recorder.begin()
                    op.began = world.clock.tick
            op.checkpoint("push-begun")
            result = push(world.repo.store, remote, files, 1)
            op.checkpoint("push-uploaded")
            if recorder is not None:
                recorder.add(f.pointer.oid for f in files if f.pointer.size > 0)
                uploaded = {p.oid for p in result.done}
                recorder.reused(oid for oid in recorder.oids if oid not in uploaded)
                op.checkpoint("push-reused")
                recorder.publish()
    op.checkpoint("push-published")
    for ref, new, old in landing:
        world.repo.update_ref(ref, new, old)
        if new == ZERO_OID:
            world.server_refs.pop(ref, None)
        else:
            world.server_refs[ref] = new
    return "landed " + ", ".join(f"{r.rsplit('/', 1)[-1]}={n[:7]}" for r, n, _ in landing)


def _branches(op: Op) -> dict[str, str]:
    return {r: s for r, s in op.world.server_refs.items() if r.startswith("refs/heads/")}


def op_push(op: Op, rng: random.Random) -> str:
    """A new commit changing one model file, on a branch as the clone last fetched it."""
    repo = op.world.repo
    branches = _branches(op)
    if not branches:
        return "no branch"
    ref = rng.choice(sorted(branches))
    tip = branches[ref]
    files = dict(repo.model.commits[tip][1])
    files[rng.choice(FILES)] = repo.new_object()
    return _push(op, [(ref, repo.commit([tip], files), tip)], force=False)


def op_revert(op: Op, rng: random.Random) -> str:
    """A commit whose tree brings back a model from long ago (condemned, if one is)."""
    world, repo = op.world, op.world.repo
    branches = _branches(op)
    if not branches:
        return "no branch"
    ref = rng.choice(sorted(branches))
    tip = branches[ref]
    files = dict(repo.model.commits[tip][1])
    condemned = sorted(world.condemned_now() - set(files.values()))
    old = [o for o in repo.model.order[:-3] if o not in files.values()]
    if condemned and rng.random() < 0.8:
        oid = rng.choice(condemned)
        op.world.log.append(f"    {op.name} brings back condemned {oid[:8]}")
        op.revert_condemned = True
    elif old:
        oid = rng.choice(old[: max(1, len(old) // 2)])
    else:
        return "nothing old"
    return revert_to(op, oid, ref, rng.choice(FILES))


def revert_to(op: Op, oid: str, ref: str = "refs/heads/main", path: str = "a.bin") -> str:
    """Push a commit on ``ref`` whose ``path`` is the old object ``oid`` again."""
    repo = op.world.repo
    tip = op.world.server_refs[ref]
    files = dict(repo.model.commits[tip][1])
    files[path] = oid
    return _push(op, [(ref, repo.commit([tip], files), tip)], force=False)


def op_force_push(op: Op, rng: random.Random) -> str:
    """Rewrite a branch: a new commit on the tip's parent (or grandparent)."""
    repo = op.world.repo
    branches = _branches(op)
    if not branches:
        return "no branch"
    ref = rng.choice(sorted(branches))
    history = repo.model.history(branches[ref])
    base = history[min(len(history) - 1, rng.choice((1, 2)))]
    files = dict(repo.model.commits[base][1])
    files[rng.choice(FILES)] = repo.new_object()
    return _push(op, [(ref, repo.commit([base], files), None)], force=True)


def op_branch_create(op: Op, rng: random.Random) -> str:
    """A new branch at any commit the clone has: a tip, an old one, or one rewritten away."""
    repo = op.world.repo
    commit = rng.choice(sorted(repo.model.commits))
    op.world.tags += 1
    return _push(op, [(f"refs/heads/b{op.world.tags}", commit, ZERO_OID)], force=False)


def op_branch_delete(op: Op, rng: random.Random) -> str:
    branches = sorted(r for r in _branches(op) if r != "refs/heads/main")
    if not branches:
        return "no branch to delete"
    ref = rng.choice(branches)
    return _push(op, [(ref, ZERO_OID, op.world.server_refs[ref])], force=True)


def op_git_tag(op: Op, rng: random.Random) -> str:
    """A git tag pushed on an old commit of a branch."""
    repo = op.world.repo
    branches = _branches(op)
    if not branches:
        return "no branch"
    history = repo.model.history(branches[rng.choice(sorted(branches))])
    op.world.tags += 1
    return _push(op, [(f"refs/tags/t{op.world.tags}", rng.choice(history), ZERO_OID)], False)


def op_metrics_tag(op: Op, rng: random.Random) -> str:
    """``lfs-agent tag``: a tag record naming a commit's models, written as the CLI does."""
    repo = op.world.repo
    branches = _branches(op)
    if not branches:
        return "no branch"
    # A commit of a branch: a tag record of a commit no ref reaches is not protected
    # from a sweep (see test_gc_races.test_a_tag_record_written_during_a_sweep).
    commit = rng.choice(repo.model.history(branches[rng.choice(sorted(branches))]))
    return tag_commit(op, commit)


def tag_commit(op: Op, commit: str) -> str:
    """``lfs-agent tag``'s bucket half: a record naming ``commit``'s models."""
    world, repo = op.world, op.world.repo
    files = repo.model.commits[commit][1]
    world.tags += 1
    record = TagRecord(
        tag=f"m{world.tags}",
        commit=commit,
        artifacts=[Artifact(path=p, oid=o, size=repo.model.sizes[o]) for p, o in files.items()],
    )
    op.record = record
    op.checkpoint("tag-start")
    with op.remote() as remote:
        push_record_with_objects(repo.store, remote, record, "20260101T000000Z")
    return f"tag record {record.tag} at {commit[:7]}"


def repush_record(op: Op, record: TagRecord) -> str:
    """``lfs-agent metrics push``: a record left pending, stored again with its objects."""
    with op.remote() as remote:
        push_record_with_objects(op.world.repo.store, remote, record, "20260101T000001Z")
    return f"metrics push {record.tag}"


def op_gc(op: Op, rng: random.Random, refreshing: bool | None = None) -> str:
    """``lfs-agent gc --remote``: sweep a due list, condemn anew (grace :data:`GRACE`).

    ``refreshing``: whether it refreshes this repository's snapshot first (None: as
    ``rng`` says).
    """
    world = op.world
    git = world.clone(op.actor)
    with op.remote() as remote:
        collector = remote.collector
        repo = world.identity(op.actor)

        def refresh(write: bool) -> Any:
            return publish_snapshot(git, collector, "origin", repo, HISTORY, write=write)

        # Half the collections run where they refresh no snapshot of this repository
        # (outside a clone, or in a clone of another repository sharing the bucket):
        # between refreshes, only the push records keep what the pushes add.
        if refreshing is None:
            refreshing = rng.random() < 0.5
        fresh = refresh if refreshing else None
        report = collect(collector, GcOptions(GRACE, SWEEP_AFTER), fresh, HEARTBEAT, op.checkpoint)
    op.swept = report.swept_run is not None
    if report.condemned:
        world.tally.condemning += 1
    return (
        f"gc: swept {report.swept_run or '-'} deleting {len(report.deleted)}, "
        f"condemned {len(report.condemned)}"
    )


def refreshing_gc(op: Op, rng: random.Random) -> str:
    """A collection in a clone of this repository: it refreshes the snapshot first."""
    return op_gc(op, rng, refreshing=True)


def quiet_gc(op: Op, rng: random.Random) -> str:
    """A collection that refreshes no snapshot."""
    return op_gc(op, rng, refreshing=False)


def op_refresh(op: Op, rng: random.Random) -> str:
    """``lfs-agent gc --refresh``."""
    git = op.world.clone(op.actor)
    op.checkpoint("refresh-start")
    with op.remote() as remote:
        snap = publish_snapshot(
            git, remote.collector, "origin", op.world.identity(op.actor), HISTORY
        )
    return f"refresh: {len(snap.oids)} objects"


OPERATIONS: dict[str, Callable[[Op, random.Random], str]] = {
    "push": op_push,
    "revert": op_revert,
    "force-push": op_force_push,
    "branch-create": op_branch_create,
    "branch-delete": op_branch_delete,
    "git-tag": op_git_tag,
    "metrics-tag": op_metrics_tag,
    "gc": op_gc,
    "refresh": op_refresh,
}

#: Errors an operation may end with in a race: each is the product telling its user
#: to run again (or another collection running), never a lost object.
EXPECTED = (TransferError, LockHeld, RefRejected)
#: A collection refusing a repository not refreshed within the grace period: the safe
#: answer of a collection that refreshes nothing, once the last refresh is too old.
STALE_REFUSAL = "last refreshed before the grace period began"
_RUN_AGAIN = re.compile(r"push again|run it again|run the command again")


# --- the scheduler ------------------------------------------------------------------------


def run_schedule(world: World, seed: int, n_ops: int, kinds: dict[str, float] = KINDS) -> None:
    """Interleave ``n_ops`` operations of three actors as ``seed`` decides."""
    rng = random.Random(seed)
    tally = world.tally
    # A first collection condemns what the template left unreachable (the template's
    # own, when its bucket was copied with it); the race then starts at a random time
    # of that list's sweep delay.
    if world.inner.get_meta(CONDEMNED_STATE_KEY) is None:
        run_alone(world, 0, "gc", refreshing_gc)
    world.clock.advance(rng.choice((1.0, SWEEP_AFTER / 2, SWEEP_AFTER - 1, SWEEP_AFTER)))
    running: dict[int, Op] = {}
    killed: list[Op] = []
    started = 0
    names, weights = list(kinds), list(kinds.values())

    def kill(op: Op, why: str) -> None:
        op.killed = True
        tally.kills[op.at] += 1
        world.log.append(f"t={world.clock.tick:g} {op.name} KILLED at {op.at} ({why})")
        killed.append(op)
        running.pop(op.actor)

    try:
        while started < n_ops or running:
            idle = [a for a in range(3) if a not in running]
            actions: list[tuple[str, int]] = []
            action_weights: list[float] = []
            if started < n_ops and idle:
                actions.append(("start", rng.choice(idle)))
                action_weights.append(2.0)
            for actor in sorted(running):
                actions += [("step", actor), ("kill", actor)]
                action_weights += [3.0, 0.15]
            actions.append(("tick", 0))
            action_weights.append(1.0)
            what, actor = rng.choices(actions, action_weights)[0]
            if what == "start":
                kind = rng.choices(names, weights)[0]
                body = OPERATIONS[kind]
                op_rng = random.Random(rng.getrandbits(64))
                op = Op(world, actor, kind, lambda o, b=body, r=op_rng: b(o, r))
                world.ops.append(op)
                running[actor] = op
                started += 1
                if kind == "gc":
                    _age_dead_lock(world, running, rng)
            elif what == "tick":
                ticks = rng.choice((1.0, 1.0, 2.0, SWEEP_AFTER / 2, SWEEP_AFTER))
                world.clock.advance(ticks)
                world.log.append(f"t={world.clock.tick:g} (+{ticks:g})")
            elif what == "kill":
                kill(running[actor], "kill -9")
            else:
                op = running[actor]
                if op.began is not None and world.clock.tick - op.began >= SWEEP_AFTER:
                    tally.bound_kills += 1
                    kill(op, "a push no longer than the sweep delay")
                    continue
                before = op.at
                op.step()
                world.log.append(
                    f"t={world.clock.tick:g} {op.name}: {before} -> "
                    + (f"done: {op.outcome}" if op.done else op.at)
                )
                if op.done:
                    running.pop(actor)
                    _judge(world, op)
    finally:
        for op in killed:
            op.unblock()
        for op in running.values():  # only after a harness error: end them as kills
            op.killed = True
            op.unblock()
    for op in killed:
        if op.deleted_objects:
            tally.sweeps_deleting += 1


def _judge(world: World, op: Op) -> None:
    tally = world.tally
    if op.revert_condemned:
        tally.reverts_to_condemned += 1
    if op.deleted_objects:
        tally.sweeps_deleting += 1
    error = op.error
    if error is None:
        tally.outcomes[f"{op.kind}: ok"] += 1
        return
    tally.outcomes[f"{op.kind}: {type(error).__name__}"] += 1
    if isinstance(error, TransferError) and _RUN_AGAIN.search(str(error)):
        tally.pushes_failed_by_sweep += 1
    elif isinstance(error, ConfigError) and STALE_REFUSAL in str(error):
        tally.stale_refusals += 1
        return
    elif isinstance(error, LockHeld):
        tally.lock_held += 1
    elif isinstance(error, RefRejected):
        tally.ref_rejected += 1
    if not isinstance(error, EXPECTED):
        raise HarnessError(f"{op.name} failed unexpectedly: {op.outcome}") from error


def _age_dead_lock(world: World, running: dict[int, Op], rng: random.Random) -> None:
    """A killed collection's lock goes stale (as ten minutes without renewal would).

    Only when no collection that may hold it still runs: a live holder's lock never
    goes stale (it renews it).
    """
    if world.inner.stat_entry(LOCK_KEY) is None or rng.random() < 0.1:
        return
    if any(op.kind == "gc" and op.at != "spawned" for op in running.values()):
        return
    world.clock.age(LOCK_KEY, 10_000)
    world.log.append(f"t={world.clock.tick:g} the dead lock went stale")


def settle(world: World) -> list[str]:
    """After the race: time passes, the dead lock goes stale, two collections run.

    Returns:
        The objects the server's refs or the tag records reach that the bucket lacks.
    """
    # A tag command told to run again (a sweep of its objects began) leaves its record
    # pending: the user's 'lfs-agent metrics push' stores it again, uploading what the
    # sweep deleted.
    pending = [op.record for op in world.ops if op.record and isinstance(op.error, TransferError)]
    for record in pending:
        world.clock.advance(SWEEP_AFTER + 1)
        if world.inner.stat_entry(LOCK_KEY) is not None:
            world.clock.age(LOCK_KEY, 10_000)
        run_alone(world, 0, "gc", refreshing_gc)  # the sweep ends
        run_alone(world, 0, "metrics-push", lambda o, _, r=record: repush_record(o, r))
    for body in (refreshing_gc, quiet_gc):
        world.clock.advance(SWEEP_AFTER + 1)
        if world.inner.stat_entry(LOCK_KEY) is not None:
            world.clock.age(LOCK_KEY, 10_000)
        run_alone(world, 0, "gc", body)
    return world.missing()


def start(world: World, actor: int, kind: str, body: Callable[[Op, random.Random], str]) -> Op:
    """An operation of ``actor``, waiting for its first step."""
    op = Op(world, actor, kind, lambda o: body(o, random.Random(0)))
    world.ops.append(op)
    return op


def run_to(op: Op, step: str | None = None) -> Op:
    """Let ``op`` go on until it waits at ``step`` (None: until it ends)."""
    while not op.done and (step is None or op.at != step):
        before = op.at
        op.step()
        op.world.log.append(
            f"t={op.world.clock.tick:g} {op.name}: {before} -> "
            + (f"done: {op.outcome}" if op.done else op.at)
        )
    if step is not None and op.at != step:
        raise HarnessError(f"{op.name} ended ({op.outcome}) before {step}")
    return op


def run_alone(world: World, actor: int, kind: str, body: Callable[[Op, random.Random], str]) -> Op:
    """Run one operation to its end with nothing else going on; it must succeed."""
    op = run_to(start(world, actor, kind, body))
    if op.error is not None:
        raise HarnessError(f"{op.name} failed: {op.outcome}")
    return op


# --- set-up ----------------------------------------------------------------------------------


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_template(root: Path, inner: Any) -> Model:
    """The server with a history, three clones, objects pushed, and a first snapshot.

    Some objects are left unreachable (commits rewritten away), and a first collection
    condemns them. A copy of the template whose bucket keeps the objects' tags (a
    folder's objects are linked) starts with that list pending; one whose bucket is
    copied without ``meta/gc/`` condemns them anew.

    Each schedule runs where the template was made (:func:`copy_template`): the
    clones' remote URL, and so the repository's registration, stay the same.
    """
    root.mkdir(parents=True)
    _git("init", "-q", "--bare", "--template=", "server.git", cwd=root)
    repo = Repo(root, Model())
    o = [repo.new_object() for _ in range(8)]
    c1 = repo.commit([], {"a.bin": o[0], "b.bin": o[1]})
    c2 = repo.commit([c1], {"a.bin": o[2], "b.bin": o[1]})
    c3 = repo.commit([c2], {"a.bin": o[2], "b.bin": o[3]})
    c4 = repo.commit([c3], {"a.bin": o[4], "b.bin": o[3]})
    d1 = repo.commit([c2], {"a.bin": o[5], "b.bin": o[1]})
    x1 = repo.commit([c4], {"a.bin": o[6], "b.bin": o[3]})
    repo.commit([x1], {"a.bin": o[6], "b.bin": o[7]})
    repo.update_ref("refs/heads/main", c4, ZERO_OID)
    repo.update_ref("refs/heads/dev", d1, ZERO_OID)
    for actor in range(3):
        clone = root / f"c{actor}"
        _git("init", "-q", "--bare", "--template=", clone.name, cwd=root)
        shutil.rmtree(clone / "objects")
        (clone / "objects").symlink_to(Path("..") / "server.git" / "objects")
        _git("remote", "add", "origin", str(repo.server), cwd=clone)
    for oid in o:
        path = repo.store.object_path(oid)
        inner.upload(oid, path, repo.model.sizes[oid], lambda n: None)
    world = World(root, repo, inner, Tally())
    git = world.clone(0)
    with Remote(inner.url, opener=lambda *_: ClockedBackend(inner, world, None)) as remote:
        publish_snapshot(git, remote.collector, "origin", repository_id(git, "origin"), HISTORY)
    run_alone(world, 0, "gc", refreshing_gc)
    return repo.model


def copy_template(template: Path, dest: Path) -> None:
    """A fresh schedule's directory, where the template was made: a copy of it."""
    immutable = (str(template / "server.git" / "objects"), str(template / "bucket" / "objects"))

    def copy(src: str, dst: str) -> None:
        # Git's loose objects and the bucket's objects are never written in place:
        # links cost less than copies.
        if src.startswith(immutable):
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(template, dest, symlinks=True, copy_function=copy)
