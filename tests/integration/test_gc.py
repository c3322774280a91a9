"""``lfs-agent gc --remote``, ``--refresh``, ``--undo`` and ``repos``, through the real CLI.

A folder bucket, a bare git server and clones that push through the pre-push hook;
the bucket's clock is its files' mtimes, so objects are aged by back-dating them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import agent, git
from tests.helpers import sha256

pytestmark = pytest.mark.integration

DAY = 86400


class World:
    """A server repository, a folder bucket, and clones that push to both."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = root / "server.git"
        self.bucket = root / "bucket"
        git("init", "-q", "--bare", str(self.server), cwd=root)
        self.count = 0

    def clone(self, name: str) -> Path:
        path = self.root / name
        if not any(self.server.glob("refs/heads/*")) and not (self.server / "packed-refs").exists():
            git("init", "-q", str(path), cwd=self.root)
            git("remote", "add", "origin", str(self.server), cwd=path)
        else:
            git("clone", "-q", str(self.server), str(path), cwd=self.root)
        out = agent("install", "--remote", str(self.bucket), cwd=path)
        assert out.returncode == 0, out.stderr
        agent("track", "*.bin", cwd=path)
        return path

    def commit(self, clone: Path, data: bytes, name: str = "model.bin") -> str:
        (clone / name).write_bytes(data)
        git("add", "-A", cwd=clone)
        self.count += 1
        git("commit", "-qm", f"change {self.count}", cwd=clone)
        return sha256(data)

    def other_repository(self, root: Path) -> Path:
        """A clone of a second repository (its own server) that pushed to this bucket."""
        server = root / "other.git"
        git("init", "-q", "--bare", str(server), cwd=root)
        clone = root / "o"
        git("init", "-q", str(clone), cwd=root)
        git("remote", "add", "origin", str(server), cwd=clone)
        agent("install", "--remote", str(self.bucket), cwd=clone)
        agent("track", "*.bin", cwd=clone)
        self.commit(clone, b"other repository\n" * 10)
        git("push", "-q", "origin", "main", cwd=clone)
        return clone

    def objects(self) -> set[str]:
        base = self.bucket / "objects"
        return {p.name for p in base.rglob("*") if p.is_file()} if base.exists() else set()

    def age(self, days: float) -> None:
        """Make the bucket's objects and push records ``days`` old (its clock is mtime)."""
        then = time.time() - days * DAY
        for base in (self.bucket / "objects", self.bucket / "meta/repos"):
            for path in base.rglob("*"):
                if path.is_file() and ("pushes" in path.parts or base.name == "objects"):
                    os.utime(path, (then, then))


def gc(clone: Path, *args: str) -> dict:
    out = agent("gc", *args, "--json", cwd=clone)
    assert out.returncode == 0, out.stderr.decode()
    return json.loads(out.stdout)


@pytest.fixture
def world(tmp_path: Path, no_git_lfs_path) -> World:
    return World(tmp_path)


def test_a_deleted_branch_is_collected_in_two_phases_and_nothing_reachable_goes(world: World):
    a = world.clone("a")
    v1 = world.commit(a, b"version one\n" * 100)
    git("push", "-q", "origin", "main", cwd=a)
    git("checkout", "-qb", "experiment", cwd=a)
    lost = world.commit(a, b"an experiment\n" * 100)
    git("push", "-q", "origin", "experiment", cwd=a)
    git("checkout", "-q", "main", cwd=a)
    v2 = world.commit(a, b"version two\n" * 100)
    git("push", "-q", "origin", "main", ":experiment", cwd=a)
    world.age(30)

    first = gc(a, "--remote", "--sweep-after", "1s")
    assert [o["oid"] for o in first["condemned"]] == [lost]
    assert first["deleted"] == [] and first["swept_run"] is None
    assert world.objects() == {v1, v2, lost}  # condemned, not deleted

    waiting = gc(a, "--remote", "--sweep-after", "1h")  # not due yet: nothing happens
    assert waiting["deleted"] == [] and waiting["condemned"] == []
    assert waiting["sweep_due"] is not None

    time.sleep(1.1)
    dry = gc(a, "--remote", "--sweep-after", "1s", "--dry-run")
    assert [o["oid"] for o in dry["deleted"]] == [lost]
    assert dry["condemned"] == []  # what the sweep deletes is not condemned again
    second = gc(a, "--remote", "--sweep-after", "1s")
    assert second["swept_run"] == first["run"]
    assert second["condemned"] == []
    assert [o["oid"] for o in second["deleted"]] == [lost]
    assert world.objects() == {v1, v2}  # history policy: v1 stays with its old commit
    journal = list((world.bucket / "meta/gc/log" / first["run"]).glob("*.json"))
    assert len(journal) == 1 and lost in journal[0].read_text()
    git("fetch", "-q", "--prune", "origin", cwd=a)
    git("branch", "-D", "experiment", cwd=a)
    check = agent("fsck", "--remote", "--all", cwd=a)
    assert check.returncode == 0, check.stdout
    # The check can fail: an object of an old commit of main, gone from the bucket.
    (world.bucket / "objects" / v1[:2] / v1[2:4] / v1).unlink()
    check = agent("fsck", "--remote", "--all", cwd=a)
    assert check.returncode == 1 and v1.encode() in check.stdout


