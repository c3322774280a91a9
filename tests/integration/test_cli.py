"""The command line shell and the single-shot clean/smudge filters under real git."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lfs_agent.backends import open_backend
from lfs_agent.cli.filters import PIPE_SIZE
from tests.conftest import AGENT, agent, git
from tests.contract.backend_contract import Recorder
from tests.helpers import pointer_bytes, random_bytes, sha256

pytestmark = pytest.mark.integration


def test_version_and_help_list_the_commands(tmp_path: Path):
    out = agent("--version", cwd=tmp_path)
    assert out.returncode == 0
    assert out.stdout.decode().startswith("lfs-agent ")
    helped = agent("--help", cwd=tmp_path)
    assert helped.returncode == 0
    for command in ("clean", "smudge"):
        assert command in helped.stdout.decode()


def test_the_parser_holds_only_the_command_being_run():
    from lfs_agent.cli import build_parser

    one = build_parser("filter-process")
    assert one.parse_args(["filter-process", "--skip"]).skip is True
    assert "prune" not in one.format_help()
    full = build_parser("no-such-command")  # argparse's error must list every command
    assert "prune" in full.format_help() and "filter-process" in full.format_help()


def test_every_command_is_declared_by_the_group_module_the_dispatcher_names():
    import importlib

    from lfs_agent.cli import GROUPS

    declared = {}
    for group in set(GROUPS.values()):
        for name in importlib.import_module(f"lfs_agent.cli.{group}").COMMANDS:
            declared[name] = group
    assert declared == GROUPS


def test_a_command_imports_only_the_module_of_its_group():
    code = (
        "import sys\n"
        "from lfs_agent.cli import build_parser\n"
        "build_parser('smudge').parse_args(['smudge', 'a.bin'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('lfs_agent.cli.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['lfs_agent.cli.context', 'lfs_agent.cli.filters']"


def test_an_unknown_command_is_refused_with_the_list_of_commands(tmp_path: Path):
    out = agent("no-such-command", cwd=tmp_path)
    assert out.returncode == 2
    message = out.stderr.decode()
    assert "invalid choice: 'no-such-command'" in message
    assert "'filter-process'" in message and "'prune'" in message
    nested = agent("metrics", "list", "--help", cwd=tmp_path)
    assert nested.returncode == 0 and "--sort METRIC" in nested.stdout.decode()


def test_importing_the_cli_does_not_import_sdks_or_pydantic(tmp_path: Path):
    code = (
        "import sys, lfs_agent.cli; bad = [m for m in sys.modules if m.split('.')[0] in "
        "('boto3', 'botocore', 'google', 'pydantic', 'requests')]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_transfer_agent_answers_init_before_importing_pydantic(tmp_path: Path):
    # git-lfs starts its agents one after another, each waiting for this reply.
    git("init", "-q", str(tmp_path), cwd=tmp_path)
    git("config", "lfs-agent.remote", str(tmp_path / "bucket"), cwd=tmp_path)
    code = (
        "import sys\n"
        "from lfs_agent.cli import main\n"
        "main(['transfer'])\n"
        "print('pydantic' in sys.modules, file=sys.stderr)\n"
    )
    session = b'{"event":"init","operation":"download","remote":"origin"}\n{"event":"terminate"}\n'
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, input=session, capture_output=True, check=True
    )
    assert out.stdout == b"{}\n"
    assert out.stderr.decode().strip() == "False"


def test_a_filter_that_only_cleans_imports_no_transfer_code(tmp_path: Path):
    # git spawns the filter for every add, status and checkout: what it imports is start-up.
    git("init", "-q", str(tmp_path), cwd=tmp_path)
    (tmp_path / ".lfsagent").write_text(f"[lfs-agent]\n\tremote = {tmp_path / 'bucket'}\n")
    code = (
        "import sys\n"
        "from lfs_agent.cli import main\n"
        "main(['filter-process'])\n"
        "heavy = ('lfs_agent.sync', 'lfs_agent.backends', 'dataclasses', 'tempfile', 'logging')\n"
        "print([m for m in heavy if m in sys.modules], file=sys.stderr)\n"
    )
    session = (
        b"0016git-filter-client\n000eversion=2\n0000"
        b"0015capability=clean\n0016capability=smudge\n0015capability=delay\n0000"
        b"0012command=clean\n0013pathname=a.bin\n0000000ahello\n0000"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, input=session, capture_output=True, check=True
    )
    assert b"oid sha256:" + sha256(b"hello\n").encode() in out.stdout
    assert out.stderr.decode().strip() == "[]"


def test_the_pre_push_hook_uploads_without_importing_dataclasses(tmp_path: Path):
    # Every git push runs it; dataclasses (with inspect) is ~10 ms of its start-up.
    git("init", "-q", str(tmp_path), cwd=tmp_path)
    agent("install", "--remote", str(tmp_path / "bucket"), cwd=tmp_path)
    agent("track", "*.bin", cwd=tmp_path)
    (tmp_path / "a.bin").write_bytes(b"pushed\n")
    git("add", "a.bin", ".gitattributes", cwd=tmp_path)
    git("commit", "-qm", "a", cwd=tmp_path)
    head = git("rev-parse", "HEAD", cwd=tmp_path).stdout.decode().strip()
    code = (
        "import sys\n"
        "from lfs_agent.cli import main\n"
        "main(['pre-push', 'origin', 'unused-url'])\n"
        "print([m for m in ('dataclasses', 'inspect') if m in sys.modules], file=sys.stderr)\n"
    )
    update = f"refs/heads/main {head} refs/heads/main {'0' * 40}\n"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        input=update.encode(),
        capture_output=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert open_backend((tmp_path / "bucket").as_uri()).stat(sha256(b"pushed\n")) == 7
    assert out.stderr.decode().splitlines()[-1] == "[]"


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="pipe sizes are Linux-only")
def test_the_filter_process_widens_the_pipes_git_talks_through(tmp_path: Path):
    git("init", "-q", str(tmp_path), cwd=tmp_path)
    proc = subprocess.Popen(
        [*AGENT, "filter-process"], cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    assert fcntl.fcntl(proc.stdin.fileno(), fcntl.F_GETPIPE_SZ) == 65536  # Linux's default
    proc.stdin.write(b"0016git-filter-client\n000eversion=2\n0000")
    proc.stdin.write(b"0015capability=clean\n0016capability=smudge\n0000")
    proc.stdin.flush()
    reply = b""
    while not reply.endswith(b"capability=smudge\n0000"):
        reply += os.read(proc.stdout.fileno(), 4096)
    assert fcntl.fcntl(proc.stdin.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_SIZE
    assert fcntl.fcntl(proc.stdout.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_SIZE
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    proc.stdout.close()


def test_a_single_shot_clean_reading_a_file_ignores_the_pipe_call(repo: Path, tmp_path: Path):
    content = tmp_path / "content"
    content.write_bytes(b"not a pipe\n")
    with open(content, "rb") as stdin:
        out = subprocess.run(
            [*AGENT, "clean"], cwd=repo, stdin=stdin, capture_output=True, check=False
        )
    assert out.returncode == 0, out.stderr
    assert out.stdout == pointer_bytes(b"not a pipe\n")


def test_errors_are_one_line_without_traceback(tmp_path: Path):
    out = agent("clean", cwd=tmp_path, input=b"data")  # not a repository
    assert out.returncode == 2
    lines = out.stderr.decode().strip().splitlines()
    assert lines == [
        "lfs-agent: error: not a git repository (or any parent up to the file system root)"
    ]


@pytest.mark.parametrize(
    "args",
    [["push", "origin", "nope"], ["fetch", "nope"], ["ls-files", "nope"]],
    ids=["push", "fetch", "ls-files"],
)
def test_an_unknown_revision_is_one_line_naming_it(repo: Path, args):
    git("commit", "-q", "--allow-empty", "-m", "start", cwd=repo)
    git("config", "lfs-agent.remote", str(repo.parent / "bucket"), cwd=repo)
    out = agent(*args, cwd=repo)
    assert out.returncode == 2
    assert out.stderr.decode().splitlines() == ["lfs-agent: error: unknown revision 'nope'"]


def test_a_tag_needs_a_commit_and_without_a_remote_keeps_its_record(repo: Path):
    out = agent("tag", "v1", "--metric", "acc=0.9", cwd=repo)
    assert out.returncode == 2
    assert out.stderr.decode().splitlines() == [
        "lfs-agent: error: nothing to tag: this repository has no commits yet"
    ]
    git("commit", "-q", "--allow-empty", "-m", "start", cwd=repo)
    out = agent("tag", "v1", "--metric", "acc=0.9", cwd=repo)
    assert out.returncode == 2
    assert out.stdout.decode().startswith("tagged v1 at ")
    assert out.stderr.decode().splitlines() == [
        "lfs-agent: error: no remote configured: the record is kept locally; set one with "
        "'lfs-agent install --remote URL', then run 'lfs-agent metrics push'"
    ]
    shown = agent("metrics", "show", "v1", "--json", cwd=repo)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["metrics"] == {"acc": 0.9}


def test_debug_logging_adds_the_traceback(tmp_path: Path):
    env = dict(os.environ, LFS_AGENT_LOG="debug")
    out = agent("clean", cwd=tmp_path, input=b"data", env=env)
    assert out.returncode == 2
    assert "Traceback" in out.stderr.decode()


def _use_single_shot_filters(repo: Path) -> None:
    cmd = " ".join(shlex.quote(a) for a in AGENT)
    git("config", "filter.lfs.clean", f"{cmd} clean -- %f", cwd=repo)
    git("config", "filter.lfs.smudge", f"{cmd} smudge -- %f", cwd=repo)
    git("config", "filter.lfs.required", "true", cwd=repo)
    (repo / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")


def test_single_shot_filters_round_trip_through_git(repo: Path):
    _use_single_shot_filters(repo)
    data = random_bytes(200_000, seed=11)
    (repo / "model.bin").write_bytes(data)
    (repo / "empty.bin").write_bytes(b"")
    git("add", ".", cwd=repo)
    git("commit", "-qm", "add model", cwd=repo)
    blob = git("cat-file", "-p", "HEAD:model.bin", cwd=repo).stdout
    assert blob == pointer_bytes(data)
    assert git("cat-file", "-p", "HEAD:empty.bin", cwd=repo).stdout == b""
    (repo / "model.bin").unlink()
    git("checkout", "--", "model.bin", cwd=repo)
    assert (repo / "model.bin").read_bytes() == data
    assert git("status", "--porcelain", cwd=repo).stdout == b""


def test_smudge_of_a_missing_object_names_path_and_oid(repo: Path):
    data = b"content nobody stored"
    out = agent("smudge", "dir/x.bin", cwd=repo, input=pointer_bytes(data))
    assert out.returncode == 2
    assert out.stdout == b""
    message = out.stderr.decode().strip()
    assert message.count("\n") == 0
    assert "dir/x.bin" in message and sha256(data) in message


def test_smudge_passes_non_pointer_content_through(repo: Path):
    for data in (b"plain text\n", b"x" * 5000, pointer_bytes(b"abc") + b"trailing\n"):
        out = agent("smudge", "a", cwd=repo, input=data)
        assert out.returncode == 0
        assert out.stdout == data


def test_smudge_fetches_from_a_configured_folder_remote(repo: Path, tmp_path: Path):
    data = random_bytes(70_000, seed=12)
    oid = sha256(data)
    bucket = tmp_path / "bucket"
    src = tmp_path / "src"
    src.write_bytes(data)
    open_backend(bucket.as_uri()).upload(oid, src, len(data), Recorder())
    git("config", "lfs-agent.remote", str(bucket), cwd=repo)
    out = agent("smudge", "a.bin", cwd=repo, input=pointer_bytes(data))
    assert out.returncode == 0, out.stderr
    assert out.stdout == data
    assert (repo / ".git/lfs/objects" / oid[:2] / oid[2:4] / oid).read_bytes() == data


def test_smudge_refuses_a_corrupt_remote_object_and_writes_nothing(repo: Path, tmp_path: Path):
    data = b"the true bytes" * 100
    oid = sha256(data)
    path = tmp_path / "bucket" / "objects" / oid[:2] / oid[2:4] / oid
    path.parent.mkdir(parents=True)
    path.write_bytes(b"X" * len(data))
    git("config", "lfs-agent.remote", str(tmp_path / "bucket"), cwd=repo)
    out = agent("smudge", "a.bin", cwd=repo, input=pointer_bytes(data))
    assert out.returncode == 2
    assert out.stdout == b""
    assert "corrupt" in out.stderr.decode()
    assert not (repo / ".git/lfs/objects" / oid[:2]).exists()
    # No bytes of the corrupt object remain (a download this small takes no lock).
    assert list((repo / ".git/lfs/tmp").iterdir()) == []


def test_skip_leaves_the_pointer(repo: Path):
    ptr = pointer_bytes(b"skipped")
    assert agent("smudge", "--skip", "a", cwd=repo, input=ptr).stdout == ptr
    env = dict(os.environ, GIT_LFS_SKIP_SMUDGE="1")
    assert agent("smudge", "a", cwd=repo, input=ptr, env=env).stdout == ptr


def test_skip_download_errors_writes_the_pointer_and_succeeds(repo: Path):
    ptr = pointer_bytes(b"nowhere to be found")
    env = dict(os.environ, GIT_LFS_SKIP_DOWNLOAD_ERRORS="1")
    out = agent("smudge", "lost.bin", cwd=repo, input=ptr, env=env)
    assert out.returncode == 0
    assert out.stdout == ptr
    assert "lost.bin" in out.stderr.decode()
