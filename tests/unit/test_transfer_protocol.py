"""git-lfs's custom transfer protocol, spoken over in-memory streams to the memory backend.

Each test is one session as git-lfs runs it (docs/custom-transfers.md): ``init``, then
``upload`` or ``download`` requests, each answered by progress events and one
``complete``, then ``terminate``. The replies are compared whole.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from lfs_agent.errors import ConfigError, RetriableError, UnreachableError
from lfs_agent.remote import Remote
from lfs_agent.store import ObjectStore
from lfs_agent.transfer import TransferAgent
from tests.helpers import random_bytes, sha256
from tests.memory_backend import MemoryBackend

DATA = random_bytes(5000, seed=11)
OID = sha256(DATA)
INIT_UPLOAD = {"event": "init", "operation": "upload", "remote": "origin"}
INIT_DOWNLOAD = {"event": "init", "operation": "download", "remote": "origin"}
TERMINATE = {"event": "terminate"}


class Session:
    """A transfer agent reading requests from a string, replies into a list."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.store = ObjectStore(tmp_path / "repo" / ".git" / "lfs")
        self.bucket = MemoryBackend()

    def open_session(self) -> tuple[ObjectStore, Remote]:
        return self.store, Remote(self.bucket.url, opener=self.bucket.opener())

    def run(self, *requests: dict[str, Any] | str, open_session=None) -> list[dict[str, Any]]:
        """Serve ``requests`` (objects, or raw lines); the replies, parsed."""
        lines = [r if isinstance(r, str) else json.dumps(r) for r in requests]
        stdin = io.StringIO("".join(line + "\n" for line in lines))
        out: list[str] = []
        TransferAgent(stdin.readline, out.append, open_session or self.open_session).serve()
        return [json.loads(line) for line in out]

    def source(self, data: bytes, name: str = "src") -> Path:
        path = self.tmp_path / name
        path.write_bytes(data)
        return path


def upload(oid: str, size: int, path: Path | None) -> dict[str, Any]:
    request: dict[str, Any] = {"event": "upload", "oid": oid, "size": size, "action": None}
    if path is not None:
        request["path"] = str(path)
    return request


def download(oid: str, size: int) -> dict[str, Any]:
    return {"event": "download", "oid": oid, "size": size, "action": None}


def progress(oid: str, so_far: int, since: int) -> dict[str, Any]:
    return {"event": "progress", "oid": oid, "bytesSoFar": so_far, "bytesSinceLast": since}


def complete(oid: str, **fields: Any) -> dict[str, Any]:
    return {"event": "complete", "oid": oid, **fields}


def error(oid: str, code: int, message: str) -> dict[str, Any]:
    return complete(oid, error={"code": code, "message": message})


@pytest.fixture
def session(tmp_path: Path) -> Session:
    return Session(tmp_path)


def test_an_upload_session(session):
    src = session.source(DATA)
    replies = session.run(INIT_UPLOAD, upload(OID, len(DATA), src), TERMINATE)
    assert replies == [{}, progress(OID, len(DATA), len(DATA)), complete(OID)]
    assert session.bucket.objects == {OID: DATA}
    assert session.bucket.calls == [("stat", OID), ("upload", OID)]
    assert session.bucket.closed


def test_an_upload_the_remote_holds_already_is_reported_done_unsent(session):
    session.bucket.objects[OID] = DATA
    replies = session.run(INIT_UPLOAD, upload(OID, len(DATA), session.source(DATA)))
    assert replies == [{}, progress(OID, len(DATA), len(DATA)), complete(OID)]
    assert session.bucket.calls_of("upload") == []


def test_an_upload_of_a_file_that_is_not_the_object_is_refused(session):
    shorter = session.source(DATA[:-1], "shorter")
    forged = session.source(bytes(len(DATA)), "forged")
    replies = session.run(
        INIT_UPLOAD, upload(OID, len(DATA), shorter), upload(OID, len(DATA), forged)
    )
    assert replies == [
        {},
        error(OID, 6, f"upload of {OID}: {shorter} has {len(DATA) - 1} bytes, expected 5000"),
        error(OID, 6, f"refusing to upload {OID}: {forged} hashes to {sha256(bytes(5000))}"),
    ]
    assert session.bucket.objects == {}


def test_an_upload_naming_no_readable_path_is_a_per_object_error(session):
    replies = session.run(
        INIT_UPLOAD, upload(OID, 1, None), upload(OID, 1, session.tmp_path / "gone")
    )
    assert replies[1] == error(OID, 32, f"upload of {OID} names no path")
    assert replies[2]["error"]["code"] == 32
    assert "cannot read" in replies[2]["error"]["message"]


def test_a_download_session(session):
    session.bucket.objects[OID] = DATA
    replies = session.run(INIT_DOWNLOAD, download(OID, len(DATA)), TERMINATE)
    path = Path(replies[-1]["path"])
    assert replies == [{}, progress(OID, len(DATA), len(DATA)), complete(OID, path=str(path))]
    assert path.parent == session.store.tmp_dir  # git-lfs renames it into its store
    assert path.read_bytes() == DATA


