"""git's clean/smudge filters: pointers in git, content in the work tree.

Implements the filter side of gitattributes(5) "filter" (single-shot ``clean``/``smudge``
commands). The behaviour mirrors git-lfs ``lfs/gitfilter_clean.go`` and
``gitfilter_smudge.go``:

* clean: input that is already a pointer (under 1024 bytes in total, and parses) passes
  through verbatim; anything else is hashed into the store while it streams and replaced
  by its canonical pointer.
* smudge: a pointer becomes its object's bytes (from the store, else fetched through the
  injected ``fetch`` callable, which verifies before the store takes the object); any
  other input passes through unchanged; with ``skip`` the pointer is left as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from lfs_agent.errors import NotAPointerError, ObjectNotFoundError
from lfs_agent.pointer import MAX_POINTER_SIZE, Pointer, parse_pointer
from lfs_agent.store import CHUNK_SIZE, ObjectStore

__all__ = [
    "Fetch",
    "clean",
    "iter_stream",
    "smudge",
    "split_pointer",
]

logger = logging.getLogger(__name__)

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


def clean(store: ObjectStore, chunks: Iterable[bytes]) -> bytes:
    """Return the pointer for the content in ``chunks``; the content goes to the store.

    A pointer given as input is returned byte for byte (git-lfs does the same, so that
    cleaning is idempotent even for non-canonical pointers).
    """
    it = iter(chunks)
    head, pointer = split_pointer(it)
    if pointer is not None:
        return head
    with store.writer() as out:
        out.write(head)
        for chunk in it:
            out.write(chunk)
        return out.commit().encode()


def smudge(
    store: ObjectStore,
    chunks: Iterable[bytes],
    write: Callable[[bytes], object],
    *,
    path: str,
    fetch: Fetch | None = None,
    skip: bool = False,
) -> Pointer | None:
    """Write the work-tree bytes for a blob (given as ``chunks``) through ``write``.

    Args:
        store: The local object store.
        chunks: The blob git has, normally a pointer.
        write: Receives the output, in chunks.
        path: Repository-relative path, for messages.
        fetch: Downloads a missing object into the store; None means no remote.
        skip: Leave pointers as they are (``GIT_LFS_SKIP_SMUDGE``).

    Returns:
        The pointer that was smudged, or None when the input passed through.

    Raises:
        ObjectNotFoundError: the object is missing locally and could not be fetched;
            nothing has been written.
        LfsAgentError: whatever ``fetch`` raised; nothing has been written.
    """
    it = iter(chunks)
    head, pointer = split_pointer(it)
    if pointer is None:
        if head:
            logger.warning("%s: not a valid pointer; passing its content through", path)
        write(head)
        for chunk in it:
            write(chunk)
        return None
    if skip or pointer.size == 0:
        write(head if skip else b"")
        return pointer
    if not store.contains(pointer):
        if fetch is None:
            raise ObjectNotFoundError(
                f"{path}: object {pointer.oid} is not in the local store and no remote "
                "is configured (run 'lfs-agent install --remote URL')"
            )
        fetch(pointer)
    with store.open(pointer) as src:
        while chunk := src.read(CHUNK_SIZE):
            write(chunk)
    return pointer
