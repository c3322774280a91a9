"""The HTTP backend on a bad network: the fault proxy in front of the HTTP object server.

Uploads and downloads go through :class:`~tests.fault_proxy.FaultProxy`, which resets
connections mid-answer, cuts bodies short, stalls them, answers 503, or loses an answer
after the server stored what was sent. Objects are checked in the server's own folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lfs_agent.backends.http import HTTPBackend
from lfs_agent.errors import RetriableError
from lfs_agent.pointer import Pointer
from tests.contract.backend_contract import Recorder
from tests.fault_proxy import Fault, FaultProxy
from tests.helpers import sha256, write_random

MIB = 1024 * 1024
#: Eight objects; the larger ones, cut off, continue with a Range.
SIZES = [1, 1000, 54145, 300_000, 700_000, 2 * MIB + 3, 5 * MIB + 7, 9 * MIB + 17]


@pytest.fixture
def proxy(http_server) -> Iterator[Callable[..., FaultProxy]]:
    """Starts fault proxies in front of the object server; all are closed after the test."""
    started: list[FaultProxy] = []

    def start(**options: object) -> FaultProxy:
        started.append(FaultProxy(http_server.url, stall_seconds=2, **options))  # type: ignore[arg-type]
        return started[-1]

    yield start
    for each in started:
        each.close()


def through(faulty: FaultProxy, delays: list[float], **options: str) -> HTTPBackend:
    """A backend whose requests go through ``faulty``; its backoffs go to ``delays``."""
    return HTTPBackend(f"{faulty.url}/p", {"http.timeout": "10", **options}, sleep=delays.append)


def stored(tmp_path: Path, oid: str) -> Path:
    """Where the object server keeps the object (``http_server`` serves tmp/http-root)."""
    return tmp_path / "http-root" / "p" / "objects" / oid[:2] / oid[2:4] / oid


@pytest.mark.parametrize("seed", [1, 2])
def test_uploads_and_downloads_complete_with_a_quarter_of_requests_failing(tmp_path, proxy, seed):
    files = []
    for i, size in enumerate(SIZES):
        src = tmp_path / f"src-{i}"
        files.append((write_random(src, size, seed=10 * seed + i), src, size))
    faulty = proxy(
        rate=0.25,
        seed=seed,
        kinds=["reset", "cut", "stall", "status", "lost"],
        methods=["GET", "HEAD", "PUT"],
    )
    # One of each for sure (a script is used by the next request naming the object,
    # whatever its method); the rest as the seed falls.
    faulty.script(files[0][0], Fault("lost"), Fault("status"))  # its PUT, and again
    faulty.script(files[4][0], Fault("status"))
    faulty.script(files[6][0], Fault("lost"))
    delays: list[float] = []
    backend = through(faulty, delays)
    for oid, src, size in files:
        progress = Recorder()
        backend.upload(oid, src, size, progress)
        assert progress.total == size  # a body sent again is counted once
        assert backend.stat(oid) == size
    for oid, _, _ in files:
        assert sha256(stored(tmp_path, oid).read_bytes()) == oid
    faulty.script(files[5][0], Fault("reset"))
    faulty.script(files[6][0], Fault("stall"))
    faulty.script(files[7][0], Fault("cut", after=3 * MIB))
    for oid, _, size in files:
        dest = tmp_path / f"dest-{oid}"
        progress = Recorder()
        assert backend.download(oid, dest, size, progress) == Pointer(oid, size)
        assert sha256(dest.read_bytes()) == oid
        assert progress.total == size
    dealt = faulty.faults()
    assert all(dealt[kind] >= 1 for kind in ("reset", "cut", "stall", "status", "lost")), dealt
    assert sum(dealt.values()) >= len(SIZES), dealt
    # The largest object, cut 3 MiB in, was asked for again from there.
    gets = faulty.requests(files[7][0])
    assert (gets[0].range, gets[0].sent, gets[1].range) == (None, 3 * MIB, f"bytes={3 * MIB}-")
    assert len(delays) >= sum(dealt.values()) // 2  # backing off, not hammering


@pytest.mark.parametrize(
    ("kind", "download", "upload"),
    [
        ("status", "{where} kept failing (503) after 3 attempts", "same"),
        ("reset", "download of {oid} from {url} kept breaking off: Connection reset by peer", None),
        ("cut", "download of {oid} from {url} kept breaking off: the body ended early", None),
        ("stall", "download of {oid} from {url} kept breaking off: timed out", None),
        ("lost", "cannot reach {url}: Connection reset by peer", "same"),
    ],
)
def test_an_endpoint_that_keeps_failing_fails_in_one_line_of_words(
    http_server, tmp_path, proxy, kind, download, upload
):
    src = tmp_path / "src"
    oid = write_random(src, 700_000, seed=1)
    HTTPBackend(f"{http_server.url}/p").upload(oid, src, 700_000, Recorder())
    new = tmp_path / "new"
    new_oid = write_random(new, 54145, seed=2)
    faulty = proxy(rate=1.0, kinds=[kind], methods=["GET", "HEAD", "PUT"])
    delays: list[float] = []
    # A read timeout of 1s: a stall of 2s times out.
    backend = through(faulty, delays, **{"http.max-attempts": "3", "http.timeout": "1"})
    url = f"{faulty.url}/p"

    def words(template: str, target: str) -> str:
        where = f"{url}/objects/{target[:2]}/{target[2:4]}/{target}"
        return template.format(where=where, oid=target, url=url)

    with pytest.raises(RetriableError) as caught:
        backend.download(oid, tmp_path / "dest", 700_000, Recorder())
    assert str(caught.value) == words(download, oid)
    assert len(faulty.requests(oid)) == 3
    if upload is None:  # a PUT's answer has no body to break: it gets through
        backend.upload(new_oid, new, 54145, Recorder())
        assert sha256(stored(tmp_path, new_oid).read_bytes()) == new_oid
    else:
        with pytest.raises(RetriableError) as caught:
            backend.upload(new_oid, new, 54145, Recorder())
        assert str(caught.value) == words(download, new_oid)
        assert len(faulty.requests(new_oid, "PUT")) == 3
    assert len(delays) >= 2 and delays[1] > delays[0]


def test_records_read_through_a_faulty_network_come_whole(tmp_path, proxy):
    faulty = proxy(rate=0.25, seed=4, kinds=["reset", "cut", "status", "lost"], methods=["GET"])
    delays: list[float] = []
    backend = through(faulty, delays)
    records = {
        f"meta/tags/v{i}.json": b'{"tag": "v%d", "pad": "%s"}' % (i, b"x" * 900) for i in range(6)
    }
    for key, data in records.items():
        backend.put_meta(key, data)
    # Each record's first answer breaks off, whole or in its body; the rest as the seed falls.
    for number, key in enumerate(records):
        faulty.script(key, Fault(["reset", "cut", "lost"][number % 3], after=100))
    for key, data in records.items():
        assert backend.get_meta(key) == data
    assert backend.list_meta("meta/tags/") == sorted(records)
    for key in records:  # broken once, asked for again
        gets = faulty.requests(key)
        assert gets[0].fault is not None and len(gets) >= 2, key
    assert len(delays) >= len(records)
