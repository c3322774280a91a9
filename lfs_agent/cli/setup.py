"""Setting a repository up: install, uninstall, clone."""

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
    add_path_filters,
    human_size,
    shown,
    shown_path,
    split_cli,
)
from lfs_agent.cli.jsondoc import add_json
from lfs_agent.errors import ConfigError, LfsAgentError

if TYPE_CHECKING:
    from lfs_agent.reports import TransferReport

__all__ = ["COMMANDS", "cmd_clone", "cmd_install", "cmd_uninstall"]


def _where(ctx: Context) -> str:
    """Where ``ctx``'s repository keeps its objects, for install's last line."""
    settings = ctx.settings
    if settings.remote:
        return f"remote {shown(settings.remote)} (from {settings.remote_origin})"
    return "no remote yet: run 'lfs-agent install --remote URL'"


def _submodule_error(name: str, exc: LfsAgentError) -> ConfigError:
    return ConfigError(f"in submodule {shown_path(name)}: {exc}")


def add_install(parser: argparse.ArgumentParser) -> None:
    """``install [--remote URL] [--local] [--with-git-lfs] ... [--global] [--recursive]``."""
    parser.add_argument(
        "--remote",
        dest="remote_url",
        metavar="URL",
        help="bucket for objects: a folder, s3://, gs:// or http(s):// URL",
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="record the remote in .git/config instead of the committed .lfsagent",
    )
    parser.add_argument(
        "--with-git-lfs",
        action="store_true",
        help="keep git-lfs's filter and hooks; route its transfers through lfs-agent",
    )
    parser.add_argument(
        "--scope-remote",
        metavar="NAME",
        help="with --with-git-lfs: use lfs-agent only for this git remote",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace filter settings another tool wrote in this repository (with "
        "--global: in your git config)",
    )
    parser.add_argument(
        "--global",
        dest="global_scope",
        action="store_true",
        help="the filter in your git config instead, for every repository and submodule",
    )
    parser.add_argument(
        "--recursive", action="store_true", help="also in every initialized submodule"
    )


def cmd_install(ctx: Context) -> int:
    """``install``: configure this repository (``--recursive``: its submodules) or the user."""
    from lfs_agent.install import install, submodule_repos

    args = ctx.args
    if args.global_scope:
        return _install_global(ctx)
    report = install(
        ctx.git,
        remote=args.remote_url,
        local=args.local,
        with_git_lfs=args.with_git_lfs,
        scope_remote=args.scope_remote,
        force=args.force,
    )
    for message in report.messages:
        ctx.note(shown(message))
    mode = "git-lfs transfers" if args.with_git_lfs else "filter and hooks"
    ctx.say(f"lfs-agent installed ({mode}); {_where(ctx)}")
    if not args.recursive:
        return 0
    # The remote given is the superproject's: each submodule names its own in its
    # committed .lfsagent.
    for name, path in submodule_repos(ctx.git):
        sub = Context(args, cwd=path)
        try:
            report = install(
                sub.git,
                with_git_lfs=args.with_git_lfs,
                scope_remote=args.scope_remote,
                force=args.force,
            )
        except LfsAgentError as exc:
            raise _submodule_error(name, exc) from exc
        for message in report.messages:
            ctx.note(f"submodule {shown_path(name)}: {shown(message)}")
        ctx.say(f"lfs-agent installed in submodule {shown_path(name)} ({mode}); {_where(sub)}")
    return 0


def _install_global(ctx: Context) -> int:
    """``install --global``: lfs-agent's filter in the user's git config."""
    from lfs_agent.global_install import install_global

    args = ctx.args
    flags = {
        "--remote": args.remote_url,
        "--local": args.local,
        "--with-git-lfs": args.with_git_lfs,
        "--scope-remote": args.scope_remote,
        "--recursive": args.recursive,
    }
    for flag, value in flags.items():
        if value:
            raise ConfigError(
                f"'install --global' takes no {flag}: it configures only the filter, and each "
                "repository names its bucket in its committed .lfsagent"
            )
    for message in install_global(ctx.git, force=args.force).messages:
        ctx.note(shown(message))
    ctx.say(
        "lfs-agent installed globally (filter in your git config): every repository with a "
        "committed .lfsagent, submodules included, works with plain git and gets its hooks "
        "at the filter's first run there"
    )
    return 0


def add_uninstall(parser: argparse.ArgumentParser) -> None:
    """``uninstall [--global] [--recursive]``."""
    parser.add_argument(
        "--global",
        dest="global_scope",
        action="store_true",
        help="remove what 'install --global' wrote to your git config",
    )
    parser.add_argument(
        "--recursive", action="store_true", help="also in every initialized submodule"
    )


def cmd_uninstall(ctx: Context) -> int:
    """``uninstall``: remove what install added (here, in submodules, or globally)."""
    from lfs_agent.global_install import uninstall_global
    from lfs_agent.install import submodule_repos, uninstall

    if ctx.args.global_scope:
        for message in uninstall_global(ctx.git).messages:
            ctx.note(shown(message))
        ctx.say(
            "lfs-agent uninstalled from your global git config; hooks it added to a "
            "repository stay until 'lfs-agent uninstall' there"
        )
        return 0
    for message in uninstall(ctx.git).messages:
        ctx.note(shown(message))
    ctx.say("lfs-agent uninstalled")
    if ctx.args.recursive:
        for name, path in submodule_repos(ctx.git):
            try:
                messages = uninstall(Context(ctx.args, cwd=path).git).messages
            except LfsAgentError as exc:
                raise _submodule_error(name, exc) from exc
            for message in messages:
                ctx.note(f"submodule {shown_path(name)}: {shown(message)}")
            ctx.say(f"lfs-agent uninstalled in submodule {shown_path(name)}")
    return 0


def add_clone(parser: argparse.ArgumentParser) -> None:
    """``clone URL [DIR]`` with git clone's common options and ``-I``/``-X``."""
    parser.add_argument("url", metavar="URL")
    parser.add_argument("directory", metavar="DIR", nargs="?")
    parser.add_argument("-b", "--branch", metavar="BRANCH")
    parser.add_argument("--depth", type=int, metavar="N")
    parser.add_argument(
        "--recurse-submodules",
        action="store_true",
        help="clone the submodules too (git's option), then install and pull in each",
    )
    parser.add_argument("--filter", metavar="SPEC", help="git's partial clone (blob:none)")
    parser.add_argument(
        "-c", "--config", action="append", metavar="KEY=VALUE", help="git clone's --config"
    )
    add_path_filters(parser)
    add_json(parser)


def cmd_clone(ctx: Context) -> int:
    """``clone URL [DIR]``: clone (git writes the small files), install, pull the rest.

    With ``--json``, the summary of what came in is printed once git's clone succeeded,
    whether the pulls after it failed or not.
    """
    reports: list[TransferReport] | None = [] if ctx.args.json else None
    repo: list[Context] = []
    try:
        return _clone(ctx, repo, reports)
    finally:
        if reports is not None and repo:
            from lfs_agent.cli.jsondoc import clone_report, print_document

            print_document(clone_report(repo[-1], reports))


def _clone(ctx: Context, cloned: list[Context], reports: list[TransferReport] | None) -> int:
    """The clone itself; ``cloned`` gets the new repository once git made it."""
    from lfs_agent.cli.transfers import pull
    from lfs_agent.clone import (
        clone_command,
        clone_directory,
        free_space_if_unwritable,
        remote_from_default_branch,
        run_git_clone,
        set_up_submodules,
    )
    from lfs_agent.install import install

    args = ctx.args
    dest = Path(args.directory or clone_directory(args.url)).absolute()
    cmd = clone_command(
        args.url,
        dest,
        python=sys.executable,
        branch=args.branch,
        depth=args.depth,
        recurse_submodules=args.recurse_submodules,
        partial=args.filter,
        config=args.config or (),
        include=split_cli(args.include) if args.include else None,
        exclude=split_cli(args.exclude) if args.exclude else None,
    )
    run = run_git_clone(cmd, os.environ, sys.stderr.buffer)
    if run.status != 0:  # git printed why; a full disk it names only file by file
        free = free_space_if_unwritable(run.stderr_tail, dest)
        if free is not None:
            print(
                f"lfs-agent: git could not write the files of {shown(str(dest))}: the disk (or "
                f"a file size limit) is full; {human_size(free)} free there now: free some "
                "space and clone again",
                file=sys.stderr,
            )
        return EXIT_ERROR
    # The submodules' checkouts ran the filter too, and may have left that file.
    nothing_left = run.smudged_all and not args.recurse_submodules
    repo = Context(args, cwd=dest)
    cloned.append(repo)
    install(repo.git)  # the config is there: this adds the hooks (and a committed remote)
    status = 0
    if args.recurse_submodules:

        def pull_submodule(path: Path) -> None:
            pull(Context(args, cwd=path), after_clone=True, reports=reports)

        def failed(name: str, exc: LfsAgentError) -> None:
            error = _submodule_error(name, exc)
            print(f"lfs-agent: error: {shown(str(error), keep_newlines=True)}", file=sys.stderr)

        if not set_up_submodules(dest, pull_submodule, failed):
            status = EXIT_ERROR
    if not repo.settings.remote and remote_from_default_branch(repo.git):
        repo = Context(args, cwd=dest)
        cloned.append(repo)
    if not repo.settings.remote:
        from lfs_agent.scan import index_pointers

        if not index_pointers(repo.git):  # an empty repository, or one without LFS files
            return status
        print(
            f"lfs-agent: cloned into {shown(str(dest))}, but it names no remote (.lfsagent): run "
            "'lfs-agent install --remote URL' there, then 'lfs-agent pull'",
            file=sys.stderr,
        )
        return EXIT_ERROR
    if not nothing_left:
        pull(repo, after_clone=True, reports=reports)
    return status


#: This group's commands, by name, for the dispatcher.
COMMANDS = {
    "install": Command("set this repository up for lfs-agent", add_install, cmd_install),
    "uninstall": Command("remove what install added", add_uninstall, cmd_uninstall),
    "clone": Command(
        "clone (files up to 32 MiB downloaded as git writes them), install, then pull "
        "the larger ones; only what matches -I/-X (lazy CI clone)",
        add_clone,
        cmd_clone,
    ),
}
