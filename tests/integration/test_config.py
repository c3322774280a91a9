"""Settings resolution against real git configuration files."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfs_agent.config import normalize_remote_url, read_committed, resolve_settings
from lfs_agent.errors import ConfigError, GitError
from lfs_agent.git import Git
from tests.conftest import agent, git
from tests.helpers import pointer_bytes

pytestmark = pytest.mark.integration


def settings(repo: Path, env=None, overrides=None):
    return resolve_settings(Git(repo), env=env or {}, overrides=overrides)


def test_precedence_flags_env_repo_sidecar_global(repo: Path, hermetic_env: Path, tmp_path: Path):
    git("config", "--global", "lfs-agent.remote", str(tmp_path / "global"), cwd=repo)
    assert settings(repo).remote == (tmp_path / "global").as_uri()
    assert settings(repo).remote_origin == "global git config"

    (repo / ".lfsagent").write_text(f"[lfs-agent]\n\tremote = {tmp_path / 'sidecar'}\n")
    assert settings(repo).remote == (tmp_path / "sidecar").as_uri()
    assert settings(repo).remote_origin == ".lfsagent"

    git("config", "lfs-agent.remote", str(tmp_path / "local"), cwd=repo)
    assert settings(repo).remote == (tmp_path / "local").as_uri()

    env = {"LFS_AGENT_REMOTE": "s3://env-bucket/p"}
    assert settings(repo, env=env).remote == "s3://env-bucket/p"

    s = settings(repo, env=env, overrides={"remote": "gs://flag-bucket"})
    assert (s.remote, s.remote_origin) == ("gs://flag-bucket", "command line")


def test_sidecar_is_read_from_index_then_head_when_not_in_the_work_tree(repo: Path):
    (repo / ".lfsagent").write_text("[lfs-agent]\n\tremote = s3://committed/x\n")
    git("add", ".lfsagent", cwd=repo)
    git("commit", "-qm", "sidecar", cwd=repo)
    (repo / ".lfsagent").unlink()
    assert settings(repo).remote == "s3://committed/x"  # from the index
    git("rm", "-q", "--cached", ".lfsagent", cwd=repo)
    assert settings(repo).remote == "s3://committed/x"  # from HEAD


def test_the_index_wins_over_head_for_each_committed_file(repo: Path):
    (repo / ".lfsagent").write_text("[lfs-agent]\n\tremote = s3://head/x\n")
    (repo / ".lfsconfig").write_text("[lfs]\n\tfetchinclude = head/*\n")
    git("add", ".lfsagent", ".lfsconfig", cwd=repo)
    git("commit", "-qm", "committed files", cwd=repo)
    (repo / ".lfsagent").write_text("[lfs-agent]\n\tremote = s3://index/x\n")
    git("add", ".lfsagent", cwd=repo)
    (repo / ".lfsagent").unlink()
    (repo / ".lfsconfig").unlink()
    s = settings(repo)
    assert s.remote == "s3://index/x"  # the staged version, not HEAD's
    assert s.fetch_include == ("head/*",)  # .lfsconfig: the index holds HEAD's version
    git("rm", "-q", "--cached", ".lfsconfig", cwd=repo)
    assert settings(repo).fetch_include == ("head/*",)  # from HEAD alone


class CountingGit(Git):
    """Records each git command's start and the wait for its end, in order."""

    def __init__(self, cwd: Path) -> None:
        super().__init__(cwd)
        self.events: list[tuple[str, str]] = []

    def start(self, args, **kwargs):
        started = super().start(args, **kwargs)
        self.events.append(("start", args[0]))
        wait = started.wait

        def recorded_wait():
            self.events.append(("wait", args[0]))
            return wait()

        started.wait = recorded_wait
        return started

    @property
    def commands(self) -> list[str]:
        return [name for event, name in self.events if event == "start"]


def test_settings_cost_three_git_commands_started_together(repo: Path):
    # git spawns lfs-agent for every filter process and hook: each git command counts,
    # and the three that do not depend on each other run side by side.
    counting = CountingGit(repo)
    resolve_settings(counting, env={})
    assert sorted(counting.commands) == ["cat-file", "config", "rev-parse"]
    assert [event for event, _ in counting.events[:3]] == ["start", "start", "start"]
    (repo / ".lfsagent").write_text("[lfs-agent]\n\tremote = s3://here/x\n")
    counting = CountingGit(repo)
    assert resolve_settings(counting, env={}).remote == "s3://here/x"
    assert sorted(counting.commands) == ["cat-file", "config", "config", "rev-parse"]


def test_read_committed_alone_probes_only_for_files_missing_from_the_work_tree(repo: Path):
    (repo / ".lfsagent").write_text("[lfs-agent]\n\tremote = s3://here/x\n")
    (repo / ".lfsconfig").write_text("[lfs]\n\tfetchexclude = *.tmp\n")
    counting = CountingGit(repo)
    found = read_committed(counting, repo)
    assert counting.commands == ["config", "config"]
    assert [e.key for e in found[".lfsconfig"]] == ["lfs.fetchexclude"]
    assert [e.value for e in found[".lfsagent"]] == ["s3://here/x"]


