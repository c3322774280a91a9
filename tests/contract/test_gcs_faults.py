"""The GCS backend on a bad network: the fault proxy in front of the GCS emulator.

Uploads and downloads go through :class:`~tests.fault_proxy.FaultProxy`, which resets
connections mid-answer, cuts bodies short, stalls them, answers 503 as GCS does, or
loses an answer after the emulator acted on its request. Objects are checked straight
against the emulator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from google.cloud import storage

from lfs_agent.backends.gcs import GCSBackend
from lfs_agent.errors import RetriableError
from lfs_agent.pointer import Pointer
from tests.contract.backend_contract import Recorder
from tests.fault_proxy import Fault, FaultProxy
from tests.helpers import sha256, write_random

pytestmark = pytest.mark.gcs
MIB = 1024 * 1024
#: What GCS's JSON API answers when it is overloaded.
BACKEND_ERROR = (
    b'{"error": {"code": 503, "message": "Backend Error", '
    b'"errors": [{"message": "Backend Error", "reason": "backendError"}]}}'
)
#: Small files go up in one request; the last, above 8 MiB, in a resumable session
#: of ten chunks.
SIZES = [1, 54145, 700_000, 3 * MIB + 5, 9 * MIB + 17]


@pytest.fixture
def proxy(gcs_server, gcs_bucket, monkeypatch) -> Iterator[Callable[..., FaultProxy]]:
    """Starts a fault proxy in front of the emulator, and points the SDK at it."""
    started: list[FaultProxy] = []

    def start(**options: object) -> FaultProxy:
        faulty = FaultProxy(
            gcs_server.url,
            status_body=BACKEND_ERROR,
            status_type="application/json",
            stall_seconds=2,
            **options,  # type: ignore[arg-type]
        )
        started.append(faulty)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", faulty.url)
        return faulty

    yield start
    for each in started:
        each.close()


def stored(bucket: str, oid: str) -> bytes:
    """The object's bytes, read straight from the emulator."""
    client = storage.Client(project="test")
    return bytes(
        client.bucket(bucket).blob(f"p/objects/{oid[:2]}/{oid[2:4]}/{oid}").download_as_bytes()
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_uploads_and_downloads_complete_with_a_quarter_of_requests_failing(
    gcs_bucket, gcs_server, tmp_path, proxy, monkeypatch, seed
):
    files = []
    for i, size in enumerate(SIZES):
        src = tmp_path / f"src-{i}"
        files.append((write_random(src, size, seed=10 * seed + i), src, size))
    faulty = proxy(
        rate=0.25,
        seed=seed,
        kinds=["reset", "cut", "stall", "status", "lost"],
        methods=["GET", "POST", "PUT"],
        # The emulator refuses a resumable chunk sent again after its answer was lost
        # or broken (GCS skips the bytes it already holds, and the SDK relies on it):
        # chunks get only 503s, which the emulator never sees.
        kinds_by_method={"PUT": ["status"]},
    )
    # One of each for sure; the rest as the seed falls.
    faulty.script("uploadType=multipart", Fault("lost"), Fault("reset"))
    faulty.script("upload_id=", Fault("status"))
    faulty.script(files[2][0], Fault("reset"))
    faulty.script(files[3][0], Fault("stall"), Fault("cut"))
    faulty.script(files[4][0], Fault("cut"))
    backend = GCSBackend(f"gs://{gcs_bucket}/p", {"gcs.chunk-size": "1MiB"})
    for oid, src, size in files:
        progress = Recorder()
        backend.upload(oid, src, size, progress)
        assert progress.total == size
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    for oid, _, _ in files:
        assert sha256(stored(gcs_bucket, oid)) == oid
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", faulty.url)
    for oid, _, size in files:
        dest = tmp_path / f"dest-{oid}"
        progress = Recorder()
        assert backend.download(oid, dest, size, progress) == Pointer(oid, size)
        assert sha256(dest.read_bytes()) == oid
        assert progress.total == size
    dealt = faulty.faults()
    assert all(dealt[kind] >= 1 for kind in ("reset", "cut", "stall", "status", "lost")), dealt
    assert sum(dealt.values()) >= len(SIZES) + 3, dealt


def key(oid: str) -> str:
    return f"p/objects/{oid[:2]}/{oid[2:4]}/{oid}"


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("status", None),  # the object's key and the server's words
        ("reset", "Connection reset by peer"),
        ("cut", "the body ended early"),
        ("lost", "Connection reset by peer"),
    ],
)
def test_an_endpoint_that_keeps_failing_fails_in_one_line_of_words(
    gcs_bucket, tmp_path, proxy, kind, reason
):
    src = tmp_path / "src"
    there = write_random(src, 54145, seed=1)
    GCSBackend(f"gs://{gcs_bucket}/p").upload(there, src, 54145, Recorder())
    new = tmp_path / "new"
    oid = write_random(new, 700_000, seed=2)
    faulty = proxy(rate=1.0, kinds=[kind], methods=["GET", "POST", "PUT"])
    # Long enough for a second try even when a loaded machine slows the first.
    backend = GCSBackend(f"gs://{gcs_bucket}/p", {"gcs.retry-timeout": "2"})
    calls: list[tuple[str, Callable[[], object]]] = [
        (there, lambda: backend.stat(there)),
        (there, lambda: backend.download(there, tmp_path / "dest", 54145, Recorder())),
        (oid, lambda: backend.upload(oid, new, 700_000, Recorder())),
    ]
    for target, call in calls:
        before = len(faulty.log)
        with pytest.raises(RetriableError) as caught:
            call()
        if reason is None:
            expected = (
                f"GCS failed for gs://{gcs_bucket}/{key(target)} after retries: Backend Error"
            )
        else:
            expected = f"cannot reach GCS for gs://{gcs_bucket}/p: {reason} (retried for 2s)"
        assert str(caught.value) == expected
        assert len(faulty.log) - before >= 2  # retried before giving up
