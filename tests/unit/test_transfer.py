"""The custom transfer agent, driven in memory with golden JSON-lines transcripts."""

from __future__ import annotations

import errno
import fnmatch
import io
import json
import shutil
from pathlib import Path

import pytest

from lfs_agent.backends import open_backend
from lfs_agent.backends.local import LocalBackend
from lfs_agent.checked import CHECK_RECORD_MIN
from lfs_agent.errors import ConfigError, UnreachableError
from lfs_agent.hashing import hash_file
from lfs_agent.remote import Remote
from lfs_agent.store import ObjectStore
from lfs_agent.transfer import TransferAgent
from tests.contract.backend_contract import Recorder
from tests.helpers import random_bytes, sha256

DATA = Path(__file__).resolve().parents[1] / "data"
SMALL = b"hello world\n"
BIG = random_bytes(300_000, seed=4)


class Session:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.store = ObjectStore(tmp_path / "repo" / ".git" / "lfs")
        self.bucket = tmp_path / "bucket"
        self.bucket_url = self.bucket.as_uri()
        self.sources = {}
        for name, data in (("SMALL", SMALL), ("BIG", BIG)):
            path = tmp_path / f"src-{name}"
            path.write_bytes(data)
            self.sources[name] = path
        self.vars = {
            "$OID_SMALL": sha256(SMALL),
            "$OID_BIG": sha256(BIG),
            "$SRC_SMALL": str(self.sources["SMALL"]),
            "$SRC_BIG": str(self.sources["BIG"]),
            "$OID_MISSING": sha256(b"gone!"),
            "$OID_CORRUPT": sha256(b"correct"),
            "$OID_WRONG": sha256(b"wrong!!"),
            "$TMP": str(self.store.tmp_dir),
            "$BUCKET_URL": self.bucket_url,
        }

    def subst(self, text: str) -> str:
        for key in sorted(self.vars, key=len, reverse=True):
            text = text.replace(key, self.vars[key])
        return text

    def run(self, lines: list[str], open_session=None) -> list[str]:
        stdin = io.StringIO("".join(line + "\n" for line in lines))
        out: list[str] = []
        session = open_session or (lambda: (self.store, Remote(self.bucket_url)))
        TransferAgent(stdin.readline, out.append, session).serve()
        return out


@pytest.fixture
def session(tmp_path: Path) -> Session:
    return Session(tmp_path)


def transcript(name: str, session: Session) -> tuple[list[str], list[str]]:
    sent, expected = [], []
    for line in (DATA / name).read_text().splitlines():
        direction, _, body = line.partition(" ")
        (sent if direction == ">" else expected).append(session.subst(body))
    return sent, expected


def assert_matches(actual: list[str], expected: list[str]) -> None:
    assert len(actual) == len(expected), actual
    for got, want in zip(actual, expected, strict=True):
        assert fnmatch.fnmatchcase(got, want) if "*" in want else got == want


def test_golden_upload_session(session: Session):
    sent, expected = transcript("transfer-upload-session.jsonl", session)
    assert_matches(session.run(sent), expected)
    backend = open_backend(session.bucket_url)
    assert backend.stat(sha256(BIG)) == len(BIG)
    assert backend.stat(sha256(SMALL)) == len(SMALL)


def test_golden_download_session(session: Session):
    backend = open_backend(session.bucket_url)
    backend.upload(sha256(SMALL), session.sources["SMALL"], len(SMALL), Recorder())
    corrupt = session.bucket / "objects" / sha256(b"correct")[:2] / sha256(b"correct")[2:4]
    corrupt.mkdir(parents=True)
    (corrupt / sha256(b"correct")).write_bytes(b"wrong!!")
    sent, expected = transcript("transfer-download-session.jsonl", session)
    out = session.run(sent)
    assert_matches(out, expected)
    path = Path(json.loads(out[2])["path"])
    assert path.parent == session.store.tmp_dir
    assert path.read_bytes() == SMALL
    data_files = [p for p in session.store.tmp_dir.iterdir() if p.suffix != ".lock"]
    assert data_files == [path]  # the corrupt download was removed


