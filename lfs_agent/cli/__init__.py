"""The ``lfs-agent`` command line: a dispatcher over one module per command group.

The CLI is the only layer that reads ``os.environ``, configures logging, prints for
people and chooses exit codes. Every failure a person can cause prints one line,
``lfs-agent: error: ...``, and exits non-zero; a traceback appears only with
``LFS_AGENT_LOG=debug``.

Each group module (``cli.filters``, ``cli.setup``, ``cli.tracking``, ``cli.transfers``,
``cli.inspect``, ``cli.metrics``) declares its commands in a ``COMMANDS`` table: help, a
function adding the command's flags beside its ``cmd_*`` handler, and the handler.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lfs_agent import __version__
from lfs_agent.cli.context import (
    EXIT_ERROR,
    EXIT_INTERNAL,
    LOG_ENV,
    Context,
    logger,
    setup_logging,
    shown,
)
from lfs_agent.errors import LfsAgentError

if TYPE_CHECKING:
    from lfs_agent.cli.context import Command

__all__ = ["GROUPS", "build_parser", "main"]

#: Each command's group module under ``lfs_agent.cli``, in the order ``--help`` lists them.
#: Only the module of the command being run is imported: git spawns us for every filter
#: run and hook.
GROUPS = {
    "clean": "filters",
    "smudge": "filters",
    "filter-process": "filters",
    "install": "setup",
    "uninstall": "setup",
    "track": "tracking",
    "untrack": "tracking",
    "pre-commit": "filters",
    "global-filter-process": "filters",
    "pre-push": "transfers",
    "post-checkout": "filters",
    "push": "transfers",
    "fetch": "transfers",
    "pull": "transfers",
    "clone": "setup",
    "checkout": "transfers",
    "ls-files": "inspect",
    "status": "inspect",
    "fsck": "inspect",
    "transfer": "transfers",
    "tag": "metrics",
    "metrics": "metrics",
    "prune": "inspect",
}


def _command(name: str) -> Command:
    """The declaration of command ``name``, importing its group's module.

    ``__import__`` rather than ``importlib``, which the interpreter does not load at
    start-up.
    """
    group = __import__(f"lfs_agent.cli.{GROUPS[name]}", fromlist=["COMMANDS"])
    commands: dict[str, Command] = group.COMMANDS
    return commands[name]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command-line parser; with ``command``, only that subcommand's parser.

    Each subparser costs argparse about a millisecond of message-catalogue lookups, and git
    spawns us for every filter run and hook, so ``main`` builds just the one it needs
    (none for ``--version``). Any other ``command`` that names no subcommand (``--help``,
    a typo) gets the full parser, for argparse's help or error message.
    """
    parser = argparse.ArgumentParser(
        prog="lfs-agent",
        description="Large files in plain git, with the bytes in your own bucket.",
    )
    parser.add_argument("--version", action="version", version=f"lfs-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if command == "--version":
        return parser
    names = [command] if command in GROUPS else list(GROUPS)
    for name in names:
        declared = _command(name)
        if declared.run is None:  # a group of subcommands sets their handlers itself
            p = sub.add_parser(name, help=declared.help)
        else:
            p = sub.add_parser(name, help=declared.help, description=declared.help)
            p.set_defaults(func=declared.run)
        declared.add_arguments(p)
    return parser


def _leave_stuck_transfers() -> None:
    """Exit now if a transfer thread is still running after Ctrl-C.

    A transfer stops at its next chunk; one stuck on the network would keep the
    interpreter waiting for it at exit, and the user pressed Ctrl-C to leave. What it
    leaves behind (a partial download, S3's multipart state) is resumed next time.
    """
    import os
    import threading

    if any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.current_thread()
    ):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit status."""
    debug = setup_logging()
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(arguments[0] if arguments else None)
    args = parser.parse_args(arguments)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        return int(args.func(Context(args)))
    except LfsAgentError as exc:
        if debug:
            logger.debug("traceback", exc_info=True)
        # The one place every error is printed: a message may repeat a remote URL (with
        # its password) or a remote's own text.
        print(f"lfs-agent: error: {shown(str(exc), keep_newlines=True)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        said = f": {exc}" if str(exc) else ""
        print(f"lfs-agent: interrupted{said}", file=sys.stderr)
        _leave_stuck_transfers()
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as exc:  # the CLI boundary: never a traceback unless debugging
        logger.debug("unexpected error", exc_info=True)
        print(
            f"lfs-agent: error: internal error: {type(exc).__name__}: "
            f"{shown(str(exc), keep_newlines=True)} (run with {LOG_ENV}=debug for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