def test_sidecar_in_a_no_checkout_clone(repo: Path, tmp_path: Path):
    (repo / ".lfsagent").write_text("[lfs-agent]\n\tremote = s3://committed/y\n")
    git("add", ".lfsagent", cwd=repo)
    git("commit", "-qm", "sidecar", cwd=repo)
    clone = tmp_path / "clone"
    git("clone", "-q", "--no-checkout", str(repo), str(clone), cwd=tmp_path)
    assert settings(clone).remote == "s3://committed/y"


def test_unsafe_committed_keys_are_ignored_with_a_warning(repo: Path):
    (repo / ".lfsagent").write_text(
        "[lfs-agent]\n\tremote = s3://b/p\n\thttp-header = Authorization: x\n"
        '[lfs-agent "s3"]\n\tsecret-access-key = AKIA\n\tregion = eu-west-1\n'
        "[lfs-agent]\n\tpath = /bin/evil\n"
    )
    s = settings(repo)
    assert s.remote == "s3://b/p"
    assert s.options == {"s3.region": "eu-west-1"}
    assert len(s.warnings) == 3
    assert all("ignored lfs-agent." in w and ".lfsagent" in w for w in s.warnings)


def test_a_committed_file_is_read_through_an_allow_list(repo: Path, tmp_path: Path):
    # What a cloned repository may not choose: a directory of this machine, resource
    # limits, credentials, a clear-text endpoint for signed requests.
    (repo / ".lfsagent").write_text(
        "[lfs-agent]\n\tremote = s3://b/p\n\tconcurrency = 301\n"
        f"\tcachedir = {tmp_path / 'elsewhere'}\n\tfetchinclude = models\n"
        '[lfs-agent "http"]\n\tmax-attempts = 100000\n\ttimeout = 31536000\n'
        '[lfs-agent "s3"]\n\tendpoint-url = http://attacker.example\n\tprofile = admin\n'
        "\tstorage-class = STANDARD_IA\n"
    )
    s = settings(repo)
    assert (s.remote, s.concurrency, s.cache_dir) == ("s3://b/p", 8, None)
    assert s.fetch_include == ("models",)
    assert s.options == {"s3.storage-class": "STANDARD_IA"}
    ignored = sorted(w.split()[1] for w in s.warnings)
    assert ignored == [
        "lfs-agent.cachedir",
        "lfs-agent.concurrency",
        "lfs-agent.http.max-attempts",
        "lfs-agent.http.timeout",
        "lfs-agent.s3.endpoint-url",
        "lfs-agent.s3.profile",
    ]
    assert all("set it with 'git config lfs-agent." in w for w in s.warnings)
    assert any("a committed endpoint must be https" in w for w in s.warnings)
    assert not (tmp_path / "elsewhere").exists()
    # The same keys from the user's own git config are read.
    git("config", "lfs-agent.concurrency", "3", cwd=repo)
    git("config", "lfs-agent.s3.endpoint-url", "http://127.0.0.1:9000", cwd=repo)
    s = settings(repo)
    assert s.concurrency == 3 and s.options["s3.endpoint-url"] == "http://127.0.0.1:9000"


def test_a_committed_https_endpoint_is_read(repo: Path):
    (repo / ".lfsagent").write_text(
        '[lfs-agent]\n\tremote = s3://b/p\n[lfs-agent "s3"]\n'
        "\tendpoint-url = https://minio.example:9000\n"
    )
    s = settings(repo)
    assert s.options == {"s3.endpoint-url": "https://minio.example:9000"}
    assert s.warnings == ()


def test_a_committed_folder_remote_is_not_followed_through_a_link(repo: Path, tmp_path: Path):
    (tmp_path / "home").mkdir()
    (repo / "bucket").symlink_to(tmp_path / "home")
    (repo / ".lfsagent").write_text("[lfs-agent]\n\tremote = bucket/objects-here\n")
    s = settings(repo)
    assert s.remote is None
    (warning,) = s.warnings
    assert "ignored lfs-agent.remote in .lfsagent: bucket is a symbolic link" in warning
    # A folder of the work tree reached without a link, or one outside it, is allowed.
    (repo / ".lfsagent").write_text("[lfs-agent]\n\tremote = shared/bucket\n")
    assert settings(repo).remote == (repo / "shared/bucket").resolve().as_uri()
    (repo / ".lfsagent").write_text(f"[lfs-agent]\n\tremote = {tmp_path / 'team'}\n")
    assert settings(repo).remote == (tmp_path / "team").as_uri()


def test_a_committed_file_git_cannot_parse_is_passed_over_with_a_warning(repo: Path):
    (repo / ".lfsagent").write_text("[lfs-agent\n\tremote = s3://b/p\n")
    (repo / ".lfsconfig").write_text("[lfs]\n\tfetchinclude = models\n")
    s = settings(repo)
    assert s.remote is None
    assert s.fetch_include == ("models",)  # the file beside it still counts
    assert s.warnings == (f"ignored .lfsagent: bad config line 1 in file {repo / '.lfsagent'}",)
    git("add", ".lfsagent", cwd=repo)
    (repo / ".lfsagent").unlink()  # read from the index: git names the blob
    (warning,) = settings(repo).warnings
    assert warning.startswith("ignored .lfsagent: bad config line 1 in blob ")


