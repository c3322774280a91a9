"""Which files LFS stores: track and untrack, patterns of ``.gitattributes``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from lfs_agent.cli.context import Command, Context, shown

if TYPE_CHECKING:
    from lfs_agent.git import Git

__all__ = ["COMMANDS", "cmd_track", "cmd_untrack", "lfs_filter_configured"]


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

    from lfs_agent.attributes import attribute_patterns
    from lfs_agent.tracking import track

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
        ctx.say(shown(message))
    covered = {pattern: files for pattern, files in result.covered.items() if files}
    if covered:
        fix = (
            "they now show as modified: 'git add' them to store them as pointers"
            if lfs_filter_configured(ctx.git)
            else "run 'lfs-agent install', then 'git add --renormalize .' to store them as pointers"
        )
        for pattern, files in covered.items():
            ctx.note(
                f"lfs-agent: {shown(json.dumps(pattern, ensure_ascii=False))} covers "
                f"{len(files)} file(s) already in git; {fix}"
            )
    return 0


def add_untrack(parser: argparse.ArgumentParser) -> None:
    """``untrack PATTERN...``."""
    parser.add_argument("patterns", nargs="+", metavar="PATTERN")


def cmd_untrack(ctx: Context) -> int:
    """``untrack PATTERN...``: remove patterns from this directory's .gitattributes."""
    from lfs_agent.tracking import untrack

    for message in untrack(ctx.git, ctx.args.patterns):
        ctx.say(shown(message))
    return 0


#: This group's commands, by name, for the dispatcher.
COMMANDS = {
    "track": Command(
        "track patterns with LFS in this directory's .gitattributes (list with none)",
        add_track,
        cmd_track,
    ),
    "untrack": Command(
        "stop tracking patterns of this directory's .gitattributes", add_untrack, cmd_untrack
    ),
}
