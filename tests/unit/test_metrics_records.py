"""Metrics records: flattening, parsing, diffs and number formatting."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from lfs_agent.errors import ConfigError
from lfs_agent.metrics import (
    Artifact,
    TagRecord,
    diff_records,
    flatten_metrics,
    format_number,
    load_metrics_file,
    parse_pairs,
)


def test_nested_metrics_flatten_with_dots():
    assert flatten_metrics({"eval": {"acc": 0.9, "f1": {"macro": 0.7}}, "n": 3}, "m.json") == {
        "eval.acc": 0.9,
        "eval.f1.macro": 0.7,
        "n": 3,
    }


@pytest.mark.parametrize(
    "bad", [{"a": "high"}, {"a": True}, {"a": [1, 2]}, {"a": float("nan")}, [1]]
)
def test_non_numbers_are_refused_with_their_name(bad):
    with pytest.raises(ConfigError, match=r"m\.json"):
        flatten_metrics(bad, "m.json")


def test_metrics_files_json_yaml_and_errors(tmp_path: Path):
    (tmp_path / "m.yaml").write_text("eval:\n  acc: 0.9\nloss: 1\n")
    assert load_metrics_file(tmp_path / "m.yaml") == {"eval.acc": 0.9, "loss": 1}
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        load_metrics_file(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="does not exist"):
        load_metrics_file(tmp_path / "missing.json")


def test_pairs():
    assert parse_pairs(["a=1", "b=0.5", "c=-2"], numeric=True) == {"a": 1, "b": 0.5, "c": -2}
    assert parse_pairs(["lr=0.01", "opt=adam=w"], numeric=False) == {"lr": "0.01", "opt": "adam=w"}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_pairs(["novalue"], numeric=False)
    with pytest.raises(ConfigError, match="'acc' is not a number"):
        parse_pairs(["acc=high"], numeric=True)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.87, "0.87"),
        (10, "10"),
        (10.0, "10"),
        (None, "-"),
        (Decimal("0.060"), "0.06"),
        (Decimal("100"), "100"),
        (1e-7, "1e-07"),
    ],
)
def test_numbers_print_without_float_noise(value, text):
    assert format_number(value) == text


def record(tag: str, metrics, params, artifacts) -> TagRecord:
    return TagRecord(
        tag=tag,
        commit="c" * 40,
        metrics=metrics,
        params=params,
        artifacts=[Artifact(path=p, oid=o * 64, size=s) for p, o, s in artifacts],
    )


def test_diff_is_exact_and_lists_changes_only():
    old = record(
        "v1",
        {"acc": 0.81, "loss": 0.5, "gone": 1},
        {"lr": "0.01", "bs": "32"},
        [("m.h5", "a", 10), ("same.h5", "b", 5), ("old.h5", "c", 1)],
    )
    new = record(
        "v2",
        {"acc": 0.87, "loss": 0.41, "new": 2},
        {"lr": "0.005", "bs": "32"},
        [("m.h5", "d", 12), ("same.h5", "b", 5), ("added.h5", "e", 3)],
    )
    diff = diff_records(old, new)
    assert diff["metrics"] == {
        "acc": {"old": 0.81, "new": 0.87, "delta": 0.06},
        "gone": {"old": 1, "new": None, "delta": None},
        "loss": {"old": 0.5, "new": 0.41, "delta": -0.09},
        "new": {"old": None, "new": 2, "delta": None},
    }
    assert diff["params"] == {"lr": {"old": "0.01", "new": "0.005"}}
    assert [a["path"] for a in diff["artifacts"]] == ["added.h5", "m.h5", "old.h5"]
    assert diff["artifacts"][1] == {
        "path": "m.h5",
        "old_oid": "a" * 64,
        "new_oid": "d" * 64,
        "old_size": 10,
        "new_size": 12,
    }


def test_records_from_the_future_are_refused():
    data = record("v1", {}, {}, []).model_copy(update={"schema_version": 99}).to_json()
    with pytest.raises(ConfigError, match="upgrade lfs-agent"):
        TagRecord.from_json(data, "meta/tags/v1.json")


def test_unreadable_files_bad_yaml_and_infinite_numbers_are_named(tmp_path: Path):
    (tmp_path / "bad.yaml").write_text("eval: [1, 2\n")
    with pytest.raises(ConfigError, match=r"metrics file .*bad\.yaml is not valid YAML"):
        load_metrics_file(tmp_path / "bad.yaml")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(ConfigError, match=r"cannot read metrics file .*dir\.json: Is a directory"):
        load_metrics_file(tmp_path / "dir.json")
    with pytest.raises(ConfigError, match="'acc' is not a finite number: 'inf'"):
        parse_pairs(["acc=inf"], numeric=True)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b'{"tag": 5', "meta/tags/v.json is not a valid tag record: Invalid JSON"),
        (b"[1]", "meta/tags/v.json is not a valid tag record: Input should be an object"),
        (
            b'{"schema_version": 99, "tag": "v", "commit": "' + b"c" * 40 + b'"}',
            "meta/tags/v.json uses record schema 99; upgrade lfs-agent",
        ),
    ],
)
def test_a_stored_record_this_version_cannot_read_is_refused_by_name(data, text):
    with pytest.raises(ConfigError, match=text):
        TagRecord.from_json(data, "meta/tags/v.json")
