"""Damaged metrics records, in the bucket or local, are one clear line: never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import agent, git

pytestmark = pytest.mark.integration


@pytest.fixture
def tagged(tmp_path: Path) -> tuple[Path, Path]:
    """A repo whose folder bucket holds the record of v1."""
    work = tmp_path / "work"
    bucket = tmp_path / "bucket"
    git("init", "-q", str(work), cwd=tmp_path)
    assert agent("install", "--local", "--remote", str(bucket), cwd=work).returncode == 0
    git("commit", "-q", "--allow-empty", "-m", "first", cwd=work)
    out = agent("tag", "v1", "--metric", "accuracy=0.5", cwd=work)
    assert out.returncode == 0, out.stderr
    return work, bucket


def one_line_error(out, *expected: str) -> None:
    err = out.stderr.decode()
    assert out.returncode == 2, (out.stdout, err)
    assert err.startswith("lfs-agent: error: ") and len(err.splitlines()) == 1, err
    assert "internal error" not in err
    for text in expected:
        assert text in err, err


@pytest.mark.parametrize(
    "number",
    ["NaN", "Infinity", "-Infinity", "1e400"],
)
def test_a_metric_that_is_not_a_finite_number_is_refused(tagged, number: str):
    work, bucket = tagged
    record = json.loads((bucket / "meta" / "tags" / "v1.json").read_text())
    text = json.dumps(record).replace('"accuracy": 0.5', f'"accuracy": {number}')
    (bucket / "meta" / "tags" / "v2.json").write_text(text.replace('"v1"', '"v2"'))
    why = "meta/tags/v2.json is not a valid tag record: Input should be a finite number"
    one_line_error(agent("metrics", "show", "v2", cwd=work), why)
    one_line_error(agent("metrics", "diff", "v1", "v2", cwd=work), why)
    listed = agent("metrics", "list", "--sort", "accuracy", cwd=work)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.decode().splitlines()] == ["TAG", "v1"]
    assert f"passed over the bucket's record of v2: {why}" in listed.stderr.decode()


@pytest.mark.parametrize(
    "content",
    [b"[]", b'"a record"', b"\xff\xfe\x00", b'{"tag": "v2"}', b'{"tag": "v2", "commit": 5}'],
)
def test_a_record_of_the_wrong_shape_is_named(tagged, content: bytes):
    work, bucket = tagged
    (bucket / "meta" / "tags" / "v2.json").write_bytes(content)
    one_line_error(
        agent("metrics", "show", "v2", cwd=work), "meta/tags/v2.json is not a valid tag record"
    )
    listed = agent("metrics", "list", cwd=work)
    assert listed.returncode == 0, listed.stderr
    assert "passed over the bucket's record of v2" in listed.stderr.decode()


def test_a_damaged_local_copy_is_passed_over_by_list_and_named_by_show(tagged):
    work, bucket = tagged
    (bucket / "meta" / "tags" / "v1.json").unlink()  # only the local copy is left
    local = work / ".git" / "lfs-agent" / "tags" / "v1.json"
    local.write_text('{"tag": ')
    listed = agent("metrics", "list", cwd=work)
    assert listed.returncode == 0, listed.stderr
    assert "passed over the local copy of v1's record" in listed.stderr.decode()
    assert "internal error" not in listed.stderr.decode()
    one_line_error(agent("metrics", "show", "v1", cwd=work), "is not a valid tag record")


def test_an_unreadable_local_copy_is_one_line(tagged):
    work, bucket = tagged
    (bucket / "meta" / "tags" / "v1.json").unlink()
    local = work / ".git" / "lfs-agent" / "tags" / "v1.json"
    local.unlink()
    local.mkdir()  # where a file should be
    listed = agent("metrics", "list", cwd=work)
    assert listed.returncode == 0, listed.stderr
    assert "passed over the local copy of v1's record: cannot read" in listed.stderr.decode()
    one_line_error(agent("metrics", "show", "v1", cwd=work), "cannot read", "v1.json")
