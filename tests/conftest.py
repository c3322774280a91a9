"""Shared fixtures: a hermetic git environment, repositories, and agent runners.

Every test runs with ``HOME`` and the global git config in a temp directory, system
config disabled, ``GIT_*`` variables scrubbed, a fixed identity and ``LC_ALL=C``, so
neither the machine's nor the developer's git setup can change a result.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: How tests spawn us: the interpreter running the tests, so no install is assumed.
AGENT = [sys.executable, "-m", "lfs_agent"]


@pytest.fixture(autouse=True)
def hermetic_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(("GIT_", "LFS_AGENT_", "AWS_", "STORAGE_EMULATOR")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Committer")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "committer@example.com")
    monkeypatch.setenv("LC_ALL", "C")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    (home / ".gitconfig").write_text(
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
        '[protocol "file"]\n\tallow = always\n'
    )
    return home


def git(
    *args: str,
    cwd: Path | str,
    input: bytes | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run git and fail the test with its output when it fails unexpectedly."""
    proc = subprocess.run(
        ["git", *args], cwd=cwd, input=input, capture_output=True, env=env, check=False
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"git {' '.join(args)} failed ({proc.returncode}):\n"
            f"{proc.stdout.decode(errors='replace')}\n{proc.stderr.decode(errors='replace')}"
        )
    return proc


def agent(
    *args: str,
    cwd: Path | str,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m lfs_agent`` and return the completed process."""
    return subprocess.run(
        [*AGENT, *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        env=env,
        timeout=timeout,
        check=False,
    )


FILTER_PROCESS = " ".join(shlex.quote(a) for a in AGENT) + " filter-process"


def clone_with_filter(
    remote: Path | str,
    dest: Path | str,
    *extra: str,
    cwd: Path | str,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """``git clone`` with lfs-agent's filter given for this one command (no install)."""
    return git(
        "clone",
        "-q",
        "-c",
        f"filter.lfs.process={FILTER_PROCESS}",
        "-c",
        "filter.lfs.required=true",
        *extra,
        str(remote),
        str(dest),
        cwd=cwd,
        env=env,
        check=check,
    )


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """Create a fresh non-bare repository under tmp_path."""
    counter = iter(range(1000))

    def make(name: str | None = None) -> Path:
        path = tmp_path / (name or f"repo{next(counter)}")
        git("init", "-q", str(path), cwd=tmp_path)
        return path

    return make


@pytest.fixture
def repo(make_repo: Callable[..., Path]) -> Path:
    return make_repo("work")


def has_git_lfs() -> bool:
    return shutil.which("git-lfs") is not None


needs_git_lfs = pytest.mark.skipif(
    not has_git_lfs(), reason="the real git-lfs client is not installed (apt-get install git-lfs)"
)


@pytest.fixture
def no_git_lfs_path(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A PATH on which git works but git-lfs cannot be found."""
    bindir = tmp_path_factory.mktemp("bin-no-lfs")
    for tool in ("git", "sh", "cat", "env"):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    git_exec = subprocess.run(
        ["git", "--exec-path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    path = os.pathsep.join([str(bindir), str(Path(sys.executable).parent)])
    monkeypatch.setenv("PATH", path)
    monkeypatch.setenv("GIT_EXEC_PATH", git_exec)
    yield path


# --- S3: a moto server process on loopback ---------------------------------------------

S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory):
    from tests.servers import moto_server

    server = moto_server(tmp_path_factory.mktemp("moto"), S3_CREDENTIALS)
    yield server
    server.stop()


@pytest.fixture
def s3_env(moto, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point boto3's own configuration chain at the moto server (env only)."""
    for key, value in {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": moto.url}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    return dict(os.environ)


@pytest.fixture
def s3_bucket(s3_env, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket; returns its name."""
    import boto3

    name = "t-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:50]
    name = name.strip("-") + f"-{next(_bucket_counter)}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


_bucket_counter = iter(range(1_000_000))


# --- GCS: the gcp-storage-emulator process on loopback --------------------------------


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory):
    from tests.servers import gcs_emulator

    server = gcs_emulator(tmp_path_factory.mktemp("gcs"))
    yield server
    server.stop()


@pytest.fixture
def gcs_env(gcs_server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test")
    return dict(os.environ)


@pytest.fixture
def gcs_bucket(gcs_env, request: pytest.FixtureRequest) -> str:
    from google.cloud import storage

    name = "t-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:50]
    name = name.strip("-") + f"-{next(_bucket_counter)}"
    storage.Client(project="test").create_bucket(name)
    return name


# --- HTTP: a small object server process on loopback -----------------------------------


@pytest.fixture
def http_server(tmp_path: Path):
    from tests.servers import http_object_server

    root = tmp_path / "http-root"
    root.mkdir()
    server = http_object_server(root, tmp_path)
    yield server
    server.stop()


def http_stats(server) -> dict[str, int]:
    import json
    import urllib.request

    with urllib.request.urlopen(server.url + "/_stats") as response:  # loopback only
        return dict(json.load(response))
