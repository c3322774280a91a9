"""Garbage collection of the bucket: ``gc --remote``, ``--refresh``, ``--undo``; ``repos``."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from lfs_agent.cli.context import Command, Context, human_size, shown
from lfs_agent.cli.jsondoc import add_json
from lfs_agent.errors import ConfigError

if TYPE_CHECKING:
    from lfs_agent.collect import GcRun
    from lfs_agent.gcrecords import Snapshot

__all__ = ["COMMANDS", "cmd_gc", "cmd_repos"]

#: Defaults: objects younger than the grace period are never condemned; a condemned
#: list waits the sweep delay (the longest push) before it is swept.
DEFAULT_GRACE = "14d"
DEFAULT_SWEEP_AFTER = "24h"


def add_gc(parser: argparse.ArgumentParser) -> None:
    """``gc --remote|--refresh|--undo RUN``, with ``--dry-run --policy --grace --sweep-after``."""
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--remote",
        dest="collect",
        action="store_true",
        help="collect the bucket: sweep what an earlier run condemned, condemn anew",
    )
    what.add_argument(
        "--refresh",
        action="store_true",
        help="re-publish which objects this repository reaches (after deleting branches)",
    )
    what.add_argument("--undo", metavar="RUN", help="bring back what run RUN deleted")
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would be condemned and deleted"
    )
    parser.add_argument(
        "--policy",
        metavar="POLICY",
        help="what this repository keeps: history (default), tips+tags or recent:<N>d",
    )
    parser.add_argument(
        "--grace",
        metavar="AGE",
        default=DEFAULT_GRACE,
        help=f"never condemn objects younger than this (default {DEFAULT_GRACE})",
    )
    parser.add_argument(
        "--sweep-after",
        metavar="AGE",
        default=DEFAULT_SWEEP_AFTER,
        help=f"least wait between condemning and deleting (default {DEFAULT_SWEEP_AFTER})",
    )
    parser.add_argument(
        "--git-remote",
        metavar="NAME",
        default="origin",
        help="the git remote whose refs this repository's roots come from (default origin)",
    )
    add_json(parser)


def cmd_gc(ctx: Context) -> int:
    """``gc``: collect the bucket, refresh this repository's roots, or undo a run."""
    from lfs_agent.collect import GcOptions, collect, undo
    from lfs_agent.registry import RepoIdentity, publish_snapshot, repository_id
    from lfs_agent.retention import parse_days

    args = ctx.args
    if args.undo:
        with ctx.required_remote() as remote:
            done = undo(remote.collector, args.undo)
        ctx.say(f"restored {len(done.restored)} object(s) deleted by run {args.undo}")
        if done.lost:
            ctx.note(f"lfs-agent: {len(done.lost)} could not be restored (versions expired)")
            return 1
        return 0
    policy = ctx.retention_policy(args.policy)
    grace = parse_days(args.grace, "--grace")
    sweep_after = parse_days(args.sweep_after, "--sweep-after")
    with ctx.required_remote() as remote:
        collector = remote.collector
        name = args.git_remote
        has_remote = name in ctx.git.output(["remote"]).split()
        if args.refresh:
            if not has_remote:
                raise ConfigError(
                    f"no git remote {name!r}: name the remote this repository pushes to "
                    "with --git-remote NAME"
                )
            repo = repository_id(ctx.git, name)
            snap = publish_snapshot(ctx.git, collector, name, repo, policy, write=not args.dry_run)
            _said_refresh(ctx, snap)
            return 0

        def refresh(write: bool) -> Snapshot | None:
            if not has_remote:
                return None
            repo: RepoIdentity = repository_id(ctx.git, name)
            return publish_snapshot(ctx.git, collector, name, repo, policy, write=write)

        options = GcOptions(grace=grace, sweep_after=sweep_after, dry_run=args.dry_run)
        report = collect(collector, options, refresh)
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0
    _said_run(ctx, report)
    return 0


