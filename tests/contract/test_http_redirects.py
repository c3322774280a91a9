"""Secrets given to an HTTP remote reach only that remote, and are never shown.

Two scripted loopback servers on different ports stand for the remote and for the
host a redirect points at. A configured header (``lfs-agent.http.header``) and the
credentials of the remote's URL go to the first only; a PUT is never sent on; and a
password in the remote's URL appears in no message and no log line.
"""

from __future__ import annotations

import base64
import logging
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from lfs_agent.backends.http import HTTPBackend
from lfs_agent.errors import BackendError, LfsAgentError
from tests.contract.backend_contract import Recorder
from tests.contract.scripted_http import ScriptedServer, body, gzip_bomb, redirect, serve
from tests.helpers import sha256
from tests.servers import free_port

DATA = b"abcd"
OID = sha256(DATA)
KEY = f"objects/{OID[:2]}/{OID[2:4]}/{OID}"
SECRET_HEADER = "X-JFrog-Art-Api: SECRET-TOKEN"
MIB = 1024 * 1024


@pytest.fixture
def origin() -> Iterator[ScriptedServer]:
    yield from serve()


@pytest.fixture
def elsewhere() -> Iterator[ScriptedServer]:
    yield from serve()


def backend(url: str, **options: str) -> HTTPBackend:
    opts = {"http.header": SECRET_HEADER, "http.max-attempts": "1", "http.git-credentials": "false"}
    opts.update({f"http.{k}": v for k, v in options.items()})
    return HTTPBackend(url, opts, sleep=lambda _: None)


def read_in_three_ways(remote: HTTPBackend, tmp_path: Path) -> None:
    assert remote.stat(OID) == len(DATA)
    remote.download(OID, tmp_path / "dest", len(DATA), Recorder())
    assert remote.get_meta("meta/index.json") == b"[]"


def serve_objects(server: ScriptedServer, prefix: str) -> None:
    server.answers[("HEAD", f"{prefix}/{KEY}")] = body(DATA)
    server.answers[("GET", f"{prefix}/{KEY}")] = body(DATA)
    server.answers[("GET", f"{prefix}/meta/index.json")] = body(b"[]")


def redirect_all(server: ScriptedServer, prefix: str, target: str) -> None:
    for method, path in [("HEAD", KEY), ("GET", KEY), ("GET", "meta/index.json")]:
        server.answers[(method, f"{prefix}/{path}")] = redirect(302, f"{target}/{path}")


def test_configured_header_and_url_credentials_stay_with_their_origin(origin, elsewhere, tmp_path):
    # Same origin (scheme, host and port): the header and credentials go along.
    redirect_all(origin, "/r", origin.url + "/moved")
    serve_objects(origin, "/moved")
    read_in_three_ways(backend(f"http://u:pw@127.0.0.1:{origin.port}/r"), tmp_path)
    basic = "Basic " + base64.b64encode(b"u:pw").decode()
    assert len(origin.seen) == 6
    assert all(s.headers["x-jfrog-art-api"] == "SECRET-TOKEN" for s in origin.seen)
    assert all(s.headers["authorization"] == basic for s in origin.seen)
    # Another port: neither does.
    origin.seen.clear()
    redirect_all(origin, "/r", elsewhere.url + "/moved")
    serve_objects(elsewhere, "/moved")
    read_in_three_ways(backend(f"http://u:pw@127.0.0.1:{origin.port}/r"), tmp_path)
    assert len(origin.seen) == len(elsewhere.seen) == 3
    assert all(s.headers["x-jfrog-art-api"] == "SECRET-TOKEN" for s in origin.seen)
    assert all("x-jfrog-art-api" not in s.headers for s in elsewhere.seen)
    assert all("authorization" not in s.headers for s in elsewhere.seen)


def test_a_put_answered_by_a_redirect_is_not_sent_on(origin, elsewhere, tmp_path):
    src = tmp_path / "src"
    src.write_bytes(DATA)
    origin.answers[("PUT", f"/r/{KEY}")] = redirect(307, f"{elsewhere.url}/moved/{KEY}")
    progress = Recorder()
    with pytest.raises(BackendError) as caught:
        backend(origin.url + "/r").upload(OID, src, len(DATA), progress)
    assert str(caught.value) == (
        f"{origin.url}/r/{KEY} answered the upload with a redirect (307) to "
        f"{elsewhere.url}/moved/{KEY}: the upload was not sent on; "
        "point lfs-agent.remote at the final URL"
    )
    assert len(origin.requests_for("PUT")) == 1
    assert elsewhere.seen == []
    assert progress.total == 0


