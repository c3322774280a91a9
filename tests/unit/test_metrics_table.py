"""The metrics list table: picking columns, fitting a width, CSV and Markdown."""

from __future__ import annotations

import csv
import io

from lfs_agent.metrics_table import fit_table, select_metrics, to_csv, to_markdown

NAMES = ["epochs", "eval.accuracy", "eval.loss", "train.loss", "lr"]


def test_every_metric_sorted_when_none_is_picked():
    assert select_metrics(NAMES) == sorted(NAMES)


def test_picked_names_keep_their_order_and_globs_expand_sorted():
    assert select_metrics(NAMES, ["lr", "eval.*", "eval.loss"]) == [
        "lr",
        "eval.accuracy",
        "eval.loss",
    ]
    assert select_metrics(NAMES, ["nothing"]) == []


def test_a_name_with_glob_characters_matches_itself_exactly():
    assert select_metrics(["a[1]", "a1"], ["a[1]"]) == ["a[1]"]


def test_keep_and_drop_are_regexes_over_names():
    assert select_metrics(NAMES, keep=[r"loss$"]) == ["eval.loss", "train.loss"]
    assert select_metrics(NAMES, keep=[r"^eval\."], drop=["acc"]) == ["eval.loss"]
    assert select_metrics(NAMES, ["*"], drop=[r"\."]) == ["epochs", "lr"]


def _rows(metrics: int) -> list[list[str]]:
    header = ["TAG", "DATE", "COMMIT", *(f"metric{i:04d}" for i in range(metrics))]
    row = ["v1.0", "2026-01-01", "abcdef0123", *(str(i / 7) for i in range(metrics))]
    return [header, row]


def test_without_a_width_every_column_is_kept():
    lines, hidden = fit_table(_rows(1200), None, fixed=3)
    assert hidden == 0
    assert lines[0].split() == _rows(1200)[0]


def test_a_width_leaves_out_the_columns_beyond_it():
    lines, hidden = fit_table(_rows(1200), 80, fixed=3)
    assert all(len(line) <= 80 for line in lines)
    kept = lines[0].split()
    assert kept[:3] == ["TAG", "DATE", "COMMIT"]
    assert len(kept) - 3 + hidden == 1200
    assert 0 < len(kept) - 3 < 10
    # The first column left out is one that would not have fitted.
    after = len(kept)
    next_width = max(len(row[after]) for row in _rows(1200))
    assert max(len(line) for line in lines) + 2 + next_width > 80


def test_a_width_narrower_than_the_fixed_columns_cuts_the_lines():
    lines, hidden = fit_table(_rows(3), 12, fixed=3)
    assert hidden == 3
    assert all(len(line) <= 12 for line in lines)
    assert lines[0].endswith("…")


def test_csv_quotes_as_rfc_4180_asks():
    rows = [["TAG", "a,b"], ['say "hi"', "line\nbreak"]]
    text = to_csv(rows)
    assert text == 'TAG,"a,b"\r\n"say ""hi""","line\nbreak"\r\n'
    assert list(csv.reader(io.StringIO(text, newline=""))) == rows


def test_markdown_escapes_pipes_and_keeps_one_line_per_row():
    text = to_markdown([["TAG", "x|y"], ["a\\|b", "two\nlines"]])
    assert text.splitlines() == [
        "| TAG | x\\|y |",
        "|---|---|",
        "| a\\\\\\|b | two lines |",
    ]
