"""The one safe way lfs-agent reads and writes files in a work tree.

A cloned repository is someone else's: it can commit a symbolic link where lfs-agent
will write (a temp name next to a large file, ``.gitattributes``, a leading directory)
so that the write lands in ``~/.bashrc`` or ``.git/hooks``. git never writes through a
symbolic link, and neither does lfs-agent:

- every directory below the work tree's top is opened one component at a time with
  ``O_NOFOLLOW | O_DIRECTORY`` (git's ``has_symlink_leading_path``, but on descriptors,
  so nothing can be swapped between the check and the write);
- files are created in that directory with ``O_CREAT | O_EXCL | O_NOFOLLOW`` under a
  random name of fixed length, their mode set on the descriptor (``fchmod``), and
  renamed over the target, which replaces a symbolic link there instead of following it;
- files are read with ``O_NOFOLLOW``, only when regular, and never past a bound.

A path that would go through a symbolic link is refused with :class:`UnsafePathError`
naming it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from lfs_agent.errors import UnsafePathError
from lfs_agent.pids import alive

__all__ = [
    "Directory",
    "directory_of",
    "open_directory",
    "remove",
    "split_path",
    "write_file",
]

#: Flags of every directory opened on the way to a file.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: Prefix of temp files written beside their target (one name length for all targets).
TEMP_PREFIX = ".lfs-agent-"


class Directory:
    """A directory of the work tree, held open by descriptor.

    Args:
        fd: The directory's descriptor (owned: :meth:`close` closes it).
        shown: Its path below the work tree's top, for messages ("" for the top).
    """

    def __init__(self, fd: int, shown: str) -> None:
        self.fd = fd
        self.shown = shown

    def _name(self, name: str) -> str:
        return f"{self.shown}/{name}" if self.shown else name

    def lstat(self, name: str) -> os.stat_result:
        """``lstat`` of ``name`` in this directory (a link is not followed)."""
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def read_regular(self, name: str, limit: int) -> tuple[bytes, os.stat_result] | None:
        """The bytes and stat data of the regular file ``name``, if it has at most ``limit``.

        Returns:
            None when ``name`` is missing, a symbolic link, not a regular file, or larger
            than ``limit``: nothing that is not plainly a small file is read.
        """
        try:
            file = self.open_read(name)
        except OSError:  # ELOOP: a symbolic link; ENOENT, EACCES ...
            return None
        with file:
            st = os.fstat(file.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
                return None
            data = b""
            while len(data) <= limit and (chunk := file.read(limit + 1 - len(data))):
                data += chunk
        return (data, st) if len(data) <= limit else None

    def open_read(self, name: str) -> BinaryIO:
        """Open ``name`` here for reading, unbuffered, never through a symbolic link.

        Raises:
            OSError: it is missing, or a symbolic link (ELOOP).
        """
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        return os.fdopen(fd, "rb", buffering=0)

    def create_temp(self, mode: int) -> tuple[BinaryIO, str]:
        """Create a new, empty, private file here; return it (open for writing) and its name.

        The name is random, of bounded length whatever the target's, and holds this
        process's id, so that a later run can tell the file of a process that died
        (:meth:`remove_dead_temps`). It is created exclusively without following links;
        ``mode`` is set on the descriptor.
        """
        while True:
            name = f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(8).hex()}.tmp"
            try:
                fd = os.open(
                    name,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o600,
                    dir_fd=self.fd,
                )
            except FileExistsError:  # pragma: no cover - 64 random bits
                continue
            try:
                os.fchmod(fd, mode)
            except BaseException:
                os.close(fd)
                self.unlink(name)
                raise
            return os.fdopen(fd, "wb", buffering=0), name

    def remove_dead_temps(self) -> int:
        """Remove temp files here left by processes that are gone (killed mid-write).

        A file whose process still runs (this one, a concurrent pull) is left alone.

        Returns:
            How many went.
        """
        removed = 0
        for entry in os.scandir(self.fd):
            pid = _temp_owner(entry.name)
            if pid is None or alive(pid) or not entry.is_file(follow_symlinks=False):
                continue
            self.unlink(entry.name)
            removed += 1
        return removed

    def replace(self, temp: str, name: str) -> None:
        """Rename ``temp`` over ``name``; a symbolic link there is replaced, not followed."""
        os.replace(temp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def unlink(self, name: str) -> None:
        """Remove ``name`` if it is there (a symbolic link itself, never its target)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def close(self) -> None:
        """Close the descriptor."""
        os.close(self.fd)

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _temp_owner(name: str) -> int | None:
    """The pid in a temp file's name (``.lfs-agent-<pid>-<hex>.tmp``), or None."""
    if not (name.startswith(TEMP_PREFIX) and name.endswith(".tmp")):
        return None
    pid, _, rest = name[len(TEMP_PREFIX) : -len(".tmp")].partition("-")
    return int(pid) if pid.isdigit() and len(rest) == 16 else None


