"""Taking a file someone else controls (a folder bucket's object, a shared cache's).

Such a file is not trusted: it may be a symbolic link, whose target could change after
the check, or no regular file at all, and its bytes may be anything. :func:`take_file`
puts it at a temp file of the caller's as a hard link or as a copy hashed while it is
written, and refuses anything but a regular file; the caller then checks what it got.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from lfs_agent.errors import IntegrityError
from lfs_agent.hashing import CHUNK_SIZE, WriteHash
from lfs_agent.pointer import Pointer
from lfs_agent.progress import Progress

__all__ = ["link_file", "take_file"]


def link_file(src: Path, dest: Path) -> bool:
    """Make ``dest`` a hard link of ``src``, replacing any file there.

    Returns:
        False when linking is impossible here (another file system, no hard links, or
        no ``src``): the caller copies instead.
    """
    with contextlib.suppress(FileNotFoundError):
        dest.unlink()
    try:
        os.link(src, dest)
    except OSError:
        return False
    return True


def take_file(
    src: Path, dest: Path, size: int, progress: Progress | None = None, link: bool = True
) -> Pointer | None:
    """Put the regular file at ``src`` (a bucket's or a cache's) at ``dest``, to be checked.

    A hard link when ``link`` is set and the file systems allow it, else a copy, hashed
    as it is written and never longer than ``size`` bytes. ``src`` is not trusted: a
    symbolic link there (whose target could change after the check) or anything but a
    regular file is refused, never linked or followed.

    Args:
        src: The file to take.
        dest: A temp file of the caller's, replaced.
        size: The bytes expected (the pointer's size).
        progress: Told of the bytes taken.
        link: Try a hard link first.

    Returns:
        For a copy, the sha256 and length of what ``dest`` holds; None for a link, which
        read nothing (the caller's check then reads it once).

    Raises:
        IntegrityError: ``src`` is no regular file, or holds more than ``size`` bytes.
        FileNotFoundError: there is no ``src``.
    """
    if link and link_file(src, dest):  # link(2) makes a link of a link, never follows
        if not stat.S_ISREG(os.lstat(dest).st_mode):
            dest.unlink()
            raise IntegrityError(f"refusing {src}: it is not a regular file")
        if progress is not None:
            progress(size)
        return None
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IntegrityError(f"refusing {src}: it is a symbolic link") from None
        raise
    with open(fd, "rb", buffering=0) as source:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IntegrityError(f"refusing {src}: it is not a regular file")
        with open(dest, "wb") as dst, WriteHash(dst) as written:
            while chunk := source.read(min(CHUNK_SIZE, size + 1 - written.size)):
                written.write(chunk)
                if written.size > size:
                    raise IntegrityError(f"refusing {src}: it holds more than {size} bytes")
                if progress is not None:
                    progress(len(chunk))
            return written.pointer()
