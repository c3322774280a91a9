"""Looking at the repository and its store: ls-files, status, fsck, prune."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lfs_agent.cli.context import (
    Command,
    Context,
    closing,
    human_size,
    shown,
    shown_path,
)
from lfs_agent.cli.jsondoc import add_json
from lfs_agent.errors import ConfigError
from lfs_agent.pointer import SPEC_URL

if TYPE_CHECKING:
    from lfs_agent.scan import PointerFile

__all__ = ["COMMANDS", "cmd_fsck", "cmd_ls_files", "cmd_prune", "cmd_status"]


def add_ls_files(parser: argparse.ArgumentParser) -> None:
    """``ls-files [REF] [-l] [-s] [-n] [-d] [-a] [--deleted] [-I P] [-X P] [--json]``."""
    parser.add_argument("ref", metavar="REF", nargs="?")
    parser.add_argument("-l", "--long", action="store_true", help="full oids")
    parser.add_argument("-s", "--size", action="store_true", help="show sizes")
    parser.add_argument("-n", "--name-only", action="store_true", help="paths only")
    parser.add_argument("-d", "--debug", action="store_true", help="every field, one a line")
    parser.add_argument("-a", "--all", action="store_true", help="every ref's history")
    parser.add_argument("--deleted", action="store_true", help="REF's whole history")
    parser.add_argument("-I", "--include", action="append", default=[], metavar="PATTERN")
    parser.add_argument("-X", "--exclude", action="append", default=[], metavar="PATTERN")
    add_json(parser)


def _listed(ctx: Context) -> list[PointerFile]:
    """The files ``ls-files`` shows, in git-lfs's order, filtered by -I/-X."""
    from lfs_agent.pathmatch import PathFilter
    from lfs_agent.scan import history_pointers, tree_pointers

    ref = ctx.args.ref or "HEAD"
    if ctx.git.rev_parse(ref) is None:
        if ctx.args.ref:
            raise ConfigError(f"unknown revision {ref!r}")
        return []
    if ctx.args.all:
        files = history_pointers(ctx.git, None)
    elif ctx.args.deleted:
        files = history_pointers(ctx.git, ref)
    else:
        files = sorted(tree_pointers(ctx.git, ref), key=lambda f: f.path)
    # git-lfs takes comma-separated lists, and the flags repeat.
    split = [p for arg in ctx.args.include for p in arg.split(",")]
    path_filter = PathFilter(split, [p for arg in ctx.args.exclude for p in arg.split(",")])
    return [f for f in files if path_filter.allows(f.path)]


def _checked_out(ctx: Context, f: PointerFile) -> bool:
    """git-lfs's test: the work-tree file exists with the object's size."""
    top = ctx.git.paths.work_tree
    if top is None:
        return False
    try:
        return (top / f.path).stat().st_size == f.pointer.size
    except OSError:
        return False


def cmd_ls_files(ctx: Context) -> int:
    """``ls-files [REF]``: LFS files at REF (HEAD), ``*`` when checked out."""
    files = _listed(ctx)
    if ctx.args.json:
        from lfs_agent.reports import LsFilesEntry, LsFilesReport, dump_go_json

        entries = [
            LsFilesEntry(
                name=f.path,
                size=f.pointer.size,
                checkout=_checked_out(ctx, f),
                downloaded=ctx.store.contains(f.pointer),
                oid_type="sha256",
                oid=f.pointer.oid,
                version=SPEC_URL,
            )
            for f in files
        ]
        print(dump_go_json(LsFilesReport(files=entries or None)))
        return 0
    for f in files:
        if ctx.args.debug:
            print(
                f"filepath: {shown_path(f.path)}\n    size: {f.pointer.size}\n"
                f"checkout: {str(_checked_out(ctx, f)).lower()}\n"
                f"download: {str(ctx.store.contains(f.pointer)).lower()}\n"
                f"     oid: sha256 {f.pointer.oid}\n version: {SPEC_URL}\n"
            )
            continue
        size = f" ({human_size(f.pointer.size)})" if ctx.args.size else ""
        if ctx.args.name_only:
            print(f"{shown_path(f.path)}{size}")
            continue
        oid = f.pointer.oid if ctx.args.long else f.pointer.oid[:10]
        mark = "*" if _checked_out(ctx, f) else "-"
        print(f"{oid} {mark} {shown_path(f.path)}{size}")
    return 0


def add_status(parser: argparse.ArgumentParser) -> None:
    """``status [--json]``."""
    add_json(parser)


def cmd_status(ctx: Context) -> int:
    """``status``: LFS objects to push, staged, and modified."""
    from lfs_agent.scan import lfs_status

    status = lfs_status(ctx.git)
    if ctx.args.json:
        from lfs_agent.reports import StatusEntry, StatusReport

        def entries(files: list[PointerFile]) -> list[StatusEntry]:
            return [StatusEntry(name=f.path, oid=f.pointer.oid, size=f.pointer.size) for f in files]

        report = StatusReport(
            branch=status.branch,
            upstream=status.upstream,
            to_push=None if status.to_push is None else entries(status.to_push),
            staged=entries(status.staged),
            unstaged=entries(status.unstaged),
        )
        print(report.model_dump_json(indent=2))
        return 0
    print(f"On branch {shown(status.branch) or '(detached HEAD)'}")
    if status.to_push is not None:
        print(f"\nObjects to be pushed to {shown(status.upstream) or 'the remote'}:")
        for f in status.to_push:
            print(f"\t{shown_path(f.path)} ({f.pointer.oid[:10]}, {human_size(f.pointer.size)})")
    print("\nObjects to be committed:")
    for f in status.staged:
        print(f"\t{shown_path(f.path)} (LFS: {f.pointer.oid[:10]})")
    print("\nObjects not staged for commit:")
    for f in status.unstaged:
        print(f"\t{shown_path(f.path)} (LFS: {f.pointer.oid[:10]})")
    return 0


