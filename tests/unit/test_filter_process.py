"""The long-running filter protocol, driven over BytesIO with golden transcripts.

Inputs are what git 2.39 sends (protocols.md 5.3-5.6); expected outputs are compared
byte for byte.
"""

from __future__ import annotations

import errno
import io
import threading
from pathlib import Path

import pytest

from lfs_agent import smudge_failures
from lfs_agent.errors import ObjectNotFoundError, ProtocolError, UnreachableError
from lfs_agent.filterprocess import FilterProcess
from lfs_agent.gitfilter import read_restaged, write_restaged
from lfs_agent.pathmatch import PathFilter
from lfs_agent.pktline import MAX_PAYLOAD, PktLineReader, PktLineWriter, encode_packet
from lfs_agent.pointer import Pointer
from lfs_agent.remote import Remote
from lfs_agent.smudge_downloads import Unverified
from lfs_agent.store import ObjectStore, ObjectWriter
from tests.helpers import pointer_bytes, sha256

HANDSHAKE_IN = (
    b"0016git-filter-client\n000eversion=2\n0000"
    b"0015capability=clean\n0016capability=smudge\n0015capability=delay\n0000"
)
HANDSHAKE_OUT = (
    b"0016git-filter-server\n000eversion=2\n0000"
    b"0015capability=clean\n0016capability=smudge\n0015capability=delay\n0000"
)
HANDSHAKE_OUT_NO_DELAY = (
    b"0016git-filter-server\n000eversion=2\n00000015capability=clean\n0016capability=smudge\n0000"
)
SUCCESS = b"0013status=success\n0000"
HELLO = b"hello world\n"
HELLO_POINTER = pointer_bytes(HELLO)


def pkt(*lines: str) -> bytes:
    return b"".join(encode_packet(line.encode() + b"\n") for line in lines) + b"0000"


def content(data: bytes) -> bytes:
    return (encode_packet(data) if data else b"") + b"0000"


def content_packets(data: bytes) -> bytes:
    """``data`` as git sends a file: full-size packets, then a flush."""
    return (
        b"".join(encode_packet(data[i : i + 65516]) for i in range(0, len(data), 65516)) + b"0000"
    )


#: A clean of HELLO after a request that failed, and its answer: a filter still in
#: step with git answers it.
NEXT_CLEAN = pkt("command=clean", "pathname=next.bin") + content(HELLO)
NEXT_CLEANED = SUCCESS + encode_packet(HELLO_POINTER) + b"00000000"
#: git asking to smudge a.bin (HELLO's pointer), which it allows to be delayed.
SMUDGE_A_CAN_DELAY = pkt("command=smudge", "pathname=a.bin", "can-delay=1") + content(HELLO_POINTER)
#: git delaying a.bin's smudge, then listing what is available, asking for a.bin, and
#: listing again.
DELAYED_A = (
    HANDSHAKE_IN
    + SMUDGE_A_CAN_DELAY
    + pkt("command=list_available_blobs")
    + pkt("command=smudge", "pathname=a.bin")
    + content(b"")
    + pkt("command=list_available_blobs")
)


def delayed_a_answered(reply: bytes) -> bytes:
    """Our side of :data:`DELAYED_A` when a.bin is listed, then answered with ``reply``."""
    return (
        HANDSHAKE_OUT
        + pkt("status=delayed")
        + pkt("pathname=a.bin")
        + SUCCESS
        + SUCCESS
        + encode_packet(reply)
        + b"00000000"
        + b"0000"
        + SUCCESS
    )


def serve(store: ObjectStore, data: bytes, **kwargs) -> tuple[FilterProcess, bytes]:
    """Serve ``data`` from git; the process and all it answered."""
    out = io.BytesIO()
    process = FilterProcess(
        PktLineReader(io.BytesIO(data).read), PktLineWriter(out.write, out.flush), store, **kwargs
    )
    process.serve()
    return process, out.getvalue()


def run(store: ObjectStore, data: bytes, **kwargs) -> bytes:
    return serve(store, data, **kwargs)[1]


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(tmp_path / "lfs")