def test_dry_run_lists_exactly_what_the_real_run_deletes(world: World):
    a = world.clone("a")
    world.commit(a, b"kept\n" * 50)
    git("push", "-q", "origin", "main", cwd=a)
    doomed = set()
    for n in range(4):
        git("checkout", "-q", "-b", f"b{n}", "main", cwd=a)
        doomed.add(world.commit(a, f"branch {n}\n".encode() * 300))
        git("push", "-q", "origin", f"b{n}", cwd=a)
        git("push", "-q", "origin", f":b{n}", cwd=a)
    git("checkout", "-q", "main", cwd=a)
    world.age(30)
    before = world.objects()
    unreachable_bytes = sum(
        (p.stat().st_size) for p in (world.bucket / "objects").rglob("*") if p.name in doomed
    )

    dry = gc(a, "--remote", "--sweep-after", "0s", "--dry-run")
    assert world.objects() == before  # a dry run writes nothing
    assert not (world.bucket / "meta/gc").exists()
    real = gc(a, "--remote", "--sweep-after", "0s")
    assert {o["oid"] for o in dry["deleted"]} == {o["oid"] for o in real["deleted"]} == doomed
    assert real["deleted_bytes"] == unreachable_bytes
    assert world.objects() == before - doomed


def test_young_objects_are_never_condemned(world: World):
    a = world.clone("a")
    world.commit(a, b"one\n" * 10)
    git("checkout", "-qb", "gone", cwd=a)
    young = world.commit(a, b"young and unreachable\n" * 10)
    git("push", "-q", "origin", "main", "gone", cwd=a)
    git("push", "-q", "origin", ":gone", cwd=a)
    report = gc(a, "--remote", "--sweep-after", "0s", "--grace", "14d")
    assert report["condemned"] == [] and young in world.objects()
    world.age(15)
    report = gc(a, "--remote", "--sweep-after", "0s", "--grace", "14d")
    assert [o["oid"] for o in report["deleted"]] == [young]


def test_policies_decide_what_old_commits_keep(world: World):
    a = world.clone("a")
    old = world.commit(a, b"old model\n" * 40)
    new = world.commit(a, b"new model\n" * 40)
    git("push", "-q", "origin", "main", cwd=a)
    world.age(30)
    kept = gc(a, "--remote", "--sweep-after", "0s", "--dry-run", "--policy", "history")
    assert kept["deleted"] == []
    recent = gc(a, "--remote", "--sweep-after", "0s", "--dry-run", "--policy", "recent:30d")
    assert recent["deleted"] == []  # both commits are minutes old
    tips = gc(a, "--remote", "--sweep-after", "0s", "--policy", "tips+tags")
    assert [o["oid"] for o in tips["deleted"]] == [old]
    assert world.objects() == {new}


def test_a_tag_record_keeps_its_model_after_the_tag_and_branch_are_gone(world: World):
    a = world.clone("a")
    git("checkout", "-qb", "train", cwd=a)
    model = world.commit(a, b"released model\n" * 60)
    git("push", "-q", "origin", "train", cwd=a)
    assert agent("tag", "v1", "--metric", "acc=0.9", cwd=a).returncode == 0
    git("push", "-q", "origin", ":train", cwd=a)
    git("checkout", "-q", "--orphan", "fresh", cwd=a)
    git("rm", "-qrf", ".", cwd=a)
    world.commit(a, b"unrelated\n")
    git("push", "-q", "origin", "fresh", cwd=a)
    git("tag", "-d", "v1", cwd=a)
    git("push", "-q", "origin", ":refs/tags/v1", cwd=a, check=False)
    world.age(30)
    report = gc(a, "--remote", "--sweep-after", "0s")
    assert report["tag_records"] >= 1
    assert model in world.objects()


