"""git's filters and the hooks around them: clean, smudge, filter-process, pre-commit.

git spawns these for every ``add``, ``status``, ``checkout`` and commit, so this module
imports nothing at load time beyond the shared context; each handler imports what it
uses.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lfs_agent import log
from lfs_agent.cli.context import (
    EXIT_ERROR,
    Command,
    Context,
    no_arguments,
    shown,
    shown_path,
)
from lfs_agent.errors import ConfigError, LfsAgentError

if TYPE_CHECKING:
    from lfs_agent.git import Git

__all__ = [
    "COMMANDS",
    "PIPE_SIZE",
    "REPLY_BUFFER",
    "cmd_clean",
    "cmd_filter_process",
    "cmd_global_filter_process",
    "cmd_post_checkout",
    "cmd_pre_commit",
    "cmd_smudge",
]

logger = log.get_logger("lfs_agent")

#: Capacity asked for the pipes git talks to a filter through (Linux's default limit for
#: unprivileged processes, /proc/sys/fs/pipe-max-size).
PIPE_SIZE = 1024 * 1024
#: Bytes the filter gathers before writing to git (it pushes each reply as a whole).
REPLY_BUFFER = 64 * 1024


def _widen_pipes() -> None:
    """Ask for 1 MiB pipes on stdin and stdout when they are pipes (Linux only).

    git writes a file to its filter in 64 KiB packets; with the default 64 KiB pipe,
    git and we take turns at every packet. A wider pipe lets git run ahead: ``git add``
    of 1 GiB took a quarter less time. Not a pipe, no such call or over the user's pipe
    quota: nothing changes.
    """
    import contextlib
    import fcntl

    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:
        return
    for fd in (0, 1):
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, set_size, PIPE_SIZE)


def add_clean(parser: argparse.ArgumentParser) -> None:
    """``clean [PATH]``."""
    parser.add_argument("path", nargs="?", help="path git is cleaning (for messages only)")


def cmd_clean(ctx: Context) -> int:
    """``clean [PATH]``: content on stdin -> pointer on stdout, object into the store."""
    from lfs_agent.gitfilter import clean, iter_stream

    _widen_pipes()
    pointer = clean(ctx.store, iter_stream(sys.stdin.buffer))
    sys.stdout.buffer.write(pointer)
    sys.stdout.buffer.flush()
    return 0


def add_smudge(parser: argparse.ArgumentParser) -> None:
    """``smudge [PATH] [--skip]``."""
    parser.add_argument("path", nargs="?", help="path git is smudging (for messages only)")
    add_skip(parser)


def cmd_smudge(ctx: Context) -> int:
    """``smudge [PATH]``: pointer on stdin -> content on stdout."""
    from lfs_agent.gitfilter import iter_stream, smudge

    path = ctx.args.path or "<stdin>"
    _widen_pipes()
    fetch = ctx.fetcher()
    out = sys.stdout.buffer
    try:
        smudge(
            ctx.store,
            iter_stream(sys.stdin.buffer),
            out.write,
            path=path,
            fetch=fetch,
            skip=ctx.settings.skip_smudge or ctx.args.skip,
            skip_download_errors=ctx.settings.skip_download_errors,
            excluded=not ctx.path_filter().allows(path),
        )
    finally:
        if fetch is not None:
            fetch.close()
    out.flush()
    return 0


def add_skip(parser: argparse.ArgumentParser) -> None:
    """``--skip``: the filter leaves pointers in the work tree as they are."""
    parser.add_argument("--skip", action="store_true", help="leave pointers as they are")


def cmd_filter_process(ctx: Context) -> int:
    """``filter-process``: git's long-running filter protocol on stdin/stdout."""
    import contextlib

    from lfs_agent.filterprocess import FilterProcess
    from lfs_agent.gitfilter import SMUDGED_ALL_ENV
    from lfs_agent.pktline import PktLineReader, PktLineWriter

    _widen_pipes()
    pull_after = _pull_after()
    if pull_after is not None:  # in lfs-agent clone's checkout: its pull says them
        ctx.settings_warning_level = log.DEBUG
    fetch = ctx.fetcher()
    stdin = sys.stdin.buffer
    # A buffer of our own on fd 1: with PYTHONUNBUFFERED=1 (common in container images)
    # sys.stdout.buffer would send every packet in a write of its own.
    stdout = open(sys.stdout.fileno(), "wb", buffering=REPLY_BUFFER, closefd=False)  # noqa: SIM115
    process = FilterProcess(
        PktLineReader(stdin.read),
        PktLineWriter(stdout.write, stdout.flush),
        ctx.store,
        fetch=fetch.for_reading if fetch is not None else None,
        in_background=fetch.in_background if fetch is not None else None,
        path_filter=ctx.path_filter(),
        skip_smudge=ctx.settings.skip_smudge or ctx.args.skip,
        skip_download_errors=ctx.settings.skip_download_errors,
        concurrency=ctx.settings.concurrency,
        restaged=_restaged(),
        pull_after=pull_after,
        hook_reports_failures=lambda: _has_our_hook(ctx.git, "post-checkout"),
    )
    try:
        process.serve()
    finally:
        if fetch is not None:
            fetch.close()
        with contextlib.suppress(OSError):  # git went away first: nothing to tell it
            stdout.close()  # flushes; fd 1 stays open
    smudged_all = os.environ.get(SMUDGED_ALL_ENV) if pull_after is not None else None
    if smudged_all and process.smudged_every_pointer:
        Path(smudged_all).touch()  # lfs-agent clone: nothing left for its pull
    return 0