def test_handshake_without_a_remote_does_not_offer_delay(store):
    assert run(store, HANDSHAKE_IN) == HANDSHAKE_OUT_NO_DELAY


def test_handshake_with_a_remote_offers_delay(store):
    assert run(store, HANDSHAKE_IN, fetch=lambda p: None) == HANDSHAKE_OUT


def test_handshake_answers_only_capabilities_git_offered(store):
    data = b"0016git-filter-client\n000eversion=2\n0000" + pkt("capability=clean")
    assert run(store, data) == (
        b"0016git-filter-server\n000eversion=2\n00000015capability=clean\n0000"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "before the handshake"),
        (pkt("git-filter-server", "version=2"), "bad filter handshake"),
        (pkt("git-filter-client", "version=3"), "no filter protocol version"),
    ],
)
def test_bad_handshakes_are_protocol_errors(store, data, message):
    with pytest.raises(ProtocolError, match=message):
        run(store, data)


def test_clean_stores_the_object_and_answers_the_pointer(store):
    data = HANDSHAKE_IN + pkt("command=clean", "pathname=a.bin") + content(HELLO)
    expected = HANDSHAKE_OUT_NO_DELAY + SUCCESS + encode_packet(HELLO_POINTER) + b"0000" + b"0000"
    assert run(store, data) == expected
    assert store.contains(Pointer(sha256(HELLO), len(HELLO)))


class WritesNothing(ObjectStore):
    """A store that fails a test trying to write an object into it."""

    def writer(self, prefix: str = "ingest") -> ObjectWriter:
        raise AssertionError("a second copy would be written")


def test_a_restaging_clean_only_hashes_what_the_store_already_holds(store):
    store.ingest(io.BytesIO(HELLO))
    data = HANDSHAKE_IN + pkt("command=clean", "pathname=a.bin") + content(HELLO)
    expected = HANDSHAKE_OUT_NO_DELAY + SUCCESS + encode_packet(HELLO_POINTER) + b"0000" + b"0000"
    writes_nothing = WritesNothing(store.root)
    assert run(writes_nothing, data, restaged={"a.bin": sha256(HELLO)}) == expected
    with pytest.raises(AssertionError, match="second copy"):  # without restaged: a copy
        run(writes_nothing, data)


def test_a_restaging_clean_of_a_path_not_restaged_is_an_ordinary_clean(store):
    # git may re-clean other files during the re-stage (a split index): they are stored.
    other = b"another file git re-cleans\n"
    data = HANDSHAKE_IN + pkt("command=clean", "pathname=small.bin") + content(other)
    out = run(store, data, restaged={"a.bin": sha256(HELLO)})
    expected = HANDSHAKE_OUT_NO_DELAY + SUCCESS + encode_packet(pointer_bytes(other))
    assert out == expected + b"0000" + b"0000"
    assert store.contains(Pointer(sha256(other), len(other)))


def test_restage_records_round_trip_any_path(tmp_path: Path):
    files = [("a b.bin", sha256(b"1")), ("dir/t\tab\nline.bin", sha256(b"2"))]
    write_restaged(tmp_path / "r", files)
    assert read_restaged(str(tmp_path / "r")) == dict(files)
    assert read_restaged(str(tmp_path / "missing")) == {}


def test_a_restaging_clean_of_changed_content_fails_and_stores_nothing(store, caplog):
    store.ingest(io.BytesIO(HELLO))
    changed = b"edited meanwhile\n"
    data = HANDSHAKE_IN + pkt("command=clean", "pathname=a.bin") + content(changed)
    out = run(store, data, restaged={"a.bin": sha256(HELLO)})
    assert out == HANDSHAKE_OUT_NO_DELAY + b"0011status=error\n0000"
    assert not store.contains(Pointer(sha256(changed), len(changed)))
    assert "a.bin" in caplog.text and "changed while lfs-agent wrote it" in caplog.text


