"""Moving objects: push, pre-push, fetch, pull, checkout, and git-lfs's transfer agent."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from lfs_agent import log
from lfs_agent.cli.context import (
    Command,
    Context,
    add_path_filters,
    human_size,
    no_arguments,
    shown,
)
from lfs_agent.cli.jsondoc import add_json, empty_report, json_watch, print_document
from lfs_agent.errors import ConfigError, LfsAgentError

if TYPE_CHECKING:
    from collections.abc import Callable

    from lfs_agent.git import Git
    from lfs_agent.pointer import Pointer
    from lfs_agent.progressline import ProgressLine
    from lfs_agent.registry import PushRecorder
    from lfs_agent.remote import Remote
    from lfs_agent.reports import TransferReport
    from lfs_agent.scan import PointerFile
    from lfs_agent.smudge_downloads import Unverified
    from lfs_agent.store import ObjectStore
    from lfs_agent.sync import BatchResult, Interrupted

__all__ = [
    "COMMANDS",
    "cmd_checkout",
    "cmd_fetch",
    "cmd_pre_push",
    "cmd_pull",
    "cmd_push",
    "cmd_transfer",
    "pull",
]

logger = log.get_logger("lfs_agent")


def _progress_line(verb: str, pointers: list[Pointer], live: bool) -> ProgressLine:
    """The live progress line on stderr, drawn only when ``live`` (see :attr:`Context.live`)."""
    from lfs_agent.progressline import ProgressLine

    return ProgressLine(verb, pointers, sys.stderr, live=live)


def _interrupted(exc: Interrupted, verb: str) -> KeyboardInterrupt:
    """Ctrl-C during a batch, told as what was done and what was not."""
    done = exc.result.done + exc.result.skipped
    moved = sum(p.size for p in exc.result.done)
    left = exc.total - len(done) - len(exc.result.failed)
    return KeyboardInterrupt(
        f"{len(done)} of {exc.total} object(s) {verb} ({human_size(moved)}), "
        f"{left} not; run the command again for the rest"
    )


def _recorder(
    ctx: Context,
    remote: Remote,
    git_remote: str,
    by: str,
    reach: Callable[[], list[PointerFile]],
    *,
    start: bool = False,
) -> PushRecorder | None:
    """The push's record for a bucket that can be collected; None for one that cannot.

    Args:
        ctx: The command.
        remote: The bucket.
        git_remote: The git remote (name or URL) the push goes to: the registration.
        by: What pushes, for the record.
        reach: The pointers the push makes reachable (see :func:`registry.pushed_reach`).
        start: Make the record even before it names an object (the transfer agent
            adds objects as git-lfs sends them).
    """
    from lfs_agent.backends import Capability
    from lfs_agent.registry import PushRecorder, repository_id

    if not remote.can(Capability.COLLECT):
        return None
    repo = repository_id(ctx.git, git_remote)
    recorder = PushRecorder(remote, repo, by, ctx.git.paths.common_dir / "lfs-agent" / "gc")
    recorder.add(f.pointer.oid for f in reach() if f.pointer.size > 0)
    if not recorder.oids and not start:
        return None  # the push makes no object reachable: nothing to record
    recorder.begin()
    return recorder


def _upload(
    ctx: Context,
    files: list[PointerFile],
    record: Callable[[Remote], PushRecorder | None] | None = None,
) -> BatchResult:
    """Upload what the bucket lacks of ``files``.

    Args:
        ctx: The command.
        files: What to upload.
        record: Makes the push's record for the bucket (its part in garbage
            collection), published once the uploads are done and before the command
            returns, so before git lets the refs land.
    """
    from lfs_agent.sync import Interrupted, push

    line = _progress_line("Uploading", [f.pointer for f in files], ctx.live)
    watch = json_watch(ctx, line)
    with ctx.required_remote() as remote:
        recorder = record(remote) if record is not None else None
        try:
            result = push(ctx.store, remote, files, ctx.settings.concurrency, watch or line)
            if recorder is not None:
                recorder.add(f.pointer.oid for f in files if f.pointer.size > 0)
                uploaded = {p.oid for p in result.done}
                recorder.reused(oid for oid in recorder.oids if oid not in uploaded)
                recorder.publish()
        except Interrupted as exc:
            raise _interrupted(exc, "uploaded") from None
        except LfsAgentError as exc:
            if watch is not None:
                print_document(watch.report("upload", remote.url, error=str(exc)))
            raise
        finally:
            line.finish()
    sent = sum(p.size for p in result.done)
    if watch is not None:
        print_document(watch.report("upload", remote.url, result))
    if result.done or result.skipped:
        ctx.note(
            f"lfs-agent: uploaded {len(result.done)} object(s) ({human_size(sent)}) to "
            f"{shown(remote.url)}; {len(result.skipped)} already there"
        )
    return result


def add_pre_push(parser: argparse.ArgumentParser) -> None:
    """``pre-push REMOTE [URL]``, as git passes them."""
    parser.add_argument("remote_name", metavar="REMOTE")
    parser.add_argument("remote_location", metavar="URL", nargs="?")


def cmd_pre_push(ctx: Context) -> int:
    """``pre-push REMOTE URL``: the pre-push hook; ref updates arrive on stdin."""
    from lfs_agent.scan import ZERO_OID, pre_push_pointers

    if os.environ.get("GIT_LFS_SKIP_PUSH", "").lower() in ("1", "true", "yes", "on"):
        return 0
    lines = sys.stdin.read().splitlines()
    files = pre_push_pointers(ctx.git, ctx.args.remote_name, lines)
    updates = [(f[2], f[1], f[3]) for f in (line.split() for line in lines) if len(f) == 4]

    def record(remote: Remote) -> PushRecorder | None:
        from lfs_agent.registry import pushed_reach

        # A remote's name when it has one: its id is then the same as gc --refresh's.
        named = ctx.args.remote_name in ctx.git.output(["remote"]).split()
        target = ctx.args.remote_name if named else ctx.args.remote_location
        recorder = _recorder(
            ctx,
            remote,
            target or ctx.args.remote_name,
            "pre-push",
            lambda: pushed_reach(ctx.git, updates, ctx.retention_policy()),
        )
        if recorder is not None:
            recorder.add([], {ref: new for ref, new, _ in updates})
        return recorder

    if files or any(new != ZERO_OID for _, new, _ in updates):
        _upload(ctx, files, record)
    return 0


def _all_ref_tips(git: Git) -> list[str]:
    return git.output(["for-each-ref", "--format=%(objectname)", "refs/heads", "refs/tags"]).split()


def add_push(parser: argparse.ArgumentParser) -> None:
    """``push [REMOTE [REF...]] [--all]``."""
    parser.add_argument("git_remote", metavar="REMOTE", nargs="?", default="origin")
    parser.add_argument("refs", metavar="REF", nargs="*")
    parser.add_argument("--all", action="store_true", help="every object of every branch and tag")
    add_json(parser)


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
        ctx.note("lfs-agent: nothing to upload")
        if ctx.args.json:
            print_document(empty_report("upload"))
        return 0
    target = ctx.args.git_remote if ctx.args.git_remote in names else None
    _upload(
        ctx,
        files,
        None if target is None else lambda r: _recorder(ctx, r, target, "push", lambda: files),
    )
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
    ctx: Context,
    files: list[PointerFile],
    unverified: dict[str, Unverified] | None = None,
    reports: list[TransferReport] | None = None,
) -> None:
    """Fetch the objects of ``files`` the store lacks (see :func:`sync.fetch`).

    With ``--json``, the summary goes into ``reports``, also when a failure is raised,
    so that the failed objects are listed.
    """
    from lfs_agent.sync import Interrupted, fetch

    present = [f.pointer for f in files if ctx.store.contains(f.pointer)]
    missing = [f for f in files if not ctx.store.contains(f.pointer)]
    line = _progress_line("Downloading", [f.pointer for f in missing], ctx.live)
    watch = json_watch(ctx, line)
    sink = reports if reports is not None else []
    if not missing:
        if watch is not None:
            sink.append(watch.report("download", "", already=present))
        return
    with ctx.required_remote() as remote:
        try:
            result = fetch(
                ctx.store,
                remote,
                missing,
                ctx.settings.concurrency,
                watch or line,
                unverified=unverified,
            )
        except Interrupted as exc:
            raise _interrupted(exc, "downloaded") from None
        except LfsAgentError as exc:
            if watch is not None:
                failed = watch.report("download", remote.url, already=present, error=str(exc))
                sink.append(failed)
            raise
        finally:
            line.finish()
    got = sum(p.size for p in result.done)
    ctx.note(
        f"lfs-agent: downloaded {len(result.done)} object(s) ({human_size(got)}) from "
        f"{shown(remote.url)}"
    )
    if watch is not None:
        sink.append(watch.report("download", remote.url, result, already=present))


def add_fetch(parser: argparse.ArgumentParser) -> None:
    """``fetch [REF...] [--all] [-I PATTERN] [-X PATTERN]``."""
    parser.add_argument("refs", metavar="REF", nargs="*")
    parser.add_argument("--all", action="store_true", help="every object of every branch and tag")
    add_path_filters(parser)
    add_json(parser)


def cmd_fetch(ctx: Context) -> int:
    """``fetch [REF...]``: download objects of REF's tree (or all history)."""
    reports: list[TransferReport] = []
    try:
        _download(ctx, _selected(ctx, ctx.args.refs, ctx.args.all), reports=reports)
    finally:
        for report in reports:
            print_document(report)
    return 0


