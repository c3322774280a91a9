"""A password in a remote URL never reaches stdout or stderr, even when tracing.

The remote is ``http://user:S3CRETPASS@127.0.0.1:PORT/objects`` in git config, served
by a real loopback object server that wants that password ("up"), or by nothing at all
("down"). Every command runs with ``LFS_AGENT_LOG=debug GIT_TRACE=1``: it may fail,
but the password must not show.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import agent, git
from tests.servers import ServerProcess, free_port, http_object_server

pytestmark = pytest.mark.integration

PASSWORD = "S3CRETPASS"
TRACED = {"LFS_AGENT_LOG": "debug", "GIT_TRACE": "1"}


def traced_env() -> dict[str, str]:
    return {**os.environ, **TRACED}


class Outputs:
    """Everything the commands of one test printed, by command."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def add(self, name: str, out: bytes, err: bytes) -> None:
        self.seen[name] = out.decode("utf-8", "replace") + err.decode("utf-8", "replace")

    def agent(self, *args: str, cwd: Path) -> None:
        proc = agent(*args, cwd=cwd, env=traced_env())
        self.add(" ".join(args), proc.stdout, proc.stderr)

    def git(self, *args: str, cwd: Path) -> None:
        proc = git(*args, cwd=cwd, env=traced_env(), check=False)
        self.add("git " + " ".join(args), proc.stdout, proc.stderr)

    def check(self) -> None:
        leaked = [name for name, text in self.seen.items() if PASSWORD in text]
        assert not leaked, f"the password shows in: {leaked}\n" + "\n".join(
            self.seen[name] for name in leaked
        )
        crashed = [name for name, text in self.seen.items() if "internal error" in text]
        assert not crashed, "\n".join(self.seen[name] for name in crashed)


