"""Text from a bucket or a repository reaches the terminal with its escapes shown.

A metrics record in the bucket, or a committed file name, may hold terminal escape
sequences (retitle the window, clear the screen). Printed raw, they would act on the
terminal of whoever runs lfs-agent; every command shows them escaped instead, file
names quoted as git quotes them. ``--json`` output stays exact (JSON escapes them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import agent, git

pytestmark = pytest.mark.integration

TITLE = "\x1b]0;pwned\x07"  # retitles the terminal window
CLEAR = "\x1b[2J"  # clears the screen
RAW = (b"\x1b", b"\x07", b"\x9b")


def assert_nothing_raw(out: bytes) -> None:
    for raw in RAW:
        assert raw not in out, out


@pytest.fixture
def bucket_repo(tmp_path: Path) -> tuple[Path, Path]:
    """A repo with a folder bucket holding a clean record (v1) and a hostile one (v2)."""
    work = tmp_path / "work"
    bucket = tmp_path / "bucket"
    git("init", "-q", str(work), cwd=tmp_path)
    assert agent("install", "--local", "--remote", str(bucket), cwd=work).returncode == 0
    git("commit", "-q", "--allow-empty", "-m", "first", cwd=work)
    out = agent("tag", "v1", "--metric", "accuracy=0.5", "--param", "lr=0.1", cwd=work)
    assert out.returncode == 0, out.stderr
    record = json.loads((bucket / "meta" / "tags" / "v1.json").read_text())
    record.update(
        tag="v2" + CLEAR,
        tagger="Mallory" + TITLE,
        message=f"line one{CLEAR}\nline two\r",
        metrics={"accuracy": 0.75, "acc" + TITLE: 1},
        params={"lr": "0.2" + CLEAR, "p" + CLEAR: "x\u202eevil"},
        artifacts=[{"path": "model" + TITLE + ".bin", "oid": "ab" * 32, "size": 3}],
    )
    (bucket / "meta" / "tags" / "v2.json").write_text(json.dumps(record))
    return work, bucket


def test_metrics_show_escapes_every_field(bucket_repo):
    work, _ = bucket_repo
    out = agent("metrics", "show", "v2", cwd=work)
    assert out.returncode == 0, out.stderr
    assert_nothing_raw(out.stdout + out.stderr)
    text = out.stdout.decode()
    assert "tag     v2\\x1b[2J\n" in text
    assert "tagger  Mallory\\x1b]0;pwned\\x07\n" in text
    assert "message line one\\x1b[2J\nline two\\x0d\n" in text  # its lines kept
    assert "  acc\\x1b]0;pwned\\x07 = 1\n" in text
    assert "  lr = 0.2\\x1b[2J\n" in text
    assert "  p\\x1b[2J = x\\u202eevil\n" in text
    assert '  "model\\033]0;pwned\\a.bin"  abababababab  3 B\n' in text


def test_metrics_list_and_diff_escape_names_and_values(bucket_repo):
    work, _ = bucket_repo
    listed = agent("metrics", "list", cwd=work)
    assert listed.returncode == 0, listed.stderr
    assert_nothing_raw(listed.stdout + listed.stderr)
    header, *rows = listed.stdout.decode().splitlines()
    assert header.split() == ["TAG", "DATE", "COMMIT", "acc\\x1b]0;pwned\\x07", "accuracy"]
    assert [row.split()[0] for row in rows] == ["v2\\x1b[2J", "v1"]
    diff = agent("metrics", "diff", "v1", "v2", cwd=work)
    assert diff.returncode == 0, diff.stderr
    assert_nothing_raw(diff.stdout + diff.stderr)
    text = diff.stdout.decode()
    assert "acc\\x1b]0;pwned\\x07  -    1" in text
    assert "param lr: 0.1 -> 0.2\\x1b[2J\n" in text
    assert "param p\\x1b[2J: None -> x\\u202eevil\n" in text
    assert 'artifact "model\\033]0;pwned\\a.bin": - -> abababababab (3 B)\n' in text


def test_json_output_keeps_the_exact_values(bucket_repo):
    work, _ = bucket_repo
    out = agent("metrics", "show", "v2", "--json", cwd=work)
    assert out.returncode == 0, out.stderr
    assert_nothing_raw(out.stdout)  # json.dumps writes \u001b
    shown = json.loads(out.stdout)
    assert shown["tag"] == "v2" + CLEAR
    assert shown["artifacts"][0]["path"] == "model" + TITLE + ".bin"


def test_a_c1_control_is_escaped_too(bucket_repo):
    work, bucket = bucket_repo
    hostile = bucket / "meta" / "tags" / "v2.json"
    record = json.loads(hostile.read_text())
    record["params"] = {"p": "\x9b2J"}  # the one-character CSI
    hostile.write_text(json.dumps(record))
    out = agent("metrics", "show", "v2", cwd=work)
    assert out.returncode == 0, out.stderr
    assert_nothing_raw(out.stdout + out.stderr)
    assert "  p = \\x9b2J\n" in out.stdout.decode()


NAMES = [
    "t" + TITLE + ".bin",
    "e" + CLEAR + "vil.bin",
    'quote".bin',
]


@pytest.fixture
def hostile_names(tmp_path: Path) -> tuple[Path, Path]:
    """A repo whose LFS files have escape sequences in their names; objects pushed."""
    work = tmp_path / "work"
    bucket = tmp_path / "bucket"
    git("init", "-q", str(work), cwd=tmp_path)
    assert agent("install", "--local", "--remote", str(bucket), cwd=work).returncode == 0
    assert agent("track", "*.bin", cwd=work).returncode == 0
    for i, name in enumerate(NAMES):
        (work / name).write_bytes(b"content %d\n" % i)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "hostile names", cwd=work)
    return work, bucket


def git_quoted(work: Path) -> list[str]:
    """The LFS file names as git itself quotes them."""
    names = git("ls-files", "--", "*.bin", cwd=work).stdout.decode().splitlines()
    assert len(names) == len(NAMES)
    return sorted(names)


def test_ls_files_quotes_names_as_git_does(hostile_names):
    work, _ = hostile_names
    expected = git_quoted(work)
    assert '"t\\033]0;pwned\\a.bin"' in expected  # git's own quoting, for the record
    out = agent("ls-files", "--name-only", cwd=work)
    assert out.returncode == 0, out.stderr
    assert_nothing_raw(out.stdout + out.stderr)
    assert sorted(out.stdout.decode().splitlines()) == expected
    full = agent("ls-files", cwd=work)
    assert full.returncode == 0, full.stderr
    assert sorted(line.split(" ", 2)[2] for line in full.stdout.decode().splitlines()) == expected


def test_status_and_fsck_quote_names_as_git_does(hostile_names, tmp_path: Path):
    work, _ = hostile_names
    expected = git_quoted(work)
    status = agent("status", cwd=work)
    assert status.returncode == 0, status.stderr
    assert_nothing_raw(status.stdout + status.stderr)
    lines = status.stdout.decode().splitlines()
    shown = [line[1:].split(" (")[0] for line in lines if line.startswith("\t")]
    assert sorted(shown) == expected  # to be pushed (no upstream: every one)
    # Nothing in the bucket yet: fsck --remote names each file; then no local objects.
    remote = agent("fsck", "--remote", cwd=work)
    assert remote.returncode == 1
    assert_nothing_raw(remote.stdout + remote.stderr)
    lines = remote.stdout.decode().splitlines()
    assert sorted(line.split("remote: ")[1].split(" (")[0] for line in lines) == expected
    for objects in (work / ".git" / "lfs" / "objects").iterdir():
        for path in sorted(objects.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    local = agent("fsck", cwd=work)
    assert local.returncode == 1
    assert_nothing_raw(local.stdout + local.stderr)
    missing = [line.split("objects: missing: ")[1] for line in local.stdout.decode().splitlines()]
    assert sorted(line.split(" (")[0] for line in missing) == expected


def test_a_filter_error_about_a_hostile_name_is_escaped(hostile_names, tmp_path: Path):
    # git's checkout of a file whose object is nowhere: the filter logs the name.
    work, _ = hostile_names
    clone = tmp_path / "clone"
    git("clone", "-q", "--no-checkout", str(work), str(clone), cwd=tmp_path)
    assert (
        agent("install", "--local", "--remote", str(tmp_path / "empty"), cwd=clone).returncode == 0
    )
    out = git("checkout", "-q", "main", cwd=clone, check=False)
    assert_nothing_raw(out.stdout + out.stderr)
    assert "\\x1b[2J" in out.stderr.decode() or "\\033[2J" in out.stderr.decode()