def test_a_push_that_reuses_a_condemned_object_resurrects_it(world: World):
    a = world.clone("a")
    first = world.commit(a, b"the first model\n" * 80)
    git("push", "-q", "origin", "main", cwd=a)
    git("checkout", "-q", "--orphan", "rewrite", cwd=a)
    world.commit(a, b"the second model\n" * 80)
    git("push", "-q", "-f", "origin", "rewrite:main", cwd=a)  # the first commit is gone
    world.age(30)
    report = gc(a, "--remote", "--sweep-after", "1s")
    assert [o["oid"] for o in report["condemned"]] == [first]

    # A clone that never saw the force-push brings the old model back on a new branch.
    b = world.root / "b"
    git("clone", "-q", str(world.server), str(b), cwd=world.root)
    assert agent("install", "--remote", str(world.bucket), cwd=b).returncode == 0
    (b / "model.bin").write_bytes(b"the first model\n" * 80)
    (b / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    git("add", "-A", cwd=b)
    git("commit", "-qm", "back to the first model", cwd=b)
    push = git("push", "origin", "HEAD:revert", cwd=b)
    assert b"1 already there" in push.stderr  # not uploaded again: reused

    time.sleep(1.1)
    sweep = gc(a, "--remote", "--sweep-after", "1s")
    assert sweep["swept_run"] == report["run"]
    assert sweep["deleted"] == [] and sweep["spared"] == 1
    assert first in world.objects()


def test_a_push_during_a_sweep_that_reuses_a_condemned_object_fails_and_retries(world: World):
    a = world.clone("a")
    first = world.commit(a, b"model one\n" * 80)
    git("push", "-q", "origin", "main", cwd=a)
    git("checkout", "-q", "--orphan", "other", cwd=a)
    world.commit(a, b"model two\n" * 80)
    git("push", "-q", "-f", "origin", "other:main", cwd=a)
    world.age(30)
    gc(a, "--remote", "--sweep-after", "1h")
    state_path = world.bucket / "meta/gc/state.json"
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps({**state, "state": "sweeping"}))  # a sweep has begun

    git("checkout", "-q", "-b", "again", "other", cwd=a)
    (a / "model.bin").write_bytes(b"model one\n" * 80)
    git("commit", "-qam", "model one again", cwd=a)
    out = git("push", "origin", "again", cwd=a, check=False)
    assert out.returncode != 0
    assert b"is sweeping (or was stopped while sweeping) objects this command reuses" in out.stderr
    assert b"run it again" in out.stderr
    assert not git("ls-remote", "origin", "again", cwd=a).stdout  # no ref landed
    assert first in world.objects()


def test_gc_refuses_while_a_registered_repository_was_never_refreshed(world: World, tmp_path: Path):
    a = world.clone("a")
    world.commit(a, b"x\n" * 10)
    git("push", "-q", "origin", "main", cwd=a)
    o = world.other_repository(tmp_path)  # pushes to the same bucket, never refreshes
    out = agent("gc", "--remote", cwd=a)
    assert out.returncode != 0
    lines = out.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "never been refreshed" in lines[0] and "gc --refresh" in lines[0]
    assert agent("gc", "--refresh", cwd=o).returncode == 0
    listing = json.loads(agent("repos", "list", "--json", cwd=a).stdout)["repositories"]
    assert len(listing) == 2 and all(r["policy"] == "history" for r in listing)
    assert agent("gc", "--remote", cwd=a).returncode == 0

    forgotten = next(r["id"] for r in listing if "other" in r["url"])
    out = agent("repos", "forget", forgotten, cwd=a)
    assert out.returncode == 0 and b"forgot repository" in out.stdout
    assert len(json.loads(agent("repos", "list", "--json", cwd=a).stdout)["repositories"]) == 1
    bad = agent("repos", "forget", "0123456789abcdef", cwd=a)
    assert bad.returncode != 0 and b"repos list" in bad.stderr


def test_a_live_lock_stops_a_second_collection_and_a_stale_one_is_broken(world: World):
    a = world.clone("a")
    world.commit(a, b"x\n" * 10)
    git("push", "-q", "origin", "main", cwd=a)
    lock = world.bucket / "meta/gc/lock.json"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text('{"run": "someone else"}')
    out = agent("gc", "--remote", cwd=a)
    assert out.returncode != 0
    assert b"another garbage collection" in out.stderr and b"expires" in out.stderr
    then = time.time() - 3600
    os.utime(lock, (then, then))
    assert agent("gc", "--remote", cwd=a).returncode == 0
    assert not lock.exists()


