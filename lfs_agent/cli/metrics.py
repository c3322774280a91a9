"""Metrics records of tags: tag, and metrics show/diff/push/export (list, plot: metrics_view)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lfs_agent.cli.context import (
    EXIT_ERROR,
    Command,
    Context,
    closing,
    human_size,
    shown,
    shown_path,
)
from lfs_agent.errors import ConfigError, LfsAgentError, TransferError

if TYPE_CHECKING:
    from lfs_agent.metrics import LocalRecords, TagRecord

__all__ = [
    "COMMANDS",
    "cmd_metrics_diff",
    "cmd_metrics_export",
    "cmd_metrics_push",
    "cmd_metrics_show",
    "cmd_tag",
]


def _local(ctx: Context) -> LocalRecords:
    from lfs_agent.metrics import local_records

    return local_records(ctx.git)


def _records(
    ctx: Context, tags: list[str] | None = None, invalid: dict[str, ConfigError] | None = None
) -> dict[str, TagRecord]:
    """Records from the bucket (falling back to local copies), by tag (see ``load_records``)."""
    from lfs_agent.metrics import load_records

    local = _local(ctx)
    remote = ctx.remote(required=False)
    with closing(remote):
        return load_records(local, remote, tags, invalid)


def _one_record(ctx: Context, tag: str) -> TagRecord:
    """The record of ``tag``, from the bucket or the local copy (see ``one_record``)."""
    from lfs_agent.metrics import one_record

    local = _local(ctx)
    remote = ctx.remote(required=False)
    with closing(remote):
        return one_record(local, remote, tag)


def add_tag(parser: argparse.ArgumentParser) -> None:
    """``tag NAME [-m MSG] [--metrics FILE] [--metric K=V] [--param K=V] [-f]``."""
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("-m", "--message", metavar="MSG")
    parser.add_argument(
        "--metrics",
        dest="metrics_files",
        action="append",
        metavar="FILE",
        help="JSON or YAML file of (nested) numbers; repeatable",
    )
    parser.add_argument("--metric", action="append", metavar="K=V", help="one number; repeatable")
    parser.add_argument("--param", action="append", metavar="K=V", help="one string; repeatable")
    parser.add_argument("-f", "--force", action="store_true", help="move an existing tag")


def cmd_tag(ctx: Context) -> int:
    """``tag NAME``: an annotated tag at HEAD plus its metrics record in the bucket."""
    from lfs_agent.metrics import push_record_with_objects, tag_head

    args = ctx.args
    record = tag_head(
        ctx.git,
        args.name,
        message=args.message,
        force=args.force,
        metrics_files=[Path(path) for path in args.metrics_files or []],
        metric_pairs=args.metric or [],
        param_pairs=args.param or [],
    )
    local = _local(ctx)
    remote = ctx.remote(required=False)
    summary = (
        f"tagged {args.name} at {record.commit[:12]}: {len(record.metrics)} metric(s), "
        f"{len(record.params)} param(s), {len(record.artifacts)} artifact(s)"
    )
    if remote is None:
        local.save(record, pending=True)
        ctx.say(summary)
        raise ConfigError(
            "no remote configured: the record is kept locally; set one with "
            "'lfs-agent install --remote URL', then run 'lfs-agent metrics push'"
        )
    with remote:
        try:
            push_record_with_objects(ctx.store, remote, record)
        except LfsAgentError as exc:
            local.save(record, pending=True)
            ctx.say(summary)
            raise TransferError(
                f"the tag was created, but its record did not reach {shown(remote.url)}: "
                f"{exc} (run 'lfs-agent metrics push' later)"
            ) from exc
    local.save(record, pending=False)
    ctx.say(summary)
    return 0


def _print_rows(rows: list[list[str]]) -> None:
    """Print rows as left-aligned columns separated by two spaces.

    Cells may come from a bucket's records: they are shown escaped (see
    :func:`~lfs_agent.cli.context.shown`).
    """
    rows = [[shown(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _print_json(data: object) -> None:
    import json

    print(json.dumps(data, indent=2, sort_keys=True))


def add_metrics(parser: argparse.ArgumentParser) -> None:
    """``metrics SUBCOMMAND``: each subcommand's flags and handler."""
    from lfs_agent.cli.metrics_view import add_list, add_plot

    sub = parser.add_subparsers(dest="metrics_command", metavar="SUBCOMMAND", required=True)
    add_list(sub)
    add_plot(sub)
    p = sub.add_parser("show", help="one tag's record")
    p.set_defaults(func=cmd_metrics_show)
    p.add_argument("tag", metavar="TAG")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("diff", help="what changed from one tag to another")
    p.set_defaults(func=cmd_metrics_diff)
    p.add_argument("old", metavar="A")
    p.add_argument("new", metavar="B")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("push", help="upload records that could not be uploaded before")
    p.set_defaults(func=cmd_metrics_push)
    p = sub.add_parser(
        "forget", help="delete a tag's records (its objects may then be garbage-collected)"
    )
    p.set_defaults(func=cmd_metrics_forget)
    p.add_argument("tag", metavar="TAG")
    p = sub.add_parser("export", help="export records to MLflow (one run per tag)")
    p.set_defaults(func=cmd_metrics_export)
    p.add_argument(
        "--mlflow", metavar="URI", help="MLflow tracking server URL ($MLFLOW_TRACKING_URI)"
    )
    p.add_argument("--experiment", default="lfs-agent", help="experiment name (lfs-agent)")
    p.add_argument("tags", metavar="TAG", nargs="*")