def add_fsck(parser: argparse.ArgumentParser) -> None:
    """``fsck [--remote [--deep] [--all]]``."""
    parser.add_argument(
        "--remote",
        dest="remote_check",
        action="store_true",
        help="check the bucket holds every object reachable from HEAD",
    )
    parser.add_argument("--deep", action="store_true", help="with --remote: download and hash too")
    parser.add_argument(
        "--all",
        dest="every_ref",
        action="store_true",
        help="with --remote: every ref's history and every tag record, not only HEAD's",
    )
    add_json(parser)


def cmd_fsck(ctx: Context) -> int:
    """``fsck [--remote] [--deep]``: check objects locally and on the remote."""
    from lfs_agent.maintenance import fsck

    remote = ctx.required_remote() if ctx.args.remote_check else None
    with closing(remote):
        report = fsck(ctx.git, ctx.store, remote, deep=ctx.args.deep, every_ref=ctx.args.every_ref)
    if ctx.args.json:
        from lfs_agent.reports import FsckReport

        document = FsckReport(
            ok=report.ok,
            checked=report.checked,
            corrupt=report.corrupt,
            missing=report.missing,
            non_canonical=report.non_canonical,
            remote=remote.url if remote else None,
            remote_problems=report.remote_problems,
        )
        print(document.model_dump_json(indent=2))
        return 0 if report.ok else 1
    for line in report.corrupt:
        print(f"objects: corruptObject: {shown(line)}")
    for line in report.missing:
        print(f"objects: missing: {shown(line)}")
    for line in report.non_canonical:
        print(f"pointer: nonCanonicalPointer: {shown(line)}")
    for line in report.remote_problems:
        print(f"remote: {shown(line)}")
    if report.ok:
        print(
            f"fsck: {report.checked} local object(s) OK"
            + (f"; {shown(remote.url)} holds every object reachable from HEAD" if remote else "")
        )
        return 0
    return 1


def add_prune(parser: argparse.ArgumentParser) -> None:
    """``prune [-d|--dry-run] [--recent | --policy POLICY]``."""
    parser.add_argument("-d", "--dry-run", action="store_true", help="only say what would go")
    keep = parser.add_mutually_exclusive_group()
    keep.add_argument(
        "--recent",
        action="store_true",
        help="prune the objects of recent refs and commits too: keep only the current "
        "checkout, the index, stashes and unpushed commits (as git lfs prune --recent)",
    )
    keep.add_argument(
        "--policy",
        metavar="POLICY",
        help="instead of git-lfs's recent rules, keep what POLICY keeps of every branch, "
        "tag and remote-tracking ref: history, tips+tags or recent:<N>d",
    )


def cmd_prune(ctx: Context) -> int:
    """``prune``: delete local objects no rule keeps that are pushed and in the bucket."""
    from lfs_agent.maintenance import prune
    from lfs_agent.retention import Policy, PruneRules

    keep: Policy | PruneRules
    if ctx.args.policy is not None:
        keep = Policy.parse(ctx.args.policy)
    else:
        keep = PruneRules.read(ctx.git)
        if ctx.args.recent:
            keep = keep.without_recent()
    with ctx.required_remote() as remote:
        report = prune(
            ctx.git,
            ctx.store,
            remote,
            dry_run=ctx.args.dry_run,
            keep=keep,
            exclude=ctx.settings.fetch_exclude,
        )
    verb = "would prune" if ctx.args.dry_run else "pruned"
    freed = sum(p.size for p in report.pruned)
    for pointer in report.pruned:
        print(f"{verb} {pointer.oid} ({human_size(pointer.size)})")
    ctx.say(
        f"prune: {verb} {len(report.pruned)} object(s), {human_size(freed)}; kept "
        f"{report.kept_in_use} in use or recent, and {len(report.kept_unpushed)} unused "
        f"object(s) not yet pushed (to the git remote or {shown(remote.url)})"
    )
    if report.temp_files_removed or report.upload_states_removed:
        ctx.say(
            f"prune: removed {report.temp_files_removed} stale temp file(s) and "
            f"{report.upload_states_removed} dead S3 upload state(s)"
        )
    return 0


#: This group's commands, by name, for the dispatcher.
COMMANDS = {
    "ls-files": Command("list LFS files at REF (default HEAD)", add_ls_files, cmd_ls_files),
    "status": Command("LFS objects to push, staged and modified", add_status, cmd_status),
    "fsck": Command("verify local objects (and the remote's with --remote)", add_fsck, cmd_fsck),
    "prune": Command(
        "delete local objects no current or recent work uses, once safely in the bucket",
        add_prune,
        cmd_prune,
    ),
}
