"""The ``lfs-agent`` command line.

This is the only module that reads ``os.environ``, configures logging, prints for people
and chooses exit codes. Every failure a person can cause prints one line,
``lfs-agent: error: ...``, and exits non-zero; a traceback appears only with
``LFS_AGENT_LOG=debug``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lfs_agent import __version__, log
from lfs_agent.errors import ConfigError, GitError, LfsAgentError, TransferError

if TYPE_CHECKING:  # heavy imports stay out of start-up; commands import what they use
    from lfs_agent.config import Settings
    from lfs_agent.git import Git
    from lfs_agent.gitfilter import Unverified
    from lfs_agent.metrics import LocalRecords, TagRecord
    from lfs_agent.pathmatch import PathFilter
    from lfs_agent.pointer import Pointer
    from lfs_agent.scan import PointerFile
    from lfs_agent.store import ObjectStore
    from lfs_agent.sync import BatchResult, Remote

__all__ = ["main"]

logger = log.get_logger("lfs_agent")

#: Exit status for errors a person can fix (bad config, missing object ...).
EXIT_ERROR = 2
#: Exit status for bugs: something we did not expect went wrong.
EXIT_INTERNAL = 70
#: Environment variable choosing the log level (``debug``, ``info``, ``warning``).
LOG_ENV = "LFS_AGENT_LOG"
#: Capacity asked for the pipes git talks to a filter through (Linux's default limit for
#: unprivileged processes, /proc/sys/fs/pipe-max-size).
PIPE_SIZE = 1024 * 1024
#: Bytes the filter gathers before writing to git (it pushes each reply as a whole).
REPLY_BUFFER = 64 * 1024


def _setup_logging() -> bool:
    """Send our logs to stderr; return True when debugging (tracebacks wanted)."""
    level_name = os.environ.get(LOG_ENV, "").strip().upper()
    traced = any(
        os.environ.get(v) not in (None, "", "0", "false")
        for v in ("GIT_TRACE", "GIT_TRANSFER_TRACE")
    )
    level = log.LEVELS.get(level_name)
    if level is None:
        level = log.DEBUG if traced else log.WARNING
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
        from lfs_agent.sync import Remote

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
            _split_cli(include) if include is not None else self.settings.fetch_include,
            _split_cli(exclude) if exclude is not None else self.settings.fetch_exclude,
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


def _shown(text: str, keep_newlines: bool = False) -> str:
    """``text`` as it may be printed: credentials in URLs masked, control characters escaped.

    For whatever may hold a remote URL, or came from a repository, a bucket or a server.
    """
    from lfs_agent.redact import redact_text
    from lfs_agent.termtext import printable

    return printable(redact_text(text), keep_newlines=keep_newlines)


def _path(path: str) -> str:
    """A file name as git shows it (quoted with escapes when it holds a control character)."""
    from lfs_agent.termtext import quote_path

    return quote_path(path)


def _split_cli(values: list[str]) -> tuple[str, ...]:
    """``-I a,b -I c`` -> ``("a", "b", "c")``, as git-lfs accepts comma lists."""
    return tuple(p.strip() for v in values for p in v.split(",") if p.strip())


#: Units of :func:`human_size`, each 1000 times the one before.
SIZE_UNITS = ("B", "KB", "MB", "GB", "TB", "PB", "EB")


def human_size(size: float) -> str:
    """Format bytes as git-lfs does (``humanize.FormatBytes``): ``12 B``, ``3.0 KB``, ``40 MB``.

    In the largest unit the size reaches, rounded to a tenth; shown with that tenth
    below 10, without it from 10 up (and for bytes).
    """
    size = int(size)
    scale, unit = 1, 0
    while size >= scale * 1000 and unit < len(SIZE_UNITS) - 1:
        scale, unit = scale * 1000, unit + 1
    rounded = math.floor(size / scale * 10 + 0.5) / 10
    return f"{rounded:.{1 if rounded < 10 and unit else 0}f} {SIZE_UNITS[unit]}"


class Meter:
    """A progress line on stderr for a batch of transfers (silent when not a TTY).

    Args:
        verb: ``Uploading`` or ``Downloading``.
        total_files: Objects in the batch.
    """

    def __init__(self, verb: str, total_files: int) -> None:
        self.verb = verb
        self.total_files = total_files
        self.done_files = 0
        self.done_bytes = 0
        self.tty = sys.stderr.isatty()
        self._lock = threading.Lock()

    def __call__(self, pointer: Pointer, error: LfsAgentError | None) -> None:
        """Count one finished object (called from worker threads)."""
        with self._lock:
            self.done_files += 1
            if error is None:
                self.done_bytes += pointer.size
            if self.tty and self.total_files:
                percent = 100 * self.done_files // self.total_files
                sys.stderr.write(
                    f"\r{self.verb} LFS objects: {percent}% ({self.done_files}/"
                    f"{self.total_files}), {human_size(self.done_bytes)}"
                )
                if self.done_files == self.total_files:
                    sys.stderr.write(", done.\n")
                sys.stderr.flush()


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


def cmd_clean(ctx: Context) -> int:
    """``clean [PATH]``: content on stdin -> pointer on stdout, object into the store."""
    from lfs_agent.gitfilter import clean, iter_stream

    _widen_pipes()
    pointer = clean(ctx.store, iter_stream(sys.stdin.buffer))
    sys.stdout.buffer.write(pointer)
    sys.stdout.buffer.flush()
    return 0


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


def cmd_filter_process(ctx: Context) -> int:
    """``filter-process``: git's long-running filter protocol on stdin/stdout."""
    import contextlib

    from lfs_agent.gitfilter import SMUDGED_ALL_ENV, FilterProcess
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


