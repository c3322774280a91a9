"""The registry's records and a push's part in the collector's protocol, on a folder bucket."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from lfs_agent.condemned import CONDEMNED_STATE_KEY, condemned_list_key
from lfs_agent.errors import ConfigError, TransferError
from lfs_agent.gclock import CollectorLock, LockHeld
from lfs_agent.gcrecords import PushRecord, Snapshot, parse_record
from lfs_agent.git import Git
from lfs_agent.registry import (
    PushRecorder,
    RepoIdentity,
    load_repositories,
    repository_id,
)
from lfs_agent.remote import Remote
from tests.conftest import git

pytestmark = pytest.mark.integration

OID_A, OID_B, OID_C = "a" * 64, "b" * 64, "c" * 64
REPO = RepoIdentity("0123456789abcdef", "https://example.com/team/models")


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    with Remote(f"file://{tmp_path / 'bucket'}") as opened:
        yield opened


def test_every_spelling_of_a_remote_registers_under_one_id(tmp_path: Path):
    repo = tmp_path / "r"
    git("init", "-q", str(repo), cwd=tmp_path)
    g = Git(repo)
    ids = set()
    for url in (
        "https://user:secret@example.com/team/models.git",
        "https://example.com/team/models",
        "https://example.com/team/models/",
    ):
        git("remote", "remove", "origin", cwd=repo, check=False)
        git("remote", "add", "origin", url, cwd=repo)
        found = repository_id(g, "origin")
        assert "secret" not in found.url and "user" not in found.url
        ids.add(found.id)
    assert len(ids) == 1
    assert repository_id(g, "https://example.com/other").id not in ids


def test_records_from_a_hostile_bucket_are_refused_in_one_line():
    good = PushRecord(repo="0" * 16, url="u", by="push", oids=[OID_A]).model_dump_json()
    assert parse_record(PushRecord, good.encode(), "k").oids == [OID_A]
    for data, words in (
        (
            json.dumps({"repo": "x", "url": "u", "by": "p", "oids": ["../../etc"]}),
            "not an object id",
        ),
        (json.dumps({"repo": "x", "url": "u", "by": "p", "version": 9}), "newer lfs-agent"),
        ("{not json", "unreadable"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse_record(PushRecord, data.encode(), "meta/repos/x/pushes/1.json")
        assert words in str(caught.value) and "\n" not in str(caught.value)


def _snapshot(remote: Remote, basis: float, oids: list[str]) -> None:
    from lfs_agent.registry import _snapshot_key

    snap = Snapshot(repo=REPO.id, url=REPO.url, policy="history", basis=basis, oids=oids)
    key = _snapshot_key(REPO.id, basis, os.urandom(4).hex(), 0)
    remote.collector.put_meta(key, snap.model_dump_json().encode())


def _age(bucket: Path, pattern: str, seconds: float) -> None:
    then = time.time() - seconds
    for path in bucket.rglob(pattern):
        os.utime(path, (then, then))


def test_a_snapshot_supersedes_only_push_records_older_than_its_basis_minus_the_window(
    remote: Remote, tmp_path: Path
):
    old = PushRecorder(remote, REPO, "pre-push", tmp_path / "cache")
    old.add([OID_A])
    old.publish()
    _age(tmp_path / "bucket", "*-0.json", 7200)  # two hours old
    recent = PushRecorder(remote, REPO, "pre-push", tmp_path / "cache")
    recent.add([OID_B])
    recent.publish()
    _snapshot(remote, time.time(), [OID_C])
    [repo] = load_repositories(remote.collector, push_window=3600)
    assert repo.oids() == {OID_B, OID_C}  # the old push is covered by the snapshot
    assert [e.key.split("/")[3] for e in repo.superseded] == ["pushes"]
    [repo] = load_repositories(remote.collector, push_window=3 * 3600)
    assert repo.oids() == {OID_A, OID_B, OID_C}  # within the window: it still counts


def test_the_newest_snapshot_is_the_one_with_the_latest_basis(remote: Remote):
    _snapshot(remote, time.time() - 60, [OID_A])
    _snapshot(remote, time.time() - 600, [OID_B])  # written last, made earlier
    [repo] = load_repositories(remote.collector, push_window=0)
    assert repo.oids() == {OID_A}
    assert len(repo.superseded) == 1


def _condemn(remote: Remote, oids: list[str], state: str = "condemned") -> dict:
    from lfs_agent.gcrecords import CondemnedList

    run = "20261205T000000Z-0000abcd"
    entries = [(o, 1, 0.0, "t") for o in oids]
    listed = CondemnedList(run=run, entries=entries).model_dump_json().encode()
    remote.collector.put_meta(condemned_list_key(run, 0), listed)
    body = {"run": run, "state": state, "condemned_at": 1.0, "parts": 1, "count": len(oids)}
    remote.collector.put_meta(CONDEMNED_STATE_KEY, json.dumps(body).encode())
    return body


def test_reusing_a_condemned_object_publishes_the_record_before_relying_on_it(
    remote: Remote, tmp_path: Path
):
    _condemn(remote, [OID_A])
    recorder = PushRecorder(remote, REPO, "pre-push", tmp_path / "cache")
    recorder.begin()
    recorder.add([OID_B])
    recorder.reused([OID_B])  # not condemned: nothing written yet
    assert not list((tmp_path / "bucket" / "meta" / "repos").rglob("*.json"))
    recorder.reused([OID_A])
    [record] = (tmp_path / "bucket" / "meta" / "repos").rglob("*.json")
    assert set(json.loads(record.read_text())["oids"]) == {OID_A, OID_B}


@pytest.mark.parametrize("change", ["sweeping", "swept", "new run"])
def test_a_sweep_beginning_while_a_push_reuses_a_condemned_object_fails_the_push(
    remote: Remote, tmp_path: Path, change: str
):
    body = _condemn(remote, [OID_A])
    recorder = PushRecorder(remote, REPO, "pre-push", tmp_path / "cache")
    recorder.begin()
    state = tmp_path / "bucket" / CONDEMNED_STATE_KEY
    if change == "sweeping":
        state.write_text(json.dumps({**body, "state": "sweeping"}))
    elif change == "swept":
        state.unlink()
    else:
        state.write_text(json.dumps({**body, "run": "20261205T010000Z-0000beef"}))
    with pytest.raises(TransferError, match="run it again"):
        recorder.reused([OID_A])


def test_the_condemned_list_is_read_once_per_run_per_clone(remote: Remote, tmp_path: Path):
    _condemn(remote, [OID_A])
    first = PushRecorder(remote, REPO, "pre-push", tmp_path / "cache")
    first.begin()
    first.reused([OID_C])
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1
    (tmp_path / "bucket" / condemned_list_key("20261205T000000Z-0000abcd", 0)).unlink()
    second = PushRecorder(remote, REPO, "pre-push", tmp_path / "cache")
    second.begin()
    second.add([OID_A])
    second.reused([OID_A])  # condemned (known from the cache), and no sweep began
    assert list((tmp_path / "bucket" / "meta" / "repos").rglob("*.json"))  # so: published
    (tmp_path / "bucket" / CONDEMNED_STATE_KEY).unlink()
    with pytest.raises(TransferError):
        second.reused([OID_A])


def test_the_lock_is_renewed_by_its_holder_and_refused_to_others(remote: Remote):
    collector = remote.collector
    lock = CollectorLock(collector, "run-1", heartbeat=0.05)
    lock.acquire()
    try:
        first = collector.stat_entry("meta/gc/lock.json")
        time.sleep(0.3)
        assert collector.stat_entry("meta/gc/lock.json").tag != first.tag  # renewed
        with pytest.raises(LockHeld):
            CollectorLock(collector, "run-2").acquire()
        lock.check()
    finally:
        lock.release()
    assert collector.stat_entry("meta/gc/lock.json") is None


def test_a_large_snapshot_is_written_in_parts_and_read_whole(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import lfs_agent.registry as registry
    from lfs_agent.retention import Policy

    server, work = tmp_path / "server.git", tmp_path / "work"
    git("init", "-q", "--bare", str(server), cwd=tmp_path)
    git("init", "-q", str(work), cwd=tmp_path)
    oids = []
    for n in range(5):
        text = f"version {n}\n"
        oid = __import__("hashlib").sha256(text.encode()).hexdigest()
        oids.append(oid)
        pointer = (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(text)}\n"
        )
        (work / "m.bin").write_text(pointer)
        git("add", "m.bin", cwd=work)
        git("commit", "-qm", str(n), cwd=work)
    git("remote", "add", "origin", str(server), cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    monkeypatch.setattr(registry, "OIDS_PER_RECORD", 2)
    repo = repository_id(Git(work), "origin")
    registry.publish_snapshot(Git(work), remote.collector, "origin", repo, Policy("history"))
    parts = sorted((tmp_path / "bucket").rglob("snapshots/*.json"))
    assert [p.name[-10:] for p in parts] == ["00000.json", "00001.json", "00002.json"]
    [found] = load_repositories(remote.collector, push_window=0)
    assert found.oids() == set(oids)
    parts[1].unlink()  # a part gone: the collection must stop, not lose its oids
    with pytest.raises(ConfigError, match="is missing"):
        load_repositories(remote.collector, push_window=0)


def test_a_collection_that_stalled_past_its_lock_stops_before_deleting(
    remote: Remote, monkeypatch: pytest.MonkeyPatch
):
    import lfs_agent.gclock as gclock

    lock = CollectorLock(remote.collector, "run-1", heartbeat=3600)
    lock.acquire()
    try:
        lock.check()
        later = gclock._uptime() + gclock.LOCK_STALE_SECONDS
        monkeypatch.setattr(gclock, "_uptime", lambda: later)
        with pytest.raises(Exception, match="stalled"):
            lock.check()
    finally:
        lock.release()


def test_a_push_url_registers_as_gc_refresh_does(tmp_path: Path):
    repo = tmp_path / "r"
    git("init", "-q", str(repo), cwd=tmp_path)
    git("remote", "add", "origin", "https://example.com/read/models.git", cwd=repo)
    git("remote", "set-url", "--push", "origin", "https://example.com/write/models.git", cwd=repo)
    by_name = repository_id(Git(repo), "origin")
    by_url = repository_id(Git(repo), "https://example.com/write/models.git")
    assert by_name == by_url