def _pull_after() -> int | None:
    """The size over which ``lfs-agent clone``'s pull writes objects (its env), if set."""
    from lfs_agent.gitfilter import PULL_AFTER_ENV

    value = os.environ.get(PULL_AFTER_ENV, "")
    return int(value) if value.isdigit() else None


def _restaged() -> dict[str, str]:
    """The files ``lfs-agent pull`` is re-staging (its :data:`RESTAGE_ENV` file), if any."""
    from lfs_agent.gitfilter import RESTAGE_ENV, read_restaged

    path = os.environ.get(RESTAGE_ENV)
    return read_restaged(path) if path else {}


def _has_our_hook(git: Git, name: str) -> bool:
    """Whether lfs-agent's hook ``name`` is the one git runs in this repository."""
    from lfs_agent.hooks import hooks_dir, is_ours

    try:
        return is_ours(hooks_dir(git) / name)
    except LfsAgentError:
        return False


def cmd_pre_commit(ctx: Context) -> int:
    """``pre-commit``: the hook; refuses raw content staged for a path stored in LFS.

    Without an lfs filter configured (a submodule, a clone set up before), ``git add``
    stores a tracked file's bytes in git, and the commit would publish them there.
    """
    import shlex

    from lfs_agent.cli.tracking import lfs_filter_configured
    from lfs_agent.hooks import raw_staged

    raw = raw_staged(ctx.git)
    if not raw:
        return 0
    install = "" if lfs_filter_configured(ctx.git) else "'lfs-agent install', then "
    for path in raw:
        print(
            f"lfs-agent: {shown_path(path)} is staged as its raw content, but .gitattributes "
            f"stores it with LFS (filter=lfs): run {install}"
            f"'git add --renormalize -- {shown(shlex.quote(path))}'",
            file=sys.stderr,
        )
    return EXIT_ERROR


def cmd_global_filter_process(ctx: Context) -> int:
    """``global-filter-process``: the filter of ``install --global``.

    It adds this repository's hooks when they are missing (a fresh clone, a submodule),
    as git-lfs's filter does, then serves git as ``filter-process``. Hooks that cannot
    be added never fail git's command.
    """
    from lfs_agent.hooks import add_missing_hooks

    try:
        if add_missing_hooks(ctx.git):
            logger.info("added lfs-agent's hooks to this repository")
    except ConfigError as exc:
        logger.warning("%s", exc)
    except (LfsAgentError, OSError) as exc:
        logger.debug("hooks left as they are: %s", exc)
    return cmd_filter_process(ctx)


def add_post_checkout(parser: argparse.ArgumentParser) -> None:
    """``post-checkout OLD NEW FLAG``, as git passes them."""
    parser.add_argument("hook_args", metavar="ARG", nargs="*")


def cmd_post_checkout(ctx: Context) -> int:
    """``post-checkout OLD NEW FLAG``: the hook; fails a checkout whose downloads failed.

    git ends a checkout with status 0 when a delayed smudge never delivers; the filter
    left those files as pointers and recorded why (:mod:`lfs_agent.smudge_failures`).
    This hook's status is the checkout's.
    """
    from lfs_agent import smudge_failures

    failures = smudge_failures.take(ctx.settings.lfs_dir / "tmp")
    if not failures:
        return 0
    by_reason: dict[str, list[str]] = {}
    for path, reason in failures.items():
        by_reason.setdefault(reason, []).append(path)
    print(
        f"lfs-agent: {len(failures)} file(s) were left as pointers: their objects could "
        "not be downloaded; fix the cause, then run 'lfs-agent pull'",
        file=sys.stderr,
    )
    for reason, paths in sorted(by_reason.items()):
        names = ", ".join(shown_path(p) for p in sorted(paths)[:3])
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        print(f"  {names}{more}: {shown(reason)}", file=sys.stderr)
    return 2


#: This group's commands, by name, for the dispatcher.
COMMANDS = {
    "clean": Command("git clean filter: content on stdin, pointer on stdout", add_clean, cmd_clean),
    "smudge": Command(
        "git smudge filter: pointer on stdin, content on stdout", add_smudge, cmd_smudge
    ),
    "filter-process": Command(
        "git long-running filter (clean, smudge, delay)", add_skip, cmd_filter_process
    ),
    "pre-commit": Command(
        "pre-commit hook: refuse raw content staged for paths stored with LFS",
        no_arguments,
        cmd_pre_commit,
    ),
    "global-filter-process": Command(
        "the filter of 'install --global': adds missing hooks, then runs filter-process",
        add_skip,
        cmd_global_filter_process,
    ),
    "post-checkout": Command(
        "post-checkout hook: fail on failed downloads", add_post_checkout, cmd_post_checkout
    ),
}
