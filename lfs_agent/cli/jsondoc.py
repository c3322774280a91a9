"""``--json`` for the commands that move objects: the flag, the watch, the documents.

The models live in :mod:`lfs_agent.reports`, imported here only once ``--json`` is
given: pydantic is too slow to import on every hook and filter run.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lfs_agent.cli.context import Context

if TYPE_CHECKING:
    from lfs_agent.progressline import ProgressLine
    from lfs_agent.reports import TransferLog, TransferReport

__all__ = ["add_json", "clone_report", "json_watch", "print_document", "wants_json"]


def add_json(parser: argparse.ArgumentParser) -> None:
    """``--json``: one JSON document on stdout, messages on stderr."""
    parser.add_argument("--json", action="store_true", help="print a JSON document")


def wants_json(ctx: Context) -> bool:
    """True when the command was given ``--json`` (some commands have no such flag)."""
    return bool(getattr(ctx.args, "json", False))


def json_watch(ctx: Context, line: ProgressLine) -> TransferLog | None:
    """With ``--json``, a watch noting each object for the summary; None without."""
    if not wants_json(ctx):
        return None
    from lfs_agent.reports import TransferLog

    return TransferLog(line)


def print_document(document: TransferReport) -> None:
    """One transfer summary on stdout."""
    print(document.model_dump_json(indent=2))


def empty_report(operation: str) -> TransferReport:
    """The summary of a command that had nothing to move."""
    from lfs_agent.reports import TransferReport

    return TransferReport(
        operation=operation, remote="", done=[], skipped=[], failed=[], bytes_moved=0
    )


def clone_report(repo: Context, pulls: list[TransferReport]) -> TransferReport:
    """The summary of a clone: what git's checkout and the pulls after it moved.

    A fresh clone's store starts empty, so every object in it came in during the clone:
    an object a pull found already there was downloaded by the filter while git
    checked the files out, and counts as done.

    Args:
        repo: The new repository.
        pulls: The summaries of the pulls run after git's checkout (the submodules'
            and the top repository's), in any order.
    """
    from lfs_agent.reports import TransferObject, TransferReport
    from lfs_agent.scan import index_pointers

    done: dict[str, TransferObject] = {}
    for pull in pulls:
        for item in [*pull.done, *pull.skipped]:
            done[item.oid] = item
    path_filter = repo.path_filter()
    for f in index_pointers(repo.git, checked_out=True):
        if path_filter.allows(f.path) and repo.store.contains(f.pointer):
            done[f.pointer.oid] = TransferObject(oid=f.pointer.oid, size=f.pointer.size)
    failed = {f.oid: f for pull in pulls for f in pull.failed}
    return TransferReport(
        operation="download",
        remote=next((p.remote for p in pulls if p.remote), ""),
        done=sorted(done.values(), key=lambda o: o.oid),
        skipped=[],
        failed=sorted(failed.values(), key=lambda f: f.oid),
        bytes_moved=sum(o.size for o in done.values()),
        checked_out=sum(p.checked_out or 0 for p in pulls),
        error=next((p.error for p in pulls if p.error), None),
    )