def cmd_metrics_show(ctx: Context) -> int:
    """``metrics show TAG``: one tag's record."""
    from lfs_agent.metrics import format_number

    record = _one_record(ctx, ctx.args.tag)
    if ctx.args.json:
        _print_json(record.model_dump())
        return 0
    # Every field comes from the bucket: shown escaped; the message keeps its lines.
    print(
        f"tag     {shown(record.tag)}\ncommit  {shown(record.commit)}\n"
        f"tagger  {shown(record.tagger)}\ndate    {shown(record.tagged_at)}\n"
        f"message {shown(record.message, keep_newlines=True)}"
    )
    print("metrics:")
    for name, value in sorted(record.metrics.items()):
        print(f"  {shown(name)} = {format_number(value)}")
    print("params:")
    for name, text in sorted(record.params.items()):
        print(f"  {shown(name)} = {shown(text)}")
    print("artifacts:")
    for a in record.artifacts:
        print(f"  {shown_path(a.path)}  {shown(a.oid[:12])}  {human_size(a.size)}")
    return 0


def cmd_metrics_diff(ctx: Context) -> int:
    """``metrics diff A B``: metrics, params and artifacts that changed from A to B."""
    from lfs_agent.metrics import diff_records, format_number

    diff = diff_records(_one_record(ctx, ctx.args.old), _one_record(ctx, ctx.args.new))
    if ctx.args.json:
        _print_json(diff)
        return 0
    rows = [["METRIC", ctx.args.old, ctx.args.new, "DELTA"]]
    for name, m in diff["metrics"].items():
        delta = m["delta"]
        sign = "+" if delta is not None and delta > 0 else ""
        rows.append(
            [name, format_number(m["old"]), format_number(m["new"]), sign + format_number(delta)]
        )
    _print_rows(rows)
    for name, p in diff["params"].items():
        print(f"param {shown(name)}: {shown(str(p['old']))} -> {shown(str(p['new']))}")
    for a in diff["artifacts"]:
        old = f"{a['old_oid'][:12]} ({human_size(a['old_size'])})" if a["old_oid"] else "-"
        new = f"{a['new_oid'][:12]} ({human_size(a['new_size'])})" if a["new_oid"] else "-"
        print(f"artifact {shown_path(a['path'])}: {shown(old)} -> {shown(new)}")
    return 0


def cmd_metrics_push(ctx: Context) -> int:
    """``metrics push``: upload records that could not reach the bucket earlier."""
    from lfs_agent.metrics import push_record_with_objects

    local = _local(ctx)
    pending = local.pending()
    if not pending:
        ctx.say("metrics: nothing pending")
        return 0
    with ctx.required_remote() as remote:
        for tag in pending:
            record = local.load(tag)
            if record is None:
                continue
            push_record_with_objects(ctx.store, remote, record)
            local.save(record, pending=False)
            ctx.say(f"pushed the record of {shown(tag)}")
    return 0


def cmd_metrics_forget(ctx: Context) -> int:
    """``metrics forget TAG``: delete a tag's records, in the bucket and here.

    A tag record keeps its artifacts from garbage collection (``gc --remote``) even
    after the git tag is gone; forgetting it lets them go once nothing else reaches them.
    """
    from lfs_agent.metrics import check_name, forget_record

    tag = ctx.args.tag
    check_name("tag", tag)
    with ctx.required_remote() as remote:
        removed = forget_record(remote.collector, tag)
    local = _local(ctx).forget(tag)
    if not removed and not local:
        raise ConfigError(f"no record of tag {tag!r}: 'lfs-agent metrics list' shows them")
    ctx.say(f"forgot the record of {shown(tag)} ({removed} record(s) in the bucket)")
    return 0


def cmd_metrics_export(ctx: Context) -> int:
    """``metrics export --mlflow URI [TAG...]``: one MLflow run per tag."""
    from lfs_agent.mlflow import MlflowExporter, Tracking

    tracking = Tracking.resolve(ctx.args.mlflow, os.environ)
    records = _records(ctx, ctx.args.tags or None)
    if ctx.args.tags:
        missing = sorted(set(ctx.args.tags) - set(records))
        if missing:
            raise ConfigError(f"no metrics record for {', '.join(missing)}")
    exporter = MlflowExporter(
        tracking, ctx.args.experiment, git=ctx.git, bucket_url=ctx.settings.remote
    )
    failed = exporter.export_all(
        [records[tag] for tag in sorted(records)],
        done=lambda line: print(shown(line)),
        failed=lambda line: print(f"lfs-agent: error: {shown(line)}", file=sys.stderr),
    )
    return EXIT_ERROR if failed else 0


#: This group's commands, by name, for the dispatcher.
COMMANDS = {
    "tag": Command("annotated tag at HEAD with a metrics record in the bucket", add_tag, cmd_tag),
    "metrics": Command(
        "metrics records of tags: list, plot, show, diff, push, export", add_metrics, None
    ),
}
