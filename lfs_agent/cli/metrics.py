"""Metrics records of tags: tag, and metrics list/show/diff/push/export."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from lfs_agent import log
from lfs_agent.cli.context import Command, Context, human_size, shown, shown_path
from lfs_agent.errors import ConfigError, GitError, LfsAgentError, TransferError

if TYPE_CHECKING:
    from lfs_agent.metrics import LocalRecords, TagRecord
    from lfs_agent.sync import Remote

__all__ = [
    "COMMANDS",
    "cmd_metrics_diff",
    "cmd_metrics_export",
    "cmd_metrics_list",
    "cmd_metrics_push",
    "cmd_metrics_show",
    "cmd_tag",
]

logger = log.get_logger("lfs_agent")


def _record_store(ctx: Context) -> LocalRecords:
    from lfs_agent.metrics import LocalRecords

    return LocalRecords(ctx.git.paths.common_dir / "lfs-agent")


def _push_record_with_objects(ctx: Context, remote: Remote, record: TagRecord) -> None:
    """Make sure the bucket holds every artifact, then store the record there."""
    import time

    from lfs_agent.metrics import push_record
    from lfs_agent.pointer import Pointer

    backend = remote.backend
    for artifact in record.artifacts:
        pointer = Pointer(artifact.oid, artifact.size)
        if artifact.size == 0 or backend.stat(artifact.oid) == artifact.size:
            continue
        if not ctx.store.contains(pointer):
            raise TransferError(
                f"{shown_path(artifact.path)} ({artifact.oid}) is neither in the local store nor "
                f"in {shown(remote.url)}: run 'lfs-agent fetch' or push from a clone that has it"
            )
        remote.upload(ctx.store, pointer)
    push_record(backend, record, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))


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
    from lfs_agent.metrics import build_record, load_metrics_file, parse_pairs

    args, git = ctx.args, ctx.git
    if git.run(["check-ref-format", f"refs/tags/{args.name}"], check=False).returncode:
        raise ConfigError(f"{args.name!r} is not a valid tag name")
    if git.rev_parse("HEAD") is None:
        raise GitError("nothing to tag: this repository has no commits yet")
    if (
        git.run(["rev-parse", "-q", "--verify", f"refs/tags/{args.name}"], check=False).returncode
        == 0
        and not args.force
    ):
        raise ConfigError(
            f"tag {args.name!r} already exists: use --force to move it "
            "(its earlier records are kept)"
        )
    metrics: dict[str, int | float] = {}
    for path in args.metrics_files or []:
        metrics.update(load_metrics_file(Path(path)))
    metrics.update(parse_pairs(args.metric or [], numeric=True))
    params = parse_pairs(args.param or [], numeric=False)
    git.run(
        [
            "tag",
            "-a",
            *(["-f"] if args.force else []),
            "-m",
            args.message or args.name,
            args.name,
            "HEAD",
        ]
    )
    record = build_record(git, args.name, metrics, params)
    local = _record_store(ctx)
    remote = ctx.remote(required=False)
    summary = (
        f"tagged {args.name} at {record.commit[:12]}: {len(record.metrics)} metric(s), "
        f"{len(record.params)} param(s), {len(record.artifacts)} artifact(s)"
    )
    if remote is None:
        local.save(record, pending=True)
        print(summary)
        raise ConfigError(
            "no remote configured: the record is kept locally; set one with "
            "'lfs-agent install --remote URL', then run 'lfs-agent metrics push'"
        )
    try:
        _push_record_with_objects(ctx, remote, record)
    except LfsAgentError as exc:
        local.save(record, pending=True)
        print(summary)
        raise TransferError(
            f"the tag was created, but its record did not reach {shown(remote.url)}: "
            f"{exc} (run 'lfs-agent metrics push' later)"
        ) from exc
    finally:
        remote.close()
    local.save(record, pending=False)
    print(summary)
    return 0


def _load_records(
    ctx: Context, tags: list[str] | None = None, invalid: dict[str, ConfigError] | None = None
) -> dict[str, TagRecord]:
    """Records from the bucket (falling back to local copies), by tag.

    A record in the bucket, or a local copy, that is not a valid one is passed over (the
    others still count): put in ``invalid`` by tag when given (the bucket's reason
    first), else told in a warning.
    """
    from lfs_agent.metrics import fetch_record, remote_tags

    local = _record_store(ctx)
    remote = ctx.remote(required=False)
    found: dict[str, TagRecord] = {}
    try:
        if remote is not None:
            names = tags if tags is not None else sorted(set(remote_tags(remote.backend)))
            for tag in names:
                try:
                    record = fetch_record(remote.backend, tag)
                except ConfigError as exc:  # this record only: damaged, or a newer schema
                    if invalid is None:
                        logger.warning("passed over the bucket's record of %s: %s", tag, exc)
                    else:
                        invalid[tag] = exc
                    continue
                if record is not None:
                    found[tag] = record
    except LfsAgentError as exc:
        logger.warning(
            "cannot read records from %s (%s); using local copies",
            shown(remote.url) if remote else None,
            exc,
        )
    finally:
        if remote is not None:
            remote.close()
    for tag in tags if tags is not None else local.tags():
        if tag in found:
            continue
        try:
            record = local.load(tag)
        except ConfigError as exc:  # this copy only: damaged or unreadable
            if invalid is None:
                logger.warning("passed over the local copy of %s's record: %s", tag, exc)
            else:
                invalid.setdefault(tag, exc)
            continue
        if record is not None:
            found[tag] = record
    return found


def _print_rows(rows: list[list[str]]) -> None:
    """Print rows as left-aligned columns separated by two spaces.

    Cells may come from a bucket's records: they are shown escaped (see :func:`_shown`).
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
    sub = parser.add_subparsers(dest="metrics_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("list", help="every tag with its metrics")
    p.set_defaults(func=cmd_metrics_list)
    p.add_argument("--sort", metavar="METRIC", help="highest first by this metric")
    p.add_argument("--json", action="store_true")
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
    p = sub.add_parser("export", help="export records to MLflow (one run per tag)")
    p.set_defaults(func=cmd_metrics_export)
    p.add_argument("--mlflow", required=True, metavar="URI", help="MLflow tracking server URL")
    p.add_argument("--experiment", default="lfs-agent", help="experiment name (lfs-agent)")
    p.add_argument("tags", metavar="TAG", nargs="*")


def cmd_metrics_list(ctx: Context) -> int:
    """``metrics list``: every tag with its metrics, newest first or sorted by one."""
    from lfs_agent.metrics import format_number

    records = list(_load_records(ctx).values())
    if ctx.args.sort:
        name = ctx.args.sort
        records.sort(key=lambda r: (name not in r.metrics, -r.metrics.get(name, 0.0), r.tag))
    else:
        records.sort(key=lambda r: (r.tagged_at, r.tag), reverse=True)
    if ctx.args.json:
        _print_json([r.model_dump() for r in records])
        return 0
    names = sorted({m for r in records for m in r.metrics})
    rows = [["TAG", "DATE", "COMMIT", *names]]
    for r in records:
        rows.append(
            [
                r.tag,
                r.tagged_at[:10],
                r.commit[:10],
                *(format_number(r.metrics.get(m)) for m in names),
            ]
        )
    _print_rows(rows)
    return 0


def _one_record(ctx: Context, tag: str) -> TagRecord:
    invalid: dict[str, ConfigError] = {}
    record = _load_records(ctx, [tag], invalid).get(tag)
    if tag in invalid:
        if record is None:
            raise invalid[tag]
        logger.warning("using the local copy of %s's record: %s", tag, invalid[tag])
    if record is None:
        raise ConfigError(f"no metrics record for tag {tag!r} (locally or in the bucket)")
    return record


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
    local = _record_store(ctx)
    pending = local.pending()
    if not pending:
        print("metrics: nothing pending")
        return 0
    remote = ctx.required_remote()
    try:
        for tag in pending:
            record = local.load(tag)
            if record is None:
                continue
            _push_record_with_objects(ctx, remote, record)
            local.save(record, pending=False)
            print(f"pushed the record of {shown(tag)}")
    finally:
        remote.close()
    return 0


def cmd_metrics_export(ctx: Context) -> int:
    """``metrics export --mlflow URI [TAG...]``: one MLflow run per tag."""
    from lfs_agent.mlflow import MlflowExporter

    records = _load_records(ctx, ctx.args.tags or None)
    if ctx.args.tags:
        missing = sorted(set(ctx.args.tags) - set(records))
        if missing:
            raise ConfigError(f"no metrics record for {', '.join(missing)}")
    exporter = MlflowExporter(ctx.args.mlflow, ctx.args.experiment)
    for tag in sorted(records):
        run_id, created = exporter.export(records[tag])
        print(f"{shown(tag)}: {'created' if created else 'updated'} MLflow run {shown(run_id)}")
    return 0


#: This group's commands, by name, for the dispatcher.
COMMANDS = {
    "tag": Command("annotated tag at HEAD with a metrics record in the bucket", add_tag, cmd_tag),
    "metrics": Command(
        "metrics records of tags: list, show, diff, push, export", add_metrics, None
    ),
}
