"""The ``lfs-agent`` command line: a dispatcher over one module per command group.

The CLI is the only layer that reads ``os.environ``, configures logging, prints for
people and chooses exit codes. Every failure a person can cause prints one line,
``lfs-agent: error: ...``, and exits non-zero; a traceback appears only with
``LFS_AGENT_LOG=debug``.

Each group module (``cli.filters``, ``cli.setup``, ``cli.tracking``, ``cli.transfers``,
``cli.inspect``, ``cli.metrics``, ``cli.completion``) declares its commands in a
``COMMANDS`` table: help, a function adding the command's flags beside its ``cmd_*``
handler, and the handler.
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
    add_verbosity,
    logger,
    setup_logging,
    shown,
)
from lfs_agent.errors import LfsAgentError

if TYPE_CHECKING:
    from lfs_agent.cli.context import Command

__all__ = ["GROUPS", "build_parser", "main"]

#: Each command's group module under ``lfs_agent.cli`` (``cli.helptext`` orders ``--help``).
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
    "gc": "collect",
    "repos": "collect",
    "completion": "completion",
}

#: Commands that run only inside a repository; outside one they stop with one message
#: before doing anything. The filters git runs (and git-lfs's agent) are left out: git
#: starts them only inside a repository, and they keep their start-up lean.
NEEDS_REPOSITORY = frozenset(
    {
        "gc",
        "repos",
        "install",
        "uninstall",
        "track",
        "untrack",
        "pre-commit",
        "pre-push",
        "post-checkout",
        "push",
        "fetch",
        "pull",
        "checkout",
        "ls-files",
        "status",
        "fsck",
        "tag",
        "metrics",
        "prune",
    }
)

#: Options that may come before the command; ``-vv`` and the like are counted flags.
_GLOBAL_FLAGS = frozenset({"-q", "--quiet", "-v", "--verbose"})


def _command(name: str) -> Command:
    """The declaration of command ``name``, importing its group's module.

    ``__import__`` rather than ``importlib``, which the interpreter does not load at
    start-up.
    """
    group = __import__(f"lfs_agent.cli.{GROUPS[name]}", fromlist=["COMMANDS"])
    commands: dict[str, Command] = group.COMMANDS
    return commands[name]


def _command_word(arguments: Sequence[str]) -> str | None:
    """The command named in ``arguments``, past any global flags; or the first other option."""
    for argument in arguments:
        if argument in _GLOBAL_FLAGS or (argument.startswith("-v") and set(argument[1:]) == {"v"}):
            continue
        return argument
    return None


def build_parser(command: str | None = None, explain: bool = False) -> argparse.ArgumentParser:
    """The command-line parser; with ``command``, only that subcommand's parser.

    Each subparser costs argparse about a millisecond of message-catalogue lookups, and git
    spawns us for every filter run and hook, so ``main`` builds just the one it needs
    (none for ``--version``). Any other ``command`` that names no subcommand (``--help``,
    a typo) gets the full parser, for argparse's help or error message.

    Args:
        command: The command being run (see above).
        explain: Add each command's example to its help; always so for the full parser.
    """
    full = command not in GROUPS and command != "--version"
    parser = argparse.ArgumentParser(
        prog="lfs-agent",
        usage="lfs-agent [-h] [--version] [-q | -v] COMMAND ...",
        description="Large files in plain git, with the bytes in your own bucket.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lfs-agent {__version__}")
    add_verbosity(parser, top=True)
    # The grouped list in the epilog stands for argparse's flat one.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help=argparse.SUPPRESS)
    if command == "--version":
        return parser
    names = list(GROUPS) if full or command is None else [command]
    examples: dict[str, str] = {}
    if full or explain:
        from lfs_agent.cli import helptext

        examples = helptext.EXAMPLES
    helps: dict[str, str] = {}
    for name in names:
        declared = _command(name)
        helps[name] = declared.help
        example = examples.get(name)
        p = sub.add_parser(
            name,
            help=declared.help,
            description=declared.help if declared.run is not None else None,
            epilog=f"example:\n  {example}" if example else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if declared.run is not None:  # a group of subcommands sets their handlers itself
            p.set_defaults(func=declared.run)
        add_verbosity(p)
        declared.add_arguments(p)
    if full:
        parser.epilog = (
            f"{helptext.command_list(helps)}\n\n"
            "Run 'lfs-agent COMMAND --help' for a command's flags and an example.\n"
            f"Documentation: {helptext.DOCS_URL}"
        )
    return parser


def _unknown_command(word: str) -> str | None:
    """One line suggesting the command ``word`` was probably meant to be, if one is close."""
    import difflib

    close = difflib.get_close_matches(word, list(GROUPS), n=1)
    if not close:
        return None
    return (
        f"lfs-agent: error: unknown command {shown(word)!r}; did you mean {close[0]!r}? "
        "(see 'lfs-agent --help')"
    )


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
    arguments = sys.argv[1:] if argv is None else list(argv)
    command = _command_word(arguments)
    if command is not None and not command.startswith("-") and command not in GROUPS:
        suggestion = _unknown_command(command)
        if suggestion is not None:
            print(suggestion, file=sys.stderr)
            return EXIT_ERROR
    explain = "-h" in arguments or "--help" in arguments
    parser = build_parser(command, explain=explain)
    args = parser.parse_args(arguments)
    debug = setup_logging(args.verbose, args.quiet)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        ctx = Context(args)
        if args.command in NEEDS_REPOSITORY and not getattr(args, "global_scope", False):
            ctx.require_repository()
        return int(args.func(ctx))
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
