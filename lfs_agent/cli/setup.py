"""Setting a repository up: install, uninstall, track, untrack, clone."""

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
from lfs_agent.errors import ConfigError, LfsAgentError

if TYPE_CHECKING:
    from lfs_agent.git import Git

__all__ = [
    "COMMANDS",
    "cmd_clone",
    "cmd_install",
    "cmd_track",
    "cmd_uninstall",
    "cmd_untrack",
    "lfs_filter_configured",
]


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
        print(shown(message), file=sys.stderr)
    mode = "git-lfs transfers" if args.with_git_lfs else "filter and hooks"
    print(f"lfs-agent installed ({mode}); {_where(ctx)}")
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
            print(f"submodule {shown_path(name)}: {shown(message)}", file=sys.stderr)
        print(f"lfs-agent installed in submodule {shown_path(name)} ({mode}); {_where(sub)}")
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
        print(shown(message), file=sys.stderr)
    print(
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
    from lfs_agent.install import submodule_repos, uninstall, uninstall_global

    if ctx.args.global_scope:
        for message in uninstall_global(ctx.git).messages:
            print(shown(message), file=sys.stderr)
        print(
            "lfs-agent uninstalled from your global git config; hooks it added to a "
            "repository stay until 'lfs-agent uninstall' there"
        )
        return 0
    for message in uninstall(ctx.git).messages:
        print(shown(message), file=sys.stderr)
    print("lfs-agent uninstalled")
    if ctx.args.recursive:
        for name, path in submodule_repos(ctx.git):
            try:
                messages = uninstall(Context(ctx.args, cwd=path).git).messages
            except LfsAgentError as exc:
                raise _submodule_error(name, exc) from exc
            for message in messages:
                print(f"submodule {shown_path(name)}: {shown(message)}", file=sys.stderr)
            print(f"lfs-agent uninstalled in submodule {shown_path(name)}")
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


def lfs_filter_configured(git: Git) -> bool:
    """Whether git would run a clean filter for ``filter=lfs`` here."""
    found = git.run(["config", "--get-regexp", r"^filter\.lfs\.(process|clean)$"], check=False)
    return any(
        line.partition(" ")[2].strip()
        for line in found.stdout.decode("utf-8", "replace").splitlines()
    )


def add_track(parser: argparse.ArgumentParser) -> None:
    """``track [PATTERN...]``."""
    parser.add_argument("patterns", nargs="*", metavar="PATTERN")


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
                print(f"    {shown(entry.path)}{lockable} ({shown(entry.source)})")
        print("Listing excluded patterns")
        for entry in found:
            if not entry.lockable and not entry.tracked:
                print(f"    {shown(entry.path)} ({shown(entry.source)})")
        return 0
    result = track(ctx.git, ctx.args.patterns, _outside_attributes(ctx))
    for message in result.messages:
        print(shown(message))
    covered = {pattern: files for pattern, files in result.covered.items() if files}
    if covered:
        fix = (
            "they now show as modified: 'git add' them to store them as pointers"
            if lfs_filter_configured(ctx.git)
            else "run 'lfs-agent install', then 'git add --renormalize .' to store them as pointers"
        )
        for pattern, files in covered.items():
            print(
                f"lfs-agent: {shown(json.dumps(pattern, ensure_ascii=False))} covers "
                f"{len(files)} file(s) already in git; {fix}",
                file=sys.stderr,
            )
    return 0


def add_untrack(parser: argparse.ArgumentParser) -> None:
    """``untrack PATTERN...``."""
    parser.add_argument("patterns", nargs="+", metavar="PATTERN")


def cmd_untrack(ctx: Context) -> int:
    """``untrack PATTERN...``: remove patterns from this directory's .gitattributes."""
    from lfs_agent.install import untrack

    for message in untrack(ctx.git, ctx.args.patterns):
        print(shown(message))
    return 0


def _clone_directory(url: str) -> str:
    """The directory git clone would pick for ``url`` (its "humanish" part)."""
    name = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    name = name.removesuffix(".git") if name != ".git" else name
    return name or "repo"


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


def cmd_clone(ctx: Context) -> int:
    """``clone URL [DIR]``: clone (git writes the small files), install, pull the rest."""
    import tempfile

    from lfs_agent.checkout import GIT_WRITES_MAX
    from lfs_agent.cli.transfers import pull
    from lfs_agent.gitfilter import PULL_AFTER_ENV, SMUDGED_ALL_ENV
    from lfs_agent.install import clone_settings, install

    args = ctx.args
    dest = Path(args.directory or _clone_directory(args.url)).absolute()
    # Written into the clone's config by git (clone -c) before its checkout: what
    # install writes, and the fetch patterns, which last.
    settings = clone_settings(sys.executable)
    for key, values in (("fetchinclude", args.include), ("fetchexclude", args.exclude)):
        if values:
            settings[f"lfs-agent.{key}"] = ",".join(split_cli(values))
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
            f"lfs-agent: cloned into {shown(str(dest))}, but it names no remote (.lfsagent): run "
            "'lfs-agent install --remote URL' there, then 'lfs-agent pull'",
            file=sys.stderr,
        )
        return EXIT_ERROR
    if not nothing_left:
        pull(repo, after_clone=True)
    return submodules


def _clone_submodules(args: argparse.Namespace, top: Path) -> int:
    """After ``clone --recurse-submodules``: install and pull in every submodule.

    git checked them out through the clone's filter (the settings given before
    ``clone`` reach the submodules' clones too), which left the large files, and any it
    could not get, as pointers. A submodule that fails is named, and the others go on.

    Returns:
        The exit status: 0, or :data:`EXIT_ERROR` when a submodule failed.
    """
    from lfs_agent.cli.transfers import pull
    from lfs_agent.git import Git
    from lfs_agent.install import install, submodule_repos

    status = 0
    for name, path in submodule_repos(Git(top)):
        sub = Context(args, cwd=path)
        try:
            install(sub.git)
            pull(sub, after_clone=True)
        except LfsAgentError as exc:
            error = _submodule_error(name, exc)
            print(f"lfs-agent: error: {shown(str(error), keep_newlines=True)}", file=sys.stderr)
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
        f"lfs-agent: git could not write the files of {shown(str(dest))}: the disk (or a file "
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


#: This group's commands, by name, for the dispatcher.
COMMANDS = {
    "install": Command("set this repository up for lfs-agent", add_install, cmd_install),
    "uninstall": Command("remove what install added", add_uninstall, cmd_uninstall),
    "track": Command(
        "track patterns with LFS in this directory's .gitattributes (list with none)",
        add_track,
        cmd_track,
    ),
    "untrack": Command(
        "stop tracking patterns of this directory's .gitattributes", add_untrack, cmd_untrack
    ),
    "clone": Command(
        "clone (files up to 32 MiB downloaded as git writes them), install, then pull "
        "the larger ones; only what matches -I/-X (lazy CI clone)",
        add_clone,
        cmd_clone,
    ),
}
