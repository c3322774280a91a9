"""git's clean/smudge filters: pointers in git, content in the work tree.

Implements the filter side of gitattributes(5) "filter": the single-shot ``clean`` and
``smudge`` commands, and the "Long Running Filter Process" with "Delay". The behaviour
mirrors git-lfs ``lfs/gitfilter_clean.go`` and ``gitfilter_smudge.go``:

* clean: input that is already a pointer (under 1024 bytes in total, and parses) passes
  through verbatim; anything else is hashed into the store while it streams and replaced
  by its canonical pointer.
* smudge: a pointer becomes its object's bytes (from the store, else fetched through the
  injected ``fetch`` callable, which verifies before the store takes the object); any
  other input passes through unchanged; with ``skip`` the pointer is left as it is. Both
  forms answer as :func:`lfs_agent.smudge_decision.decide_smudge` says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from lfs_agent.errors import (
    IntegrityError,
    LfsAgentError,
    NotAPointerError,
    ObjectNotFoundError,
)
from lfs_agent.hashing import CHUNK_SIZE, BackgroundHash
from lfs_agent.log import get_logger
from lfs_agent.pointer import MAX_POINTER_SIZE, Pointer, is_valid_oid, parse_pointer
from lfs_agent.smudge_decision import (
    ObjectState,
    SmudgeAction,
    SmudgeRules,
    decide_smudge,
)
from lfs_agent.store import ObjectStore

__all__ = [
    "PULL_AFTER_ENV",
    "RESTAGE_ENV",
    "SMUDGED_ALL_ENV",
    "Fetch",
    "clean",
    "iter_stream",
    "no_remote",
    "smudge",
    "split_pointer",
]

#: Names a file of oids while ``lfs-agent pull`` re-stages files it wrote: our clean
#: filter then only hashes them (see :func:`clean`) instead of storing them again.
RESTAGE_ENV = "LFS_AGENT_RESTAGE"
#: Set by ``lfs-agent clone`` for the checkout of its ``git clone``, to a size in bytes:
#: the filter leaves objects over that size, and those it cannot get, as pointers, for
#: the ``pull`` that follows to write and to report (see :class:`FilterProcess`).
PULL_AFTER_ENV = "LFS_AGENT_PULL_AFTER"
#: Set with :data:`PULL_AFTER_ENV`: a file the filter creates when it ends having given
#: git the content of every pointer it was asked to smudge (but those outside the fetch
#: patterns), so that ``lfs-agent clone`` knows there is nothing left to pull.
SMUDGED_ALL_ENV = "LFS_AGENT_SMUDGED_ALL"

logger = get_logger(__name__)

#: Downloads one object into the store or raises; injected by the caller.
Fetch = Callable[[Pointer], None]


def iter_stream(stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield ``stream``'s bytes in chunks of at most ``chunk_size`` until EOF."""
    read = getattr(stream, "read1", stream.read)
    while chunk := read(chunk_size):
        yield chunk


def split_pointer(chunks: Iterator[bytes]) -> tuple[bytes, Pointer | None]:
    """Read just enough of ``chunks`` to tell whether the input is a pointer.

    Returns:
        ``(head, pointer)``: ``head`` holds every byte consumed so far. ``pointer`` is
        set only when the whole input is shorter than 1024 bytes and parses; the
        iterator is then exhausted. Otherwise the caller continues with ``chunks``.
    """
    head = bytearray()
    for chunk in chunks:
        head += chunk
        if len(head) >= MAX_POINTER_SIZE:
            return bytes(head), None
    try:
        return bytes(head), parse_pointer(bytes(head))
    except NotAPointerError:
        return bytes(head), None


def clean(store: ObjectStore, chunks: Iterable[bytes], restaged: str | None = None) -> bytes:
    """Return the pointer for the content in ``chunks``; the content goes to the store.

    A pointer given as input is returned byte for byte (git-lfs does the same, so that
    cleaning is idempotent even for non-canonical pointers).

    Args:
        store: The local object store.
        chunks: The content git sends.
        restaged: The stored oid the content must be, when it is a file lfs-agent has
            just written from the store (:data:`RESTAGE_ENV`): it is only hashed, not
            written to a temp file again only to find the object there.

    Raises:
        IntegrityError: with ``restaged``, the content is not that object (it changed
            since it was written); nothing is stored, and the file itself still holds it.
    """
    it = iter(chunks)
    head, pointer = split_pointer(it)
    if pointer is not None:
        return head
    if restaged is not None:
        return _stored_pointer(store, head, it, restaged).encode()
    with store.writer() as out:
        out.write(head)
        for chunk in it:
            out.write(chunk)
        return out.commit().encode()