def test_large_transfers_report_throttled_progress_ending_at_the_size(session: Session):
    data = random_bytes(3 * 1024 * 1024 + 1, seed=9)
    src = session.tmp_path / "large"
    src.write_bytes(data)
    oid = sha256(data)
    init = '{"event":"init","operation":"upload","remote":"origin"}'
    up = json.dumps({"event": "upload", "oid": oid, "size": len(data), "path": str(src)})
    # A copying folder bucket streams (a linked upload reports all bytes at once).
    copying = lambda: (session.store, Remote(session.bucket_url, {"local.link": "false"}))  # noqa: E731
    out = [json.loads(line) for line in session.run([init, up], open_session=copying)]
    progress = [m for m in out[1:] if m.get("event") == "progress"]
    assert len(progress) > 1
    assert progress[-1]["bytesSoFar"] == len(data)
    assert sum(m["bytesSinceLast"] for m in progress) == len(data)
    assert out[-1] == {"event": "complete", "oid": oid}


BAD_OID = "../../" + "a" * 58


@pytest.mark.parametrize(
    ("request_line", "reply"),
    [
        (
            "not json",
            {"error": {"code": 32, "message": "invalid JSON request: Expecting value at column 1"}},
        ),
        ("[1, 2]", {"error": {"code": 32, "message": "invalid request: expected a JSON object"}}),
        (
            '{"event":"frobnicate"}',
            {"error": {"code": 32, "message": "unknown event 'frobnicate'"}},
        ),
        ('{"event":"init","operation":"sideways"}', None),
        (
            '{"event":"init","operation":"upload","remote":7,"concurrent":"yes",'
            '"concurrenttransfers":true}',
            {
                "error": {
                    "code": 32,
                    "message": "invalid init request: remote: expected a string, got 7; "
                    "concurrent: expected true or false, got 'yes'; "
                    "concurrenttransfers: expected an integer, got True",
                }
            },
        ),
        (json.dumps({"event": "download", "oid": BAD_OID, "size": 1}), None),
        (json.dumps({"event": "download", "oid": "A" * 64, "size": 1}), None),
    ],
    ids=[
        "not-json",
        "not-object",
        "unknown-event",
        "bad-operation",
        "bad-init-fields",
        "traversal-oid",
        "uppercase-oid",
    ],
)
def test_unparseable_requests_get_a_top_level_error(session: Session, request_line, reply):
    out = session.run([request_line])
    assert len(out) == 1
    message = json.loads(out[0])
    assert set(message) == {"error"}
    assert message["error"]["code"] == 32
    if reply is not None:
        assert message == reply
    assert not (session.tmp_path / "x").exists()
    assert not session.store.root.exists()


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"size": -1}, "size: Input should be greater than or equal to 0"),
        ({}, "size: Field required"),
        ({"size": "big"}, "size: Input should be a valid integer"),
    ],
)
def test_bad_sizes_get_a_per_object_error(session: Session, fields, text):
    oid = sha256(b"x")
    init = '{"event":"init","operation":"download"}'
    out = session.run([init, json.dumps({"event": "download", "oid": oid, **fields})])
    reply = json.loads(out[1])
    assert reply["event"] == "complete" and reply["oid"] == oid
    assert text in reply["error"]["message"]


def test_requests_before_init_are_refused_per_object(session: Session):
    oid = sha256(b"x")
    out = session.run([json.dumps({"event": "download", "oid": oid, "size": 1})])
    assert json.loads(out[0]) == {
        "event": "complete",
        "oid": oid,
        "error": {"code": 32, "message": "download request before init"},
    }


def test_upload_of_a_missing_path_is_a_per_object_error(session: Session):
    oid = sha256(b"x")
    out = session.run(
        [
            '{"event":"init","operation":"upload"}',
            json.dumps({"event": "upload", "oid": oid, "size": 1, "path": "/nonexistent/x"}),
            json.dumps({"event": "upload", "oid": oid, "size": 1}),
        ]
    )
    first, second = json.loads(out[1]), json.loads(out[2])
    assert "cannot read /nonexistent/x" in first["error"]["message"]
    assert second["error"]["message"] == f"upload of {oid} names no path"


