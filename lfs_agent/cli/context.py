"""What every command shares: the repository it runs in, output helpers, exit codes.

The CLI is the only layer that reads ``os.environ``, configures logging, prints for
people and chooses exit codes; the modules beside this one each hold one group of
commands, with every command's flags declared next to its handler.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from lfs_agent import log

if TYPE_CHECKING:
    from lfs_agent.config import Settings
    from lfs_agent.git import Git
    from lfs_agent.pathmatch import PathFilter
    from lfs_agent.pointer import Pointer
    from lfs_agent.remote import Remote
    from lfs_agent.retention import (
        Policy,  # heavy imports stay out of start-up; commands import what they use
    )
    from lfs_agent.smudge_downloads import Unverified
    from lfs_agent.store import ObjectStore

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "LOG_ENV",
    "Command",
    "Context",
    "LazyFetch",
    "add_path_filters",
    "add_verbosity",
    "human_size",
    "no_arguments",
    "setup_logging",
    "shown",
    "shown_path",
    "split_cli",
]

logger = log.get_logger("lfs_agent")

#: Exit status for errors a person can fix (bad config, missing object ...).
EXIT_ERROR = 2
#: Exit status for bugs: something we did not expect went wrong.
EXIT_INTERNAL = 70
#: Environment variable choosing the log level (``debug``, ``info``, ``warning``).
LOG_ENV = "LFS_AGENT_LOG"


class Command(NamedTuple):
    """One subcommand as its group module declares it.

    Attributes:
        help: One line for the command list; also the subcommand's description.
        add_arguments: Declares the command's flags on its subparser.
        run: The handler; None for a group of subcommands (``metrics``), which sets a
            handler on each of its own subparsers in ``add_arguments``.
    """

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Context], int] | None


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """For a command that takes no flags."""


def add_verbosity(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """Declare ``-q``/``-v``, on the main parser (``top``) and again on each subcommand's.

    Accepted before the command and after it; a subcommand's copy has no default, so
    that it does not reset what was given before the command.
    """
    quiet_default: object = False if top else argparse.SUPPRESS
    verbose_default: object = 0 if top else argparse.SUPPRESS
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=quiet_default,
        help="print nothing but errors (for CI logs)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=verbose_default,
        help=f"-v: progress details ({LOG_ENV}=info), -vv: debugging ({LOG_ENV}=debug)",
    )


def setup_logging(verbosity: int = 0, quiet: bool = False) -> bool:
    """Send our logs to stderr; return True when debugging (tracebacks wanted).

    Args:
        verbosity: ``-v`` count; 1 is ``info``, 2 or more ``debug``; wins over the
            environment, as a flag typed for this run is the later wish.
        quiet: ``-q``: errors only.
    """
    level_name = os.environ.get(LOG_ENV, "").strip().upper()
    traced = any(
        os.environ.get(v) not in (None, "", "0", "false")
        for v in ("GIT_TRACE", "GIT_TRANSFER_TRACE")
    )
    level = log.LEVELS.get(level_name)
    if level is None:
        level = log.DEBUG if traced else log.WARNING
    if verbosity:
        level = log.DEBUG if verbosity >= 2 else log.INFO
    elif quiet:
        level = log.ERROR
    log.configure(level)
    return level <= log.DEBUG


class Context:
    """What a command needs about the repository it runs in, resolved lazily.

    Args:
        args: Parsed command line; ``args.remote`` (when present) overrides config.
    """

    def __init__(self, args: argparse.Namespace, cwd: Path | None = None) -> None:
        self.args = args
        # The repository's directory; None: the current directory.
        self.cwd = cwd
        self._git: Git | None = None
        self._settings: Settings | None = None
        self._store: ObjectStore | None = None
        # The level the settings' warnings are logged at (a command may lower it).
        self.settings_warning_level = log.WARNING
        # -q: nothing but errors; say() and note() print nothing, no progress line.
        self.quiet: bool = bool(getattr(args, "quiet", False))
        # -v count: 0 normal, 1 info, 2 debug (the log level main configured from it).
        self.verbosity: int = int(getattr(args, "verbose", 0) or 0)

    def say(self, text: str) -> None:
        """Print ``text`` on stdout for people (a summary, a confirmation); not with -q."""
        if not self.quiet:
            print(text)

    def note(self, text: str) -> None:
        """Print ``text`` on stderr as a note beside the output; not with -q."""
        if not self.quiet:
            print(text, file=sys.stderr)

    @property
    def live(self) -> bool:
        """Whether a live progress line may be drawn: on a terminal and not quiet."""
        return not self.quiet and sys.stderr.isatty()

    def require_repository(self) -> None:
        """Raise a one-line error, naming the directory and the fix, outside a repository.

        Raises:
            ConfigError: when no git repository holds the directory.
        """
        from lfs_agent.errors import ConfigError, GitError

        try:
            self.git.paths  # noqa: B018 - resolved here to fail early; cached for later
        except GitError:
            where = self.cwd or Path.cwd()
            raise ConfigError(
                f"not a git repository: {where} (run this inside a git work tree, "
                "or 'git init' / 'lfs-agent clone URL' first)"
            ) from None

    @property
    def git(self) -> Git:
        """Git runner for the current directory."""
        if self._git is None:
            from lfs_agent.git import Git

            self._git = Git(self.cwd)
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
                logger.log(self.settings_warning_level, "%s", warning)
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
        from lfs_agent.remote import Remote

        if not required and not self.settings.remote:
            return None
        cache = None
        if self.settings.cache_dir is not None:
            from lfs_agent.store import ObjectStore

            cache = ObjectStore(self.settings.cache_dir)
        return Remote(
            self.settings.require_remote(),
            self.settings.options,
            state_dir=self.store.tmp_dir,
            cache=cache,
        )

    def retention_policy(self, given: str | None = None) -> Policy:
        """What this repository keeps from collection: ``given``, else ``lfs-agent.gc.policy``.

        Raises:
            ConfigError: the policy is not one of the three forms.
        """
        from lfs_agent.retention import Policy

        return Policy.parse(given or self.settings.options.get("gc.policy") or "history")

    def required_remote(self) -> Remote:
        """The configured remote; a clear error when none is set."""
        remote = self.remote(required=True)
        assert remote is not None
        return remote

    def fetcher(self) -> LazyFetch | None:
        """A callable downloading one object into the store, or None without a remote."""
        if not self.settings.remote:
            return None
        return LazyFetch(self)

    def path_filter(self) -> PathFilter:
        """Fetch include/exclude patterns: command line first, then configuration."""
        from lfs_agent.pathmatch import PathFilter

        include = getattr(self.args, "include", None)
        exclude = getattr(self.args, "exclude", None)
        return PathFilter(
            split_cli(include) if include is not None else self.settings.fetch_include,
            split_cli(exclude) if exclude is not None else self.settings.fetch_exclude,
        )


class LazyFetch:
    """Downloads one object into the store; the remote is set up on the first call.

    A filter process often downloads nothing (``git add``, ``git status``), and then it
    never imports the transfer code. Safe to call from several threads.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._remote: Remote | None = None
        self._lock = threading.Lock()
        # Whether downloads are hard links (in_background), known at the first smudge.
        self._links: bool | None = None

    def __call__(self, pointer: Pointer) -> None:
        """Download ``pointer``'s object into the store (see :meth:`Remote.download`)."""
        logger.info("downloading %s (%d bytes)", pointer.oid, pointer.size)
        self._open().download(self._ctx.store, pointer)

    def for_reading(self, pointer: Pointer) -> Unverified | None:
        """Download for a smudge that checks a large object as it sends it.

        See :meth:`Remote.download_for_reading`.
        """
        logger.info("downloading %s (%d bytes)", pointer.oid, pointer.size)
        return self._open().download_for_reading(self._ctx.store, pointer)

    def in_background(self, pointer: Pointer) -> bool:
        """Whether a smudge should download ``pointer``'s object in the background.

        Not from a folder bucket on the store's disk: that download is a hard link,
        quicker than the extra request to git a delayed smudge costs.
        """
        if self._links is None:
            self._links = self._open().downloads_are_links(self._ctx.store)
        return not self._links

    def _open(self) -> Remote:
        with self._lock:
            if self._remote is None:
                self._remote = self._ctx.required_remote()
            return self._remote

    def close(self) -> None:
        """Close the remote's connections, if any were opened."""
        with self._lock:
            if self._remote is not None:
                self._remote.close()


