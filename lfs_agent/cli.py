"""The ``lfs-agent`` command line.

This is the only module that reads ``os.environ``, configures logging, prints for people
and chooses exit codes. Every failure a person can cause prints one line,
``lfs-agent: error: ...``, and exits non-zero; a traceback appears only with
``LFS_AGENT_LOG=debug``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from lfs_agent import __version__
from lfs_agent.errors import LfsAgentError

if TYPE_CHECKING:  # heavy imports stay out of start-up; commands import what they use
    from lfs_agent.config import Settings
    from lfs_agent.git import Git
    from lfs_agent.store import ObjectStore
    from lfs_agent.sync import Remote

__all__ = ["main"]

logger = logging.getLogger("lfs_agent")

#: Exit status for errors a person can fix (bad config, missing object ...).
EXIT_ERROR = 2
#: Exit status for bugs: something we did not expect went wrong.
EXIT_INTERNAL = 70
#: Environment variable choosing the log level (``debug``, ``info``, ``warning``).
LOG_ENV = "LFS_AGENT_LOG"


def _setup_logging() -> bool:
    """Send our logs to stderr; return True when debugging (tracebacks wanted)."""
    level_name = os.environ.get(LOG_ENV, "").strip().upper()
    traced = any(
        os.environ.get(v) not in (None, "", "0", "false")
        for v in ("GIT_TRACE", "GIT_TRANSFER_TRACE")
    )
    level = getattr(logging, level_name, None) if level_name else None
    if not isinstance(level, int):
        level = logging.DEBUG if traced else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("lfs-agent: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    return level <= logging.DEBUG


class Context:
    """What a command needs about the repository it runs in, resolved lazily.

    Args:
        args: Parsed command line; ``args.remote`` (when present) overrides config.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._git: Git | None = None
        self._settings: Settings | None = None
        self._store: ObjectStore | None = None

    @property
    def git(self) -> Git:
        """Git runner for the current directory."""
        if self._git is None:
            from lfs_agent.git import Git

            self._git = Git()
        return self._git

    @property
    def settings(self) -> Settings:
        """Resolved settings; warnings are logged once."""
        if self._settings is None:
            from lfs_agent.config import resolve_settings

            overrides = {}
            if getattr(self.args, "remote", None):
                overrides["remote"] = self.args.remote
            self._settings = resolve_settings(self.git, env=os.environ, overrides=overrides)
            for warning in self._settings.warnings:
                logger.warning("%s", warning)
        return self._settings

    @property
    def store(self) -> ObjectStore:
        """The repository's local object store."""
        if self._store is None:
            from lfs_agent.store import ObjectStore

            self._store = ObjectStore(self.settings.lfs_dir)
        return self._store

    def remote(self, required: bool = True) -> Remote | None:
        """The configured remote (not yet connected), or None when optional and unset."""
        from lfs_agent.sync import Remote

        if not required and not self.settings.remote:
            return None
        return Remote(self.settings.require_remote(), self.settings.options)


def cmd_clean(ctx: Context) -> int:
    """``clean [PATH]``: content on stdin -> pointer on stdout, object into the store."""
    from lfs_agent.gitfilter import clean, iter_stream

    pointer = clean(ctx.store, iter_stream(sys.stdin.buffer))
    sys.stdout.buffer.write(pointer)
    sys.stdout.buffer.flush()
    return 0


def cmd_smudge(ctx: Context) -> int:
    """``smudge [PATH]``: pointer on stdin -> content on stdout."""
    from lfs_agent.gitfilter import iter_stream, smudge

    path = ctx.args.path or "<stdin>"
    remote = ctx.remote(required=False)
    fetch = None
    if remote is not None:
        store = ctx.store

        def fetch(pointer: object) -> None:
            logger.info("downloading %s", path)
            remote.download(store, pointer)  # type: ignore[arg-type]

    out = sys.stdout.buffer
    try:
        smudge(
            ctx.store,
            iter_stream(sys.stdin.buffer),
            out.write,
            path=path,
            fetch=fetch,
            skip=ctx.settings.skip_smudge or ctx.args.skip,
        )
    finally:
        if remote is not None:
            remote.close()
    out.flush()
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lfs-agent",
        description="Large files in plain git, with the bytes in your own bucket.",
    )
    parser.add_argument("--version", action="version", version=f"lfs-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, func: Callable[[Context], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = add("clean", cmd_clean, "git clean filter: content on stdin, pointer on stdout")
    p.add_argument("path", nargs="?", help="path git is cleaning (for messages only)")
    p = add("smudge", cmd_smudge, "git smudge filter: pointer on stdin, content on stdout")
    p.add_argument("path", nargs="?", help="path git is smudging (for messages only)")
    p.add_argument("--skip", action="store_true", help="leave pointers as they are")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit status."""
    debug = _setup_logging()
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        return int(args.func(Context(args)))
    except LfsAgentError as exc:
        if debug:
            logger.debug("traceback", exc_info=True)
        print(f"lfs-agent: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("lfs-agent: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as exc:  # the CLI boundary: never a traceback unless debugging
        logger.debug("unexpected error", exc_info=True)
        print(
            f"lfs-agent: error: internal error: {type(exc).__name__}: {exc} "
            f"(run with {LOG_ENV}=debug for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
