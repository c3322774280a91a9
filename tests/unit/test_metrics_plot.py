"""The metrics chart: SVG that parses, points in tag order, gaps, labels, escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from lfs_agent.metrics_plot import nice_ticks, render_html, render_svg

SVG = "{http://www.w3.org/2000/svg}"


def _points(polyline: ET.Element) -> list[tuple[float, float]]:
    pairs = (p.split(",") for p in polyline.attrib["points"].split())
    return [(float(x), float(y)) for x, y in pairs]


def _series(root: ET.Element) -> dict[str, ET.Element]:
    return {g.attrib["data-metric"]: g for g in root.iter(f"{SVG}g") if "data-metric" in g.attrib}


def test_points_follow_the_tags_left_to_right_and_higher_values_sit_higher():
    root = ET.fromstring(render_svg(["v1", "v2", "v3"], {"acc": [0.5, 0.9, 0.7]}))
    (line,) = _series(root)["acc"].iter(f"{SVG}polyline")
    points = _points(line)
    xs = [x for x, _ in points]
    assert xs == sorted(xs) and len(set(xs)) == 3
    ys = [y for _, y in points]
    assert ys[1] < ys[2] < ys[0]  # SVG's y grows downwards
    assert len(list(_series(root)["acc"].iter(f"{SVG}circle"))) == 3


def test_a_missing_value_leaves_a_gap():
    root = ET.fromstring(render_svg(["a", "b", "c", "d"], {"loss": [1.0, 2.0, None, 3.0]}))
    group = _series(root)["loss"]
    runs = [_points(p) for p in group.iter(f"{SVG}polyline")]
    assert [len(r) for r in runs] == [2, 1]
    assert len(list(group.iter(f"{SVG}circle"))) == 3


def test_labels_legend_title_and_ticks():
    svg = render_svg(["v1.0", "v2.0"], {"eval.loss": [0.5, 0.41], "lr": [0.01, 0.005]}, "Runs")
    root = ET.fromstring(svg)
    texts = {t.attrib.get("class"): [] for t in root.iter(f"{SVG}text")}
    for t in root.iter(f"{SVG}text"):
        texts[t.attrib.get("class")].append(t.text)
    assert texts["xtick"] == ["v1.0", "v2.0"]
    assert texts["title"] == ["Runs"]
    assert set(texts[None]) >= {"eval.loss", "lr"}  # the legend
    ticks = [float(t) for t in texts["ytick"]]
    assert ticks == sorted(ticks) and ticks[0] <= 0.005 and ticks[-1] >= 0.5
    assert all(len(t) <= 8 for t in texts["ytick"])  # 0.1, not 0.10000000000000002


def test_long_tag_labels_are_rotated():
    root = ET.fromstring(render_svg(["release-2026-01", "x"], {"m": [1, 2]}))
    labels = [t for t in root.iter(f"{SVG}text") if t.attrib.get("class") == "xtick"]
    assert all("rotate(" in t.attrib["transform"] for t in labels)


def test_text_from_records_is_escaped():
    svg = render_svg(["<a&b>", "ok"], {'m"<x>': [1.0, 2.0]}, "<title&>")
    root = ET.fromstring(svg)
    labels = [t.text for t in root.iter(f"{SVG}text") if t.attrib.get("class") == "xtick"]
    assert labels == ["<a&b>", "ok"]
    assert "<a&b>" not in svg
    assert set(_series(root)) == {'m"<x>'}
    page = render_html(svg, "<title&>")
    assert "<title>&lt;title&amp;&gt;</title>" in page and svg in page


def test_no_values_still_draws_axes():
    root = ET.fromstring(render_svg(["v1"], {"m": [None]}))
    assert not list(root.iter(f"{SVG}polyline"))


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0.41, 0.87) == [0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(3, 3)[0] < 3 < nice_ticks(3, 3)[-1]
    ticks = nice_ticks(-1200, 5000)
    assert ticks[0] <= -1200 and ticks[-1] >= 5000