def cmd_checkout(ctx: Context) -> int:
    """``checkout``: replace pointer files in the work tree with local content."""
    from lfs_agent.checkout import checkout
    from lfs_agent.scan import index_pointers

    files = [
        f for f in index_pointers(ctx.git, checked_out=True) if ctx.path_filter().allows(f.path)
    ]
    written = checkout(ctx.git, ctx.store, files)
    ctx.note(f"lfs-agent: checked out {len(written)} file(s)")
    return 0


def add_pull(parser: argparse.ArgumentParser) -> None:
    """``pull [-I PATTERN] [-X PATTERN] [--json]``."""
    add_path_filters(parser)
    add_json(parser)


def cmd_pull(ctx: Context) -> int:
    """``pull``: fetch the objects of the checked-out files, then check them out."""
    reports: list[TransferReport] = []
    try:
        pull(ctx, reports=reports)
    finally:
        for report in reports:
            print_document(report)
    return 0


def pull(
    ctx: Context, after_clone: bool = False, reports: list[TransferReport] | None = None
) -> None:
    """Download and check out what ``ctx``'s path filter allows.

    When some downloads fail, the files whose objects did arrive are still checked out
    (as ``git lfs pull`` does), and then the failure is raised.

    ``after_clone``: git has checked out what its filter could (see
    :func:`~lfs_agent.cli.setup.cmd_clone`); the count of files written here is not
    printed when there are none.

    ``reports``: with ``--json``, the download's summary is added there, with the
    count of files checked out, even when a failure is raised after.
    """
    from lfs_agent.checkout import checkout
    from lfs_agent.scan import index_pointers

    path_filter = ctx.path_filter()
    files = [f for f in index_pointers(ctx.git, checked_out=True) if path_filter.allows(f.path)]
    # Large objects the download did not read are checked while checkout copies them.
    unverified: dict[str, Unverified] = {}
    failure: LfsAgentError | None = None
    sink: list[TransferReport] = []
    try:
        _download(ctx, files, unverified, sink)
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
        if reports is not None:
            reports.extend(sink)
        raise failure from None
    if written or not after_clone:
        ctx.note(f"lfs-agent: checked out {len(written)} file(s)")
    if reports is not None:
        reports.extend(r.model_copy(update={"checked_out": len(written)}) for r in sink)
    if failure is not None and after_clone and ctx.settings.skip_download_errors:
        # As git with git-lfs's filter: the clone succeeds, the pointers stay.
        logger.warning("%s (their files keep their pointers)", failure)
        return
    if failure is not None:
        raise failure


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

    def recorder_for(remote: Remote, git_remote: str) -> PushRecorder | None:
        # git-lfs sends every object of its push; each one is added as it comes.
        return _recorder(ctx, remote, git_remote or "origin", "transfer", list, start=True)

    TransferAgent(read_line, write_line, open_session, recorder_for).serve()
    return 0


#: This group's commands, by name, for the dispatcher.
COMMANDS = {
    "pre-push": Command(
        "pre-push hook: upload objects of the refs being pushed", add_pre_push, cmd_pre_push
    ),
    "push": Command("upload objects reachable from refs that the bucket lacks", add_push, cmd_push),
    "fetch": Command(
        "download objects for REF (default HEAD) into the local store", add_fetch, cmd_fetch
    ),
    "pull": Command("fetch, then replace pointer files in the work tree", add_pull, cmd_pull),
    "checkout": Command(
        "replace pointer files with local content (no download)",
        add_path_filters,
        cmd_checkout,
    ),
    "transfer": Command(
        "git-lfs custom transfer agent (run by git-lfs)", no_arguments, cmd_transfer
    ),
}
