"""HTTP backend error paths with `responses` (no server): retries, auth, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import responses

from lfs_agent.backends.http import HTTPBackend
from lfs_agent.errors import BackendError, ObjectNotFoundError, RetriableError
from lfs_agent.pointer import Pointer
from tests.contract.backend_contract import Recorder
from tests.helpers import random_bytes, sha256

MIB = 1024 * 1024

BASE = "https://objects.example.com/repo"
DATA = b"0123456789" * 500
OID = sha256(DATA)
URL = f"{BASE}/objects/{OID[:2]}/{OID[2:4]}/{OID}"


class Helper:
    def __init__(self, answer: str = "") -> None:
        self.answer = answer
        self.calls: list[tuple[str, str]] = []

    def __call__(self, action: str, data: str) -> str:
        self.calls.append((action, data))
        return self.answer if action == "fill" else ""


def backend(sleeps: list[float], helper: Helper | None = None, **options: str) -> HTTPBackend:
    return HTTPBackend(
        BASE,
        {f"http.{k}": v for k, v in options.items()},
        sleep=sleeps.append,
        credential_helper=helper or Helper(),
    )


@responses.activate
def test_503_then_success_is_retried_with_backoff():
    responses.add(responses.HEAD, URL, status=503)
    responses.add(responses.HEAD, URL, status=503)
    responses.add(responses.HEAD, URL, status=200, headers={"Content-Length": "5000"})
    sleeps: list[float] = []
    assert backend(sleeps).stat(OID) == 5000
    assert sleeps == [0.5, 1.0]


@responses.activate
def test_429_honours_retry_after():
    responses.add(responses.HEAD, URL, status=429, headers={"Retry-After": "7"})
    responses.add(responses.HEAD, URL, status=404)
    sleeps: list[float] = []
    assert backend(sleeps).stat(OID) is None
    assert sleeps == [7.0]


@responses.activate
def test_persistent_5xx_becomes_a_retriable_error_after_bounded_attempts():
    for _ in range(3):
        responses.add(responses.HEAD, URL, status=502)
    sleeps: list[float] = []
    with pytest.raises(RetriableError, match=r"kept failing \(502\) after 3 attempts"):
        backend(sleeps, **{"max-attempts": "3"}).stat(OID)
    assert len(sleeps) == 2


@responses.activate
def test_connection_errors_are_retried_then_reported():
    responses.add(responses.HEAD, URL, body=requests.ConnectionError("reset by peer"))
    responses.add(responses.HEAD, URL, body=requests.ConnectionError("reset by peer"))
    sleeps: list[float] = []
    with pytest.raises(RetriableError, match=r"cannot reach https://objects\.example\.com/repo"):
        backend(sleeps, **{"max-attempts": "2"}).stat(OID)


@responses.activate
def test_401_asks_git_credentials_then_approves():
    responses.add(responses.HEAD, URL, status=401)
    responses.add(responses.HEAD, URL, status=200, headers={"Content-Length": "5000"})
    helper = Helper("protocol=https\nhost=objects.example.com\nusername=bob\npassword=pw\n")
    assert backend([], helper).stat(OID) == 5000
    assert [a for a, _ in helper.calls] == ["fill", "approve"]
    assert "host=objects.example.com" in helper.calls[0][1]
    assert responses.calls[1].request.headers["Authorization"].startswith("Basic ")


@responses.activate
def test_401_without_credentials_is_one_clear_line():
    responses.add(responses.HEAD, URL, status=401)
    with pytest.raises(BackendError) as info:
        backend([], Helper("")).stat(OID)
    assert str(info.value) == (
        "authentication required for https://objects.example.com/repo "
        "(401): add it to ~/.netrc, a git credential helper, or "
        "lfs-agent.http.header"
    )


@responses.activate
def test_rejected_credentials_are_reported_to_the_helper():
    responses.add(responses.HEAD, URL, status=401)
    responses.add(responses.HEAD, URL, status=401)
    helper = Helper("username=bob\npassword=wrong\n")
    with pytest.raises(BackendError, match="authentication required"):
        backend([], helper).stat(OID)
    assert [a for a, _ in helper.calls] == ["fill", "reject"]


@responses.activate
def test_404_download_is_object_not_found(tmp_path: Path):
    responses.add(responses.GET, URL, status=404)
    with pytest.raises(ObjectNotFoundError, match=f"object {OID} is not on remote {BASE}"):
        backend([]).download(OID, tmp_path / "d", len(DATA), Recorder())


@responses.activate
def test_403_upload_is_permission_denied(tmp_path: Path):
    src = tmp_path / "src"
    src.write_bytes(DATA)
    responses.add(responses.PUT, URL, status=403)
    with pytest.raises(BackendError, match="permission denied"):
        backend([]).upload(OID, src, len(DATA), Recorder())


@responses.activate
def test_a_reset_mid_body_resumes_with_range(tmp_path: Path):
    big = random_bytes(3 * MIB, seed=1)
    oid = sha256(big)
    url = f"{BASE}/objects/{oid[:2]}/{oid[2:4]}/{oid}"
    # 1.5 MiB arrive, then the connection breaks: all that arrived is written (the body
    # is read as sent, chunk by chunk), so the download resumes at byte 1.5 MiB.
    cut = MIB + MIB // 2
    responses.add(responses.GET, url, body=big[:cut], headers={"Content-Length": str(len(big))})
    responses.add(
        responses.GET,
        url,
        status=206,
        body=big[cut:],
        match=[responses.matchers.header_matcher({"Range": f"bytes={cut}-"})],
    )
    dest = tmp_path / "d"
    progress = Recorder()
    hashed = backend([]).download(oid, dest, len(big), progress)
    assert dest.read_bytes() == big
    assert hashed == Pointer(oid, len(big))  # hashed as written, across the resume
    assert progress.total == len(big)
    assert len(responses.calls) == 2


@responses.activate
def test_a_server_ignoring_range_restarts_cleanly(tmp_path: Path):
    dest = tmp_path / "d"
    dest.write_bytes(DATA[:700])
    responses.add(responses.GET, URL, status=200, body=DATA)
    progress = Recorder()
    hashed = backend([]).download(OID, dest, len(DATA), progress)
    assert dest.read_bytes() == DATA
    assert hashed == Pointer(OID, len(DATA))  # the first 700 bytes' hash was dropped
    assert progress.total == len(DATA)


@responses.activate
def test_a_partial_file_that_went_wrong_is_hashed_as_it_is(tmp_path: Path):
    dest = tmp_path / "d"
    dest.write_bytes(b"!" * 700)  # not DATA's first 700 bytes
    responses.add(
        responses.GET,
        URL,
        status=206,
        body=DATA[700:],
        match=[responses.matchers.header_matcher({"Range": "bytes=700-"})],
    )
    hashed = backend([]).download(OID, dest, len(DATA), Recorder())
    held = dest.read_bytes()
    assert held != DATA
    # What the file holds, so the caller's check refuses it.
    assert hashed == Pointer(sha256(held), len(DATA)) != Pointer(OID, len(DATA))


@responses.activate
@pytest.mark.parametrize(
    ("value", "waited"),
    [("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", 0.5), ("", 0.5)],
    ids=["past-date", "garbage", "empty"],
)
def test_a_retry_after_date_or_one_that_is_neither_is_taken_calmly(value, waited):
    # A date is waited for (one long past: not at all); anything else gets the usual backoff.
    responses.add(responses.HEAD, URL, status=503, headers={"Retry-After": value})
    responses.add(responses.HEAD, URL, status=404)
    sleeps: list[float] = []
    assert backend(sleeps).stat(OID) is None
    assert sleeps == [waited]


@responses.activate
def test_a_download_that_keeps_breaking_off_gives_up_in_one_line(tmp_path: Path):
    big = random_bytes(3 * MIB, seed=2)
    oid = sha256(big)
    url = f"{BASE}/objects/{oid[:2]}/{oid[2:4]}/{oid}"
    for _ in range(2):  # each answer stops short of its Content-Length
        responses.add(
            responses.GET, url, body=big[: MIB // 2], headers={"Content-Length": str(len(big))}
        )
    with pytest.raises(RetriableError) as caught:
        backend([], **{"max-attempts": "2"}).download(oid, tmp_path / "d", len(big), Recorder())
    assert str(caught.value) == (
        f"download of {oid} from {BASE} kept breaking off: the body ended early"
    )


@responses.activate
def test_a_password_in_the_url_is_in_no_error_and_no_log_line(tmp_path: Path, caplog):
    secret_base = "https://bob:PASSWORD@objects.example.com/repo"
    # Some network errors repeat the URL they were sent to, credentials and all.
    url = URL.replace("https://", "https://bob:PASSWORD@")  # as requests sends it
    for _ in range(2):
        responses.add(
            responses.HEAD, url, body=requests.ConnectionError(f"no route to {secret_base}/x")
        )
    responses.add(responses.GET, url, status=403)
    remote = HTTPBackend(
        secret_base, {"http.max-attempts": "2"}, sleep=lambda _: None, credential_helper=Helper()
    )
    with caplog.at_level("DEBUG"):
        with pytest.raises(RetriableError) as unreachable:
            remote.stat(OID)
        with pytest.raises(BackendError) as denied:
            remote.download(OID, tmp_path / "d", len(DATA), Recorder())
    assert str(unreachable.value) == (
        "cannot reach https://***@objects.example.com/repo: "
        "no route to https://***@objects.example.com/repo/x"
    )
    assert str(denied.value) == (
        f"permission denied for https://***@objects.example.com/repo/objects/"
        f"{OID[:2]}/{OID[2:4]}/{OID} (403)"
    )
    assert "PASSWORD" not in caplog.text
    assert responses.calls[-1].request.headers["Authorization"].startswith("Basic ")