def test_init_failure_is_reported_and_the_agent_keeps_serving(session: Session):
    def broken():
        raise ConfigError("no remote configured: run 'lfs-agent install --remote URL'")

    out = session.run(
        ['{"event":"init","operation":"upload"}', '{"event":"terminate"}'], open_session=broken
    )
    assert json.loads(out[0]) == {
        "error": {
            "code": 2,
            "message": "no remote configured: run 'lfs-agent install --remote URL'",
        }
    }


def test_eof_and_terminate_end_the_session_without_output(session: Session):
    assert session.run([]) == []
    assert session.run(['{"event":"terminate"}', '{"event":"init","operation":"upload"}']) == []


def test_an_upload_of_the_stores_own_checked_file_is_not_read_again(session):
    data = random_bytes(CHECK_RECORD_MIN, seed=7)
    pointer = session.store.ingest(io.BytesIO(data))
    elsewhere = session.tmp_path / "same-bytes-elsewhere"
    elsewhere.write_bytes(data)
    reads: list[Path] = []

    def counting(path: Path) -> tuple[str, int]:
        reads.append(path)
        return hash_file(path)

    def open_session() -> tuple[ObjectStore, Remote]:
        remote = Remote(
            session.bucket_url,
            opener=lambda url, options, state: LocalBackend(url, dict(options), hash_file=counting),
        )
        return session.store, remote

    init = '{"event":"init","operation":"upload","remote":"origin"}'

    def upload(path: Path) -> dict[str, object]:
        up = {"event": "upload", "oid": pointer.oid, "size": pointer.size, "path": str(path)}
        return json.loads(session.run([init, json.dumps(up)], open_session)[-1])

    complete = {"event": "complete", "oid": pointer.oid}
    assert upload(elsewhere) == complete
    assert reads == [elsewhere]  # not the store's file: checked before it is sent
    shutil.rmtree(session.bucket)
    assert upload(session.store.object_path(pointer.oid)) == complete
    assert reads == [elsewhere]
    assert Remote(session.bucket_url).size_of(pointer.oid) == pointer.size


class FullDisk:
    """A bucket whose downloads hit a full disk, as writing into lfs/tmp would."""

    url = "fake://bucket"
    max_workers = None

    def download(self, oid: str, dest_path: Path, size: int, progress: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        pass


def test_a_full_disk_fails_that_object_in_one_line_and_the_agent_keeps_serving(
    session: Session, caplog
):
    oid = sha256(b"x")
    remote = Remote("fake://bucket", opener=lambda *_: FullDisk())  # type: ignore[arg-type,return-value]
    out = session.run(
        [
            '{"event":"init","operation":"download"}',
            json.dumps({"event": "download", "oid": oid, "size": 1}),
            '{"event":"terminate"}',
        ],
        open_session=lambda: (session.store, remote),
    )
    assert json.loads(out[1]) == {
        "event": "complete",
        "oid": oid,
        "error": {"code": 1, "message": "No space left on device"},
    }
    assert f"download {oid} failed: No space left on device" in caplog.text
    assert "Traceback" not in caplog.text


class Unreachable(FullDisk):
    """A bucket no connection can be made to; counts the tries."""

    def __init__(self) -> None:
        self.tries = 0

    def download(self, oid: str, dest_path: Path, size: int, progress: object) -> None:
        self.tries += 1
        raise UnreachableError("cannot reach fake://bucket: Connection refused")


def test_once_the_remote_cannot_be_reached_later_requests_fail_without_a_try(session: Session):
    bucket = Unreachable()
    remote = Remote("fake://bucket", opener=lambda *_: bucket)  # type: ignore[arg-type,return-value]
    oids = [sha256(bytes([i])) for i in range(3)]
    out = session.run(
        [
            '{"event":"init","operation":"download"}',
            *(json.dumps({"event": "download", "oid": oid, "size": 1}) for oid in oids),
            '{"event":"terminate"}',
        ],
        open_session=lambda: (session.store, remote),
    )
    assert [json.loads(line) for line in out[1:]] == [
        {
            "event": "complete",
            "oid": oid,
            "error": {"code": 8, "message": "cannot reach fake://bucket: Connection refused"},
        }
        for oid in oids
    ]
    assert bucket.tries == 1
