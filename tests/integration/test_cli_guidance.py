"""Mistakes caught where they are made, help, completion and the -q/-v flags, via real git."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import AGENT, agent, git
from tests.helpers import pointer_bytes, sha256

pytestmark = pytest.mark.integration

#: Each command that needs a repository, with the arguments it requires.
REPO_COMMANDS = {
    "install": [],
    "uninstall": [],
    "track": ["*.bin"],
    "untrack": ["*.bin"],
    "pre-commit": [],
    "pre-push": ["origin"],
    "post-checkout": [],
    "push": [],
    "fetch": [],
    "pull": [],
    "checkout": [],
    "ls-files": [],
    "status": [],
    "fsck": [],
    "tag": ["v1"],
    "metrics": ["list"],
    "prune": [],
    "gc": ["--remote"],
    "repos": ["list"],
}


@pytest.fixture
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory no git repository holds, even if the temp dir lies in one."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def _repo(tmp_path: Path, *install: str) -> Path:
    repo = tmp_path / "repo"
    git("init", "-q", str(repo), cwd=tmp_path)
    assert (
        agent("install", "--remote", str(tmp_path / "bucket"), *install, cwd=repo).returncode == 0
    )
    assert agent("track", "*.bin", cwd=repo).returncode == 0
    (repo / "a.bin").write_bytes(b"large\n")
    git("add", "a.bin", ".gitattributes", ".lfsagent", cwd=repo)
    git("commit", "-qm", "a", cwd=repo)
    return repo


def test_every_command_that_needs_a_repository_says_so_outside_one(
    outside: Path, monkeypatch: pytest.MonkeyPatch
):
    from lfs_agent.cli import NEEDS_REPOSITORY

    assert set(REPO_COMMANDS) == NEEDS_REPOSITORY
    for command, arguments in REPO_COMMANDS.items():
        out = agent(command, *arguments, cwd=outside)
        lines = out.stderr.decode().splitlines()
        assert out.returncode == 2, (command, lines)
        assert lines == [
            f"lfs-agent: error: not a git repository: {outside} (run this inside a git work "
            "tree, or 'git init' / 'lfs-agent clone URL' first)"
        ], command
        assert out.stdout == b"", command


def test_the_global_install_needs_no_repository(outside: Path):
    out = agent("install", "--global", cwd=outside)
    assert out.returncode == 0, out.stderr
    assert "installed globally" in out.stdout.decode()


def test_quiet_prints_nothing_but_errors_before_or_after_the_command(tmp_path: Path):
    repo = _repo(tmp_path)
    loud = agent("push", cwd=repo)
    assert loud.returncode == 0 and "uploaded 1 object(s)" in loud.stderr.decode()
    (repo / "b.bin").write_bytes(b"other\n")
    git("add", "b.bin", cwd=repo)
    git("commit", "-qm", "b", cwd=repo)
    for flags in (["-q", "push"], ["push", "--quiet"]):
        out = agent(*flags, cwd=repo)
        assert (out.returncode, out.stdout, out.stderr) == (0, b"", b""), flags
    assert agent("-q", "track", "*.dat", cwd=repo).stdout == b""
    assert agent("untrack", "-q", "*.dat", cwd=repo).stdout == b""
    # errors still show
    failed = agent("-q", "fetch", "no-such-ref", cwd=repo)
    assert failed.returncode == 2 and "unknown revision 'no-such-ref'" in failed.stderr.decode()


def test_verbose_is_the_info_and_debug_log_level(tmp_path: Path):
    repo = _repo(tmp_path)
    assert agent("push", cwd=repo).returncode == 0
    oid = sha256(b"large\n")
    shutil.rmtree(repo / ".git" / "lfs" / "objects")
    pointer = pointer_bytes(b"large\n")
    plain = agent("smudge", "a.bin", cwd=repo, input=pointer)
    assert plain.stdout == b"large\n" and plain.stderr == b""
    shutil.rmtree(repo / ".git" / "lfs" / "objects")
    env = {**os.environ, "LFS_AGENT_LOG": "info"}
    by_env = agent("smudge", "a.bin", cwd=repo, input=pointer, env=env)
    for flags in (["-v", "smudge", "a.bin"], ["smudge", "a.bin", "--verbose"]):
        shutil.rmtree(repo / ".git" / "lfs" / "objects")
        out = agent(*flags, cwd=repo, input=pointer)
        assert out.stdout == b"large\n"
        assert out.stderr == by_env.stderr, flags
        assert f"downloading {oid}".encode() in out.stderr
    debug = agent("-vv", "status", cwd=repo)
    assert b"lfs-agent: run git " in debug.stderr
    assert b"run git" not in agent("-v", "status", cwd=repo).stderr


def test_quiet_turns_the_live_progress_line_off_on_a_terminal(tmp_path: Path):
    repo = _repo(tmp_path)

    def stderr_on_a_terminal(*flags: str) -> bytes:
        leader, follower = os.openpty()
        try:
            proc = subprocess.run(
                [*AGENT, *flags, "push"],
                cwd=repo,
                stderr=follower,
                stdout=subprocess.PIPE,
                check=False,
            )
            assert proc.returncode == 0
            os.close(follower)
            seen = b""
            while select.select([leader], [], [], 0.5)[0]:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # Linux: the follower side is closed
                    break
                if not chunk:
                    break
                seen += chunk
            return seen
        finally:
            os.close(leader)

    assert b"Uploading" in stderr_on_a_terminal()
    shutil.rmtree(tmp_path / "bucket")
    assert stderr_on_a_terminal("-q") == b""


def test_a_mistyped_command_gets_one_line_naming_the_likely_one(tmp_path: Path):
    out = agent("psuh", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.decode().splitlines() == [
        "lfs-agent: error: unknown command 'psuh'; did you mean 'push'? (see 'lfs-agent --help')"
    ]
    assert agent("-q", "ls-flies", cwd=tmp_path).stderr.decode().count("'ls-files'") == 1


def test_help_lists_everyday_commands_first_then_groups_with_a_docs_link(tmp_path: Path):
    text = agent("--help", cwd=tmp_path).stdout.decode()
    commands = text[text.index("everyday commands:") :]
    listed = [line.split()[0] for line in commands.splitlines() if line.startswith("  ")]
    assert listed[:8] == [
        "install", "track", "push", "pull", "fetch", "clone", "status", "ls-files"
    ]  # fmt: skip
    for title in ("set-up:", "inspection and upkeep:", "metrics:", "plumbing"):
        assert f"\n{title}" in text
    plumbing = text[text.index("plumbing") :]
    for name in ("filter-process", "smudge", "clean", "pre-push", "post-checkout", "transfer"):
        assert f"  {name} " in plumbing
    assert "Documentation: https://" in text
    from lfs_agent.cli import GROUPS

    for name in GROUPS:
        helped = agent(name, "--help", cwd=tmp_path)
        assert helped.returncode == 0
        assert "\nexample:\n  " in helped.stdout.decode(), name


def test_completion_scripts_are_valid_and_complete_commands_and_flags(tmp_path: Path):
    bash = agent("completion", "bash", cwd=tmp_path).stdout.decode()
    (tmp_path / "c.bash").write_text(bash)
    assert subprocess.run(["bash", "-n", str(tmp_path / "c.bash")], check=False).returncode == 0

    def complete(*words: str) -> list[str]:
        line = " ".join(["lfs-agent", *words])
        driver = (
            f"source {tmp_path / 'c.bash'}\n"
            f"COMP_WORDS=(lfs-agent {' '.join(words)}); COMP_CWORD={len(words)}\n"
            f"COMP_LINE='{line}'; _lfs_agent; printf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
        )
        out = subprocess.run(["bash", "-c", driver], capture_output=True, text=True, check=True)
        return out.stdout.split()

    assert complete("pu") == ["push", "pull"]
    assert complete("push", "--a") == ["--all"]
    assert complete("-q", "install", "--rem") == ["--remote"]
    assert complete("metrics", "di") == ["diff"]
    for shell, check in (("zsh", ["zsh", "-n"]), ("fish", ["fish", "--no-execute"])):
        script = agent("completion", shell, cwd=tmp_path).stdout.decode()
        flag = "--remote" if shell == "zsh" else "-l remote"
        assert "push" in script and flag in script
        if shutil.which(shell) is None:
            print(f"{shell} is not installed: its script's syntax is not checked")
            continue
        (tmp_path / f"c.{shell}").write_text(script)
        assert subprocess.run([*check, str(tmp_path / f"c.{shell}")], check=False).returncode == 0


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("https//host/x", "https://host/x"),
        ("s3//bucket", "s3://bucket"),
        ("http:/x", "http://x"),
        ("gs:/bucket/p", "gs://bucket/p"),
    ],
)
def test_a_remote_url_with_a_lost_colon_or_slash_names_the_likely_url(
    tmp_path: Path, typed: str, meant: str
):
    git("init", "-q", str(tmp_path), cwd=tmp_path)
    out = agent("install", "--remote", typed, cwd=tmp_path)
    assert out.returncode == 2
    assert f"did you mean '{meant}'?" in out.stderr.decode()
    assert not (tmp_path / ".lfsagent").exists()


def test_a_folder_named_like_a_scheme_stays_a_folder(tmp_path: Path):
    from lfs_agent.config import normalize_remote_url

    assert normalize_remote_url("s3/bucket", tmp_path) == (tmp_path / "s3/bucket").as_uri()
    assert normalize_remote_url("https-mirror", tmp_path).endswith("/https-mirror")


def test_install_warns_of_a_folder_remote_inside_the_work_tree_or_missing(tmp_path: Path):
    repo = tmp_path / "repo"
    git("init", "-q", str(repo), cwd=tmp_path)
    inside = agent("install", "--local", "--remote", "bucket", cwd=repo)
    assert inside.returncode == 0
    assert f"the remote folder {repo / 'bucket'} is inside the work tree" in inside.stderr.decode()
    missing = agent("install", "--local", "--remote", str(tmp_path / "nowhere"), cwd=repo)
    assert missing.returncode == 0
    assert f"{tmp_path / 'nowhere'} does not exist" in missing.stderr.decode()
    (tmp_path / "there").mkdir()
    fine = agent("install", "--local", "--remote", str(tmp_path / "there"), cwd=repo)
    assert fine.returncode == 0 and "warning" not in fine.stderr.decode()


def test_a_missing_gcs_sdk_names_google_cloud_storage(monkeypatch: pytest.MonkeyPatch):
    import lfs_agent.backends as registry
    from lfs_agent.errors import BackendUnavailableError

    monkeypatch.setitem(registry.REGISTRY, "gs", ("google_missing_sdk.storage:Nope", "gcs"))
    with pytest.raises(BackendUnavailableError) as raised:
        registry.open_backend("gs://bucket/prefix")
    assert str(raised.value) == (
        "gs:// remotes need google-cloud-storage: pip install 'lfs-agent[gcs]'"
    )