def closing(remote: Remote | None) -> AbstractContextManager[Remote | None]:
    """``remote`` as a ``with`` target that closes it; a stand-in when there is none."""
    return nullcontext() if remote is None else remote


def shown(text: str, keep_newlines: bool = False) -> str:
    """``text`` as it may be printed: credentials in URLs masked, control characters escaped.

    For whatever may hold a remote URL, or came from a repository, a bucket or a server.
    """
    from lfs_agent.redact import redact_text
    from lfs_agent.termtext import printable

    return printable(redact_text(text), keep_newlines=keep_newlines)


def shown_path(path: str) -> str:
    """A file name as git shows it (quoted with escapes when it holds a control character)."""
    from lfs_agent.termtext import quote_path

    return quote_path(path)


def split_cli(values: list[str]) -> tuple[str, ...]:
    """``-I a,b -I c`` -> ``("a", "b", "c")``, as git-lfs accepts comma lists."""
    return tuple(p.strip() for v in values for p in v.split(",") if p.strip())


def add_path_filters(parser: argparse.ArgumentParser) -> None:
    """Declare ``-I``/``-X``, the include/exclude patterns :meth:`Context.path_filter` reads."""
    parser.add_argument(
        "-I",
        "--include",
        action="append",
        metavar="PATTERN",
        help="only paths matching (repeatable, comma lists allowed)",
    )
    parser.add_argument(
        "-X",
        "--exclude",
        action="append",
        metavar="PATTERN",
        help="never paths matching (repeatable)",
    )


def human_size(size: float) -> str:
    """Format bytes as git-lfs does (``12 B``, ``3.0 KB``, ``40 MB``); see :mod:`progressline`."""
    from lfs_agent.progressline import human_size as format_size

    return format_size(size)