def test_clean_passes_a_pointer_through_and_empty_stays_empty(store):
    crlf = HELLO_POINTER.replace(b"\n", b"\r\n")
    data = (
        HANDSHAKE_IN
        + pkt("command=clean", "pathname=a")
        + content(crlf)
        + pkt("command=clean", "pathname=empty")
        + content(b"")
    )
    expected = (
        HANDSHAKE_OUT_NO_DELAY
        + SUCCESS
        + encode_packet(crlf)
        + b"00000000"
        + SUCCESS
        + b"0000"
        + b"0000"
    )
    assert run(store, data) == expected
    assert not store.objects_dir.exists()


def test_smudge_streams_a_stored_object(store):
    store.ingest(io.BytesIO(HELLO))
    data = (
        HANDSHAKE_IN
        + pkt(
            "command=smudge",
            "pathname=a.bin",
            "ref=refs/heads/main",
            "treeish=" + "1" * 40,
            "blob=" + "2" * 40,
        )
        + content(HELLO_POINTER)
    )
    expected = HANDSHAKE_OUT_NO_DELAY + SUCCESS + encode_packet(HELLO) + b"00000000"
    assert run(store, data) == expected


def test_smudge_of_large_objects_uses_max_size_packets(store):
    big = bytes(range(256)) * 1000
    store.ingest(io.BytesIO(big))
    out = run(
        store, HANDSHAKE_IN + pkt("command=smudge", "pathname=big") + content(pointer_bytes(big))
    )
    body = io.BytesIO(out[len(HANDSHAKE_OUT_NO_DELAY) + len(SUCCESS) :])
    r = PktLineReader(body.read)
    packets = list(r.iter_content())
    assert b"".join(packets) == big
    assert [len(p) for p in packets[:-1]] == [65516] * (len(packets) - 1)


def test_smudge_passes_non_pointer_content_through(store):
    junk = b"not a pointer" * 100
    out = run(store, HANDSHAKE_IN + pkt("command=smudge", "pathname=x") + content(junk))
    assert out == HANDSHAKE_OUT_NO_DELAY + SUCCESS + encode_packet(junk) + b"00000000"


def test_smudge_of_a_missing_object_without_remote_is_a_per_file_error(store, caplog):
    store.ingest(io.BytesIO(HELLO))
    other = pointer_bytes(b"missing")
    data = (
        HANDSHAKE_IN
        + pkt("command=smudge", "pathname=gone.bin")
        + content(other)
        + pkt("command=smudge", "pathname=a.bin")
        + content(HELLO_POINTER)
    )
    out = run(store, data)
    assert out == (
        HANDSHAKE_OUT_NO_DELAY
        + b"0011status=error\n0000"
        + SUCCESS
        + encode_packet(HELLO)
        + b"00000000"
    )
    assert "gone.bin" in caplog.text and sha256(b"missing") in caplog.text


def test_skip_download_errors_keeps_the_pointer_when_there_is_no_remote(store, caplog):
    # As for a failed download, and as the one-file smudge does: git-lfs's
    # lfs.skipdownloaderrors writes the pointer whatever kept the object away.
    data = HANDSHAKE_IN + pkt("command=smudge", "pathname=gone.bin")
    data += content(pointer_bytes(b"missing"))
    out = run(store, data, skip_download_errors=True)
    assert out == (
        HANDSHAKE_OUT_NO_DELAY + SUCCESS + encode_packet(pointer_bytes(b"missing")) + b"00000000"
    )
    assert "gone.bin" in caplog.text and "no remote is configured" in caplog.text


def test_skip_smudge_and_excluded_paths_keep_the_pointer(store):
    data = HANDSHAKE_IN + pkt("command=smudge", "pathname=a.bin") + content(HELLO_POINTER)
    kept = HANDSHAKE_OUT + SUCCESS + encode_packet(HELLO_POINTER) + b"00000000"
    assert run(store, data, fetch=lambda p: None, skip_smudge=True) == kept
    assert run(store, data, fetch=lambda p: None, path_filter=PathFilter(["models"])) == kept


