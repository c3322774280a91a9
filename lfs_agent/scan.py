"""Find LFS pointers in git: in trees, in the index, and in ranges of history.

Mirrors git-lfs's scanners (``lfs/gitscanner*.go``): list blobs, keep those under 1024
bytes with ``git cat-file --batch-check``, read them with ``git cat-file --batch`` and
keep the ones that parse as pointers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from lfs_agent.errors import GitError, NotAPointerError, ProtocolError
from lfs_agent.git import Git, failure_reason
from lfs_agent.pointer import MAX_POINTER_SIZE, Pointer, parse_pointer

if TYPE_CHECKING:
    import subprocess

__all__ = [
    "LfsStatus",
    "PointerFile",
    "history_pointers",
    "index_pointers",
    "lfs_status",
    "pre_push_pointers",
    "read_pointer_blobs",
    "rev_list_pointers",
    "tree_pointers",
]

#: The all-zero object id git uses for "no commit" in hook input.
ZERO_OID = "0" * 40


class PointerFile(NamedTuple):
    """A pointer found in git.

    A named tuple, not a dataclass: ``pre-push`` runs for every ``git push``, and
    importing ``dataclasses`` (with ``inspect``) would add to its start-up.

    Attributes:
        path: Repository-relative path (``/``-separated); the first one seen for a blob
            that appears under several names.
        pointer: The parsed pointer.
        blob: The git blob id holding the pointer.
    """

    path: str
    pointer: Pointer
    blob: str


def read_pointer_blobs(git: Git, blobs: Iterable[tuple[str, str]]) -> list[PointerFile]:
    """Return the pointers among ``(blob id, path)`` pairs.

    Blobs of 1024 bytes or more are ruled out by ``--batch-check`` without reading them.
    """
    pairs = list(blobs)
    if not pairs:
        return []
    check = git.run(
        ["cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)"],
        input="".join(f"{blob}\n" for blob, _ in pairs).encode(),
    ).stdout.decode()
    small = set()
    for line in check.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "blob" and int(parts[2]) < MAX_POINTER_SIZE:
            small.add(parts[0])
    candidates = [(blob, path) for blob, path in pairs if blob in small]
    if not candidates:
        return []
    unique = list(dict.fromkeys(blob for blob, _ in candidates))
    out = git.run(["cat-file", "--batch"], input="".join(f"{b}\n" for b in unique).encode())
    contents: dict[str, bytes] = {}
    data = out.stdout
    pos = 0
    while pos < len(data):
        header_end = data.index(b"\n", pos)
        blob, _, size = data[pos:header_end].decode().split()
        start = header_end + 1
        contents[blob] = data[start : start + int(size)]
        pos = start + int(size) + 1
    found = []
    for blob, path in candidates:
        if not contents[blob]:
            continue  # an empty file is just empty, whatever its attributes
        try:
            pointer = parse_pointer(contents[blob])
        except NotAPointerError:
            continue
        found.append(PointerFile(path, pointer, blob))
    return found


def tree_pointers(git: Git, treeish: str, paths: Sequence[str] = ()) -> list[PointerFile]:
    """Pointers in the tree of ``treeish`` (a commit, tag or tree).

    Args:
        git: Runs git in the repository.
        treeish: What to list.
        paths: Limit the listing to these paths (pathspecs); all when empty.
    """
    out = git.run(["ls-tree", "-r", "-z", "--full-tree", treeish, "--", *paths]).stdout
    blobs = []
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, blob = meta.decode().split()
        if kind == "blob" and mode != "120000":
            blobs.append((blob, path.decode("utf-8", "surrogateescape")))
    return read_pointer_blobs(git, blobs)


def index_pointers(git: Git, checked_out: bool = False) -> list[PointerFile]:
    """Pointers staged in the index (stage 0 entries), paths from the top level.

    The whole index, whichever subdirectory git runs in (like git-lfs).

    Args:
        git: Runs git in the repository.
        checked_out: Leave out skip-worktree entries (outside a sparse checkout's
            cone): what is not in the work tree needs neither a download nor a write.
    """
    out = git.run(["ls-files", "-t", "--stage", "-z", "--full-name", "--", ":/"]).stdout
    blobs = []
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        tag, mode, blob, stage = meta.decode().split()
        if checked_out and tag == "S":
            continue
        if stage == "0" and mode not in ("120000", "160000"):
            blobs.append((blob, path.decode("utf-8", "surrogateescape")))
    return read_pointer_blobs(git, blobs)


def rev_list_pointers(
    git: Git,
    include: Sequence[str],
    exclude: Sequence[str] = (),
    not_remote: str | None = None,
    since: int | None = None,
) -> list[PointerFile]:
    """Pointers in every commit reachable from ``include`` and not from ``exclude``.

    Args:
        git: Runs git in the repository.
        include: Revisions to walk from.
        exclude: Revisions whose history is already handled (e.g. what a remote has);
            ones missing locally are ignored.
        not_remote: A remote name: also exclude history under ``refs/remotes/<name>/``.
        since: Only commits dated (by their committer) at or after this time, in
            seconds since the epoch; their whole trees are listed.
    """
    if not include:
        return []
    args = ["rev-list", "--objects", "--ignore-missing", "--stdin"]
    if since is not None:
        args.insert(2, f"--since={since}")
    if not_remote:
        args[3:3] = ["--not", f"--remotes={not_remote}", "--not"]
    stdin = "".join(f"{rev}\n" for rev in include)
    stdin += "".join(f"^{rev}\n" for rev in exclude if rev != ZERO_OID)
    proc = git.run(args, input=stdin.encode(), check=False)
    blobs = _objects_with_paths(proc)
    # Commits and trees have no path (or are trees); read_pointer_blobs drops non-blobs.
    return read_pointer_blobs(git, blobs)


def _objects_with_paths(proc: subprocess.CompletedProcess[bytes]) -> list[tuple[str, str]]:
    """``(oid, path)`` of each object ``git rev-list --objects`` listed with a path.

    Raises:
        GitError: rev-list failed.
    """
    if proc.returncode != 0:
        raise GitError(f"git rev-list failed: {failure_reason(proc)}")
    blobs = []
    for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
        oid, sep, path = line.partition(" ")
        if sep and path:
            blobs.append((oid, path))
    return blobs


def history_pointers(git: Git, ref: str | None) -> list[PointerFile]:
    """Pointers in every commit reachable from ``ref``, or from every ref when None.

    ``ls-files --deleted`` and ``--all``, as git-lfs's ``ScanRefs``/``ScanAll``: one
    ``git rev-list --objects``, so a blob is listed once, under the first path git
    walks it by, newest commits first.

    Args:
        git: Runs git in the repository.
        ref: The revision whose history to walk; None for ``--all`` (every ref, the
            remote-tracking ones and the stash included, as git-lfs).
    """
    proc = git.run(["rev-list", "--objects", ref or "--all", "--"], check=False)
    blobs = _objects_with_paths(proc)
    return read_pointer_blobs(git, blobs)


def _is_object_name(text: str) -> bool:
    """A full object name: 40 hex digits (SHA-1) or 64 (SHA-256), as git writes them."""
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def pre_push_pointers(git: Git, remote: str, updates: Sequence[str]) -> list[PointerFile]:
    """Pointers a push must upload, from git's pre-push input lines.

    Mirrors git-lfs's ``uploadForRefUpdates``: lines whose local sha is zero (deletions)
    are skipped; history the remote already has is excluded through its remote-tracking
    refs (when ``remote`` names a remote) and through the remote shas git reports.

    Args:
        git: Runs git in the repository.
        remote: The remote name, or its URL for an unnamed push.
        updates: Lines ``<local ref> <local sha> <remote ref> <remote sha>``.

    Raises:
        ProtocolError: for a malformed line.
    """
    include, exclude = [], []
    for line in updates:
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 4 or not all(_is_object_name(fields[i]) for i in (1, 3)):
            raise ProtocolError(f"malformed pre-push line: {line!r}")
        _, local_sha, _, remote_sha = fields
        if local_sha != ZERO_OID:
            include.append(local_sha)
        if remote_sha not in (ZERO_OID, local_sha):
            exclude.append(remote_sha)
    names = git.output(["remote"]).split()
    return rev_list_pointers(git, include, exclude, remote if remote in names else None)


class LfsStatus(NamedTuple):
    """What ``lfs-agent status`` shows: LFS files to push, staged, and modified.

    Attributes:
        branch: The checked-out branch's short name; empty on a detached HEAD.
        upstream: The branch's upstream (``origin/main``); empty when it has none.
        to_push: Pointers in commits the upstream (else the first remote) lacks, one
            per object, by path; None before the first commit.
        staged: Pointer files staged for the next commit, in git's order.
        unstaged: Pointer files of the index whose work-tree file differs from it.
    """

    branch: str
    upstream: str
    to_push: list[PointerFile] | None
    staged: list[PointerFile]
    unstaged: list[PointerFile]


def lfs_status(git: Git) -> LfsStatus:
    """The LFS side of ``git status``, as git-lfs's ``status`` shows it.

    Args:
        git: Runs git in the repository.

    Returns:
        The files to show, each with the pointer staged for its path.
    """
    branch = git.run(["symbolic-ref", "--short", "-q", "HEAD"], check=False).stdout.decode()
    head = git.rev_parse("HEAD")
    upstream = (
        git.run(["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}"], check=False)
        .stdout.decode()
        .strip()
    )
    staged_index = {f.path: f for f in index_pointers(git)}
    to_push = None
    if head:
        exclude = [upstream] if upstream else []
        remotes = git.output(["remote"]).split()
        pending = rev_list_pointers(
            git, [head], exclude, None if upstream or not remotes else remotes[0]
        )
        to_push = sorted({f.pointer.oid: f for f in pending}.values(), key=lambda f: f.path)
    staged = (
        git.output(["diff", "--name-only", "--cached", head]).splitlines()
        if head
        else sorted(staged_index)
    )
    unstaged = git.output(["diff", "--name-only"]).splitlines()
    return LfsStatus(
        branch=branch.strip(),
        upstream=upstream,
        to_push=to_push,
        staged=[staged_index[path] for path in staged if path in staged_index],
        unstaged=[staged_index[path] for path in unstaged if path in staged_index],
    )