def test_a_download_of_a_missing_or_corrupt_object_is_a_per_object_error(session):
    forged = bytes(len(DATA))
    other = sha256(b"other")
    session.bucket.objects[other] = forged
    replies = session.run(INIT_DOWNLOAD, download(OID, len(DATA)), download(other, len(DATA)))
    assert replies == [
        {},
        error(OID, 404, f"object {OID} is not on remote memory://bucket"),
        progress(other, len(DATA), len(DATA)),
        error(
            other,
            6,
            f"object {other} from memory://bucket is corrupt: got 5000 bytes hashing to "
            f"{sha256(forged)}, expected 5000 bytes",
        ),
    ]
    assert [p for p in session.store.tmp_dir.iterdir() if p.suffix != ".lock"] == []


def test_a_failing_remote_fails_that_object_and_the_agent_keeps_serving(session):
    failing = sha256(b"failing")
    session.bucket.errors[failing] = RetriableError("503 Slow Down")
    session.bucket.objects[OID] = DATA
    replies = session.run(INIT_DOWNLOAD, download(failing, 7), download(OID, len(DATA)))
    assert replies[1] == error(failing, 8, "503 Slow Down")
    assert replies[-1]["event"] == "complete" and "error" not in replies[-1]


def test_an_unexpected_exception_is_an_internal_error_and_the_agent_keeps_serving(session):
    class Broken(MemoryBackend):
        def stat(self, oid: str) -> int | None:
            raise ValueError("a bug")

    session.bucket = Broken()
    src = session.source(DATA)
    replies = session.run(INIT_UPLOAD, upload(OID, len(DATA), src), upload(OID, len(DATA), src))
    assert replies == [{}, error(OID, 1, "ValueError: a bug"), error(OID, 1, "ValueError: a bug")]


def test_once_unreachable_later_requests_fail_without_a_request(session):
    oids = [sha256(bytes([i])) for i in range(3)]
    for oid in oids:
        session.bucket.errors[oid] = UnreachableError("cannot reach memory://bucket")
    replies = session.run(INIT_DOWNLOAD, *(download(oid, 1) for oid in oids))
    assert replies[1:] == [error(oid, 8, "cannot reach memory://bucket") for oid in oids]
    assert session.bucket.calls == [("download", oids[0])]


def test_requests_out_of_place_are_refused_per_object(session):
    replies = session.run(download(OID, 1), INIT_UPLOAD, download(OID, 1))
    assert replies == [
        error(OID, 32, "download request before init"),
        {},
        error(OID, 32, "download request in a upload session"),
    ]
    assert session.bucket.calls == []


def test_a_failed_init_is_reported_and_later_requests_refused(session):
    broken_error = ConfigError("no remote configured: run 'lfs-agent install --remote URL'")

    def broken() -> tuple[ObjectStore, Remote]:
        raise broken_error

    replies = session.run(INIT_DOWNLOAD, download(OID, 1), open_session=broken)
    assert replies == [
        {"error": {"code": 2, "message": str(broken_error)}},
        error(OID, 32, "download request before init"),
    ]


def test_lines_that_are_no_request_get_a_top_level_error(session):
    replies = session.run("{not json", "[]", '{"event":"dance"}', INIT_DOWNLOAD)
    assert [r["error"]["code"] for r in replies[:3]] == [32, 32, 32]
    assert replies[2] == {"error": {"code": 32, "message": "unknown event 'dance'"}}
    assert replies[3] == {}


def test_terminate_and_end_of_input_end_the_session_silently(session):
    session.bucket.objects[OID] = DATA
    one = download(OID, len(DATA))
    assert len(session.run(INIT_DOWNLOAD, one, TERMINATE, one)) == 3  # nothing after terminate
    assert session.bucket.calls == [("download", OID)]
    assert session.bucket.closed  # the remote's connections are released
    session.bucket.closed = False
    assert len(session.run(INIT_DOWNLOAD, one)) == 3  # the end of input ends it as well
    assert session.bucket.closed
    assert session.run() == []


def test_git_lfs_gone_mid_transfer_stops_the_agent_without_another_request(session):
    """git-lfs killed (or ^C'd): our next write fails, and the agent stops, no retry."""
    big = random_bytes(3 * 1024 * 1024, seed=12)  # several progress reports
    session.bucket.objects[sha256(big)] = big
    lines = [json.dumps(INIT_DOWNLOAD), json.dumps(download(sha256(big), len(big)))]
    stdin = io.StringIO("".join(line + "\n" for line in lines))
    written: list[str] = []

    def write(line: str) -> None:
        if written:  # the init reply went out; then the pipe broke
            raise BrokenPipeError(32, "Broken pipe")
        written.append(line)

    TransferAgent(stdin.readline, write, session.open_session).serve()
    assert [json.loads(line) for line in written] == [{}]
    assert session.bucket.calls_of("download") == [sha256(big)]  # one try, not retried