#: A download's failures, the remote's and this machine's (a full disk), and what the
#: filter says of each.
FETCH_ERRORS = [
    (
        ObjectNotFoundError(f"object {sha256(HELLO)} is not on remote s3://b/p"),
        f"object {sha256(HELLO)} is not on remote s3://b/p",
    ),
    (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
]


@pytest.mark.parametrize(("error", "said"), FETCH_ERRORS, ids=["remote", "full-disk"])
def test_fetch_error_answers_status_error_and_says_why(store, caplog, error, said):
    def fetch(pointer: Pointer) -> None:
        raise error

    data = (
        HANDSHAKE_IN + pkt("command=smudge", "pathname=a.bin") + content(HELLO_POINTER) + NEXT_CLEAN
    )
    assert run(store, data, fetch=fetch) == (
        HANDSHAKE_OUT + b"0011status=error\n0000" + NEXT_CLEANED
    )
    assert f"a.bin: {said}" in caplog.text


def test_for_a_pull_after_large_objects_and_missing_ones_stay_pointers(store, caplog):
    # lfs-agent clone's checkout: objects over pull_after bytes are the pull's to write,
    # even when stored; one that cannot be had is the pull's to report, quietly here.
    small, large = b"small\n", b"large object\n"
    store.ingest(io.BytesIO(small))
    store.ingest(io.BytesIO(large))
    fetched: list[str] = []

    def fetch(pointer: Pointer) -> None:
        fetched.append(pointer.oid)
        raise ObjectNotFoundError(f"object {pointer.oid} is not on remote file:///b")

    data = HANDSHAKE_IN
    for name, blob in (("small", small), ("large", large), ("gone", b"gone\n")):
        data += pkt("command=smudge", f"pathname={name}.bin") + content(pointer_bytes(blob))
    expected = HANDSHAKE_OUT
    for reply in (small, pointer_bytes(large), pointer_bytes(b"gone\n")):
        expected += SUCCESS + encode_packet(reply) + b"00000000"
    with caplog.at_level("WARNING"):
        assert run(store, data, fetch=fetch, pull_after=len(small)) == expected
        # Without a remote, the same.
        assert run(store, data, pull_after=len(small)) == expected.replace(
            HANDSHAKE_OUT, HANDSHAKE_OUT_NO_DELAY
        )
    assert fetched == [sha256(b"gone\n")]
    assert caplog.text == ""


def smudge_of(path: str, blob: bytes) -> bytes:
    """git asking to smudge ``path``, whose blob is ``blob``'s pointer."""
    return pkt("command=smudge", f"pathname={path}") + content(pointer_bytes(blob))


def test_smudged_every_pointer_counts_contents_and_excluded_paths_only(store):
    store.ingest(io.BytesIO(HELLO))
    models_only = PathFilter(["models"])
    stored_and_excluded = HANDSHAKE_IN + smudge_of("a.bin", HELLO) + smudge_of("x.bin", b"x")
    empty_and_plain = (
        HANDSHAKE_IN
        + smudge_of("e.bin", b"")
        + pkt("command=smudge", "pathname=t.txt")
        + content(b"plain text\n")
    )
    assert serve(store, stored_and_excluded, path_filter=models_only)[0].smudged_every_pointer
    assert serve(store, empty_and_plain)[0].smudged_every_pointer
    # Left a pointer: skipped, too large for the pull that follows, or not to be had.
    one = HANDSHAKE_IN + smudge_of("a.bin", HELLO)
    assert not serve(store, one, skip_smudge=True)[0].smudged_every_pointer
    assert not serve(store, one, pull_after=len(HELLO) - 1)[0].smudged_every_pointer
    gone = HANDSHAKE_IN + smudge_of("gone.bin", b"gone")
    assert not serve(store, gone, pull_after=1 << 30)[0].smudged_every_pointer
    assert not serve(store, gone)[0].smudged_every_pointer  # status=error, no remote


def test_for_a_pull_after_a_failed_delayed_download_is_listed_as_a_pointer(store, caplog):
    def fetch(pointer: Pointer) -> None:
        raise ObjectNotFoundError(f"object {pointer.oid} is not on remote file:///b")

    with caplog.at_level("WARNING"):
        process, out = serve(store, DELAYED_A, fetch=fetch, pull_after=1 << 30)
    assert out == delayed_a_answered(HELLO_POINTER)
    assert not process.smudged_every_pointer
    assert caplog.text == ""


def test_a_wrong_size_stored_object_is_fetched_again_not_sent(store):
    path = store.object_path(sha256(HELLO))
    path.parent.mkdir(parents=True)
    path.write_bytes(HELLO[:5])  # cut short, e.g. by a crash outside lfs-agent
    fetched = []

    def fetch(pointer: Pointer) -> None:
        fetched.append(pointer.oid)
        path.unlink()
        store.ingest(io.BytesIO(HELLO))

    data = HANDSHAKE_IN + pkt("command=smudge", "pathname=a.bin") + content(HELLO_POINTER)
    out = run(store, data, fetch=fetch)
    assert out == HANDSHAKE_OUT + SUCCESS + encode_packet(HELLO) + b"00000000"
    assert fetched == [sha256(HELLO)]


def test_delayed_smudges_are_listed_then_answered(store):
    # Downloads are held until git starts asking for available blobs, so every smudge
    # (c.bin shares a.bin's object) is answered "delayed", whatever the thread timing.
    release = threading.Event()
    stored = {}

    def fetch(pointer: Pointer) -> None:
        assert release.wait(5)
        data = stored[pointer.oid]
        store.ingest(io.BytesIO(data), expected=pointer)

    other = b"second file\n"
    stored[sha256(HELLO)] = HELLO
    stored[sha256(other)] = other
    data = (
        HANDSHAKE_IN
        + SMUDGE_A_CAN_DELAY
        + pkt("command=smudge", "pathname=b.bin", "can-delay=1")
        + content(pointer_bytes(other))
        + pkt("command=smudge", "pathname=c.bin", "can-delay=1")
        + content(HELLO_POINTER)
        + pkt("command=list_available_blobs")
        + pkt("command=list_available_blobs")
        + pkt("command=list_available_blobs")
        + pkt("command=list_available_blobs")
    )
    gate = data.index(b"command=list_available_blobs")
    stream = io.BytesIO(data)

    def read(n: int) -> bytes:
        if stream.tell() >= gate - 4:
            release.set()
        return stream.read(n)

    out_stream = io.BytesIO()
    FilterProcess(
        PktLineReader(read),
        PktLineWriter(out_stream.write, out_stream.flush),
        store,
        fetch=fetch,
        concurrency=2,
    ).serve()
    out = out_stream.getvalue()
    delayed = pkt("status=delayed")
    assert out.startswith(HANDSHAKE_OUT + delayed * 3)
    rest = io.BytesIO(out[len(HANDSHAKE_OUT + delayed * 3) :])
    r = PktLineReader(rest.read)
    listed = []
    while True:
        paths = r.read_text_list()
        assert r.read_text_list() == ["status=success"]
        if not paths:
            break
        listed.extend(paths)
    assert sorted(listed) == ["pathname=a.bin", "pathname=b.bin", "pathname=c.bin"]


def test_follow_up_smudge_of_a_delayed_path_sends_the_content(store):
    def fetch(pointer: Pointer) -> None:
        store.ingest(io.BytesIO(HELLO), expected=pointer)

    process, out = serve(store, DELAYED_A, fetch=fetch)
    assert out == delayed_a_answered(HELLO)
    assert process.smudged_every_pointer  # counted once, though git asked twice


@pytest.mark.parametrize(("error", "said"), FETCH_ERRORS, ids=["remote", "full-disk"])
def test_a_failed_delayed_download_is_listed_left_a_pointer_and_recorded(
    store, caplog, error, said
):
    # git would end the checkout with status 0 for a path never listed; listed, it gets
    # its pointer, and the post-checkout hook finds the failure recorded.
    def fetch(pointer: Pointer) -> None:
        raise error

    data = (
        HANDSHAKE_IN
        + SMUDGE_A_CAN_DELAY
        + pkt("command=list_available_blobs")
        + pkt("command=smudge", "pathname=a.bin")
        + content(b"")
        + pkt("command=list_available_blobs")
    )
    expected = (
        HANDSHAKE_OUT
        + pkt("status=delayed")
        + pkt("pathname=a.bin")
        + SUCCESS
        + SUCCESS
        + encode_packet(HELLO_POINTER)
        + b"00000000"
        + b"0000"
        + SUCCESS
    )
    hooked = run(store, data, fetch=fetch, concurrency=1, hook_reports_failures=lambda: True)
    assert hooked == expected
    assert f"a.bin: {said}" in caplog.text
    assert "OSError" not in caplog.text  # the reason, not the exception's class
    recorded = smudge_failures.take(store.tmp_dir)
    assert list(recorded) == ["a.bin"] and said in recorded["a.bin"]
    assert smudge_failures.take(store.tmp_dir) == {}  # taken once
    # Without the hook nothing would report it: the smudge fails, and git with it.
    unhooked = run(store, data, fetch=fetch, concurrency=1)
    assert unhooked.startswith(
        HANDSHAKE_OUT
        + pkt("status=delayed")
        + pkt("pathname=a.bin")
        + SUCCESS
        + pkt("status=error")
    )
    assert smudge_failures.take(store.tmp_dir) == {}


def test_a_failed_download_is_not_recorded_when_errors_are_skipped(store):
    def fetch(pointer: Pointer) -> None:
        raise ObjectNotFoundError("gone")

    data = (
        HANDSHAKE_IN
        + SMUDGE_A_CAN_DELAY
        + pkt("command=list_available_blobs")
        + pkt("command=smudge", "pathname=a.bin")
        + content(b"")
    )
    out = run(store, data, fetch=fetch, skip_download_errors=True)
    assert out.endswith(SUCCESS + encode_packet(HELLO_POINTER) + b"00000000")
    assert smudge_failures.take(store.tmp_dir) == {}


def unverified_fetch(store: ObjectStore, data: bytes, calls: list[str]):
    """A fetch leaving ``data`` in a temp file for the smudge to check, as a link does."""

    def fetch(pointer: Pointer) -> Unverified:
        calls.append(pointer.oid)
        temp = store.temp_path(pointer.oid)
        temp.write_bytes(data)
        return Unverified(temp, "from file:///b")

    return fetch


def test_an_unverified_download_is_checked_while_sent_then_stored(store):
    calls: list[str] = []
    data = (
        HANDSHAKE_IN
        + SMUDGE_A_CAN_DELAY
        + pkt("command=smudge", "pathname=c.bin", "can-delay=1")
        + content(HELLO_POINTER)
        + pkt("command=list_available_blobs")
        + pkt("command=smudge", "pathname=a.bin")
        + content(b"")
        + pkt("command=smudge", "pathname=c.bin")
        + content(b"")
        + pkt("command=list_available_blobs")
    )
    sent = SUCCESS + encode_packet(HELLO) + b"00000000"
    expected = (
        HANDSHAKE_OUT
        + pkt("status=delayed") * 2
        + pkt("pathname=a.bin", "pathname=c.bin")
        + SUCCESS
        + sent  # a.bin: the download, hashed as it is sent
        + sent  # c.bin: the same object, from the store
        + b"0000"
        + SUCCESS
    )
    assert run(store, data, fetch=unverified_fetch(store, HELLO, calls)) == expected
    assert calls == [sha256(HELLO)]
    assert store.contains(Pointer(sha256(HELLO), len(HELLO)))
    assert list(store.ensure_tmp().iterdir()) == []


def test_an_unverified_download_that_hashes_wrong_ends_in_an_error(store, caplog):
    # Same size, other bytes: git has them already when the hash says so; the error
    # status makes git drop them (a required filter failed) and write nothing.
    bad = b"X" * len(HELLO)
    data = HANDSHAKE_IN + pkt("command=smudge", "pathname=a.bin") + content(HELLO_POINTER)
    out = run(store, data, fetch=unverified_fetch(store, bad, []))
    assert out == HANDSHAKE_OUT + SUCCESS + encode_packet(bad) + b"0000" + pkt("status=error")
    assert not store.contains(Pointer(sha256(HELLO), len(HELLO)))
    assert list(store.ensure_tmp().iterdir()) == []
    assert f"a.bin: object {sha256(HELLO)} from file:///b is corrupt" in caplog.text


def test_an_unverified_download_git_never_asks_for_is_removed(store):
    data = HANDSHAKE_IN + SMUDGE_A_CAN_DELAY + pkt("command=list_available_blobs")
    run(store, data, fetch=unverified_fetch(store, HELLO, []))
    assert list(store.ensure_tmp().iterdir()) == []
    assert not store.contains(Pointer(sha256(HELLO), len(HELLO)))


def test_a_download_not_worth_delaying_is_answered_at_once(store):
    # A folder bucket on the store's disk: the download is a hard link, cheaper than
    # the request a delayed smudge costs git.
    fetched = []

    def fetch(pointer: Pointer) -> None:
        fetched.append(pointer.oid)
        store.ingest(io.BytesIO(HELLO), expected=pointer)

    data = HANDSHAKE_IN + SMUDGE_A_CAN_DELAY + pkt("command=list_available_blobs")
    out = run(store, data, fetch=fetch, in_background=lambda p: False)
    expected = HANDSHAKE_OUT + SUCCESS + encode_packet(HELLO) + b"00000000" + b"0000" + SUCCESS
    assert out == expected
    assert fetched == [sha256(HELLO)]


def test_a_failed_download_not_worth_delaying_fails_like_a_delayed_one(store, caplog):
    # Answered "delayed" and listed: its follow-up gets the pointer, where status=error
    # would stop the whole checkout halfway.
    def fetch(pointer: Pointer) -> None:
        raise ObjectNotFoundError(f"object {pointer.oid} is not on remote file:///b")

    data = HANDSHAKE_IN + SMUDGE_A_CAN_DELAY + pkt("command=list_available_blobs")
    out = run(store, data, fetch=fetch, in_background=lambda p: False)
    assert out == HANDSHAKE_OUT + pkt("status=delayed") + pkt("pathname=a.bin") + SUCCESS
    assert f"a.bin: object {sha256(HELLO)} is not on remote file:///b" in caplog.text


def test_list_available_with_nothing_delayed_is_empty(store):
    out = run(store, HANDSHAKE_IN + pkt("command=list_available_blobs"), fetch=lambda p: None)
    assert out == HANDSHAKE_OUT + b"0000" + SUCCESS


def test_unknown_commands_get_status_error(store):
    out = run(store, HANDSHAKE_IN + pkt("command=frobnicate"))
    assert out == HANDSHAKE_OUT_NO_DELAY + b"0011status=error\n0000"


@pytest.mark.parametrize("size", [7, 5000])
def test_truncated_content_is_a_protocol_error_and_stores_nothing(store, size):
    data = HANDSHAKE_IN + pkt("command=clean", "pathname=a") + encode_packet(b"p" * size)
    with pytest.raises(ProtocolError):
        run(store, data)
    assert not store.tmp_dir.exists() or list(store.tmp_dir.iterdir()) == []
    assert not store.objects_dir.exists()


#: Content of three packets, so that a failure at the first leaves two unread.
THREE_PACKETS = bytes(range(256)) * 700


class FullOnce(ObjectStore):
    """A store whose first object's write finds the disk full."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.writers = 0

    def writer(self, prefix: str = "ingest") -> ObjectWriter:
        made = super().writer(prefix)
        self.writers += 1
        if self.writers == 1:

            def full(data: bytes) -> None:
                raise OSError(errno.ENOSPC, "No space left on device")

            made.write = full  # type: ignore[method-assign]
        return made


def test_a_clean_failing_midway_reads_the_rest_and_answers_an_error(tmp_path, caplog):
    store = FullOnce(tmp_path / "lfs")
    data = (
        HANDSHAKE_IN
        + pkt("command=clean", "pathname=big.bin")
        + content_packets(THREE_PACKETS)
        + NEXT_CLEAN
    )
    out = run(store, data)
    # The unread packets were taken as the first file's, not as the next request.
    expected = HANDSHAKE_OUT_NO_DELAY + pkt("status=error") + NEXT_CLEANED
    assert out == expected
    assert "clean big.bin failed: No space left on device" in caplog.text
    assert [p.oid for p in store.iter_objects()] == [sha256(HELLO)]
    assert list(store.ensure_tmp().iterdir()) == []


class FailingRead(io.BytesIO):
    """A stored object whose disk fails after its first ``good`` bytes."""

    def __init__(self, data: bytes, good: int) -> None:
        super().__init__(data)
        self.good = good

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self.tell() >= self.good:
            raise OSError(errno.EIO, "Input/output error")
        view = memoryview(buffer)[: self.good - self.tell()]
        return super().readinto(view)


class FailingDisk(ObjectStore):
    """A store whose objects' reads fail after their first packet."""

    def open(self, pointer: Pointer) -> FailingRead:  # type: ignore[override]
        with super().open(pointer) as stored:
            return FailingRead(stored.read(), MAX_PAYLOAD)


def test_a_stored_object_failing_to_read_midway_ends_the_reply_in_an_error(tmp_path, caplog):
    store = FailingDisk(tmp_path / "lfs")
    pointer = store.ingest(io.BytesIO(THREE_PACKETS))
    data = (
        HANDSHAKE_IN
        + pkt("command=smudge", "pathname=big.bin")
        + content(pointer.encode())
        + NEXT_CLEAN
    )
    out = run(store, data)
    # The packet read is not sent: packets go out a frame of about a MiB at a time.
    # Had some gone, the error after them would still make git drop the file (see
    # test_plain_git). The process goes on to the next request.
    expected = HANDSHAKE_OUT_NO_DELAY + SUCCESS + b"0000" + pkt("status=error") + NEXT_CLEANED
    assert out == expected
    assert f"big.bin: reading object {pointer.oid} failed: [Errno 5]" in caplog.text


def test_an_object_gone_from_the_store_after_its_download_is_a_per_file_error(store, caplog):
    # The download said it stored the object, but it is gone (a prune, say) when the
    # smudge opens it: that file fails, and the next request is answered.
    data = (
        HANDSHAKE_IN + pkt("command=smudge", "pathname=a.bin") + content(HELLO_POINTER) + NEXT_CLEAN
    )
    out = run(store, data, fetch=lambda pointer: None)
    assert out == (HANDSHAKE_OUT + pkt("status=error") + NEXT_CLEANED)
    assert f"a.bin: object {sha256(HELLO)} is not in the local store" in caplog.text


def test_once_the_remote_cannot_be_reached_the_other_downloads_are_not_tried(store, caplog):
    tried: list[str] = []

    class Unreachable:
        url = "s3://b/p"
        max_workers = None

        def download(self, oid: str, *args: object) -> None:
            tried.append(oid)
            raise UnreachableError("cannot reach s3://b/p: Connection refused")

        def close(self) -> None:
            pass

    remote = Remote("s3://b/p", opener=lambda *_: Unreachable())  # type: ignore[arg-type,return-value]
    blobs = [b"one\n", b"two\n", b"three\n"]
    data = HANDSHAKE_IN
    for i, blob in enumerate(blobs):
        data += pkt("command=smudge", f"pathname={i}.bin", "can-delay=1")
        data += content(pointer_bytes(blob))
    data += pkt("command=list_available_blobs") * 3  # git asks until none are left

    def fetch(pointer: Pointer) -> Unverified | None:  # as LazyFetch does
        return remote.download_for_reading(store, pointer)

    out = run(store, data, fetch=fetch, concurrency=1)
    assert out.startswith(HANDSHAKE_OUT + pkt("status=delayed") * 3 + b"0013pathname=0.bin\n")
    assert len(tried) == 1
    for i in range(3):
        assert f"{i}.bin: cannot reach s3://b/p: Connection refused" in caplog.text
