"""git round trips with an s3:// remote on the moto server, in both modes."""

from __future__ import annotations

import shlex
from pathlib import Path

import boto3
import pytest

from tests.conftest import AGENT, agent, clone_with_filter, git, needs_git_lfs
from tests.helpers import pointer_bytes, sha256, write_random

pytestmark = [pytest.mark.integration, pytest.mark.s3]
MIB = 1024 * 1024


def keys(bucket: str) -> set[str]:
    """The oids of the objects in the bucket (records under ``meta/`` left out)."""
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    return {
        item["Key"].rsplit("/", 1)[-1]
        for item in listing
        if f"/{item['Key']}".rsplit("/", 4)[-4] == "objects"
    }


def test_filter_mode_push_clone_and_checkout_through_s3(s3_bucket, tmp_path: Path, no_git_lfs_path):
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    work = tmp_path / "work"
    git("init", "-q", str(work), cwd=tmp_path)
    assert agent("install", "--remote", f"s3://{s3_bucket}/repo", cwd=work).returncode == 0
    # Small parts so the 12 MiB model goes multipart.
    git("config", "lfs-agent.s3.part-size", "5MiB", cwd=work)
    git("config", "lfs-agent.s3.multipart-threshold", "5MiB", cwd=work)
    agent("track", "*.bin", cwd=work)
    big = write_random(work / "model.bin", 12 * MIB, seed=1)
    (work / "small.bin").write_bytes(b"v1\n")
    git("add", "-A", cwd=work)
    git("commit", "-qm", "v1", cwd=work)
    git("tag", "v1", cwd=work)
    (work / "small.bin").write_bytes(b"v2\n")
    git("commit", "-qam", "v2", cwd=work)
    git("remote", "add", "origin", str(remote), cwd=work)
    git("push", "-q", "origin", "main", "v1", cwd=work)
    assert keys(s3_bucket) == {big, sha256(b"v1\n"), sha256(b"v2\n")}

    clone = tmp_path / "clone"
    clone_with_filter(str(remote), str(clone), cwd=tmp_path)
    assert sha256((clone / "model.bin").read_bytes()) == big
    assert (clone / "small.bin").read_bytes() == b"v2\n"
    git("checkout", "-q", "v1", cwd=clone)
    assert (clone / "small.bin").read_bytes() == b"v1\n"
    assert git("status", "--porcelain", cwd=clone).stdout == b""


@needs_git_lfs
def test_git_lfs_with_the_agent_through_s3(s3_bucket, tmp_path: Path):
    git("lfs", "install", "--skip-repo", cwd=tmp_path)
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    a = tmp_path / "a"
    git("init", "-q", str(a), cwd=tmp_path)
    assert (
        agent("install", "--with-git-lfs", "--remote", f"s3://{s3_bucket}", cwd=a).returncode == 0
    )
    git("lfs", "track", "*.bin", cwd=a)
    (a / "w.bin").write_bytes(b"weights\n" * 1000)
    git("add", "-A", cwd=a)
    git("commit", "-qm", "w", cwd=a)
    git("remote", "add", "origin", str(remote), cwd=a)
    git("push", "-q", "origin", "main", cwd=a)
    assert keys(s3_bucket) == {sha256(b"weights\n" * 1000)}

    c = tmp_path / "c"
    python = shlex.quote(AGENT[0])
    git(
        "clone",
        "-q",
        "-c",
        f"lfs.customtransfer.lfs-agent.path={python}",
        "-c",
        "lfs.customtransfer.lfs-agent.args=-m lfs_agent transfer",
        "-c",
        "lfs.standalonetransferagent=lfs-agent",
        str(remote),
        str(c),
        cwd=tmp_path,
    )
    assert (c / "w.bin").read_bytes() == b"weights\n" * 1000
    assert git("cat-file", "-p", "HEAD:w.bin", cwd=c).stdout == pointer_bytes(b"weights\n" * 1000)