def test_an_http_bucket_says_it_cannot_be_collected(world: World, http_server):
    a = world.clone("a")
    url = http_server.url if hasattr(http_server, "url") else http_server
    git("config", "lfs-agent.remote", str(url), cwd=a)
    out = agent("gc", "--remote", cwd=a)
    assert out.returncode != 0
    line = out.stderr.decode().strip()
    assert "cannot be garbage-collected" in line and "folder, S3 or GCS" in line


def test_undo_on_a_folder_bucket_says_why_not(world: World):
    a = world.clone("a")
    world.commit(a, b"x\n" * 10)
    git("checkout", "-qb", "gone", cwd=a)
    world.commit(a, b"gone\n" * 10)
    git("push", "-q", "origin", "main", "gone", cwd=a)
    git("push", "-q", "origin", ":gone", cwd=a)
    world.age(30)
    run = gc(a, "--remote", "--sweep-after", "0s")["run"]
    out = agent("gc", "--undo", run, cwd=a)
    assert out.returncode != 0 and b"enable bucket versioning" in out.stderr
    unknown = agent("gc", "--undo", "20200101T000000Z-00000000", cwd=a)
    assert unknown.returncode != 0 and b"deleted nothing" in unknown.stderr


def test_bad_durations_and_policies_are_one_line_errors(world: World):
    a = world.clone("a")
    for args, words in (
        (["--remote", "--grace", "soon"], b"--grace must be a duration"),
        (["--remote", "--policy", "everything"], b"unknown retention policy"),
    ):
        out = agent("gc", *args, cwd=a)
        assert out.returncode != 0
        assert words in out.stderr and len(out.stderr.decode().strip().splitlines()) == 1


def test_forgetting_a_tag_record_lets_its_model_go(world: World):
    a = world.clone("a")
    world.commit(a, b"kept on main\n" * 10)
    git("push", "-q", "origin", "main", cwd=a)
    git("checkout", "-qb", "train", cwd=a)
    model = world.commit(a, b"a released model\n" * 60)
    git("push", "-q", "origin", "train", cwd=a)
    assert agent("tag", "release/v1", "--metric", "acc=0.9", cwd=a).returncode == 0
    git("push", "-q", "origin", ":train", ":refs/tags/release/v1", cwd=a, check=False)
    world.age(30)
    assert gc(a, "--remote", "--sweep-after", "0s")["deleted"] == []
    out = agent("metrics", "forget", "release/v1", cwd=a)
    assert out.returncode == 0, out.stderr
    assert b"forgot the record of release/v1" in out.stdout
    assert not [
        p for p in (world.bucket / "meta").rglob("*") if "release" in str(p) and p.is_file()
    ]
    report = gc(a, "--remote", "--sweep-after", "0s")
    assert [o["oid"] for o in report["deleted"]] == [model]
    again = agent("metrics", "forget", "release/v1", cwd=a)
    assert again.returncode != 0 and b"no record of tag" in again.stderr


def test_a_committed_policy_decides_what_the_repository_keeps(world: World):
    a = world.clone("a")
    old = world.commit(a, b"an old model\n" * 40)
    git("config", "-f", str(a / ".lfsagent"), "lfs-agent.gc.policy", "tips+tags", cwd=a)
    new = world.commit(a, b"the current model\n" * 40)
    git("push", "-q", "origin", "main", cwd=a)
    world.age(30)
    report = gc(a, "--remote", "--sweep-after", "0s")
    assert [o["oid"] for o in report["deleted"]] == [old]
    assert world.objects() == {new}
    [repo] = json.loads(agent("repos", "list", "--json", cwd=a).stdout)["repositories"]
    assert repo["policy"] == "tips+tags"


def test_a_shallow_clone_cannot_refresh_what_history_keeps(world: World):
    a = world.clone("a")
    world.commit(a, b"one\n" * 10)
    world.commit(a, b"two\n" * 10)
    git("push", "-q", "origin", "main", cwd=a)
    shallow = world.root / "shallow"
    git("clone", "-q", "--depth", "1", world.server.as_uri(), str(shallow), cwd=world.root)
    assert agent("install", "--remote", str(world.bucket), cwd=shallow).returncode == 0
    out = agent("gc", "--refresh", cwd=shallow)
    assert out.returncode != 0
    assert b"shallow" in out.stderr and b"git fetch --unshallow" in out.stderr
    tips = agent("gc", "--refresh", "--policy", "tips+tags", cwd=shallow)
    assert tips.returncode == 0, tips.stderr  # a tip's tree is all that policy needs