def test_a_record_put_answered_by_a_redirect_is_not_sent_on(origin, elsewhere):
    origin.answers[("PUT", "/r/meta/tags/v1.json")] = redirect(
        308, f"{elsewhere.url}/moved/meta/tags/v1.json"
    )
    with pytest.raises(BackendError, match=r"redirect \(308\) .*: the upload was not sent on"):
        backend(origin.url + "/r").put_meta("meta/tags/v1.json", b"{}")
    assert elsewhere.seen == []


def failures(remote: HTTPBackend, tmp_path: Path) -> list[LfsAgentError]:
    """Every error the remote raises for the scripted answers below."""
    src = tmp_path / "src"
    src.write_bytes(DATA)
    caught: list[LfsAgentError] = []
    for call in (
        lambda: remote.stat(OID),
        lambda: remote.download(OID, tmp_path / "d", len(DATA), Recorder()),
        lambda: remote.upload(OID, src, len(DATA), Recorder()),
        lambda: remote.get_meta("meta/tags/v1.json"),
        lambda: remote.list_meta("meta/"),
        lambda: remote.put_meta("meta/tags/v1.json", b"{}"),
    ):
        with pytest.raises(LfsAgentError) as info:
            call()
        caught.append(info.value)
    return caught


def test_a_password_in_the_remote_url_is_used_but_never_shown(origin, elsewhere, tmp_path, caplog):
    origin.answers[("HEAD", f"/r/{KEY}")] = body(b"", status=403)
    origin.answers[("GET", f"/r/{KEY}")] = body(b"", status=500)
    origin.answers[("PUT", f"/r/{KEY}")] = redirect(307, f"{elsewhere.url}/x")
    origin.answers[("GET", "/r/meta/tags/v1.json")] = body(b"", status=401)
    origin.answers[("GET", "/r/meta/index.json")] = body(b"{not json")
    origin.answers[("PUT", "/r/meta/tags/v1.json")] = body(b"", status=418)
    remote = backend(f"http://alice:PASSWORD@127.0.0.1:{origin.port}/r", **{"max-attempts": "2"})
    with caplog.at_level(logging.DEBUG):
        errors = failures(remote, tmp_path)
    assert len(errors) == 6
    for error in errors:
        assert "PASSWORD" not in str(error)
        assert f"http://***@127.0.0.1:{origin.port}/r" in str(error)
    assert "PASSWORD" not in remote.url
    assert "retrying" in caplog.text
    assert "PASSWORD" not in caplog.text
    basic = "Basic " + base64.b64encode(b"alice:PASSWORD").decode()
    assert {s.headers.get("authorization") for s in origin.seen} == {basic}


def test_an_unreachable_remote_with_a_password_is_named_without_it(caplog):
    port = free_port()  # nothing listens: refused
    remote = backend(f"http://alice:PASSWORD@127.0.0.1:{port}/r", **{"max-attempts": "2"})
    with caplog.at_level(logging.DEBUG), pytest.raises(LfsAgentError) as caught:
        remote.stat(OID)
    assert str(caught.value) == f"cannot reach http://***@127.0.0.1:{port}/r: Connection refused"
    assert "PASSWORD" not in caplog.text


@pytest.mark.parametrize("what", ["object", "record"])
def test_the_body_of_a_redirect_is_never_read_whole(origin, tmp_path, what):
    bomb = gzip_bomb(96 * MIB)  # what requests would hold, decompressed, to skip it
    path = f"/r/{KEY}" if what == "object" else "/r/meta/index.json"
    origin.answers[("GET", path)] = body(
        bomb, status=302, headers={"Content-Encoding": "gzip", "Location": "/x"}
    )
    origin.answers[("GET", "/x")] = body(DATA if what == "object" else b"[]")
    remote = backend(origin.url + "/r")
    tracemalloc.start()
    try:
        if what == "object":
            remote.download(OID, tmp_path / "dest", len(DATA), Recorder())
        else:
            assert remote.list_meta("meta/") == []
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * MIB
    assert [s.path for s in origin.seen] == [path, "/x"]
