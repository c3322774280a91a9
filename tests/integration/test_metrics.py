"""`lfs-agent tag` and `lfs-agent metrics` against real git and a folder bucket."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import agent, git, needs_git_lfs
from tests.helpers import sha256

pytestmark = pytest.mark.integration


@pytest.fixture
def tagged(tmp_path: Path, no_git_lfs_path):
    """A repo with two tagged model versions pushed to a git remote and a bucket."""
    server = tmp_path / "server.git"
    git("init", "-q", "--bare", str(server), cwd=tmp_path)
    work = tmp_path / "work"
    git("init", "-q", str(work), cwd=tmp_path)
    bucket = tmp_path / "bucket"
    agent("install", "--remote", str(bucket), cwd=work)
    agent("track", "*.h5", cwd=work)
    (work / "model.h5").write_bytes(b"weights v1\n" * 100)
    (work / "vocab.h5").write_bytes(b"vocab\n" * 50)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "v1", cwd=work)
    (work / "m1.json").write_text(
        json.dumps({"eval": {"accuracy": 0.81, "loss": 0.5}, "epochs": 10})
    )
    out = agent(
        "tag",
        "v1.0",
        "-m",
        "model v1.0, 1000 images",
        "--metrics",
        str(work / "m1.json"),
        "--param",
        "lr=0.01",
        "--param",
        "images=1000",
        cwd=work,
    )
    assert out.returncode == 0, out.stderr
    (work / "model.h5").write_bytes(b"weights v2\n" * 120)
    git("commit", "-qam", "v2", cwd=work)
    (work / "m2.yaml").write_text("eval:\n  accuracy: 0.87\n  loss: 0.41\n")
    out = agent(
        "tag",
        "v2.0",
        "--metrics",
        str(work / "m2.yaml"),
        "--metric",
        "epochs=12",
        "--param",
        "lr=0.005",
        "--param",
        "images=1000",
        cwd=work,
    )
    assert out.returncode == 0, out.stderr
    git("remote", "add", "origin", str(server), cwd=work)
    git("push", "-q", "origin", "main", "v1.0", "v2.0", cwd=work)
    return tmp_path, work, server, bucket


def fresh_clone(root: Path, server: Path) -> Path:
    clone = root / "fresh"
    git("clone", "-q", str(server), str(clone), cwd=root)  # no filter: pointers only
    assert agent("install", cwd=clone).returncode == 0
    return clone


def test_list_show_and_diff_from_a_fresh_clone(tagged):
    root, work, server, _ = tagged
    clone = fresh_clone(root, server)
    listed = json.loads(agent("metrics", "list", "--json", cwd=clone).stdout)
    assert [r["tag"] for r in listed] == ["v2.0", "v1.0"]
    shown = json.loads(agent("metrics", "show", "v1.0", "--json", cwd=clone).stdout)
    assert shown["metrics"] == {"epochs": 10, "eval.accuracy": 0.81, "eval.loss": 0.5}
    assert shown["params"] == {"images": "1000", "lr": "0.01"}
    assert shown["message"] == "model v1.0, 1000 images"
    assert shown["commit"] == git("rev-parse", "v1.0^{commit}", cwd=work).stdout.decode().strip()
    assert shown["tagger"] == "Test Committer <committer@example.com>"
    diff = json.loads(agent("metrics", "diff", "v1.0", "v2.0", "--json", cwd=clone).stdout)
    assert diff["metrics"] == {
        "epochs": {"old": 10, "new": 12, "delta": 2},
        "eval.accuracy": {"old": 0.81, "new": 0.87, "delta": 0.06},
        "eval.loss": {"old": 0.5, "new": 0.41, "delta": -0.09},
    }
    assert diff["params"] == {"lr": {"old": "0.01", "new": "0.005"}}
    assert diff["artifacts"] == [
        {
            "path": "model.h5",
            "old_oid": sha256(b"weights v1\n" * 100),
            "new_oid": sha256(b"weights v2\n" * 120),
            "old_size": 1100,
            "new_size": 1320,
        }
    ]
    text = agent("metrics", "diff", "v1.0", "v2.0", cwd=clone).stdout.decode()
    assert "eval.accuracy  0.81  0.87  +0.06" in text
    sorted_list = agent("metrics", "list", "--sort", "eval.loss", cwd=clone).stdout.decode()
    assert sorted_list.splitlines()[1].startswith("v1.0")


def test_show_prints_the_record_as_text(tagged):
    root, work, server, _ = tagged
    clone = fresh_clone(root, server)
    out = agent("metrics", "show", "v1.0", cwd=clone)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    commit = git("rev-parse", "v1.0^{commit}", cwd=work).stdout.decode().strip()
    model, vocab = sha256(b"weights v1\n" * 100), sha256(b"vocab\n" * 50)
    assert lines[0:3] == [
        "tag     v1.0",
        f"commit  {commit}",
        "tagger  Test Committer <committer@example.com>",
    ]
    assert lines[3].startswith("date    20")
    assert lines[4:] == [
        "message model v1.0, 1000 images",
        "metrics:",
        "  epochs = 10",
        "  eval.accuracy = 0.81",
        "  eval.loss = 0.5",
        "params:",
        "  images = 1000",
        "  lr = 0.01",
        "artifacts:",
        f"  model.h5  {model[:12]}  1.1 KB",
        f"  vocab.h5  {vocab[:12]}  300 B",
    ]


def test_artifacts_match_ls_files_at_the_tag(tagged):
    _, work, _, _ = tagged
    shown = json.loads(agent("metrics", "show", "v1.0", "--json", cwd=work).stdout)
    listed = agent("ls-files", "--long", "v1.0", cwd=work).stdout.decode().splitlines()
    expected = sorted((line.split(" ", 2)[2], line.split(" ")[0]) for line in listed)
    assert [(a["path"], a["oid"]) for a in shown["artifacts"]] == expected
    assert {a["path"]: a["size"] for a in shown["artifacts"]} == {"model.h5": 1100, "vocab.h5": 300}


@needs_git_lfs
def test_artifacts_match_the_real_git_lfs_ls_files(tagged, monkeypatch):
    _, work, _, _ = tagged
    monkeypatch.setenv("PATH", "/usr/bin:/bin:" + str(Path(sys.executable).parent))
    real = git("lfs", "ls-files", "--long", "v1.0", cwd=work).stdout.decode().splitlines()
    shown = json.loads(agent("metrics", "show", "v1.0", "--json", cwd=work).stdout)
    assert sorted((line.split(" ", 2)[2], line.split(" ")[0]) for line in real) == [
        (a["path"], a["oid"]) for a in shown["artifacts"]
    ]


def test_errors_are_one_line(tagged, tmp_path: Path):
    _, work, _, _ = tagged
    cases = [
        (["tag", "v1.0"], "tag 'v1.0' already exists: use --force"),
        (["tag", "v3", "--metrics", "nope.json"], "metrics file nope.json does not exist"),
        (["tag", "v3", "--metric", "acc=high"], "metric 'acc' is not a number"),
        (["tag", "bad..name"], "'bad..name' is not a valid tag name"),
        (["metrics", "show", "v9"], "no metrics record for tag 'v9'"),
    ]
    for args, message in cases:
        out = agent(*args, cwd=work)
        assert out.returncode == 2
        assert (
            out.stderr.decode().strip() == f"lfs-agent: error: {message}"
            or message in out.stderr.decode()
        )
        assert len(out.stderr.decode().strip().splitlines()) == 1
    assert git("tag", "-l", "v3", cwd=work).stdout == b""  # nothing was tagged
    outside = agent("metrics", "list", cwd=tmp_path / "bucket")
    assert outside.returncode == 2 and "not a git repository" in outside.stderr.decode()


def test_a_damaged_record_in_the_bucket_is_named_and_the_others_still_count(tagged):
    root, work, server, bucket = tagged
    damaged = bucket / "meta" / "tags" / "v1.0.json"
    damaged.write_text('{"tag": 5')
    why = "meta/tags/v1.0.json is not a valid tag record: Invalid JSON: EOF while parsing"
    clone = fresh_clone(root, server)  # no local copies of the records
    listed = agent("metrics", "list", cwd=clone)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.decode().splitlines()] == ["TAG", "v2.0"]
    assert f"lfs-agent: passed over the bucket's record of v1.0: {why}" in listed.stderr.decode()
    shown = agent("metrics", "show", "v1.0", cwd=clone)
    assert shown.returncode == 2
    assert shown.stderr.decode().startswith(f"lfs-agent: error: {why}")
    assert len(shown.stderr.decode().splitlines()) == 1
    # The clone that tagged it kept a copy, which stands in, with a warning.
    kept = agent("metrics", "show", "v1.0", "--json", cwd=work)
    assert kept.returncode == 0, kept.stderr
    assert json.loads(kept.stdout)["tag"] == "v1.0"
    assert f"lfs-agent: using the local copy of v1.0's record: {why}" in kept.stderr.decode()


def test_a_moved_tag_keeps_its_earlier_records(tagged):
    _, work, _, bucket = tagged
    out = agent("tag", "v1.0", "--force", "--metric", "eval.accuracy=0.9", cwd=work)
    assert out.returncode == 0, out.stderr
    history = sorted((bucket / "meta" / "history" / "v1.0").iterdir())
    assert len(history) == 2
    old = json.loads(history[0].read_text())
    assert (
        old["metrics"]["eval.accuracy"] == 0.81
        or json.loads(history[1].read_text())["metrics"]["eval.accuracy"] == 0.81
    )
    current = json.loads((bucket / "meta" / "tags" / "v1.0.json").read_text())
    assert current["metrics"] == {"eval.accuracy": 0.9}


def test_unpushed_artifacts_are_uploaded_before_the_record(tagged):
    _, work, _, bucket = tagged
    (work / "model.h5").write_bytes(b"weights v3, never pushed\n")
    git("commit", "-qam", "v3", cwd=work)
    assert agent("tag", "v3.0", "--metric", "eval.accuracy=0.9", cwd=work).returncode == 0
    oid = sha256(b"weights v3, never pushed\n")
    assert (bucket / "objects" / oid[:2] / oid[2:4] / oid).exists()


def test_an_unreachable_remote_keeps_the_tag_and_metrics_push_catches_up(tagged, tmp_path: Path):
    _, work, _, bucket = tagged
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the bucket should be")
    git("config", "lfs-agent.remote", str(blocker), cwd=work)
    out = agent("tag", "v4.0", "--metric", "eval.accuracy=0.95", cwd=work)
    assert out.returncode == 2
    err = out.stderr.decode().strip()
    assert len(err.splitlines()) == 1
    assert "the tag was created, but its record did not reach" in err
    assert "lfs-agent metrics push" in err
    assert git("tag", "-l", "v4.0", cwd=work).stdout.strip() == b"v4.0"
    git("config", "lfs-agent.remote", str(bucket), cwd=work)
    pushed = agent("metrics", "push", cwd=work)
    assert pushed.returncode == 0, pushed.stderr
    assert "pushed the record of v4.0" in pushed.stdout.decode()
    assert (bucket / "meta" / "tags" / "v4.0.json").exists()
    assert agent("metrics", "push", cwd=work).stdout == b"metrics: nothing pending\n"