@pytest.fixture(params=["up", "down"])
def remote_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An HTTP remote URL with user-info: a server wanting that password, or none."""
    if request.param == "down":
        yield f"http://user:{PASSWORD}@127.0.0.1:{free_port()}/objects"
        return
    root = tmp_path / "http-root"
    root.mkdir()
    server = http_object_server(root, tmp_path, auth=f"user:{PASSWORD}")
    try:
        yield server.url.replace("http://", f"http://user:{PASSWORD}@") + "/objects"
    finally:
        server.stop()


@pytest.fixture
def work(tmp_path: Path, remote_url: str) -> Path:
    """A repository with two LFS files, an origin, and the remote in local git config."""
    origin = tmp_path / "origin.git"
    git("init", "-q", "--bare", str(origin), cwd=tmp_path)
    work = tmp_path / "work"
    git("init", "-q", str(work), cwd=tmp_path)
    assert agent("install", cwd=work).returncode == 0
    git("config", "lfs-agent.remote", remote_url, cwd=work)
    git("config", "lfs-agent.http.max-attempts", "1", cwd=work)  # fail fast when down
    # Global too, for the clone below (which has no local config yet).
    git("config", "--global", "lfs-agent.remote", remote_url, cwd=work)
    git("config", "--global", "lfs-agent.http.max-attempts", "1", cwd=work)
    assert agent("track", "*.bin", cwd=work).returncode == 0
    (work / "a.bin").write_bytes(b"model weights\n" * 50)
    (work / "b.bin").write_bytes(b"vocabulary\n" * 20)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "models", cwd=work)
    git("remote", "add", "origin", str(origin), cwd=work)
    return work


def test_no_command_shows_the_password_in_the_remote_url(work: Path, tmp_path: Path):
    outputs = Outputs()
    for args in (
        ["install"],  # prints the remote it found
        ["track"],
        ["status"],
        ["ls-files", "-s"],
        ["push", "--all"],
        ["fsck"],
        ["fsck", "--remote"],
        ["fsck", "--remote", "--deep"],
        ["tag", "v1", "--metric", "accuracy=0.9"],
        ["metrics", "list"],
        ["metrics", "show", "v1"],
        ["metrics", "push"],
    ):
        outputs.agent(*args, cwd=work)
    outputs.git("push", "origin", "main", "v1", cwd=work)  # runs the pre-push hook
    # Objects gone from the store: fetch, pull and git's own checkout (the filter)
    # must download them again.
    shutil.rmtree(work / ".git" / "lfs" / "objects")
    outputs.agent("fetch", cwd=work)
    outputs.agent("pull", cwd=work)
    shutil.rmtree(work / ".git" / "lfs" / "objects", ignore_errors=True)
    (work / "a.bin").unlink()
    outputs.git("checkout", "--", "a.bin", cwd=work)
    outputs.agent("prune", "--dry-run", cwd=work)
    outputs.agent("prune", cwd=work)
    outputs.agent("clone", str(tmp_path / "origin.git"), str(tmp_path / "clone"), cwd=tmp_path)
    outputs.check()
    # The URL was shown, without its password (so the check above had something to see).
    for name in ("install", "push --all", "fsck --remote", "prune"):
        assert "http://***@127.0.0.1:" in outputs.seen[name], outputs.seen[name]


def test_the_password_is_never_put_on_a_git_command_line(work: Path, tmp_path: Path):
    # GIT_TRACE shows the argv of every git that lfs-agent (or git) starts.
    outputs = Outputs()
    outputs.agent("clone", str(tmp_path / "origin.git"), str(tmp_path / "clone"), cwd=tmp_path)
    outputs.git("push", "origin", "main", cwd=work)
    outputs.check()
    traced = outputs.seen["git push origin main"]
    assert "trace: " in traced and "pre-push" in traced  # git did trace its commands


def test_an_error_from_a_bad_remote_url_masks_its_password(work: Path):
    git("config", "lfs-agent.remote", f"http://user:{PASSWORD}@", cwd=work)
    out = agent("push", cwd=work, env=traced_env())
    err = out.stderr.decode()
    assert out.returncode == 2, err
    assert PASSWORD not in err and PASSWORD not in out.stdout.decode()


def test_the_transfer_agent_tells_git_lfs_no_password(work: Path):
    # git-lfs prints the agent's error messages as they are.
    oid = "0" * 64
    requests = [
        {"event": "init", "operation": "download", "remote": "origin", "concurrent": False},
        {"event": "download", "oid": oid, "size": 5, "action": None},
        {"event": "terminate"},
    ]
    stdin = "".join(json.dumps(r) + "\n" for r in requests).encode()
    out = agent("transfer", cwd=work, input=stdin, env=traced_env())
    replies = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert replies[0] == {} and replies[1]["error"]["message"], replies
    assert PASSWORD not in out.stderr.decode()
    assert PASSWORD not in out.stdout.decode()


def mlflow_server(tmp_path: Path) -> ServerProcess:
    port = free_port()
    script = Path(__file__).resolve().parents[1] / "fake_mlflow_server.py"
    return ServerProcess([sys.executable, str(script), str(port)], port, tmp_path / "mlflow.log")


def test_mlflow_errors_show_the_tracking_uri_without_its_password(tmp_path: Path):
    work = tmp_path / "work"
    git("init", "-q", str(work), cwd=tmp_path)
    git("commit", "-q", "--allow-empty", "-m", "first", cwd=work)
    assert (
        agent("install", "--local", "--remote", str(tmp_path / "bucket"), cwd=work).returncode == 0
    )
    assert agent("tag", "v1", "--metric", "accuracy=0.9", cwd=work).returncode == 0
    server = mlflow_server(tmp_path)
    try:
        # A path the server does not serve: MLflow answers with an error.
        refused = f"http://user:{PASSWORD}@127.0.0.1:{server.port}/not-mlflow"
        down = f"http://user:{PASSWORD}@127.0.0.1:{free_port()}"
        cases = {
            refused: "ENDPOINT_NOT_FOUND",
            down: "cannot reach MLflow at http://***@127.0.0.1:",
            f"ftp://user:{PASSWORD}@127.0.0.1/": "needs an http(s):// tracking URI",
        }
        for uri, expected in cases.items():
            out = agent("metrics", "export", "--mlflow", uri, cwd=work, env=traced_env())
            err = out.stderr.decode()
            assert out.returncode == 2, err
            assert expected in err
            assert PASSWORD not in err and PASSWORD not in out.stdout.decode()
            assert "internal error" not in err
        # A working export, traced, shows no password either.
        working = f"http://user:{PASSWORD}@127.0.0.1:{server.port}"
        out = agent("metrics", "export", "--mlflow", working, cwd=work, env=traced_env())
        assert out.returncode == 0, out.stderr
        assert PASSWORD not in out.stderr.decode() + out.stdout.decode()
    finally:
        server.stop()
