"""Checking and trimming the local store: ``fsck`` and ``prune``.

fsck re-hashes every stored object (moving corrupt ones to ``<lfs>/bad`` as git-lfs
does), reports pointers at HEAD whose objects are missing or whose encoding is not
canonical, and with a remote checks that the bucket holds every object reachable from
HEAD. prune deletes local objects that neither the current work nor the retention rule
(git-lfs's recent refs and commits, or a :class:`~lfs_agent.retention.Policy`) keeps, that
no unpushed commit refers to, and only those the remote is verified to hold, so an
unpushed object is never lost. It also removes the S3
backend's multipart-upload state (``tmp/s3-upload-<oid>.json``) of uploads that are
provably over, and never the state of an upload that is running.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lfs_agent.backends import bucket_and_prefix, object_key
from lfs_agent.errors import LfsAgentError
from lfs_agent.git import Git
from lfs_agent.hashing import hash_file
from lfs_agent.pathmatch import PathFilter
from lfs_agent.pointer import Pointer
from lfs_agent.redact import redact_text, redact_url
from lfs_agent.remote import Remote
from lfs_agent.retention import (
    Policy,
    PruneRules,
    policy_pointers,
    prune_rule_pointers,
    ref_tips,
    remote_to_check,
    unpushed_pointers,
)
from lfs_agent.scan import PointerFile, index_pointers, rev_list_pointers, tree_pointers
from lfs_agent.store import ObjectStore
from lfs_agent.termtext import quote_path

__all__ = [
    "FsckReport",
    "PruneReport",
    "current_pointers",
    "fsck",
    "prune",
    "referenced_pointers",
    "remove_dead_upload_states",
]

#: The S3 backend's multipart-upload state in the store's ``tmp/`` (see
#: :class:`lfs_agent.backends.s3.upload_state.UploadState`); its upload holds
#: ``s3-upload-<oid>.lock`` while it runs.
_UPLOAD_STATE = re.compile(r"s3-upload-([0-9a-f]{64})\.json")
#: State older than this names an upload ``abort_stale_uploads`` aborts (its
#: ``STALE_UPLOAD_SECONDS``): nothing is left to resume.
UPLOAD_STATE_MAX_AGE = 24 * 3600
#: Variables that would point git at this worktree's git dir or index, not another's.
_WORKTREE_VARIABLES = frozenset(
    {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX"}
)


@dataclass
class FsckReport:
    """Problems found; empty lists mean all is well.

    Each problem is a line to show: file names quoted as git quotes them, remote URLs
    without their credentials.
    """

    checked: int = 0
    corrupt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    non_canonical: list[str] = field(default_factory=list)
    remote_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not (self.corrupt or self.missing or self.non_canonical or self.remote_problems)


def fsck(
    git: Git,
    store: ObjectStore,
    remote: Remote | None = None,
    deep: bool = False,
    every_ref: bool = False,
) -> FsckReport:
    """Check the store, HEAD's pointers and (optionally) the remote.

    Args:
        git: Runs git in the repository.
        store: The local object store.
        remote: When given, check it holds every object reachable from HEAD.
        deep: With ``remote``, download each object and check its sha256 too.
        every_ref: With ``remote``, check every object of every ref's history (branches,
            tags, remote-tracking refs) and of every tag record in the bucket, not
            only HEAD's: what a garbage collection promises to keep.
    """
    report = FsckReport()
    bad_dir = store.root / "bad"
    for pointer in list(store.iter_objects()):
        report.checked += 1
        if not store.verify(pointer.oid):
            bad_dir.mkdir(parents=True, exist_ok=True)
            os.replace(store.object_path(pointer.oid), bad_dir / pointer.oid)
            report.corrupt.append(f"{pointer.oid}: moved to {bad_dir / pointer.oid}")
    head = git.rev_parse("HEAD")
    if head is None:
        return report
    for f in tree_pointers(git, head):
        if not f.pointer.canonical:
            report.non_canonical.append(f"{quote_path(f.path)} (blob {f.blob})")
        if not store.contains(f.pointer):
            report.missing.append(f"{quote_path(f.path)} ({f.pointer.oid})")
    if remote is not None:
        unique: dict[str, PointerFile] = {}
        tips = [head]
        if every_ref:
            tips += git.output(
                [
                    "for-each-ref",
                    "--format=%(objectname)",
                    "refs/heads",
                    "refs/tags",
                    "refs/remotes",
                ]
            ).split()
        for f in rev_list_pointers(git, tips):
            if f.pointer.size > 0:
                unique.setdefault(f.pointer.oid, f)
        if every_ref:
            for f in _tag_record_files(remote, report.remote_problems):
                unique.setdefault(f.pointer.oid, f)
        listed = remote.stat_many(list(unique))
        for f in unique.values():
            problem = _check_remote(store, remote, f, deep, listed)
            if problem:
                report.remote_problems.append(problem)
    return report


def _tag_record_files(remote: Remote, problems: list[str]) -> list[PointerFile]:
    """The artifacts of every tag record in the bucket (and earlier versions), as ``tag:path``.

    A record that cannot be read is a problem: a collection would refuse to run.
    """
    from lfs_agent.metrics import HISTORY_PREFIX, TAGS_PREFIX, TagRecord

    found = []
    records = remote.records
    for key in [*records.list_meta(TAGS_PREFIX), *records.list_meta(HISTORY_PREFIX)]:
        data = records.get_meta(key)
        if data is None:
            continue
        try:
            record = TagRecord.from_json(data, key)
        except LfsAgentError as exc:
            problems.append(redact_text(str(exc)))
            continue
        for artifact in record.artifacts:
            pointer = Pointer(artifact.oid, artifact.size)
            found.append(PointerFile(f"{record.tag}:{artifact.path}", pointer, ""))
    return found


def _check_remote(
    store: ObjectStore,
    remote: Remote,
    f: PointerFile,
    deep: bool,
    listed: Mapping[str, int | None],
) -> str | None:
    """What is wrong with ``f``'s object in the remote, or None."""
    what = f"{quote_path(f.path)} ({f.pointer.oid})"
    url = redact_url(remote.url)
    try:
        size = remote.size_of(f.pointer.oid, listed)
    except LfsAgentError as exc:
        return f"{what}: {redact_text(str(exc))}"
    if size is None:
        return f"{what}: missing on {url}"
    if size != f.pointer.size:
        return f"{what}: {size} bytes on {url}, expected {f.pointer.size}"
    if deep:
        temp = store.temp_path(f.pointer.oid)
        try:
            hashed = remote.download_file(f.pointer.oid, temp, f.pointer.size)
            oid = hashed.oid if hashed is not None else hash_file(temp)[0]
        except LfsAgentError as exc:
            return f"{what}: {redact_text(str(exc))}"
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        if oid != f.pointer.oid:
            return f"{what}: corrupt on {url} (hashes to {oid})"
    return None


