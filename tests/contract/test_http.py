"""The HTTP backend against a real object server process on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lfs_agent.backends import Capability, open_backend
from lfs_agent.errors import BackendError, IntegrityError, UnreachableError
from lfs_agent.remote import Remote
from tests.conftest import agent, clone_with_filter, git, http_stats
from tests.contract.backend_contract import BackendContract, Recorder
from tests.helpers import sha256, write_random
from tests.servers import free_port, http_object_server


class TestHTTPBackend(BackendContract):
    @pytest.fixture
    def remote_url(self, http_server) -> str:
        return http_server.url + "/team/models"


@pytest.mark.parametrize("checked", [True, False])
def test_a_file_cut_short_while_it_is_sent_is_refused_and_stores_nothing(
    http_server, tmp_path: Path, checked
):
    # A short timeout: a body shorter than its Content-Length would wait for it.
    backend = open_backend(http_server.url + "/p", {"http.timeout": "5"})
    src = tmp_path / "big"
    oid = write_random(src, 3 * 1024 * 1024, seed=5)

    def cut_short(delta: int) -> None:
        if src.stat().st_size > 512 * 1024:
            os.truncate(src, 512 * 1024)

    with pytest.raises(IntegrityError, match=f"refusing to upload {oid}: .* ended at byte"):
        backend.upload(oid, src, 3 * 1024 * 1024, cut_short, checked=checked)
    assert backend.stat(oid) is None


def test_git_credential_helper_answers_a_401(tmp_path: Path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    server = http_object_server(root, tmp_path, auth="alice:s3cret")
    try:
        store = tmp_path / "creds"
        store.write_text(f"http://alice:s3cret@127.0.0.1:{server.port}\n")
        monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'credential.helper'='store --file={store}'")
        backend = open_backend(server.url)
        src = tmp_path / "x"
        src.write_bytes(b"authorized")
        backend.upload(sha256(b"authorized"), src, 10, Recorder())
        assert backend.stat(sha256(b"authorized")) == 10
        monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'credential.helper'=''")
        with pytest.raises(BackendError, match=r"authentication required for http://127\.0\.0\.1"):
            open_backend(server.url).stat(sha256(b"authorized"))
    finally:
        server.stop()


def test_a_configured_header_authenticates(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    server = http_object_server(root, tmp_path, auth="ci:token")
    try:
        import base64

        header = "Authorization: Basic " + base64.b64encode(b"ci:token").decode()
        backend = open_backend(server.url, {"http.header": header, "http.git-credentials": "false"})
        assert backend.stat(sha256(b"nothing")) is None
    finally:
        server.stop()


@pytest.mark.integration
def test_git_round_trip_and_lazy_clone_count_gets(http_server, tmp_path: Path, no_git_lfs_path):
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    work = tmp_path / "work"
    git("init", "-q", str(work), cwd=tmp_path)
    assert agent("install", "--remote", http_server.url + "/lfs", cwd=work).returncode == 0
    agent("track", "*.bin", cwd=work)
    (work / "models").mkdir()
    (work / "data").mkdir()
    model = write_random(work / "models" / "m.bin", 3 * 1024 * 1024, seed=1)
    (work / "data" / "d1.bin").write_bytes(b"d1\n" * 100)
    (work / "data" / "d2.bin").write_bytes(b"d2\n" * 100)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "x", cwd=work)
    git("remote", "add", "origin", str(remote), cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    assert http_stats(http_server)["PUT"] == 3

    full = tmp_path / "full"
    clone_with_filter(str(remote), str(full), cwd=tmp_path)
    assert sha256((full / "models/m.bin").read_bytes()) == model
    assert (full / "data/d1.bin").read_bytes() == b"d1\n" * 100
    gets_before = http_stats(http_server)["GET"]
    assert gets_before == 3

    out = agent("clone", "--include", "models/*", str(remote), str(tmp_path / "lazy"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    stats = http_stats(http_server)
    assert stats["GET"] - gets_before == 1  # exactly the one matching object was read
    key = f"GET /lfs/objects/{model[:2]}/{model[2:4]}/{model}"
    assert stats[key] == 2
    assert git("status", "--porcelain", cwd=tmp_path / "lazy").stdout == b""


def test_a_server_that_cannot_be_reached_is_one_line_naming_why():
    url = f"http://127.0.0.1:{free_port()}/models"  # nothing listens: refused
    backend = open_backend(url, {"http.max-attempts": "1"})
    with pytest.raises(UnreachableError) as caught:
        backend.stat(sha256(b"x"))
    assert str(caught.value) == f"cannot reach {url}: Connection refused"


@pytest.mark.parametrize(
    ("index", "reason"),
    [
        (b"{not json", "Expecting property name enclosed in double quotes"),
        (b'{"meta/a.json": 1}', "found an object"),
        (b'["meta/a.json", 7]', "item 1 is a number"),
    ],
    ids=["not-json", "an-object", "not-all-strings"],
)
def test_a_malformed_index_of_records_is_one_line_naming_it(
    http_server, tmp_path: Path, index, reason
):
    served = tmp_path / "http-root" / "team" / "meta"  # the http_server fixture's folder
    served.mkdir(parents=True)
    (served / "index.json").write_bytes(index)
    backend = open_backend(http_server.url + "/team")
    with pytest.raises(BackendError) as caught:
        backend.list_meta("meta/")
    assert str(caught.value).startswith(
        f"meta/index.json on {http_server.url}/team is not a JSON list of keys: {reason}"
    )
    assert "\n" not in str(caught.value)


def test_an_http_remote_cannot_be_collected(http_server):
    remote = Remote(f"{http_server.url}/store")
    assert not remote.can(Capability.COLLECT)
    with pytest.raises(BackendError, match="cannot be garbage-collected"):
        _ = remote.collector