def _where(ctx: Context) -> str:
    """Where ``ctx``'s repository keeps its objects, for install's last line."""
    settings = ctx.settings
    if settings.remote:
        return f"remote {_shown(settings.remote)} (from {settings.remote_origin})"
    return "no remote yet: run 'lfs-agent install --remote URL'"


def _submodule_error(shown: str, exc: LfsAgentError) -> ConfigError:
    return ConfigError(f"in submodule {_path(shown)}: {exc}")


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
        print(_shown(message), file=sys.stderr)
    mode = "git-lfs transfers" if args.with_git_lfs else "filter and hooks"
    print(f"lfs-agent installed ({mode}); {_where(ctx)}")
    if not args.recursive:
        return 0
    # The remote given is the superproject's: each submodule names its own in its
    # committed .lfsagent.
    for shown, path in submodule_repos(ctx.git):
        sub = Context(args, cwd=path)
        try:
            report = install(
                sub.git,
                with_git_lfs=args.with_git_lfs,
                scope_remote=args.scope_remote,
                force=args.force,
            )
        except LfsAgentError as exc:
            raise _submodule_error(shown, exc) from exc
        for message in report.messages:
            print(f"submodule {_path(shown)}: {_shown(message)}", file=sys.stderr)
        print(f"lfs-agent installed in submodule {_path(shown)} ({mode}); {_where(sub)}")
    return 0


def _install_global(ctx: Context) -> int:
    """``install --global``: lfs-agent's filter in the user's git config."""
    from lfs_agent.install import install_global

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
        print(_shown(message), file=sys.stderr)
    print(
        "lfs-agent installed globally (filter in your git config): every repository with a "
        "committed .lfsagent, submodules included, works with plain git and gets its hooks "
        "at the filter's first run there"
    )
    return 0


def cmd_uninstall(ctx: Context) -> int:
    """``uninstall``: remove what install added (here, in submodules, or globally)."""
    from lfs_agent.install import submodule_repos, uninstall, uninstall_global

    if ctx.args.global_scope:
        for message in uninstall_global(ctx.git).messages:
            print(_shown(message), file=sys.stderr)
        print(
            "lfs-agent uninstalled from your global git config; hooks it added to a "
            "repository stay until 'lfs-agent uninstall' there"
        )
        return 0
    for message in uninstall(ctx.git).messages:
        print(_shown(message), file=sys.stderr)
    print("lfs-agent uninstalled")
    if ctx.args.recursive:
        for shown, path in submodule_repos(ctx.git):
            try:
                messages = uninstall(Context(ctx.args, cwd=path).git).messages
            except LfsAgentError as exc:
                raise _submodule_error(shown, exc) from exc
            for message in messages:
                print(f"submodule {_path(shown)}: {_shown(message)}", file=sys.stderr)
            print(f"lfs-agent uninstalled in submodule {_path(shown)}")
    return 0


def _outside_attributes(ctx: Context) -> list[Path]:
    """The system's and the user's attributes files, where git-lfs looks for them."""
    system = Path(os.environ.get("PREFIX") or "/") / "etc" / "gitattributes"
    found = ctx.git.run(["config", "--path", "--get", "core.attributesFile"], check=False)
    configured = found.stdout.decode("utf-8", "surrogateescape").strip()
    if configured:
        user = Path(configured)
    elif os.environ.get("XDG_CONFIG_HOME"):
        user = Path(os.environ["XDG_CONFIG_HOME"]) / "git" / "attributes"
    else:
        user = Path.home() / ".config" / "git" / "attributes"
    return [system, user]


def _lfs_filter_configured(git: Git) -> bool:
    """Whether git would run a clean filter for ``filter=lfs`` here."""
    found = git.run(["config", "--get-regexp", r"^filter\.lfs\.(process|clean)$"], check=False)
    return any(
        line.partition(" ")[2].strip()
        for line in found.stdout.decode("utf-8", "replace").splitlines()
    )


def cmd_track(ctx: Context) -> int:
    """``track [PATTERN...]``: add patterns to .gitattributes, or list them as git-lfs does."""
    import json

    from lfs_agent.install import attribute_patterns, track

    if not ctx.args.patterns:
        found = attribute_patterns(ctx.git, _outside_attributes(ctx))
        if not found:
            return 0
        print("Listing tracked patterns")
        for entry in found:
            if entry.lockable or entry.tracked:
                lockable = " [lockable]" if entry.lockable else ""
                print(f"    {_shown(entry.path)}{lockable} ({_shown(entry.source)})")
        print("Listing excluded patterns")
        for entry in found:
            if not entry.lockable and not entry.tracked:
                print(f"    {_shown(entry.path)} ({_shown(entry.source)})")
        return 0
    result = track(ctx.git, ctx.args.patterns, _outside_attributes(ctx))
    for message in result.messages:
        print(_shown(message))
    covered = {pattern: files for pattern, files in result.covered.items() if files}
    if covered:
        fix = (
            "they now show as modified: 'git add' them to store them as pointers"
            if _lfs_filter_configured(ctx.git)
            else "run 'lfs-agent install', then 'git add --renormalize .' to store them as pointers"
        )
        for pattern, files in covered.items():
            print(
                f"lfs-agent: {_shown(json.dumps(pattern, ensure_ascii=False))} covers "
                f"{len(files)} file(s) already in git; {fix}",
                file=sys.stderr,
            )
    return 0


