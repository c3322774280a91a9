"""A pull from an s3:// remote through a network that breaks a fifth of its answers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import agent, clone_with_filter, git
from tests.fault_proxy import FaultProxy
from tests.helpers import sha256, write_random

pytestmark = [pytest.mark.integration, pytest.mark.s3]
MIB = 1024 * 1024
COUNT = 40


def test_a_pull_through_a_faulty_network_gets_every_object_in_one_run(
    s3_bucket, moto, tmp_path: Path, no_git_lfs_path
):
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    work = tmp_path / "work"
    git("init", "-q", str(work), cwd=tmp_path)
    assert agent("install", "--remote", f"s3://{s3_bucket}/repo", cwd=work).returncode == 0
    git("config", "lfs-agent.s3.part-size", "5MiB", cwd=work)
    git("config", "lfs-agent.s3.multipart-threshold", "5MiB", cwd=work)
    agent("track", "*.bin", cwd=work)
    oids = {
        f"f{i}.bin": write_random(work / f"f{i}.bin", 1000 + 7919 * i, seed=i) for i in range(COUNT)
    }
    oids["big.bin"] = write_random(work / "big.bin", 11 * MIB, seed=COUNT)  # ranged
    git("add", "-A", cwd=work)
    git("commit", "-qm", "objects", cwd=work)
    git("remote", "add", "origin", str(remote), cwd=work)
    git("push", "-q", "origin", "main", cwd=work)

    clone = tmp_path / "clone"
    skip = {**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"}
    clone_with_filter(str(remote), str(clone), cwd=tmp_path, env=skip)
    assert agent("install", cwd=clone).returncode == 0
    with FaultProxy(moto.url, rate=0.2, seed=3) as faulty:
        git("config", "lfs-agent.s3.endpoint-url", faulty.url, cwd=clone)
        pulled = agent("pull", cwd=clone)
        assert pulled.returncode == 0, pulled.stderr.decode(errors="replace")
        assert sum(faulty.faults().values()) >= 5, faulty.faults()
    for name, oid in oids.items():
        assert sha256((clone / name).read_bytes()) == oid, name
    assert git("status", "--porcelain", cwd=clone).stdout == b""
