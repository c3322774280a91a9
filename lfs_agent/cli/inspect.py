"""Looking at the repository and its store: ls-files, status, fsck, prune."""

from __future__ import annotations

import argparse

from lfs_agent.cli.context import (
    Command,
    Context,
    closing,
    human_size,
    no_arguments,
    shown,
    shown_path,
)
from lfs_agent.errors import ConfigError

__all__ = ["COMMANDS", "cmd_fsck", "cmd_ls_files", "cmd_prune", "cmd_status"]


def add_ls_files(parser: argparse.ArgumentParser) -> None:
    """``ls-files [REF] [-l] [-s] [-n]``."""
    parser.add_argument("ref", metavar="REF", nargs="?")
    parser.add_argument("-l", "--long", action="store_true", help="full oids")
    parser.add_argument("-s", "--size", action="store_true", help="show sizes")
    parser.add_argument("-n", "--name-only", action="store_true", help="paths only")


def cmd_ls_files(ctx: Context) -> int:
    """``ls-files [REF]``: LFS files at REF (HEAD), ``*`` when the object is local."""
    from lfs_agent.scan import tree_pointers

    ref = ctx.args.ref or "HEAD"
    if ctx.git.rev_parse(ref) is None:
        if ctx.args.ref:
            raise ConfigError(f"unknown revision {ref!r}")
        return 0
    for f in sorted(tree_pointers(ctx.git, ref), key=lambda f: f.path):
        size = f" ({human_size(f.pointer.size)})" if ctx.args.size else ""
        if ctx.args.name_only:
            print(f"{shown_path(f.path)}{size}")
            continue
        oid = f.pointer.oid if ctx.args.long else f.pointer.oid[:10]
        mark = "*" if ctx.store.contains(f.pointer) else "-"
        print(f"{oid} {mark} {shown_path(f.path)}{size}")
    return 0


def cmd_status(ctx: Context) -> int:
    """``status``: LFS objects to push, staged, and modified."""
    from lfs_agent.scan import lfs_status

    status = lfs_status(ctx.git)
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
    """``fsck [--remote] [--deep]``."""
    parser.add_argument(
        "--remote",
        dest="remote_check",
        action="store_true",
        help="check the bucket holds every object reachable from HEAD",
    )
    parser.add_argument("--deep", action="store_true", help="with --remote: download and hash too")


def cmd_fsck(ctx: Context) -> int:
    """``fsck [--remote] [--deep]``: check objects locally and on the remote."""
    from lfs_agent.maintenance import fsck

    remote = ctx.required_remote() if ctx.args.remote_check else None
    with closing(remote):
        report = fsck(ctx.git, ctx.store, remote, deep=ctx.args.deep)
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
    """``prune [--dry-run]``."""
    parser.add_argument("--dry-run", action="store_true", help="only say what would go")


def cmd_prune(ctx: Context) -> int:
    """``prune [--dry-run]``: delete local objects that are unused and pushed."""
    from lfs_agent.maintenance import prune

    with ctx.required_remote() as remote:
        report = prune(ctx.git, ctx.store, remote, dry_run=ctx.args.dry_run)
    verb = "would prune" if ctx.args.dry_run else "pruned"
    freed = sum(p.size for p in report.pruned)
    for pointer in report.pruned:
        print(f"{verb} {pointer.oid} ({human_size(pointer.size)})")
    ctx.say(
        f"prune: {verb} {len(report.pruned)} object(s), {human_size(freed)}; kept "
        f"{len(report.kept_unpushed)} unused object(s) not on {shown(remote.url)}"
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
    "status": Command("LFS objects to push, staged and modified", no_arguments, cmd_status),
    "fsck": Command("verify local objects (and the remote's with --remote)", add_fsck, cmd_fsck),
    "prune": Command(
        "delete local objects that are unused and safely in the bucket", add_prune, cmd_prune
    ),
}