def cmd_untrack(ctx: Context) -> int:
    """``untrack PATTERN...``: remove patterns from this directory's .gitattributes."""
    from lfs_agent.install import untrack

    for message in untrack(ctx.git, ctx.args.patterns):
        print(_shown(message))
    return 0


def cmd_pre_commit(ctx: Context) -> int:
    """``pre-commit``: the hook; refuses raw content staged for a path stored in LFS.

    Without an lfs filter configured (a submodule, a clone set up before), ``git add``
    stores a tracked file's bytes in git, and the commit would publish them there.
    """
    import shlex

    from lfs_agent.hooks import raw_staged

    raw = raw_staged(ctx.git)
    if not raw:
        return 0
    install = "" if _lfs_filter_configured(ctx.git) else "'lfs-agent install', then "
    for path in raw:
        print(
            f"lfs-agent: {_path(path)} is staged as its raw content, but .gitattributes stores "
            f"it with LFS (filter=lfs): run {install}"
            f"'git add --renormalize -- {_shown(shlex.quote(path))}'",
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


def _upload(ctx: Context, files: list[PointerFile]) -> BatchResult:
    from lfs_agent.sync import push

    remote = ctx.required_remote()
    meter = Meter("Uploading", len({f.pointer.oid for f in files if f.pointer.size}))
    try:
        result = push(ctx.store, remote, files, ctx.settings.concurrency, meter)
    finally:
        remote.close()
    sent = sum(p.size for p in result.done)
    if result.done or result.skipped:
        print(
            f"lfs-agent: uploaded {len(result.done)} object(s) ({human_size(sent)}) to "
            f"{_shown(remote.url)}; {len(result.skipped)} already there",
            file=sys.stderr,
        )
    return result


def cmd_pre_push(ctx: Context) -> int:
    """``pre-push REMOTE URL``: the pre-push hook; ref updates arrive on stdin."""
    from lfs_agent.scan import pre_push_pointers

    if os.environ.get("GIT_LFS_SKIP_PUSH", "").lower() in ("1", "true", "yes", "on"):
        return 0
    lines = sys.stdin.read().splitlines()
    files = pre_push_pointers(ctx.git, ctx.args.remote_name, lines)
    if files:
        _upload(ctx, files)
    return 0


def _has_our_hook(git: Git, name: str) -> bool:
    """Whether lfs-agent's hook ``name`` is the one git runs in this repository."""
    from lfs_agent.hooks import hooks_dir, is_ours

    try:
        return is_ours(hooks_dir(git) / name)
    except LfsAgentError:
        return False


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
        shown = ", ".join(_path(p) for p in sorted(paths)[:3])
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        print(f"  {shown}{more}: {_shown(reason)}", file=sys.stderr)
    return 2


def _all_ref_tips(git: Git) -> list[str]:
    return git.output(["for-each-ref", "--format=%(objectname)", "refs/heads", "refs/tags"]).split()


def cmd_push(ctx: Context) -> int:
    """``push [REMOTE [REF...]] [--all]``: upload objects the bucket lacks."""
    from lfs_agent.scan import rev_list_pointers

    git = ctx.git
    refs = ctx.args.refs or (["HEAD"] if not ctx.args.all else _all_ref_tips(git))
    shas = []
    for ref in refs:
        sha = git.rev_parse(ref)
        if sha is None:
            raise ConfigError(f"unknown revision {ref!r}")
        shas.append(sha)
    names = git.output(["remote"]).split()
    not_remote = (
        None if ctx.args.all else (ctx.args.git_remote if ctx.args.git_remote in names else None)
    )
    files = rev_list_pointers(git, shas, (), not_remote)
    if not files:
        print("lfs-agent: nothing to upload", file=sys.stderr)
        return 0
    _upload(ctx, files)
    return 0


def _selected(ctx: Context, refs: list[str], all_history: bool) -> list[PointerFile]:
    from lfs_agent.scan import rev_list_pointers, tree_pointers

    git = ctx.git
    if all_history:
        files = rev_list_pointers(git, _all_ref_tips(git))
    else:
        files = []
        for ref in refs or ["HEAD"]:
            if git.rev_parse(ref) is None:
                raise ConfigError(f"unknown revision {ref!r}")
            files.extend(tree_pointers(git, ref))
    path_filter = ctx.path_filter()
    return [f for f in files if path_filter.allows(f.path)]


def _download(
    ctx: Context, files: list[PointerFile], unverified: dict[str, Unverified] | None = None
) -> None:
    """Fetch the objects of ``files`` the store lacks (see :func:`sync.fetch`)."""
    from lfs_agent.sync import fetch

    missing = [f for f in files if not ctx.store.contains(f.pointer)]
    if not missing:
        return
    remote = ctx.required_remote()
    meter = Meter("Downloading", len({f.pointer.oid for f in missing}))
    try:
        result = fetch(
            ctx.store, remote, missing, ctx.settings.concurrency, meter, unverified=unverified
        )
    finally:
        remote.close()
    got = sum(p.size for p in result.done)
    print(
        f"lfs-agent: downloaded {len(result.done)} object(s) ({human_size(got)}) from "
        f"{_shown(remote.url)}",
        file=sys.stderr,
    )


def cmd_fetch(ctx: Context) -> int:
    """``fetch [REF...]``: download objects of REF's tree (or all history)."""
    _download(ctx, _selected(ctx, ctx.args.refs, ctx.args.all))
    return 0


def cmd_checkout(ctx: Context) -> int:
    """``checkout``: replace pointer files in the work tree with local content."""
    from lfs_agent.checkout import checkout
    from lfs_agent.scan import index_pointers

    files = [
        f for f in index_pointers(ctx.git, checked_out=True) if ctx.path_filter().allows(f.path)
    ]
    written = checkout(ctx.git, ctx.store, files)
    print(f"lfs-agent: checked out {len(written)} file(s)", file=sys.stderr)
    return 0


def cmd_pull(ctx: Context) -> int:
    """``pull``: fetch the objects of the checked-out files, then check them out."""
    _pull(ctx)
    return 0


def _pull(ctx: Context, after_clone: bool = False) -> None:
    """Download and check out what ``ctx``'s path filter allows.

    When some downloads fail, the files whose objects did arrive are still checked out
    (as ``git lfs pull`` does), and then the failure is raised.

    ``after_clone``: git has checked out what its filter could (see :func:`cmd_clone`);
    the count of files written here is not printed when there are none.
    """
    from lfs_agent.checkout import checkout
    from lfs_agent.scan import index_pointers

    path_filter = ctx.path_filter()
    files = [f for f in index_pointers(ctx.git, checked_out=True) if path_filter.allows(f.path)]
    # Large objects the download did not read are checked while checkout copies them.
    unverified: dict[str, Unverified] = {}
    failure: LfsAgentError | None = None
    try:
        _download(ctx, files, unverified)
    except LfsAgentError as exc:
        failure = exc
    except BaseException:
        for leftover in unverified.values():
            leftover.discard()
        raise
    try:
        written = checkout(ctx.git, ctx.store, files, unverified)
    except LfsAgentError as exc:
        if failure is None:
            raise
        logger.error("%s", exc)
        raise failure from None
    if written or not after_clone:
        print(f"lfs-agent: checked out {len(written)} file(s)", file=sys.stderr)
    if failure is not None and after_clone and ctx.settings.skip_download_errors:
        # As git with git-lfs's filter: the clone succeeds, the pointers stay.
        logger.warning("%s (their files keep their pointers)", failure)
        return
    if failure is not None:
        raise failure


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
            print(f"{_path(f.path)}{size}")
            continue
        oid = f.pointer.oid if ctx.args.long else f.pointer.oid[:10]
        mark = "*" if ctx.store.contains(f.pointer) else "-"
        print(f"{oid} {mark} {_path(f.path)}{size}")
    return 0


def cmd_status(ctx: Context) -> int:
    """``status``: LFS objects to push, staged, and modified."""
    from lfs_agent.scan import index_pointers, rev_list_pointers

    git = ctx.git
    branch = git.run(["symbolic-ref", "--short", "-q", "HEAD"], check=False).stdout.decode()
    print(f"On branch {_shown(branch.strip()) or '(detached HEAD)'}")
    head = git.rev_parse("HEAD")
    upstream = (
        git.run(["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}"], check=False)
        .stdout.decode()
        .strip()
    )
    staged_index = {f.path: f for f in index_pointers(git)}
    if head:
        exclude = [upstream] if upstream else []
        remotes = git.output(["remote"]).split()
        pending = rev_list_pointers(
            git, [head], exclude, None if upstream or not remotes else remotes[0]
        )
        print(f"\nObjects to be pushed to {_shown(upstream) or 'the remote'}:")
        for f in sorted({f.pointer.oid: f for f in pending}.values(), key=lambda f: f.path):
            print(f"\t{_path(f.path)} ({f.pointer.oid[:10]}, {human_size(f.pointer.size)})")
    diff_base = ["--cached", head] if head else ["--cached", "--root"]
    staged = (
        git.output(["diff", "--name-only", *diff_base]).splitlines()
        if head
        else sorted(staged_index)
    )
    print("\nObjects to be committed:")
    for path in staged:
        if path in staged_index:
            print(f"\t{_path(path)} (LFS: {staged_index[path].pointer.oid[:10]})")
    print("\nObjects not staged for commit:")
    for path in git.output(["diff", "--name-only"]).splitlines():
        if path in staged_index:
            print(f"\t{_path(path)} (LFS: {staged_index[path].pointer.oid[:10]})")
    return 0


def cmd_fsck(ctx: Context) -> int:
    """``fsck [--remote] [--deep]``: check objects locally and on the remote."""
    from lfs_agent.maintenance import fsck

    remote = ctx.required_remote() if ctx.args.remote_check else None
    try:
        report = fsck(ctx.git, ctx.store, remote, deep=ctx.args.deep)
    finally:
        if remote is not None:
            remote.close()
    for line in report.corrupt:
        print(f"objects: corruptObject: {_shown(line)}")
    for line in report.missing:
        print(f"objects: missing: {_shown(line)}")
    for line in report.non_canonical:
        print(f"pointer: nonCanonicalPointer: {_shown(line)}")
    for line in report.remote_problems:
        print(f"remote: {_shown(line)}")
    if report.ok:
        print(
            f"fsck: {report.checked} local object(s) OK"
            + (f"; {_shown(remote.url)} holds every object reachable from HEAD" if remote else "")
        )
        return 0
    return 1


def cmd_prune(ctx: Context) -> int:
    """``prune [--dry-run]``: delete local objects that are unused and pushed."""
    from lfs_agent.maintenance import prune

    remote = ctx.required_remote()
    try:
        report = prune(ctx.git, ctx.store, remote, dry_run=ctx.args.dry_run)
    finally:
        remote.close()
    verb = "would prune" if ctx.args.dry_run else "pruned"
    freed = sum(p.size for p in report.pruned)
    for pointer in report.pruned:
        print(f"{verb} {pointer.oid} ({human_size(pointer.size)})")
    print(
        f"prune: {verb} {len(report.pruned)} object(s), {human_size(freed)}; kept "
        f"{len(report.kept_unpushed)} unused object(s) not on {_shown(remote.url)}"
    )
    if report.temp_files_removed or report.upload_states_removed:
        print(
            f"prune: removed {report.temp_files_removed} stale temp file(s) and "
            f"{report.upload_states_removed} dead S3 upload state(s)"
        )
    return 0


def _clone_directory(url: str) -> str:
    """The directory git clone would pick for ``url`` (its "humanish" part)."""
    name = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    name = name.removesuffix(".git") if name != ".git" else name
    return name or "repo"


def cmd_clone(ctx: Context) -> int:
    """``clone URL [DIR]``: clone (git writes the small files), install, pull the rest."""
    import tempfile

    from lfs_agent.checkout import GIT_WRITES_MAX
    from lfs_agent.gitfilter import PULL_AFTER_ENV, SMUDGED_ALL_ENV
    from lfs_agent.install import clone_settings, install

    args = ctx.args
    dest = Path(args.directory or _clone_directory(args.url)).absolute()
    # Written into the clone's config by git (clone -c) before its checkout: what
    # install writes, and the fetch patterns, which last.
    settings = clone_settings(sys.executable)
    for key, values in (("fetchinclude", args.include), ("fetchexclude", args.exclude)):
        if values:
            settings[f"lfs-agent.{key}"] = ",".join(_split_cli(values))
    # For the clone's checkout only (-c before "clone"), overriding the above: our filter
    # runs, not whatever filter is set up globally (git-lfs's, say), and is not required:
    # should it fail, git writes pointers and goes on. With PULL_AFTER_ENV it leaves
    # objects over GIT_WRITES_MAX, and any it cannot get, as pointers for the pull
    # below, which writes large files itself and reports what is missing.
    checkout_only = {
        # Also in settings; here it outranks one given in the environment as well.
        "filter.lfs.process": settings["filter.lfs.process"],
        "filter.lfs.smudge": "",
        "filter.lfs.clean": "",
        "filter.lfs.required": "false",
    }
    cmd = ["git"]
    for key, value in checkout_only.items():
        cmd += ["-c", f"{key}={value}"]
    cmd.append("clone")
    for key, value in settings.items():
        cmd += ["-c", f"{key}={value}"]
    if args.branch:
        cmd += ["--branch", args.branch]
    if args.depth:
        cmd += ["--depth", str(args.depth)]
    if args.recurse_submodules:
        cmd.append("--recurse-submodules")
    if args.filter:
        cmd.append(f"--filter={args.filter}")
    for setting in args.config or ():
        cmd += ["--config", setting]
    cmd += ["--", args.url, str(dest)]
    with tempfile.TemporaryDirectory(prefix="lfs-agent-clone-") as tmp:
        # Created by the filter when git got every file's content from it.
        smudged_all = Path(tmp) / "smudged-all"
        env = {
            **os.environ,
            PULL_AFTER_ENV: str(GIT_WRITES_MAX),
            SMUDGED_ALL_ENV: str(smudged_all),
        }
        code, said = _run_relaying_stderr(cmd, env)
        if code != 0:  # git printed why; a full disk it names only file by file
            _explain_unwritable(said, dest)
            return EXIT_ERROR
        # The submodules' checkouts ran the filter too, and may have left that file.
        nothing_left = smudged_all.exists() and not args.recurse_submodules
    repo = Context(args, cwd=dest)
    install(repo.git)  # the config is there: this adds the hooks (and a committed remote)
    submodules = _clone_submodules(args, dest) if args.recurse_submodules else 0
    if not repo.settings.remote and _remote_from_default_branch(repo.git):
        repo = Context(args, cwd=dest)
    if not repo.settings.remote:
        from lfs_agent.scan import index_pointers

        if not index_pointers(repo.git):  # an empty repository, or one without LFS files
            return submodules
        print(
            f"lfs-agent: cloned into {_shown(str(dest))}, but it names no remote (.lfsagent): run "
            "'lfs-agent install --remote URL' there, then 'lfs-agent pull'",
            file=sys.stderr,
        )
        return EXIT_ERROR
    if not nothing_left:
        _pull(repo, after_clone=True)
    return submodules


def _clone_submodules(args: argparse.Namespace, top: Path) -> int:
    """After ``clone --recurse-submodules``: install and pull in every submodule.

    git checked them out through the clone's filter (the settings given before
    ``clone`` reach the submodules' clones too), which left the large files, and any it
    could not get, as pointers. A submodule that fails is named, and the others go on.

    Returns:
        The exit status: 0, or :data:`EXIT_ERROR` when a submodule failed.
    """
    from lfs_agent.git import Git
    from lfs_agent.install import install, submodule_repos

    status = 0
    for shown, path in submodule_repos(Git(top)):
        sub = Context(args, cwd=path)
        try:
            install(sub.git)
            _pull(sub, after_clone=True)
        except LfsAgentError as exc:
            error = _submodule_error(shown, exc)
            print(f"lfs-agent: error: {_shown(str(error), keep_newlines=True)}", file=sys.stderr)
            status = EXIT_ERROR
    return status


#: How much of a command's stderr is kept to be read after it ends.
_STDERR_KEPT = 64 * 1024


def _run_relaying_stderr(cmd: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``cmd``, passing its stderr on as it comes; return its status and stderr's end."""
    import subprocess

    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    kept = b""
    out = sys.stderr.buffer
    while chunk := os.read(proc.stderr.fileno(), 65536):
        out.write(chunk)
        out.flush()
        kept = (kept + chunk)[-_STDERR_KEPT:]
    return proc.wait(), kept.decode("utf-8", "replace")


def _explain_unwritable(said: str, dest: Path) -> None:
    """Say in one line that the disk is full, when git could not write the clone's files.

    git names each file it could not write ("unable to write file ..."), never the cause.
    """
    import shutil

    markers = ("unable to write", "No space left on device", "File too large")
    if not any(marker in said for marker in markers):
        return
    where = dest
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    print(
        f"lfs-agent: git could not write the files of {_shown(str(dest))}: the disk (or a file "
        f"size limit) is full; {human_size(free)} free there now: free some space and clone again",
        file=sys.stderr,
    )


def _remote_from_default_branch(git: Git) -> bool:
    """Record the remote ``.lfsagent`` names on the remote's default branch, if any.

    For ``clone -b`` of a branch from before ``.lfsagent`` existed: the clone's own
    config then keeps the remote at the lowest precedence (as ``install`` records it).

    Returns:
        True when a remote was recorded.
    """
    from lfs_agent.config import committed_remote
    from lfs_agent.install import remember_remote

    remote = committed_remote(git, "refs/remotes/origin/HEAD")
    if remote is None:
        return False
    remember_remote(git, remote)
    return True


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
                f"{_path(artifact.path)} ({artifact.oid}) is neither in the local store nor in "
                f"{_shown(remote.url)}: run 'lfs-agent fetch' or push from a clone that has it"
            )
        remote.upload(ctx.store, pointer)
    push_record(backend, record, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))


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
            f"the tag was created, but its record did not reach {_shown(remote.url)}: "
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
            _shown(remote.url) if remote else None,
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
    rows = [[_shown(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _print_json(data: object) -> None:
    import json

    print(json.dumps(data, indent=2, sort_keys=True))


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
        f"tag     {_shown(record.tag)}\ncommit  {_shown(record.commit)}\n"
        f"tagger  {_shown(record.tagger)}\ndate    {_shown(record.tagged_at)}\n"
        f"message {_shown(record.message, keep_newlines=True)}"
    )
    print("metrics:")
    for name, value in sorted(record.metrics.items()):
        print(f"  {_shown(name)} = {format_number(value)}")
    print("params:")
    for name, text in sorted(record.params.items()):
        print(f"  {_shown(name)} = {_shown(text)}")
    print("artifacts:")
    for a in record.artifacts:
        print(f"  {_path(a.path)}  {_shown(a.oid[:12])}  {human_size(a.size)}")
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
        print(f"param {_shown(name)}: {_shown(str(p['old']))} -> {_shown(str(p['new']))}")
    for a in diff["artifacts"]:
        old = f"{a['old_oid'][:12]} ({human_size(a['old_size'])})" if a["old_oid"] else "-"
        new = f"{a['new_oid'][:12]} ({human_size(a['new_size'])})" if a["new_oid"] else "-"
        print(f"artifact {_path(a['path'])}: {_shown(old)} -> {_shown(new)}")
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
            print(f"pushed the record of {_shown(tag)}")
    finally:
        remote.close()
    return 0


def cmd_metrics_export(ctx: Context) -> int:
    """``metrics export --mlflow URI [TAG...]``: one MLflow run per tag."""
    from lfs_agent.mlflow import MlflowExporter, Tracking

    tracking = Tracking.resolve(ctx.args.mlflow, os.environ)
    records = _load_records(ctx, ctx.args.tags or None)
    if ctx.args.tags:
        missing = sorted(set(ctx.args.tags) - set(records))
        if missing:
            raise ConfigError(f"no metrics record for {', '.join(missing)}")
    exporter = MlflowExporter(
        tracking, ctx.args.experiment, git=ctx.git, bucket_url=ctx.settings.remote
    )
    failed = exporter.export_all(
        [records[tag] for tag in sorted(records)],
        done=lambda line: print(_shown(line)),
        failed=lambda line: print(f"lfs-agent: error: {_shown(line)}", file=sys.stderr),
    )
    return EXIT_ERROR if failed else 0


def cmd_transfer(ctx: Context) -> int:
    """``transfer``: git-lfs's custom transfer agent on stdin/stdout (JSON lines)."""
    from lfs_agent.transfer import TransferAgent

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer

    def read_line() -> str:
        return stdin.readline().decode("utf-8", "replace")

    def write_line(line: str) -> None:
        stdout.write(line.encode("utf-8") + b"\n")
        stdout.flush()

    def open_session() -> tuple[ObjectStore, Remote]:
        return ctx.store, ctx.required_remote()

    TransferAgent(read_line, write_line, open_session).serve()
    return 0


def _build_parser(command: str | None = None) -> argparse.ArgumentParser:
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

    def want(name: str) -> bool:
        return command is None or name == command

    def add(name: str, func: Callable[[Context], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def add_filters(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-I",
            "--include",
            action="append",
            metavar="PATTERN",
            help="only paths matching (repeatable, comma lists allowed)",
        )
        p.add_argument(
            "-X",
            "--exclude",
            action="append",
            metavar="PATTERN",
            help="never paths matching (repeatable)",
        )

    if want("clean"):
        p = add("clean", cmd_clean, "git clean filter: content on stdin, pointer on stdout")
        p.add_argument("path", nargs="?", help="path git is cleaning (for messages only)")
    if want("smudge"):
        p = add("smudge", cmd_smudge, "git smudge filter: pointer on stdin, content on stdout")
        p.add_argument("path", nargs="?", help="path git is smudging (for messages only)")
        p.add_argument("--skip", action="store_true", help="leave pointers as they are")
    if want("filter-process"):
        p = add(
            "filter-process", cmd_filter_process, "git long-running filter (clean, smudge, delay)"
        )
        p.add_argument("--skip", action="store_true", help="leave pointers as they are")

    if want("install"):
        p = add("install", cmd_install, "set this repository up for lfs-agent")
        p.add_argument(
            "--remote",
            dest="remote_url",
            metavar="URL",
            help="bucket for objects: a folder, s3://, gs:// or http(s):// URL",
        )
        p.add_argument(
            "--local",
            action="store_true",
            help="record the remote in .git/config instead of the committed .lfsagent",
        )
        p.add_argument(
            "--with-git-lfs",
            action="store_true",
            help="keep git-lfs's filter and hooks; route its transfers through lfs-agent",
        )
        p.add_argument(
            "--scope-remote",
            metavar="NAME",
            help="with --with-git-lfs: use lfs-agent only for this git remote",
        )
        p.add_argument(
            "--force",
            action="store_true",
            help="replace filter settings another tool wrote in this repository (with "
            "--global: in your git config)",
        )
        p.add_argument(
            "--global",
            dest="global_scope",
            action="store_true",
            help="the filter in your git config instead, for every repository and submodule",
        )
        p.add_argument(
            "--recursive", action="store_true", help="also in every initialized submodule"
        )
    if want("uninstall"):
        p = add("uninstall", cmd_uninstall, "remove what install added")
        p.add_argument(
            "--global",
            dest="global_scope",
            action="store_true",
            help="remove what 'install --global' wrote to your git config",
        )
        p.add_argument(
            "--recursive", action="store_true", help="also in every initialized submodule"
        )
    if want("track"):
        p = add(
            "track",
            cmd_track,
            "track patterns with LFS in this directory's .gitattributes (list with none)",
        )
        p.add_argument("patterns", nargs="*", metavar="PATTERN")
    if want("untrack"):
        p = add("untrack", cmd_untrack, "stop tracking patterns of this directory's .gitattributes")
        p.add_argument("patterns", nargs="+", metavar="PATTERN")
    if want("pre-commit"):
        add(
            "pre-commit",
            cmd_pre_commit,
            "pre-commit hook: refuse raw content staged for paths stored with LFS",
        )
    if want("global-filter-process"):
        p = add(
            "global-filter-process",
            cmd_global_filter_process,
            "the filter of 'install --global': adds missing hooks, then runs filter-process",
        )
        p.add_argument("--skip", action="store_true", help="leave pointers as they are")

    if want("pre-push"):
        p = add("pre-push", cmd_pre_push, "pre-push hook: upload objects of the refs being pushed")
        p.add_argument("remote_name", metavar="REMOTE")
        p.add_argument("remote_location", metavar="URL", nargs="?")
    if want("post-checkout"):
        p = add("post-checkout", cmd_post_checkout, "post-checkout hook: fail on failed downloads")
        p.add_argument("hook_args", metavar="ARG", nargs="*")
    if want("push"):
        p = add("push", cmd_push, "upload objects reachable from refs that the bucket lacks")
        p.add_argument("git_remote", metavar="REMOTE", nargs="?", default="origin")
        p.add_argument("refs", metavar="REF", nargs="*")
        p.add_argument("--all", action="store_true", help="every object of every branch and tag")
    if want("fetch"):
        p = add("fetch", cmd_fetch, "download objects for REF (default HEAD) into the local store")
        p.add_argument("refs", metavar="REF", nargs="*")
        p.add_argument("--all", action="store_true", help="every object of every branch and tag")
        add_filters(p)
    if want("pull"):
        p = add("pull", cmd_pull, "fetch, then replace pointer files in the work tree")
        add_filters(p)
    if want("clone"):
        p = add(
            "clone",
            cmd_clone,
            "clone (files up to 32 MiB downloaded as git writes them), install, then pull "
            "the larger ones; only what matches -I/-X (lazy CI clone)",
        )
        p.add_argument("url", metavar="URL")
        p.add_argument("directory", metavar="DIR", nargs="?")
        p.add_argument("-b", "--branch", metavar="BRANCH")
        p.add_argument("--depth", type=int, metavar="N")
        p.add_argument(
            "--recurse-submodules",
            action="store_true",
            help="clone the submodules too (git's option), then install and pull in each",
        )
        p.add_argument("--filter", metavar="SPEC", help="git's partial clone (blob:none)")
        p.add_argument(
            "-c", "--config", action="append", metavar="KEY=VALUE", help="git clone's --config"
        )
        add_filters(p)
    if want("checkout"):
        p = add("checkout", cmd_checkout, "replace pointer files with local content (no download)")
        add_filters(p)
    if want("ls-files"):
        p = add("ls-files", cmd_ls_files, "list LFS files at REF (default HEAD)")
        p.add_argument("ref", metavar="REF", nargs="?")
        p.add_argument("-l", "--long", action="store_true", help="full oids")
        p.add_argument("-s", "--size", action="store_true", help="show sizes")
        p.add_argument("-n", "--name-only", action="store_true", help="paths only")
    if want("status"):
        add("status", cmd_status, "LFS objects to push, staged and modified")
    if want("fsck"):
        p = add("fsck", cmd_fsck, "verify local objects (and the remote's with --remote)")
        p.add_argument(
            "--remote",
            dest="remote_check",
            action="store_true",
            help="check the bucket holds every object reachable from HEAD",
        )
        p.add_argument("--deep", action="store_true", help="with --remote: download and hash too")
    if want("transfer"):
        add("transfer", cmd_transfer, "git-lfs custom transfer agent (run by git-lfs)")
    if want("tag"):
        p = add("tag", cmd_tag, "annotated tag at HEAD with a metrics record in the bucket")
        p.add_argument("name", metavar="NAME")
        p.add_argument("-m", "--message", metavar="MSG")
        p.add_argument(
            "--metrics",
            dest="metrics_files",
            action="append",
            metavar="FILE",
            help="JSON or YAML file of (nested) numbers; repeatable",
        )
        p.add_argument("--metric", action="append", metavar="K=V", help="one number; repeatable")
        p.add_argument("--param", action="append", metavar="K=V", help="one string; repeatable")
        p.add_argument("-f", "--force", action="store_true", help="move an existing tag")
    if want("metrics"):
        p = sub.add_parser(
            "metrics", help="metrics records of tags: list, show, diff, push, export"
        )
        msub = p.add_subparsers(dest="metrics_command", metavar="SUBCOMMAND", required=True)
        q = msub.add_parser("list", help="every tag with its metrics")
        q.set_defaults(func=cmd_metrics_list)
        q.add_argument("--sort", metavar="METRIC", help="highest first by this metric")
        q.add_argument("--json", action="store_true")
        q = msub.add_parser("show", help="one tag's record")
        q.set_defaults(func=cmd_metrics_show)
        q.add_argument("tag", metavar="TAG")
        q.add_argument("--json", action="store_true")
        q = msub.add_parser("diff", help="what changed from one tag to another")
        q.set_defaults(func=cmd_metrics_diff)
        q.add_argument("old", metavar="A")
        q.add_argument("new", metavar="B")
        q.add_argument("--json", action="store_true")
        q = msub.add_parser("push", help="upload records that could not be uploaded before")
        q.set_defaults(func=cmd_metrics_push)
        q = msub.add_parser("export", help="export records to MLflow (one run per tag)")
        q.set_defaults(func=cmd_metrics_export)
        q.add_argument(
            "--mlflow", metavar="URI", help="MLflow tracking server URL ($MLFLOW_TRACKING_URI)"
        )
        q.add_argument("--experiment", default="lfs-agent", help="experiment name (lfs-agent)")
        q.add_argument("tags", metavar="TAG", nargs="*")
    if want("prune"):
        p = add("prune", cmd_prune, "delete local objects that are unused and safely in the bucket")
        p.add_argument("--dry-run", action="store_true", help="only say what would go")
    if not sub.choices and command != "--version":
        return _build_parser()  # --help, or no such command: argparse lists them all
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit status."""
    debug = _setup_logging()
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = _build_parser(arguments[0] if arguments else None)
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
        print(f"lfs-agent: error: {_shown(str(exc), keep_newlines=True)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("lfs-agent: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as exc:  # the CLI boundary: never a traceback unless debugging
        logger.debug("unexpected error", exc_info=True)
        print(
            f"lfs-agent: error: internal error: {type(exc).__name__}: "
            f"{_shown(str(exc), keep_newlines=True)} (run with {LOG_ENV}=debug for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
