"""A folder used as a bucket: a local path or a mounted network share.

Layout ``<root>/objects/<oid[0:2]>/<oid[2:4]>/<oid>``, identical to every other backend.
On the same file system as the store, an upload hard-links the stored object into place
after checking its size and sha256 (unless the store's record says it checked them:
:meth:`~lfs_agent.store.ObjectStore.is_checked`), and a download hard-links the bucket's
object into the store's temp file (which the caller then checks), as git-lfs's
standalone-file adapter does. Otherwise (or with ``lfs-agent.local.link=false``) a
download copies, and an upload copies into a temp file in the object's own directory
while hashing, ``fsync``s, makes it read-only and renames it. Either way the object
path only ever holds complete, verified bytes. Callers skip objects the bucket already
has with their size (:meth:`LocalBackend.stat`), so an upload does not look first.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from lfs_agent.backends import (
    DELETE_BATCH,
    META_MAX_BYTES,
    Capability,
    Deleted,
    Entry,
    check_meta_key,
    check_source,
    collect_key,
    collect_prefix,
    object_key,
    read_meta,
)
from lfs_agent.errors import BackendError, IntegrityError, ObjectNotFoundError, UnsafePathError
from lfs_agent.hashing import CHUNK_SIZE, WriteHash, hash_file
from lfs_agent.intake import take_file
from lfs_agent.options import Options
from lfs_agent.pids import alive
from lfs_agent.pointer import Pointer
from lfs_agent.progress import Progress
from lfs_agent.worktree import Directory, open_directory, split_path

__all__ = ["LocalBackend"]

#: Mode of a published object: read-only for everyone.
READ_ONLY = 0o444
#: A temp file this old (seconds) belongs to a dead upload and may be removed.
STALE_TEMP_SECONDS = 3600


def _host() -> str:
    """This machine, in the names of upload temp files.

    A folder may be shared by several machines, and a pid says whether its writer
    lives only on the machine that wrote it.
    """
    import socket  # only uploads that copy need it: start-up matters

    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


class LocalBackend:
    """Objects in a folder.

    Args:
        url: ``file:///abs/path``.
        options: ``local.*`` settings: ``local.link`` (a git boolean, default true).
        state_dir: Unused: folder uploads are quick to redo.
        hash_file: Hashes an upload's source before it is linked
            (:func:`lfs_agent.hashing.hash_file`); tests count reads with it.
    """

    #: Each transfer is a few file-system calls run under Python's GIL: threads beyond
    #: the cores only contend for it.
    max_workers: int | None = max(2, os.cpu_count() or 2)
    #: Downloads link on the store's file system; a stat of a file is cheaper than a
    #: listing, and a copy is quick to redo, so neither listing nor resuming is offered.
    capabilities: frozenset[Capability] = frozenset(
        {Capability.LINK, Capability.RECORDS, Capability.COLLECT}
    )
    #: Most bytes a record may hold (:data:`~lfs_agent.backends.META_MAX_BYTES`).
    meta_max_bytes: int = META_MAX_BYTES

    def __init__(
        self,
        url: str,
        options: dict[str, str] | None = None,
        state_dir: Path | None = None,
        *,
        hash_file: Callable[[Path], tuple[str, int]] = hash_file,
    ) -> None:
        self.url = url
        self._hash_file = hash_file
        # The folder holding objects/; created on the first upload.
        self.root = Path(unquote(urlparse(url).path))
        # Hard-link uploads from the store when on the same file system (default), as
        # git-lfs does; lfs-agent.local.link=false always copies (and makes objects
        # read-only, which a link cannot without changing the store's file too).
        self.link = Options(options, "local").flag("link", True)

    def _path(self, oid: str) -> Path:
        return self.root / object_key(oid)

    def links_into(self, directory: Path) -> bool:
        """Whether downloads into ``directory`` are hard links (no byte is copied).

        True when linking is on and the bucket is on ``directory``'s file system (that
        of its nearest existing parent, when it does not exist yet).
        """
        if not self.link:
            return False
        while not directory.exists() and directory != directory.parent:
            directory = directory.parent
        try:
            return os.stat(self.root).st_dev == os.stat(directory).st_dev
        except OSError:
            return False

    def stat(self, oid: str) -> int | None:
        """Return the object's size, or None when absent."""
        try:
            return self._path(oid).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackendError(f"cannot read {self.url}: {exc.strerror}") from exc

    def upload(
        self, oid: str, src_path: Path, size: int, progress: Progress, checked: bool = False
    ) -> None:
        """Store ``src_path`` as ``oid``: hard-linked when possible, else copied.

        Either way the bytes are checked against size and sha256 before the object
        appears, and it appears at once: by a link of the checked file, or by a rename.
        A link of a file the store has ``checked`` reads nothing; a copy hashes what
        it writes whatever the store says. An object already there is replaced
        (callers stat first and skip it).
        """
        final = self._path(oid)
        if self.link and self._link(oid, src_path, size, final, checked):
            progress(size)
            return
        self._make_parent(final)
        self._remove_stale_temps(final.parent, oid)
        temp = final.parent / f".{oid}.{_host()}-{os.getpid()}-{secrets.token_hex(6)}.tmp"
        try:
            with open(src_path, "rb") as src, open(temp, "xb") as dst, WriteHash(dst) as copy:
                while chunk := src.read(CHUNK_SIZE):
                    copy.write(chunk)
                    progress(len(chunk))
                dst.flush()
                os.fsync(dst.fileno())
                written = copy.pointer()
            if written.size != size or written.oid != oid:
                progress(-written.size)
                raise IntegrityError(
                    f"refusing to upload {oid}: {src_path} has {written.size} bytes hashing "
                    f"to {written.oid}"
                )
            os.chmod(temp, READ_ONLY)
            os.replace(temp, final)
        except FileNotFoundError as exc:
            if exc.filename == str(src_path):
                raise ObjectNotFoundError(f"cannot upload {oid}: {src_path} is missing") from None
            raise BackendError(f"cannot write to {self.url}: {exc.strerror}") from exc
        except PermissionError as exc:
            raise BackendError(f"cannot write to {self.url}: permission denied") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def _make_parent(self, final: Path) -> None:
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendError(f"cannot write to {self.url}: {exc.strerror}") from exc

    def _link(self, oid: str, src_path: Path, size: int, final: Path, checked: bool) -> bool:
        """Publish ``src_path`` by a hard link; False when linking is impossible here.

        The source is checked first (unless the store has ``checked`` it), so the link
        puts complete, verified bytes at the object path in one step. A wrong-size
        file already there is replaced through a linked temp name and a rename.
        git-lfs's standalone-file adapter links the same way on one file system.
        """
        check_source(oid, src_path, size, checked, self._hash_file)
        for attempt in range(2):
            try:
                os.link(src_path, final)
            except FileExistsError:
                return self._relink(src_path, final)  # a bad file, or a concurrent upload
            except FileNotFoundError:
                if attempt:
                    return False
                self._make_parent(final)  # the object's directory is new
            except OSError:
                return False  # another file system, or no hard links: copy instead
            else:
                return True
        return False

    @staticmethod
    def _relink(src_path: Path, final: Path) -> bool:
        """Replace whatever ``final`` holds by a link to ``src_path``, atomically."""
        temp = final.parent / f".{final.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.link(src_path, temp)
        except OSError:
            return False
        try:
            os.replace(temp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        return True

    @staticmethod
    def _remove_stale_temps(directory: Path, oid: str) -> None:
        """Delete temp files of earlier uploads of ``oid`` that died (killed, crashed).

        One written from this machine by a process that has ended goes at once; one
        from another machine sharing the folder, once it is an hour old.
        """
        now = time.time()
        prefix = f".{oid}."
        me = _host()
        with contextlib.suppress(OSError), os.scandir(directory) as entries:
            for entry in entries:
                if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
                    continue
                writer = entry.name[len(prefix) : -len(".tmp")].rsplit("-", 1)[0]
                host, _, pid = writer.partition("-")
                dead = host == me and pid.isdigit() and not alive(int(pid))
                with contextlib.suppress(OSError):
                    if dead or now - entry.stat().st_mtime > STALE_TEMP_SECONDS:
                        os.unlink(entry.path)

    def download(self, oid: str, dest_path: Path, size: int, progress: Progress) -> Pointer | None:
        """Hard-link the object to ``dest_path`` when possible, else copy it there.

        A link reads nothing: the caller's check of the bytes is the only read. A copy
        is hashed as it is written. A partial file at ``dest_path`` (an earlier copy cut
        short) is replaced. The folder may be shared, so what is there is not trusted:
        a symbolic link, or anything but a regular file, is refused
        (:func:`~lfs_agent.intake.take_file`).

        Returns:
            None for a link; for a copy, the sha256 and length of what it wrote.

        Raises:
            ObjectNotFoundError: the folder has no such object.
            IntegrityError: it is not a regular file, or larger than ``size``.
        """
        try:
            return take_file(self._path(oid), dest_path, size, progress, link=self.link)
        except FileNotFoundError as exc:
            if exc.filename is not None and str(exc.filename) != str(self._path(oid)):
                raise  # the destination's directory is gone: not the bucket's doing
            raise ObjectNotFoundError(f"object {oid} is not on remote {self.url}") from None
        except PermissionError as exc:
            raise BackendError(f"cannot read {self.url}: {exc.strerror}") from exc

    # Records and collection work on keys under meta/ and objects/ through directories
    # held open by descriptor: whoever can write to a shared folder could plant a
    # symbolic link (to the user's home) or a FIFO (which would hang every reader)
    # at any name, and none is ever followed or opened.

    def _directory(self, rel_dir: str, create: bool = False) -> Directory:
        """The bucket's directory ``rel_dir``, opened without following a link below root.

        Raises:
            FileNotFoundError: a component is missing (and ``create`` is off).
            UnsafePathError: a component is a symbolic link or no directory.
        """
        if not create:
            return open_directory(self.root, rel_dir)
        self.root.mkdir(parents=True, exist_ok=True)  # the root is the user's choice
        walked = ""
        for part in [p for p in rel_dir.split("/") if p]:
            with open_directory(self.root, walked) as parent, contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o777, dir_fd=parent.fd)
            walked = f"{walked}/{part}" if walked else part
        return open_directory(self.root, walked)

    def _failed(self, what: str, key: str, exc: OSError) -> BackendError:
        if isinstance(exc, UnsafePathError):
            return BackendError(f"cannot {what} {key} on {self.url}: {exc}")
        return BackendError(f"cannot {what} {key} on {self.url}: {exc.strerror}")

    def put_meta(self, key: str, data: bytes) -> None:
        """Write a record through a temp file and a rename."""
        folder, name = split_path(check_meta_key(key))
        try:
            with self._directory(folder, create=True) as directory:
                temp, temp_name = directory.create_temp(0o644)
                with temp:
                    temp.write(data)
                directory.replace(temp_name, name)
        except OSError as exc:
            raise self._failed("write", key, exc) from exc

    def _read_record(self, key: str) -> bytes | None:
        """A regular file's bytes (None when absent), bounded by :attr:`meta_max_bytes`."""
        folder, name = split_path(key)
        try:
            with self._directory(folder) as directory:
                # O_NONBLOCK: a FIFO planted here opens at once, and is then refused.
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                fd = os.open(name, flags, dir_fd=directory.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._failed("read", key, exc) from exc
        with os.fdopen(fd, "rb", buffering=0) as record:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise BackendError(f"record {key} on {self.url} is not a regular file: delete it")
            return read_meta(record.read, key, self.url, self.meta_max_bytes)

    def get_meta(self, key: str) -> bytes | None:
        """Read a record, or None.

        Raises:
            BackendError: the record is larger than :attr:`meta_max_bytes`, or not a
                regular file, or lies below a symbolic link.
        """
        return self._read_record(check_meta_key(key))

    def list_meta(self, prefix: str) -> list[str]:
        """Keys of the records under ``prefix``."""
        check_meta_key(prefix.rstrip("/") + "/x")
        return sorted(e.key for e in self.list_entries(prefix))

    @staticmethod
    def _entry(key: str, st: os.stat_result) -> Entry:
        return Entry(key, st.st_size, st.st_mtime, f"{st.st_ino}:{st.st_mtime_ns}")

    def list_entries(self, prefix: str) -> Iterator[Entry]:
        """Every regular file under ``prefix``.

        Temp files (dot names), links and FIFOs are left out, and no symbolic link to
        a directory is followed.
        """
        base = collect_prefix(prefix, self.url).rstrip("/")
        try:
            top = self._directory(base)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._failed("list", base, exc) from exc
        with top:
            walk = os.fwalk(".", dir_fd=top.fd, follow_symlinks=False)
            for folder, _, names, fd in walk:
                for name in names:
                    if name.startswith("."):
                        continue
                    try:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        rel = os.path.normpath(os.path.join(base, folder, name))
                        yield self._entry(rel.replace(os.sep, "/"), st)

    def _lstat(self, key: str) -> os.stat_result | None:
        """``lstat`` of ``key``'s regular file; None when absent or not a regular file."""
        folder, name = split_path(collect_key(key, self.url))
        try:
            with self._directory(folder) as directory:
                st = directory.lstat(name)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._failed("read", key, exc) from exc
        return st if stat.S_ISREG(st.st_mode) else None

    def stat_entry(self, key: str) -> Entry | None:
        """The regular file at ``key``, or None."""
        st = self._lstat(key)
        return None if st is None else self._entry(key, st)

    def create_meta(self, key: str, data: bytes) -> Entry | None:
        """Write a temp file, then ``link()`` it to ``key``: fails if the key exists."""
        folder, name = split_path(check_meta_key(key))
        try:
            with self._directory(folder, create=True) as directory:
                temp, temp_name = directory.create_temp(0o644)
                with temp:
                    temp.write(data)
                try:
                    os.link(
                        temp_name,
                        name,
                        src_dir_fd=directory.fd,
                        dst_dir_fd=directory.fd,
                        follow_symlinks=False,
                    )
                except FileExistsError:
                    return None
                finally:
                    directory.unlink(temp_name)
                return self._entry(key, directory.lstat(name))
        except OSError as exc:
            raise self._failed("write", key, exc) from exc

    def delete_entries(self, entries: Sequence[Entry]) -> list[Deleted]:
        """Remove each file whose inode and mtime are still the entry's."""
        if len(entries) > DELETE_BATCH:
            raise ValueError(f"at most {DELETE_BATCH} entries per call, not {len(entries)}")
        deleted = []
        for entry in entries:
            folder, name = split_path(collect_key(entry.key, self.url))
            try:
                with self._directory(folder) as directory:
                    st = directory.lstat(name)
                    if self._entry(entry.key, st).tag != entry.tag:
                        continue
                    os.unlink(name, dir_fd=directory.fd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self._failed("delete", entry.key, exc) from exc
            deleted.append(Deleted(entry.key, ""))
        return deleted

    def versioned(self) -> bool:
        """A folder keeps no earlier versions."""
        return False

    def undelete(self, deleted: Deleted) -> bool:
        """Nothing deleted from a folder comes back."""
        collect_key(deleted.key, self.url)
        return False

    def close(self) -> None:
        """Nothing to release."""