def test_the_cli_says_why_a_committed_remote_is_not_used(repo: Path):
    (repo / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    (repo / "model.bin").write_bytes(pointer_bytes(b"weights\n"))  # not in the store
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "pointer", cwd=repo)
    (repo / ".lfsagent").write_text("[lfs-agent\n\tremote = s3://b/p\n")
    out = agent("fetch", cwd=repo)
    assert out.returncode == 2
    assert out.stderr.decode().splitlines() == [
        f"lfs-agent: ignored .lfsagent: bad config line 1 in file {repo / '.lfsagent'}",
        "lfs-agent: error: no remote configured: run 'lfs-agent install --remote URL' "
        "or set lfs-agent.remote in .lfsagent",
    ]


def test_the_same_keys_in_git_config_are_accepted(repo: Path):
    git("config", "lfs-agent.http-header", "Authorization: Bearer x", cwd=repo)
    s = settings(repo)
    assert s.options["http-header"] == "Authorization: Bearer x"
    assert s.warnings == ()


def test_git_lfs_keys_are_honoured(repo: Path, tmp_path: Path):
    git("config", "lfs.concurrenttransfers", "3", cwd=repo)
    git("config", "lfs.fetchinclude", "models/*, data/ ,", cwd=repo)
    git("config", "lfs.fetchexclude", "*.tmp", cwd=repo)
    git("config", "lfs.storage", "elsewhere", cwd=repo)
    s = settings(repo)
    assert s.concurrency == 3
    assert s.fetch_include == ("models/*", "data")
    assert s.fetch_exclude == ("*.tmp",)
    assert s.lfs_dir == repo / ".git" / "elsewhere"
    git("config", "lfs.storage", str(tmp_path / "abs"), cwd=repo)
    assert settings(repo).lfs_dir == tmp_path / "abs"


def test_bad_numbers_are_config_errors(repo: Path):
    git("config", "lfs.concurrenttransfers", "many", cwd=repo)
    with pytest.raises(ConfigError, match=r"lfs\.concurrenttransfers must be a whole number"):
        settings(repo)


def test_linked_worktrees_share_the_common_lfs_dir(repo: Path, tmp_path: Path):
    (repo / "f").write_text("x")
    git("add", "f", cwd=repo)
    git("commit", "-qm", "init", cwd=repo)
    git("worktree", "add", "-q", str(tmp_path / "wt"), cwd=repo)
    assert settings(tmp_path / "wt").lfs_dir == repo / ".git" / "lfs"


def test_outside_a_repository_is_a_git_error(tmp_path: Path):
    with pytest.raises(GitError, match="not a git repository"):
        settings(tmp_path)


def test_skip_smudge_from_the_environment(repo: Path):
    assert settings(repo, env={"GIT_LFS_SKIP_SMUDGE": "1"}).skip_smudge
    assert not settings(repo, env={"GIT_LFS_SKIP_SMUDGE": "0"}).skip_smudge


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("s3://bucket/prefix/", "s3://bucket/prefix"),
        ("s3://bucket", "s3://bucket"),
        ("gs://bucket//a/b", "gs://bucket/a/b"),
        ("https://host/base/", "https://host/base"),
        ("http://127.0.0.1:8080/x", "http://127.0.0.1:8080/x"),
    ],
)
def test_remote_urls_are_normalized(given, expected):
    assert normalize_remote_url(given) == expected


def test_paths_become_file_urls(tmp_path: Path):
    assert normalize_remote_url("bucket", tmp_path) == (tmp_path / "bucket").as_uri()
    assert normalize_remote_url(str(tmp_path / "b")) == (tmp_path / "b").as_uri()
    assert normalize_remote_url((tmp_path / "c").as_uri()) == (tmp_path / "c").as_uri()


@pytest.mark.parametrize(
    "bad", ["ftp://x/y", "s3://", "git@github.com:x/y", "file://otherhost/x", ""]
)
def test_unsupported_remotes_list_the_accepted_forms(bad):
    with pytest.raises(ConfigError) as info:
        normalize_remote_url(bad)
    if "://" not in bad or bad.startswith("ftp") or not bad:
        assert "s3://bucket/prefix" in str(info.value)


def test_a_bad_backend_option_fails_the_command_in_one_line(repo: Path):
    (repo / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    (repo / "model.bin").write_bytes(pointer_bytes(b"weights\n"))  # not in the store
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "pointer", cwd=repo)
    git("config", "lfs-agent.remote", "http://127.0.0.1:9/objects", cwd=repo)
    git("config", "lfs-agent.http.max-attempts", "five", cwd=repo)
    out = agent("fetch", cwd=repo)
    assert out.returncode == 2
    assert out.stderr.decode().splitlines() == [
        "lfs-agent: error: lfs-agent.http.max-attempts must be a whole number from 1 to 100, "
        "got 'five'",
    ]