def current_pointers(git: Git, exclude: Sequence[str] = ()) -> dict[str, Pointer]:
    """Objects the current work refers to, by oid: what prune always keeps.

    That is the trees of HEAD and of other worktrees' HEADs, the index of each
    worktree, and every stash (its work-tree, index and untracked-files commits).

    Args:
        git: Runs git in the repository.
        exclude: ``lfs.fetchexclude``'s patterns: files they match are not kept for
            being checked out or staged, as git-lfs's prune does (a stash's still are).
    """
    excluded = PathFilter((), exclude)
    found = {f.pointer.oid: f.pointer for f in _checkout_files(git) if excluded.allows(f.path)}
    for f in _stash_pointers(git):
        found[f.pointer.oid] = f.pointer
    return found


def _checkout_files(git: Git) -> list[PointerFile]:
    """The pointers checked out or staged: in every worktree's HEAD and index."""
    found: list[PointerFile] = []
    tips: dict[str, None] = {}
    head = git.rev_parse("HEAD")
    if head:
        tips[head] = None
    others: list[Path] = []
    here = git.paths.work_tree
    worktree: Path | None = None
    for line in git.output(["worktree", "list", "--porcelain"]).splitlines():
        key, _, value = line.partition(" ")
        if key == "worktree":
            worktree = Path(value)
        elif key == "HEAD":
            tips[value] = None
            if worktree is not None and worktree != here:
                others.append(worktree)
        elif key in ("bare", "prunable") and others and others[-1] == worktree:
            others.pop()  # no index to read, or its directory is gone
    for tip in tips:
        if git.rev_parse(tip) is not None:  # None: an unborn branch
            found.extend(tree_pointers(git, tip))
    found.extend(index_pointers(git))
    for path in others:
        found.extend(_other_index_pointers(git, path))
    return found