def _said_refresh(ctx: Context, snap: Snapshot) -> None:
    verb = "would publish" if ctx.args.dry_run else "published"
    if ctx.args.json:
        print(snap.model_dump_json(indent=2, exclude={"oids"}))
        return
    ctx.say(
        f"{verb} the roots of {shown(snap.url)} ({snap.repo}): {len(snap.oids)} object(s) "
        f"kept by policy {snap.policy} from {len(snap.refs)} ref(s)"
    )


def _said_run(ctx: Context, report: GcRun) -> None:
    would = "would " if report.dry_run else ""
    ctx.say(
        f"roots: {report.repositories} repositor{'y' if report.repositories == 1 else 'ies'}, "
        f"{report.tag_records} tag record(s), {report.reachable} object(s) reachable"
    )
    swept = (
        f"{would}delete {len(report.deleted)} object(s) ({human_size(report.deleted_bytes)}) "
        f"condemned by run {report.swept_run}; {report.spared} spared (reachable again or "
        "rewritten since)"
    )
    condemned = (
        f"{would}condemn {len(report.condemned)} unreachable object(s) "
        f"({human_size(report.condemned_bytes)}) older than {ctx.args.grace}"
    )
    if report.swept_run and report.swept_run != report.run:
        ctx.say(swept)  # an earlier run's list, swept before this run condemned anew
    if report.condemned:
        ctx.say(condemned)
    if report.swept_run == report.run:
        ctx.say(swept)  # --sweep-after 0: this run's own list, at once
    if not report.swept_run and not report.condemned and report.sweep_due is None:
        ctx.say("nothing to collect")
    if report.sweep_due is not None:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(report.sweep_due))
        ctx.say(f"the condemned objects may be deleted by 'lfs-agent gc --remote' after {when}")
    if not report.dry_run:
        ctx.say(f"run {report.run}")
        if report.deleted and not report.versioned:
            ctx.note(
                "lfs-agent: the bucket keeps no earlier versions: these deletions cannot "
                "be undone (see docs/gc.md, bucket versioning)"
            )


def add_repos(parser: argparse.ArgumentParser) -> None:
    """``repos list [--json]`` and ``repos forget ID``."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="repositories registered in the bucket")
    add_json(listing)
    forget = sub.add_parser("forget", help="drop a repository's records (its objects may go)")
    forget.add_argument("repo_id", metavar="ID")


def cmd_repos(ctx: Context) -> int:
    """``repos list|forget``: the repositories registered in the bucket."""
    import json

    from lfs_agent.collect import forget_repository
    from lfs_agent.registry import load_repositories

    with ctx.required_remote() as remote:
        collector = remote.collector
        if ctx.args.action == "forget":
            removed = forget_repository(collector, ctx.args.repo_id)
            ctx.say(f"forgot repository {ctx.args.repo_id} ({removed} record(s) deleted)")
            return 0
        from lfs_agent.retention import parse_days

        repos = load_repositories(collector, parse_days(DEFAULT_SWEEP_AFTER, "sweep delay"))
    rows = [
        {
            "id": r.id,
            "url": shown(r.url),
            "policy": r.snapshot.policy if r.snapshot else None,
            "refreshed": r.snapshot.basis if r.snapshot else None,
            "last_push": r.last_push,
            "push_records": len(r.pushes),
            "objects": len(r.oids()),
        }
        for r in repos
    ]
    if getattr(ctx.args, "json", False):
        print(json.dumps({"repositories": rows}, indent=2))
        return 0
    if not rows:
        ctx.say("no repository is registered (a push or 'lfs-agent gc --refresh' registers one)")
    for row in rows:
        refreshed = (
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(row["refreshed"])))
            if row["refreshed"]
            else "never refreshed"
        )
        ctx.say(
            f"{row['id']}  {row['url']}  policy {row['policy'] or '-'}  {refreshed}  "
            f"{row['objects']} object(s)"
        )
    return 0


#: This group's commands, by name, for the dispatcher.
COMMANDS = {
    "gc": Command(
        "collect the bucket: delete objects no repository or tag record reaches",
        add_gc,
        cmd_gc,
    ),
    "repos": Command("list or forget repositories registered in the bucket", add_repos, cmd_repos),
}
