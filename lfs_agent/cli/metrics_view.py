"""Viewing many tags' metrics: ``metrics list`` (table, CSV, Markdown) and ``metrics plot``."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lfs_agent.cli.context import Context, closing, shown
from lfs_agent.errors import ConfigError

if TYPE_CHECKING:
    from lfs_agent.metrics import TagRecord

__all__ = ["add_list", "add_plot", "cmd_metrics_list", "cmd_metrics_plot"]


def _records(ctx: Context, tags: list[str] | None = None) -> list[TagRecord]:
    """Records from the bucket (falling back to local copies), oldest tag first."""
    from lfs_agent.metrics import load_records, local_records

    local = local_records(ctx.git)
    remote = ctx.remote(required=False)
    with closing(remote):
        records = list(load_records(local, remote, tags).values())
    return sorted(records, key=lambda r: (r.tagged_at, r.tag))


def _pick(args: argparse.Namespace, records: list[TagRecord]) -> list[str]:
    """The metric names ``--metric``, ``--keep`` and ``--drop`` pick from ``records``."""
    import re

    from lfs_agent.metrics_table import select_metrics

    try:
        return select_metrics(
            {m for r in records for m in r.metrics}, args.metrics, args.keep, args.drop
        )
    except re.error as exc:
        raise ConfigError(f"--keep/--drop: not a regular expression: {exc}") from None


def _add_columns(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--metric",
        dest="metrics",
        action="append",
        default=[],
        metavar="NAME",
        help="a metric to show: exact name or glob (eval.*); repeatable",
    )
    p.add_argument("--keep", action="append", default=[], metavar="REGEX", help="metrics matching")
    p.add_argument("--drop", action="append", default=[], metavar="REGEX", help="not these")


def add_list(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``metrics list [--metric NAME] [--keep RE] [--drop RE] [--csv|--md|--json]``."""
    p = sub.add_parser("list", help="every tag with its metrics")
    p.set_defaults(func=cmd_metrics_list)
    p.add_argument("--sort", metavar="METRIC", help="highest first by this metric")
    _add_columns(p)
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true")
    form.add_argument("--csv", action="store_true", help="CSV (RFC 4180), every picked column")
    form.add_argument("--md", action="store_true", help="a Markdown table")
    p.add_argument(
        "--width",
        type=int,
        metavar="N",
        help="fit the table in N columns (default: the terminal's; a pipe gets every column)",
    )


def _width(ctx: Context) -> int | None:
    """The widest line the table may print, or None for every column.

    On a terminal, its width (``COLUMNS`` first, as ``shutil`` reads it); in a pipe,
    only a width asked for with ``--width``, so scripts reading the table keep every
    column.
    """
    if ctx.args.width is not None:
        return max(int(ctx.args.width), 1)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def cmd_metrics_list(ctx: Context) -> int:
    """``metrics list``: every tag with its metrics, newest first or sorted by one."""
    import json

    from lfs_agent.metrics import format_number
    from lfs_agent.metrics_table import fit_table, to_csv, to_markdown

    args = ctx.args
    records = _records(ctx)
    if args.sort:
        name = args.sort
        records.sort(key=lambda r: (name not in r.metrics, -r.metrics.get(name, 0.0), r.tag))
    else:
        records.reverse()
    names = _pick(args, records)
    if args.json:
        picked = args.metrics or args.keep or args.drop
        dumped = [r.model_dump() for r in records]
        if picked:
            for d in dumped:
                d["metrics"] = {k: v for k, v in d["metrics"].items() if k in names}
        print(json.dumps(dumped, indent=2, sort_keys=True))
        return 0
    rows = [["TAG", "DATE", "COMMIT", *names]]
    for r in records:
        cells = (format_number(r.metrics.get(m)) for m in names)
        rows.append([r.tag, r.tagged_at[:10], r.commit[:10], *cells])
    if args.csv:
        sys.stdout.write(to_csv(rows))
        return 0
    if args.md:
        sys.stdout.write(to_markdown(rows))
        return 0
    width = _width(ctx)
    # Cells may come from a bucket's records: shown escaped.
    lines, hidden = fit_table([[shown(c) for c in row] for row in rows], width, fixed=3)
    for line in lines:
        print(line)
    if hidden and width is not None:
        note = (
            f"({hidden} more metric column(s) left out; pick with --metric NAME or "
            "--keep REGEX, or use --csv)"
        )
        print(note if len(note) <= width else f"({hidden} more: --metric NAME, --keep RE)"[:width])
    return 0


def add_plot(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``metrics plot [TAG...] --metric NAME [--metric NAME] -o FILE.svg|FILE.html``."""
    p = sub.add_parser("plot", help="chart metrics across tags as SVG or HTML")
    p.set_defaults(func=cmd_metrics_plot)
    p.add_argument("tags", metavar="TAG", nargs="*", help="these tags only (default: all)")
    _add_columns(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="chart.svg or chart.html")
    p.add_argument("--title", help="the chart's title (default: the metric names)")


def cmd_metrics_plot(ctx: Context) -> int:
    """``metrics plot``: metrics across tags, oldest tag first, written as SVG or HTML."""
    from lfs_agent.metrics_plot import render_html, render_svg

    args = ctx.args
    output = Path(args.output)
    if output.suffix.lower() not in (".svg", ".html", ".htm"):
        raise ConfigError(f"{shown(args.output)}: the chart is written as .svg or .html")
    if not (args.metrics or args.keep):
        raise ConfigError("name the metric(s) to plot with --metric NAME (or --keep REGEX)")
    records = _records(ctx, args.tags or None)
    if args.tags:
        missing = sorted(set(args.tags) - {r.tag for r in records})
        if missing:
            raise ConfigError(f"no metrics record for {', '.join(shown(t) for t in missing)}")
    names = _pick(args, records)
    if not names:
        raise ConfigError("no tag has the metric(s) asked for; 'lfs-agent metrics list' names them")
    series = {n: [_as_float(r.metrics.get(n)) for r in records] for n in names}
    title = args.title or ", ".join(names)
    svg = render_svg([r.tag for r in records], series, title)
    text = svg if output.suffix.lower() == ".svg" else render_html(svg, title)
    output.write_text(text, encoding="utf-8")
    print(f"wrote {shown(str(output))}: {len(names)} metric(s) across {len(records)} tag(s)")
    return 0


def _as_float(value: float | None) -> float | None:
    return None if value is None else float(value)