def _stash_pointers(git: Git) -> list[PointerFile]:
    """The pointers of every stash entry that HEAD's history lacks."""
    proc = git.run(["log", "-g", "--format=%H", "refs/stash", "--"], check=False)
    stashes = proc.stdout.decode().split() if proc.returncode == 0 else []
    if not stashes:
        return []
    return rev_list_pointers(git, stashes, ["HEAD"] if git.rev_parse("HEAD") else [])


def _other_index_pointers(git: Git, path: Path) -> list[PointerFile]:
    """The pointers in the index of the worktree at ``path``.

    git finds that worktree's index from the directory alone; variables naming this
    worktree's git dir or index are left out so that they do not.
    """
    if not path.is_dir():
        return []
    base = os.environ if git.env is None else git.env
    env = {k: v for k, v in base.items() if k not in _WORKTREE_VARIABLES}
    return index_pointers(Git(path, env=env))


def referenced_pointers(
    git: Git,
    keep: Policy | PruneRules | None = None,
    now: float | None = None,
    exclude: Sequence[str] = (),
) -> dict[str, Pointer]:
    """Objects that current work or a retention rule refers to, by oid.

    The :func:`current_pointers`, plus what ``keep`` keeps: for a :class:`Policy`,
    what it keeps of every branch, tag and remote-tracking ref; for
    :class:`PruneRules`, git-lfs's recent refs and commits. Unpushed commits are
    :func:`prune`'s to add.

    Args:
        git: Runs git in the repository.
        keep: The rule; None: git-lfs's rules as git config sets them.
        now: The time "recent" counts back from; None: the clock's.
        exclude: ``lfs.fetchexclude``'s patterns: files they match are kept only by a
            stash (or, in :func:`prune`, an unpushed commit), as git-lfs's prune does.
    """
    found = current_pointers(git, exclude)
    excluded = PathFilter((), exclude)
    if isinstance(keep, Policy):
        kept = policy_pointers(git, ref_tips(git), keep, now)
    else:
        rules = PruneRules.read(git) if keep is None else keep
        kept = prune_rule_pointers(git, rules, git.rev_parse("HEAD"), now)
    for f in kept:
        if excluded.allows(f.path):
            found[f.pointer.oid] = f.pointer
    return found


@dataclass
class PruneReport:
    """What prune removed (or would remove) and what it kept for safety."""

    pruned: list[Pointer] = field(default_factory=list)
    #: Objects no rule keeps but that are not pushed: in commits the git remote's
    #: refs lack, or missing from the bucket (or there at another size).
    kept_unpushed: list[Pointer] = field(default_factory=list)
    #: How many local objects the current work and the retention rule keep.
    kept_in_use: int = 0
    temp_files_removed: int = 0
    stale_uploads_aborted: int = 0
    upload_states_removed: int = 0