def _split(path: str) -> list[str]:
    """The components of a path relative to the work tree's top; refuses ``..``."""
    parts = [p for p in path.replace(os.sep, "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePathError(f"refusing to write {path}: it leaves the work tree")
    return parts


def open_directory(top: Path, rel_dir: str) -> Directory:
    """Open ``top/rel_dir`` without following a symbolic link below ``top``.

    ``top`` itself is the user's choice and may be reached through links.

    Raises:
        UnsafePathError: a component of ``rel_dir`` is a symbolic link or no directory.
        FileNotFoundError: a component is missing.
    """
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    walked: list[str] = []
    try:
        for part in _split(rel_dir):
            walked.append(part)
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                raise
            except OSError as exc:  # ELOOP (a link) or ENOTDIR (a file)
                shown = "/".join(walked)
                try:
                    is_link = stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode)
                except OSError:
                    is_link = False
                what = "a symbolic link" if is_link else "not a directory"
                raise UnsafePathError(f"refusing to write below {shown}: it is {what}") from exc
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return Directory(fd, "/".join(walked))


def split_path(rel: str) -> tuple[str, str]:
    """``("a/b", "c")`` for ``a/b/c``: the directory and the file name."""
    parts = _split(rel)
    if not parts:
        raise UnsafePathError(f"refusing to write {rel!r}: it names no file")
    return "/".join(parts[:-1]), parts[-1]


def write_file(top: Path, rel: str, data: bytes) -> None:
    """Replace the file ``rel`` below ``top`` with ``data``, atomically and link-safely.

    An existing regular file keeps its mode; a new one gets git's (0666 less the umask).

    Raises:
        UnsafePathError: ``rel`` is, or lies below, a symbolic link.
        OSError: the write failed; the target is unchanged.
    """
    directory, name = split_path(rel)
    with open_directory(top, directory) as parent:
        try:
            current = parent.lstat(name)
        except FileNotFoundError:
            current = None
        if current is not None:
            if stat.S_ISLNK(current.st_mode):
                raise UnsafePathError(f"refusing to write {rel}: it is a symbolic link")
            if not stat.S_ISREG(current.st_mode):
                raise UnsafePathError(f"refusing to write {rel}: it is not a regular file")
            mode = stat.S_IMODE(current.st_mode)
        else:
            mode = 0o666 & ~_umask()
        file, temp = parent.create_temp(mode)
        try:
            with file:
                file.write(data)
            parent.replace(temp, name)
        except BaseException:
            parent.unlink(temp)
            raise


def _umask() -> int:
    """The process's umask (read by setting it, and setting it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove(top: Path, rel: str) -> None:
    """Remove the file ``rel`` below ``top`` if it is there, following no link to it.

    Raises:
        UnsafePathError: a directory leading to ``rel`` is a symbolic link.
    """
    directory, name = split_path(rel)
    with contextlib.suppress(FileNotFoundError), open_directory(top, directory) as parent:
        parent.unlink(name)


@contextlib.contextmanager
def directory_of(top: Path, rel: str) -> Iterator[tuple[Directory, str]]:
    """The open directory holding ``rel`` below ``top``, and the file's name in it.

    Raises:
        UnsafePathError: a directory leading to ``rel`` is a symbolic link.
        FileNotFoundError: one is missing.
    """
    directory, name = split_path(rel)
    with open_directory(top, directory) as parent:
        yield parent, name