def _stored_pointer(store: ObjectStore, head: bytes, rest: Iterator[bytes], oid: str) -> Pointer:
    """Hash ``head`` and ``rest``; their pointer, if they are the stored object ``oid``."""
    with BackgroundHash() as digest:  # the next packets are read while it hashes
        digest.update(head)
        for chunk in rest:
            digest.update(chunk)
        pointer = Pointer(digest.hexdigest(), digest.size)
    if pointer.oid != oid or not store.contains(pointer):
        raise IntegrityError(
            f"changed while lfs-agent wrote it (now {pointer.size} bytes hashing to "
            f"{pointer.oid}): 'git add' it again"
        )
    return pointer


def read_restaged(path: str) -> dict[str, str]:
    """The files ``pull`` is re-staging, from its :data:`RESTAGE_ENV` file: path -> oid.

    Records are ``<oid> <path>`` and NUL-terminated (a path may hold any other byte).
    A file that cannot be read means an ordinary clean.
    """
    try:
        data = Path(path).read_bytes()
    except OSError:
        return {}
    restaged = {}
    for record in data.split(b"\0"):
        oid, _, name = record.decode("utf-8", "surrogateescape").partition(" ")
        if name and is_valid_oid(oid):
            restaged[name] = oid
    return restaged


def write_restaged(path: Path, files: Iterable[tuple[str, str]]) -> None:
    """Write the :data:`RESTAGE_ENV` file for ``files``: (path, oid) pairs."""
    path.write_bytes(
        b"".join(f"{oid} {name}".encode("utf-8", "surrogateescape") + b"\0" for name, oid in files)
    )


def smudge(
    store: ObjectStore,
    chunks: Iterable[bytes],
    write: Callable[[bytes], object],
    *,
    path: str,
    fetch: Fetch | None = None,
    skip: bool = False,
    skip_download_errors: bool = False,
    excluded: bool = False,
) -> Pointer | None:
    """Write the work-tree bytes for a blob (given as ``chunks``) through ``write``.

    Args:
        store: The local object store.
        chunks: The blob git has, normally a pointer.
        write: Receives the output, in chunks.
        path: Repository-relative path, for messages.
        fetch: Downloads a missing object into the store; None means no remote.
        skip: Leave pointers as they are (``GIT_LFS_SKIP_SMUDGE``).
        skip_download_errors: When the object cannot be had, log why and write the
            pointer instead of raising (git-lfs ``lfs.skipdownloaderrors``).
        excluded: The path is outside the fetch include/exclude patterns: a missing
            object is not downloaded and the pointer is written instead.

    Returns:
        The pointer that was smudged, or None when the input passed through.

    Raises:
        ObjectNotFoundError: the object is missing locally and could not be fetched;
            nothing has been written.
        LfsAgentError: whatever ``fetch`` raised; nothing has been written.
    """
    it = iter(chunks)
    head, pointer = split_pointer(it)
    rules = SmudgeRules(skip=skip, keep_failures=skip_download_errors, has_remote=fetch is not None)
    action = decide_smudge(pointer, rules, excluded=excluded)
    if action is SmudgeAction.PASS_THROUGH:
        if head:
            logger.warning("%s: not a valid pointer; passing its content through", path)
        write(head)
        for chunk in it:
            write(chunk)
        return None
    assert pointer is not None  # every other action is for a pointer
    if action is SmudgeAction.LOOK_UP:
        state = ObjectState.PRESENT if store.contains(pointer) else ObjectState.MISSING
        action = decide_smudge(pointer, rules, state, excluded=excluded)
    error: LfsAgentError | None = None  # why a download failed
    if action is SmudgeAction.DOWNLOAD:
        assert fetch is not None  # downloads are decided only with a remote
        try:
            fetch(pointer)
            action = SmudgeAction.SEND
        except LfsAgentError as exc:
            error = exc
            action = decide_smudge(pointer, rules, ObjectState.FAILED, excluded=excluded)
    if action is SmudgeAction.SEND:
        with store.open(pointer) as src:
            while chunk := src.read(CHUNK_SIZE):
                write(chunk)
    elif action is SmudgeAction.EMPTY:
        write(b"")
    elif action is SmudgeAction.FAIL:
        raise error or ObjectNotFoundError(f"{path}: {no_remote(pointer)}")
    else:  # the pointer: skipped, excluded, or kept for an object not to be had
        if action is SmudgeAction.KEEP_FAILED:
            logger.error("%s: %s", path, error or no_remote(pointer))
        write(head)
    return pointer


def no_remote(pointer: Pointer) -> str:
    """Why ``pointer``'s object cannot be had without a remote, and the remedy."""
    return (
        f"object {pointer.oid} is not in the local store and no remote is configured "
        "(run 'lfs-agent install --remote URL')"
    )