def prune(
    git: Git,
    store: ObjectStore,
    remote: Remote,
    dry_run: bool = False,
    *,
    keep: Policy | PruneRules | None = None,
    now: float | None = None,
    exclude: Sequence[str] = (),
) -> PruneReport:
    """Delete local objects no rule keeps, that are pushed and that the remote holds.

    Args:
        git: Runs git in the repository.
        store: The local object store.
        remote: Checked for each candidate; an object it lacks is never deleted.
        dry_run: Report without deleting.
        keep: What to keep besides the current work (see :func:`referenced_pointers`);
            None: git-lfs's rules as git config sets them. The git remote whose refs
            say what is pushed is the rules' (``lfs.pruneremotetocheck``).
        now: The time "recent" counts back from; None: the clock's.
        exclude: ``lfs.fetchexclude``'s patterns (see :func:`referenced_pointers`).
    """
    report = PruneReport()
    if keep is None:
        keep = PruneRules.read(git)
    if isinstance(keep, PruneRules):
        pushed_to = keep.remote
    else:
        pushed_to = remote_to_check({e.key: e.value for e in git.config_entries()})
    kept = referenced_pointers(git, keep, now, exclude)
    unpushed = {f.pointer.oid for f in unpushed_pointers(git, pushed_to)}
    candidates = []
    for pointer in store.iter_objects():
        if pointer.oid in kept:
            report.kept_in_use += 1
        elif pointer.oid in unpushed:
            report.kept_unpushed.append(pointer)
        else:
            candidates.append(pointer)
    listed = remote.stat_many([p.oid for p in candidates])
    for pointer in candidates:
        if remote.size_of(pointer.oid, listed) != pointer.size:
            report.kept_unpushed.append(pointer)
            continue
        report.pruned.append(pointer)
        if not dry_run:
            store.remove(pointer.oid)
    if not dry_run:
        # First: clean_tmp would take any state an hour old, a running upload's too.
        report.upload_states_removed = remove_dead_upload_states(store, remote)
        report.temp_files_removed = store.clean_tmp()
        store.compact_checked()  # drop the removed objects from the record of checks
        # Backends with resumable uploads (S3 multipart) can leave abandoned ones.
        report.stale_uploads_aborted = remote.abort_stale_uploads()
    return report


def remove_dead_upload_states(store: ObjectStore, remote: Remote, now: float | None = None) -> int:
    """Remove multipart-upload state files in ``tmp/`` whose upload is provably over.

    That is state no process holds the lock of, and whose object the remote (the
    bucket and key the state names) already holds at the state's size, or that was
    started more than :data:`UPLOAD_STATE_MAX_AGE` ago, or that cannot be read. The
    lock is held while the state is removed, so that no upload starts resuming it
    meanwhile. State kept is touched, so that ``clean_tmp``, which removes any
    unlocked file an hour old, keeps it too.

    Args:
        store: Whose ``tmp/`` holds the states.
        remote: Asked whether it holds a state's object.
        now: The time of day, in seconds; None: the clock's.

    Returns:
        How many state files were removed.
    """
    now = time.time() if now is None else now
    removed = 0
    found: list[tuple[Path, str]] = []
    with contextlib.suppress(OSError), os.scandir(store.tmp_dir) as entries:
        found = sorted(
            (Path(e.path), match[1]) for e in entries if (match := _UPLOAD_STATE.fullmatch(e.name))
        )
    for path, oid in found:
        with _unless_held(path.with_suffix(".lock")) as free:
            dead = free and _upload_over(path, oid, remote, now)
            if dead:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        if not dead:
            with contextlib.suppress(OSError):
                os.utime(path)
    return removed


@contextlib.contextmanager
def _unless_held(lock_path: Path) -> Iterator[bool]:
    """Hold ``lock_path`` for the block if no process does; yield whether it was free."""
    try:
        lock = open(lock_path, "a")  # noqa: SIM115 - closed below, after the block
    except OSError:
        yield False
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by a running upload (BlockingIOError), or no locks here
            yield False
            return
        yield True


def _upload_over(path: Path, oid: str, remote: Remote, now: float) -> bool:
    """Whether the upload the state at ``path`` names can never be resumed, or is done."""
    try:
        state: Any = json.loads(path.read_text())
        started = float(state["started"])
        size = int(state["size"])
        bucket, key = str(state["bucket"]), str(state["key"])
    except FileNotFoundError:
        return False  # its upload ended meanwhile, and removed it
    except (OSError, ValueError, TypeError, KeyError):
        return True  # unreadable: an upload would start afresh anyway
    if now - started > UPLOAD_STATE_MAX_AGE:
        return True
    if urlparse(remote.url).scheme != "s3":
        return False
    remote_bucket, prefix = bucket_and_prefix(remote.url)
    if (bucket, key) != (remote_bucket, f"{prefix}/{object_key(oid)}".lstrip("/")):
        return False  # another bucket's upload: this remote says nothing about it
    try:
        return remote.size_of(oid) == size
    except LfsAgentError:
        return False  # not proven over