def test_objects_of_refs_outside_branches_and_tags_are_kept(world: World):
    a = world.clone("a")
    world.commit(a, b"main\n" * 10)
    git("push", "-q", "origin", "main", cwd=a)
    git("checkout", "-qb", "exp", cwd=a)
    run = world.commit(a, b"an experiment kept under refs/exps\n" * 10)
    git("push", "-q", "origin", "exp:refs/exps/run1", cwd=a)
    git("checkout", "-q", "main", cwd=a)
    git("branch", "-D", "exp", cwd=a)
    world.age(30)
    report = gc(a, "--remote", "--sweep-after", "0s")
    assert report["deleted"] == [] and run in world.objects()


def test_a_stale_repository_snapshot_stops_the_collection(world: World, tmp_path: Path):
    a = world.clone("a")
    world.commit(a, b"x\n" * 10)
    git("push", "-q", "origin", "main", cwd=a)
    o = world.other_repository(tmp_path)
    assert agent("gc", "--refresh", cwd=o).returncode == 0
    # Its snapshot's basis is in its key: a snapshot from 20 days ago.
    [snapshot] = (world.bucket / "meta/repos").rglob("snapshots/*.json")
    basis, rest = snapshot.name.split("-", 1)
    record = json.loads(snapshot.read_text())
    record["basis"] -= 20 * DAY
    snapshot.unlink()
    older = snapshot.with_name(f"{int(basis) - 20 * DAY * 1000:015d}-{rest}")
    older.write_text(json.dumps(record))
    out = agent("gc", "--remote", cwd=a)
    assert out.returncode != 0
    assert b"before the grace period began" in out.stderr and b"gc --refresh" in out.stderr
    assert agent("gc", "--refresh", cwd=o).returncode == 0
    assert agent("gc", "--remote", cwd=a).returncode == 0


def test_a_hostile_folder_bucket_cannot_make_gc_delete_or_hang(world: World, tmp_path: Path):
    a = world.clone("a")
    world.commit(a, b"x\n" * 10)
    git("push", "-q", "origin", "main", cwd=a)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("mine")
    planted = world.bucket / "meta/repos/0123456789abcdef"
    planted.symlink_to(victim)
    out = agent("repos", "forget", "0123456789abcdef", cwd=a)
    assert out.returncode != 0
    assert (victim / "precious.txt").read_text() == "mine"
    planted.unlink()
    (world.bucket / "meta/gc").mkdir(parents=True, exist_ok=True)
    os.mkfifo(world.bucket / "meta/gc/state.json")
    world.commit(a, b"y\n" * 10)
    push = git("push", "origin", "main", cwd=a, check=False)  # must not hang on the FIFO
    assert push.returncode != 0 and b"not a regular file" in push.stderr


def test_a_tag_record_written_during_a_sweep_of_its_model_is_left_pending(world: World):
    a = world.clone("a")
    world.commit(a, b"main\n" * 10)
    git("push", "-q", "origin", "main", cwd=a)
    git("checkout", "-qb", "t", cwd=a)
    model = world.commit(a, b"the model to release\n" * 30)
    git("push", "-q", "origin", "t", cwd=a)
    git("push", "-q", "origin", ":t", cwd=a)
    world.age(30)
    assert [o["oid"] for o in gc(a, "--remote", "--sweep-after", "1h")["condemned"]] == [model]
    state_path = world.bucket / "meta/gc/state.json"
    state_path.write_text(json.dumps({**json.loads(state_path.read_text()), "state": "sweeping"}))

    out = agent("tag", "v1", "--metric", "acc=1", cwd=a)
    assert out.returncode != 0
    assert b"sweeping" in out.stderr and b"metrics push" in out.stderr
    # The sweep ends (here: by the next collection, which the record now protects from).
    assert gc(a, "--remote", "--sweep-after", "0s")["deleted"] == []
    assert agent("metrics", "push", cwd=a).returncode == 0
    assert model in world.objects()
    assert agent("fsck", "--remote", "--all", cwd=a).returncode == 0
