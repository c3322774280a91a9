"""The S3 backend on a bad network, and two pushes of one object at once.

Downloads go through :class:`~tests.fault_proxy.FaultProxy` in front of the moto
server, which resets connections mid-answer, cuts bodies short, stalls them or answers
503; uploads go straight to moto.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from lfs_agent.backends.s3 import S3Backend
from lfs_agent.errors import RetriableError
from lfs_agent.pointer import Pointer
from tests.contract.backend_contract import Recorder
from tests.contract.test_s3 import SMALL_PARTS, make_backend
from tests.fault_proxy import Fault, FaultProxy
from tests.helpers import sha256, write_random

pytestmark = pytest.mark.s3
MIB = 1024 * 1024


@pytest.fixture
def proxy(moto) -> Iterator[Callable[..., FaultProxy]]:
    """Starts fault proxies in front of moto; all are closed after the test."""
    started: list[FaultProxy] = []

    def start(**options: object) -> FaultProxy:
        started.append(FaultProxy(moto.url, **options))
        return started[-1]

    yield start
    for each in started:
        each.close()


def upload(bucket: str, tmp_path: Path, size: int, seed: int) -> str:
    """Put a ``size``-byte object straight into moto; return its oid."""
    src = tmp_path / f"src-{seed}"
    oid = write_random(src, size, seed=seed)
    backend, _ = make_backend(bucket, tmp_path)
    backend.upload(oid, src, size, Recorder())
    return oid


def through(
    proxy: FaultProxy, bucket: str, delays: list[float] | None = None, **options: str
) -> S3Backend:
    """A backend whose requests go through ``proxy``; its backoffs go to ``delays``."""
    waits = [] if delays is None else delays
    return S3Backend(
        f"s3://{bucket}/p",
        {**SMALL_PARTS, "s3.endpoint-url": proxy.url, **options},
        sleep=waits.append,
    )


# --- downloads that break off ---------------------------------------------------------


@pytest.mark.parametrize("seed", [7, 8])
def test_downloads_complete_with_a_quarter_of_answers_failing(s3_bucket, tmp_path, proxy, seed):
    sizes = [1, 54145, 700_000, 3 * MIB + 11, 12 * MIB + 7]  # the last one ranged
    oids = [upload(s3_bucket, tmp_path, size, seed=i) for i, size in enumerate(sizes)]
    faulty = proxy(rate=0.25, seed=seed)
    # One of each kind for sure; the rest as the seed falls.
    faulty.script(oids[1], Fault("reset"))
    faulty.script(oids[2], Fault("cut"))
    faulty.script(oids[3], Fault("status"))
    faulty.script(oids[4], Fault("reset"), Fault("cut"))
    backend = through(faulty, s3_bucket, **{"s3.concurrency": "2"})
    for oid, size in zip(oids, sizes, strict=True):
        dest = tmp_path / f"dest-{oid}"
        progress = Recorder()
        assert backend.download(oid, dest, size, progress) == Pointer(oid, size)
        assert sha256(dest.read_bytes()) == oid
        assert progress.total == size
    dealt = faulty.faults()
    assert dealt["reset"] >= 2 and dealt["cut"] >= 2 and dealt["status"] >= 1, dealt
    gets = faulty.requests("/objects/")
    assert sum(1 for e in gets if e.fault) >= len(sizes)


@pytest.mark.parametrize(
    ("size", "concurrency", "first", "retry"),
    [
        (54145, "1", None, "bytes=16696-"),  # one GET; the retry asks for the rest
        # Two ranges of 6 MiB; the second breaks 16696 bytes in and only it is re-asked.
        (12 * MIB, "1", "bytes=6291456-12582911", "bytes=6308152-12582911"),
    ],
    ids=["single", "ranged"],
)
def test_a_body_cut_short_resumes_from_the_bytes_written(
    s3_bucket, tmp_path, proxy, size, concurrency, first, retry
):
    oid = upload(s3_bucket, tmp_path, size, seed=3)
    faulty = proxy()
    faulty.script(oid, Fault("cut", after=16696), range=first)
    delays: list[float] = []
    backend = through(faulty, s3_bucket, delays, **{"s3.concurrency": concurrency})
    dest = tmp_path / "dest"
    progress = Recorder()
    assert backend.download(oid, dest, size, progress) == Pointer(oid, size)
    assert sha256(dest.read_bytes()) == oid
    assert progress.total == size  # no byte counted twice
    gets = faulty.requests(oid)
    broken = [e for e in gets if e.fault]
    assert [(e.range, e.sent) for e in broken] == [(first, 16696)]
    assert gets[gets.index(broken[0]) + 1].range == retry
    assert len(gets) == (2 if first is None else 3)
    assert len(delays) == 1


@pytest.mark.parametrize("kind", ["cut", "reset"])
def test_a_range_that_breaks_twice_is_resumed_in_place_each_time(s3_bucket, tmp_path, proxy, kind):
    # Two workers, three ranges of 5 MiB at most; the middle one breaks, then its retry
    # breaks too. Each retry asks for the rest of that range only, from the byte where
    # the body broke (a reset may lose bytes the client had not read: from no later).
    size = 12 * MIB
    oid = upload(s3_bucket, tmp_path, size, seed=10)
    start, end = 5 * MIB, 10 * MIB - 1
    first_break, second_break = 16696, 100_000
    faulty = proxy()
    faulty.script(oid, Fault(kind, after=first_break), range=f"bytes={start}-{end}")
    retry = f"bytes={start + first_break}-{end}"
    if kind == "cut":  # whole bytes arrive before a clean close: the retry is known
        faulty.script(oid, Fault(kind, after=second_break), range=retry)
    delays: list[float] = []
    backend = through(faulty, s3_bucket, delays, **{"s3.concurrency": "2"})
    dest = tmp_path / "dest"
    progress = Recorder()
    assert backend.download(oid, dest, size, progress) == Pointer(oid, size)
    assert sha256(dest.read_bytes()) == oid
    assert progress.total == size  # no byte counted twice
    gets = faulty.requests(oid)
    middle = [e.range for e in gets if e.range and e.range.endswith(f"-{end}")]
    others = sorted(e.range for e in gets if e.range and not e.range.endswith(f"-{end}"))
    assert others == [f"bytes=0-{start - 1}", f"bytes={10 * MIB}-{size - 1}"]  # once each
    starts = [int(r.removeprefix("bytes=").partition("-")[0]) for r in middle]
    if kind == "cut":
        assert middle == [
            f"bytes={start}-{end}",
            retry,
            f"bytes={start + first_break + second_break}-{end}",
        ]
    else:
        assert len(middle) == 2 and start <= starts[1] <= start + first_break
    assert len(delays) == len(middle) - 1


def test_a_stalled_body_resumes_after_the_read_timeout(s3_bucket, tmp_path, proxy):
    size = 3 * MIB
    oid = upload(s3_bucket, tmp_path, size, seed=4)
    faulty = proxy(stall_seconds=30)
    # Bodies are read a MiB at a time: the first MiB arrives, the next read times out.
    faulty.script(oid, Fault("stall", after=MIB + 1000))
    client = boto3.client(
        "s3", endpoint_url=faulty.url, config=Config(read_timeout=1, retries={"max_attempts": 1})
    )
    backend = S3Backend(f"s3://{s3_bucket}/p", dict(SMALL_PARTS), client=client, sleep=[].append)
    dest = tmp_path / "dest"
    assert backend.download(oid, dest, size, Recorder()) == Pointer(oid, size)
    assert [e.range for e in faulty.requests(oid)] == [None, f"bytes={MIB}-"]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("reset", "connection reset by peer"), ("cut", "the body ended early")],
)
@pytest.mark.parametrize("size", [54145, 12 * MIB], ids=["single", "ranged"])
def test_a_download_that_keeps_breaking_off_fails_in_one_line(
    s3_bucket, tmp_path, proxy, kind, reason, size
):
    oid = upload(s3_bucket, tmp_path, size, seed=5)
    faulty = proxy(rate=1.0, kinds=[kind])
    delays: list[float] = []
    backend = through(faulty, s3_bucket, delays, **{"s3.max-attempts": "3", "s3.concurrency": "1"})
    dest = tmp_path / "dest"
    with pytest.raises(RetriableError) as caught:
        backend.download(oid, dest, size, Recorder())
    assert str(caught.value) == (
        f"download of {oid} from s3://{s3_bucket}/p kept breaking off after 3 attempts: {reason}"
    )
    assert dest.stat().st_size < size
    assert len(delays) == 2 and delays[1] > delays[0]  # backing off between attempts


def test_a_download_answered_503_throughout_names_the_object(s3_bucket, tmp_path, proxy):
    oid = upload(s3_bucket, tmp_path, 54145, seed=6)
    faulty = proxy(rate=1.0, kinds=["status"])
    backend = through(faulty, s3_bucket, **{"s3.max-attempts": "2"})
    with pytest.raises(RetriableError) as caught:
        backend.download(oid, tmp_path / "dest", 54145, Recorder())
    assert str(caught.value) == (
        f"S3 failed for s3://{s3_bucket}/p/objects/{oid[:2]}/{oid[2:4]}/{oid} after retries "
        "(SlowDown): Please reduce your request rate."
    )
    # botocore's three tries (its max_attempts counts retries), for each of ours.
    assert len(faulty.requests(oid)) == 6


# --- two pushes of one object from one repository -------------------------------------

ROUNDS = 8


def race(bucket: str, tmp_path: Path, round_: int, checked: bool) -> None:
    """Two uploads of one new object from one state dir; the second starts once the
    first is sending parts (even rounds) or together with it (odd rounds)."""
    size = 11 * MIB  # three parts of 5 MiB at most
    src = tmp_path / f"big-{round_}"
    oid = write_random(src, size, seed=100 + round_)
    first, first_calls = make_backend(bucket, tmp_path)
    second, second_calls = make_backend(bucket, tmp_path)
    first_sending = threading.Event()
    go = threading.Barrier(2)
    errors: list[BaseException] = []

    def push(backend: S3Backend, progress: Callable[[int], None], wait: bool) -> None:
        try:
            go.wait(30)
            if wait:
                assert first_sending.wait(30)
            backend.upload(oid, src, size, progress, checked=checked)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=push, args=(first, lambda _: first_sending.set(), False)),
        threading.Thread(target=push, args=(second, Recorder(), round_ % 2 == 0)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [], f"round {round_}: {errors}"
    calls = [first_calls, second_calls]
    # One upload; whichever came second found the object there and sent nothing.
    assert sum(c.count("CreateMultipartUpload") for c in calls) == 1, f"round {round_}"
    assert sorted(c.count("UploadPart") for c in calls) == [0, 3], f"round {round_}"
    assert boto3.client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    dest = tmp_path / f"dest-{round_}"
    assert first.download(oid, dest, size, Recorder()) == Pointer(oid, size)
    assert not list((tmp_path / "state").glob("*.json"))


@pytest.mark.parametrize("checked", [True, False])
def test_two_uploads_of_one_object_sharing_state_both_succeed(s3_bucket, tmp_path, checked):
    for round_ in range(ROUNDS):
        race(s3_bucket, tmp_path, round_, checked)


class Stopped(Exception):
    """Stands for a push stopped midway."""


def test_an_upload_waiting_for_one_that_fails_resumes_it(s3_bucket, tmp_path):
    size = 11 * MIB
    src = tmp_path / "big"
    oid = write_random(src, size, seed=9)
    first, first_calls = make_backend(s3_bucket, tmp_path)
    second, second_calls = make_backend(s3_bucket, tmp_path)
    first_sent = threading.Event()
    second_started = threading.Event()
    errors: list[BaseException] = []

    def give_up_after_one_part(_: int) -> None:
        first_sent.set()
        assert second_started.wait(30)
        raise Stopped

    def run_first() -> None:
        try:
            first.upload(oid, src, size, give_up_after_one_part, checked=True)
        except Stopped:
            pass
        except BaseException as exc:
            errors.append(exc)

    def run_second() -> None:
        try:
            assert first_sent.wait(30)
            second_started.set()
            second.upload(oid, src, size, Recorder(), checked=True)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run_first), threading.Thread(target=run_second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert first_calls.count("CreateMultipartUpload") == 1
    # The second upload continued the first one's: only the parts not yet sent.
    assert second_calls.count("CreateMultipartUpload") == 0
    assert second_calls.count("UploadPart") == 3 - first_calls.count("UploadPart")
    assert second.stat(oid) == size
    dest = tmp_path / "dest"
    assert second.download(oid, dest, size, Recorder()) == Pointer(oid, size)


def test_the_fault_proxy_only_fronts_loopback():
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("http://example.com:80")
