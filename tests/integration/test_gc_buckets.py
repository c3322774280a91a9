"""``gc --remote`` and ``gc --undo`` on S3 (the moto server) and GCS (the emulator).

Their clocks cannot be set back, so these runs use a grace period of 0 and sweep at once;
the two phases and the grace period are tested on folder buckets (test_gc.py).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from tests.conftest import agent, git
from tests.helpers import sha256

pytestmark = pytest.mark.integration

NOW = ("--grace", "0s", "--sweep-after", "0s")


def _history(tmp_path: Path, remote_url: str) -> tuple[Path, str, str]:
    """A clone that pushed ``main`` and a branch since deleted; their objects' oids."""
    server = tmp_path / "server.git"
    git("init", "-q", "--bare", str(server), cwd=tmp_path)
    work = tmp_path / "work"
    git("init", "-q", str(work), cwd=tmp_path)
    assert agent("install", "--remote", remote_url, cwd=work).returncode == 0
    agent("track", "*.bin", cwd=work)
    git("remote", "add", "origin", str(server), cwd=work)
    (work / "model.bin").write_bytes(b"the model on main\n" * 500)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "main", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    git("checkout", "-qb", "trial", cwd=work)
    (work / "model.bin").write_bytes(b"a trial that went nowhere\n" * 500)
    git("commit", "-qam", "trial", cwd=work)
    git("push", "-q", "origin", "trial", cwd=work)
    git("checkout", "-q", "main", cwd=work)
    git("push", "-q", "origin", ":trial", cwd=work)
    git("branch", "-D", "trial", cwd=work)
    # S3 dates keys to the second: a push record of the same second as a snapshot's basis
    # is not known to precede it, so it keeps counting (the safe side).
    time.sleep(1.1)
    return work, sha256(b"the model on main\n" * 500), sha256(b"a trial that went nowhere\n" * 500)


def _gc(work: Path, *args: str) -> dict:
    out = agent("gc", "--remote", *args, "--json", cwd=work)
    assert out.returncode == 0, out.stderr.decode()
    return json.loads(out.stdout)


def _s3_oids(bucket: str) -> set[str]:
    import boto3

    listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="repo/objects/")
    return {item["Key"].rsplit("/", 1)[-1] for item in listing.get("Contents", [])}


@pytest.mark.s3
def test_s3_collect_then_undo_on_a_versioned_bucket(s3_bucket, tmp_path: Path, no_git_lfs_path):
    import boto3

    s3 = boto3.client("s3")
    s3.put_bucket_versioning(Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"})
    work, kept, trial = _history(tmp_path, f"s3://{s3_bucket}/repo")
    dry = _gc(work, *NOW, "--dry-run")
    run = _gc(work, *NOW)
    assert [o["oid"] for o in dry["deleted"]] == [o["oid"] for o in run["deleted"]] == [trial]
    assert run["versioned"] and run["deleted"][0]["version"]
    assert _s3_oids(s3_bucket) == {kept}

    out = agent("gc", "--undo", run["run"], cwd=work)
    assert out.returncode == 0, out.stderr
    assert b"restored 1 object(s)" in out.stdout
    assert _s3_oids(s3_bucket) == {kept, trial}
    key = f"repo/objects/{trial[:2]}/{trial[2:4]}/{trial}"
    body = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == trial
    assert agent("fsck", "--remote", "--all", cwd=work).returncode == 0


@pytest.mark.s3
def test_s3_unversioned_bucket_collects_and_says_undo_is_impossible(
    s3_bucket, tmp_path: Path, no_git_lfs_path
):
    work, kept, trial = _history(tmp_path, f"s3://{s3_bucket}/repo")
    run = _gc(work, *NOW)
    assert [o["oid"] for o in run["deleted"]] == [trial] and not run["versioned"]
    assert _s3_oids(s3_bucket) == {kept}
    out = agent("gc", "--undo", run["run"], cwd=work)
    assert out.returncode != 0 and b"enable bucket versioning" in out.stderr
    # A second collection finds nothing more, and the lock was released.
    again = _gc(work, *NOW)
    assert again["deleted"] == [] and again["condemned"] == []


def test_gcs_collect_keeps_what_main_reaches(gcs_bucket, tmp_path: Path, no_git_lfs_path):
    from google.cloud import storage

    work, kept, trial = _history(tmp_path, f"gs://{gcs_bucket}/repo")
    run = _gc(work, *NOW)
    assert [o["oid"] for o in run["deleted"]] == [trial]
    names = {
        b.name.rsplit("/", 1)[-1]
        for b in storage.Client(project="test").list_blobs(gcs_bucket, prefix="repo/objects/")
    }
    assert names == {kept}
    assert agent("fsck", "--remote", "--all", cwd=work).returncode == 0
