"""The single-shot smudge (``lfs-agent smudge``), and that it answers as the filter process does."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from lfs_agent.errors import ObjectNotFoundError
from lfs_agent.filterprocess import FilterProcess
from lfs_agent.gitfilter import smudge
from lfs_agent.pathmatch import PathFilter
from lfs_agent.pktline import PktLineReader, PktLineWriter, encode_packet
from lfs_agent.pointer import Pointer
from lfs_agent.store import ObjectStore
from tests.helpers import pointer_bytes, sha256

HELLO = b"hello world\n"
HELLO_POINTER = pointer_bytes(HELLO)


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(tmp_path / "lfs")


def run(store: ObjectStore, blob: bytes, **kwargs) -> tuple[bytes, Pointer | None]:
    """Smudge ``blob`` (in small chunks, as a pipe gives it); the output and the result."""
    out = io.BytesIO()
    chunks = [blob[i : i + 7] for i in range(0, len(blob), 7)]
    kwargs.setdefault("path", "a.bin")
    result = smudge(store, chunks, out.write, **kwargs)
    return out.getvalue(), result


def fetch_into(store: ObjectStore, fetched: list[str]):
    def fetch(pointer: Pointer) -> None:
        fetched.append(pointer.oid)
        store.ingest(io.BytesIO(HELLO), expected=pointer)

    return fetch


def test_content_that_is_no_pointer_passes_through(store, caplog):
    junk = b"not a pointer\n" * 100
    assert run(store, junk) == (junk, None)
    assert "a.bin: not a valid pointer" in caplog.text


def test_a_stored_object_is_written_without_a_download(store):
    store.ingest(io.BytesIO(HELLO))
    fetched: list[str] = []
    out, pointer = run(store, HELLO_POINTER, fetch=fetch_into(store, fetched))
    assert (out, pointer) == (HELLO, Pointer(sha256(HELLO), len(HELLO)))
    assert fetched == []


def test_a_missing_object_is_downloaded_then_written(store):
    fetched: list[str] = []
    assert run(store, HELLO_POINTER, fetch=fetch_into(store, fetched))[0] == HELLO
    assert fetched == [sha256(HELLO)]


def test_skip_and_excluded_paths_write_the_pointer_and_download_nothing(store):
    fetched: list[str] = []
    fetch = fetch_into(store, fetched)
    assert run(store, HELLO_POINTER, fetch=fetch, skip=True)[0] == HELLO_POINTER
    assert run(store, HELLO_POINTER, fetch=fetch, excluded=True)[0] == HELLO_POINTER
    assert fetched == []
    store.ingest(io.BytesIO(HELLO))  # an excluded path still gets a stored object
    assert run(store, HELLO_POINTER, fetch=fetch, excluded=True)[0] == HELLO
    assert run(store, HELLO_POINTER, fetch=fetch, skip=True)[0] == HELLO_POINTER


def test_the_empty_pointer_writes_nothing(store):
    assert run(store, b"")[0] == b""


def test_no_remote_fails_naming_the_path_or_keeps_the_pointer(store, caplog):
    with pytest.raises(ObjectNotFoundError, match=r"^a\.bin: object .* no remote is configured"):
        run(store, HELLO_POINTER)
    out, pointer = run(store, HELLO_POINTER, skip_download_errors=True)
    assert out == HELLO_POINTER and pointer is not None
    # Logged once with the path, not the path twice.
    assert f"a.bin: object {sha256(HELLO)} is not in the local store" in caplog.text
    assert "a.bin: a.bin" not in caplog.text


def test_a_failed_download_raises_its_error_or_keeps_the_pointer(store, caplog):
    def fetch(pointer: Pointer) -> None:
        raise ObjectNotFoundError(f"object {pointer.oid} is not on remote file:///b")

    with pytest.raises(ObjectNotFoundError, match="is not on remote file:///b"):
        run(store, HELLO_POINTER, fetch=fetch)
    out, _ = run(store, HELLO_POINTER, fetch=fetch, skip_download_errors=True)
    assert out == HELLO_POINTER
    assert f"a.bin: object {sha256(HELLO)} is not on remote file:///b" in caplog.text


def filter_answer(store: ObjectStore, blob: bytes, path: str, **kwargs) -> bytes | None:
    """What the filter process answers a smudge of ``blob`` (None: ``status=error``)."""
    request = (
        b"0016git-filter-client\n000eversion=2\n0000"
        b"0015capability=clean\n0016capability=smudge\n0000"
        + encode_packet(b"command=smudge\n")
        + encode_packet(f"pathname={path}\n".encode())
        + b"0000"
        + (encode_packet(blob) if blob else b"")
        + b"0000"
    )
    out = io.BytesIO()
    FilterProcess(
        PktLineReader(io.BytesIO(request).read),
        PktLineWriter(out.write, out.flush),
        store,
        **kwargs,
    ).serve()
    reader = PktLineReader(io.BytesIO(out.getvalue()).read)
    reader.read_text_list()  # the handshake
    reader.read_text_list()
    if reader.read_text_list() != ["status=success"]:
        return None
    return b"".join(reader.iter_content())


#: Situations a smudge meets: (object stored, the remote's fetch, single-shot settings,
#: the answer: None for a failure).
SITUATIONS = {
    "stored": (True, "none", {}, HELLO),
    "downloaded": (False, "works", {}, HELLO),
    "download-fails": (False, "fails", {}, None),
    "download-fails-kept": (False, "fails", {"skip_download_errors": True}, HELLO_POINTER),
    "no-remote": (False, "none", {}, None),
    "no-remote-kept": (False, "none", {"skip_download_errors": True}, HELLO_POINTER),
    "skipped": (False, "works", {"skip": True}, HELLO_POINTER),
    "skipped-stored": (True, "works", {"skip": True}, HELLO_POINTER),
    "excluded": (False, "works", {"excluded": True}, HELLO_POINTER),
    "excluded-stored": (True, "works", {"excluded": True}, HELLO),
}


@pytest.mark.parametrize("situation", SITUATIONS)
def test_the_command_and_the_filter_process_answer_alike(tmp_path, situation):
    stored, remote, settings, expected = SITUATIONS[situation]
    answers = []
    for form in ("command", "process"):
        store = ObjectStore(tmp_path / form)
        if stored:
            store.ingest(io.BytesIO(HELLO))

        def fetch(pointer: Pointer, store: ObjectStore = store) -> None:
            if remote == "fails":
                raise ObjectNotFoundError(f"object {pointer.oid} is not on remote file:///b")
            store.ingest(io.BytesIO(HELLO), expected=pointer)

        fetcher = None if remote == "none" else fetch
        if form == "command":
            try:
                answers.append(run(store, HELLO_POINTER, fetch=fetcher, **settings)[0])
            except ObjectNotFoundError:
                answers.append(None)
            continue
        answers.append(
            filter_answer(
                store,
                HELLO_POINTER,
                "a.bin",
                fetch=fetcher,
                skip_smudge=settings.get("skip", False),
                skip_download_errors=settings.get("skip_download_errors", False),
                path_filter=PathFilter(exclude=["a.bin"]) if settings.get("excluded") else None,
            )
        )
    assert answers == [expected, expected]
