"""``metrics list`` at scale and ``metrics plot``, through the real CLI on a real repo."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import select
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import AGENT, agent, git

SVG = "{http://www.w3.org/2000/svg}"

#: Tags in date order, deliberately not in name order.
TAGS = [("z-old", "2026-01-01T10:00:00Z"), ("<a&b>", "2026-02-01T10:00:00Z")]
TAGS.append(("a-new", "2026-03-01T10:00:00Z"))


@pytest.fixture
def repo(tmp_path: Path, no_git_lfs_path) -> Path:
    """A repo with three tags, each with 300 metrics; the middle one lacks ``eval.loss``."""
    work = tmp_path / "work"
    git("init", "-q", str(work), cwd=tmp_path)
    assert agent("install", "--remote", str(tmp_path / "bucket"), cwd=work).returncode == 0
    for n, (tag, date) in enumerate(TAGS):
        (work / "f.txt").write_text(tag)
        git("add", "-A", cwd=work)
        git("commit", "-qm", tag, cwd=work)
        metrics: dict[str, object] = {f"layer{i:03d}": {"norm": i + n} for i in range(300)}
        metrics["eval"] = {"accuracy": [0.5, 0.7, 0.9][n]}
        if n != 1:
            metrics["eval"]["loss"] = [1.0, None, 0.25][n]  # type: ignore[index]
        (work / "m.json").write_text(json.dumps(metrics))
        env = {**os.environ, "GIT_COMMITTER_DATE": date}
        out = agent("tag", tag, "--metrics", str(work / "m.json"), cwd=work, env=env)
        assert out.returncode == 0, out.stderr
    return work


def _on_a_terminal(*args: str, cwd: Path, columns: int) -> list[str]:
    """The lines ``lfs-agent ARGS`` prints with its stdout on a pseudo-terminal."""
    master, slave = pty.openpty()
    try:
        env = {**os.environ, "COLUMNS": str(columns)}
        done = subprocess.run(
            [*AGENT, *args],
            check=False,
            cwd=cwd,
            stdout=slave,
            stderr=subprocess.PIPE,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        text = b""
        while select.select([master], [], [], 0.5)[0]:
            chunk = os.read(master, 65536)
            if not chunk:
                break
            text += chunk
    finally:
        os.close(master)
        os.close(slave)
    return text.decode().replace("\r\n", "\n").splitlines()


def test_a_terminal_gets_a_table_that_fits_and_a_pipe_every_column(repo: Path):
    fitted = _on_a_terminal("metrics", "list", cwd=repo, columns=100)
    assert all(len(line) <= 100 for line in fitted)
    assert [line.split()[0] for line in fitted[1:4]] == ["a-new", "<a&b>", "z-old"]
    assert "more metric column(s) left out" in fitted[-1] and "--metric" in fitted[-1]
    shown = len(fitted[0].split()) - 3
    assert shown > 0 and fitted[-1].startswith(f"({302 - shown} more")
    env = {**os.environ, "COLUMNS": "100"}
    full = agent("metrics", "list", cwd=repo, env=env)
    assert full.returncode == 0, full.stderr
    lines = full.stdout.decode().splitlines()
    assert len(lines[0].split()) == 3 + 302 and len(lines) == 4
    asked = agent("metrics", "list", "--width", "100", cwd=repo).stdout.decode().splitlines()
    assert asked == fitted


def test_columns_are_picked_by_name_glob_and_regex(repo: Path):
    out = agent("metrics", "list", "--metric", "eval.*", "--drop", "acc", cwd=repo)
    assert out.stdout.decode().splitlines()[0].split() == ["TAG", "DATE", "COMMIT", "eval.loss"]
    out = agent("metrics", "list", "--keep", r"^layer00[12]\.", "--csv", cwd=repo)
    rows = list(csv.reader(io.StringIO(out.stdout.decode(), newline="")))
    assert rows[0] == ["TAG", "DATE", "COMMIT", "layer001.norm", "layer002.norm"]
    assert [r[0] for r in rows[1:]] == ["a-new", "<a&b>", "z-old"]
    assert rows[1][3:] == ["3", "4"]
    md = agent("metrics", "list", "--metric", "eval.loss", "--md", cwd=repo).stdout.decode()
    bad = agent("metrics", "list", "--keep", "(", cwd=repo)
    assert bad.returncode == 2 and b"not a regular expression" in bad.stderr
    assert md.splitlines()[3].startswith("| <a&b> |") and md.splitlines()[3].endswith("| - |")


def test_plot_writes_an_svg_in_tag_date_order_with_a_gap(repo: Path, tmp_path: Path):
    chart = tmp_path / "chart.svg"
    out = agent(
        "metrics", "plot", "--metric", "eval.accuracy", "--metric", "eval.loss",
        "-o", str(chart), cwd=repo,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    root = ET.parse(chart).getroot()
    labels = [t.text for t in root.iter(f"{SVG}text") if t.attrib.get("class") == "xtick"]
    assert labels == ["z-old", "<a&b>", "a-new"]
    groups = {g.attrib["data-metric"]: g for g in root.iter(f"{SVG}g") if "data-metric" in g.attrib}
    (acc,) = groups["eval.accuracy"].iter(f"{SVG}polyline")
    ys = [float(p.split(",")[1]) for p in acc.attrib["points"].split()]
    assert ys[0] > ys[1] > ys[2]  # rising accuracy climbs the chart
    assert len(list(groups["eval.loss"].iter(f"{SVG}polyline"))) == 2  # the gap at <a&b>
    page = tmp_path / "chart.html"
    only = agent(
        "metrics", "plot", "a-new", "z-old", "--metric", "eval.loss", "-o", str(page), cwd=repo
    )
    assert only.returncode == 0, only.stderr
    assert page.read_text().startswith("<!DOCTYPE html>")
    bad = agent("metrics", "plot", "--metric", "eval.loss", "-o", str(tmp_path / "c.png"), cwd=repo)
    assert bad.returncode != 0 and b".svg or .html" in bad.stderr
