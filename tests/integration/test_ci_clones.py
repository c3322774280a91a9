"""Lazy CI clones, self-configuring clones, fetch filters and the shared cache."""

from __future__ import annotations

import os
import resource
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from lfs_agent.checkout import GIT_WRITES_MAX
from lfs_agent.gitfilter import RESTAGE_ENV, write_restaged
from tests.conftest import AGENT, agent, clone_with_filter, git
from tests.helpers import pointer_bytes, random_bytes, sha256

pytestmark = pytest.mark.integration

FILES = {
    "models/resnet.bin": b"resnet weights\n" * 100,
    "models/bert.bin": b"bert weights\n" * 100,
    "data/train.bin": b"training data\n" * 100,
    "data/test.bin": b"test data\n" * 100,
}


@pytest.fixture
def project(tmp_path: Path, no_git_lfs_path) -> tuple[Path, Path, Path]:
    """A pushed project with models/ and data/; returns (root, server, bucket)."""
    server = tmp_path / "server.git"
    git("init", "-q", "--bare", str(server), cwd=tmp_path)
    work = tmp_path / "work"
    git("init", "-q", str(work), cwd=tmp_path)
    bucket = tmp_path / "bucket"
    agent("install", "--remote", str(bucket), cwd=work)
    agent("track", "*.bin", cwd=work)
    for path, data in FILES.items():
        (work / path).parent.mkdir(exist_ok=True)
        (work / path).write_bytes(data)
    (work / "README").write_text("project\n")
    git("add", "-A", cwd=work)
    git("commit", "-qm", "project", cwd=work)
    git("remote", "add", "origin", str(server), cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    return tmp_path, server, bucket


def pointers_clone(root: Path, server: Path) -> Path:
    """``root/ci``: a clone of ``server`` with pointers in its work tree, then installed."""
    env = dict(os.environ, GIT_LFS_SKIP_SMUDGE="1")
    git("clone", "-q", str(server), str(root / "ci"), cwd=root, env=env)
    ci = root / "ci"
    assert agent("install", cwd=ci).returncode == 0
    return ci


def stored(repo: Path) -> set[str]:
    base = repo / ".git" / "lfs" / "objects"
    return {p.name for p in base.rglob("*") if p.is_file()} if base.exists() else set()


def corrupt_in_bucket(bucket: Path, data: bytes) -> None:
    oid = sha256(data)
    path = bucket / "objects" / oid[:2] / oid[2:4] / oid
    path.chmod(0o644)
    path.write_bytes(b"!" * len(data))


def test_clone_with_include_downloads_only_the_matching_objects(project):
    root, server, bucket = project
    # Objects outside the pattern are made unreadable as themselves: had the clone
    # read them, it would have failed on their hash.
    for path in ("data/train.bin", "data/test.bin"):
        corrupt_in_bucket(bucket, FILES[path])
    out = agent("clone", "--include", "models/*", str(server), str(root / "ci"), cwd=root)
    assert out.returncode == 0, out.stderr
    ci = root / "ci"
    assert stored(ci) == {sha256(FILES["models/resnet.bin"]), sha256(FILES["models/bert.bin"])}
    for path, data in FILES.items():
        expected = data if path.startswith("models/") else pointer_bytes(data)
        assert (ci / path).read_bytes() == expected
    assert git("status", "--porcelain", cwd=ci).stdout == b""
    # The patterns stay with the clone: checkouts keep the rest as pointers.
    assert git("config", "lfs-agent.fetchinclude", cwd=ci).stdout.strip() == b"models/*"


def test_clone_ignores_a_global_filter_and_leaves_ours_configured(project):
    root, server, _bucket = project
    # A global filter that fails for every file (git-lfs's, broken, say): a clone that
    # ran it would fail, since it is required.
    git("config", "--global", "filter.lfs.process", "false", cwd=root)
    git("config", "--global", "filter.lfs.smudge", "false", cwd=root)
    git("config", "--global", "filter.lfs.required", "true", cwd=root)
    out = agent("clone", "--include", "models/*", str(server), str(root / "ci"), cwd=root)
    assert out.returncode == 0, out.stderr
    ci = root / "ci"
    assert (ci / "models/bert.bin").read_bytes() == FILES["models/bert.bin"]
    assert (ci / "data/test.bin").read_bytes() == pointer_bytes(FILES["data/test.bin"])
    local = git("config", "--local", "--get-regexp", r"^filter\.lfs\.", cwd=ci).stdout.decode()
    assert {line.split()[0] for line in local.splitlines()} == {
        f"filter.lfs.{key}" for key in ("process", "clean", "smudge", "required")
    }
    assert "lfs_agent filter-process" in local
    assert "filter.lfs.required true" in local
    # The same config, record included, as install writes in a new repository.
    plain = root / "plain"
    git("init", "-q", str(plain), cwd=root)
    (plain / ".lfsagent").write_bytes((ci / ".lfsagent").read_bytes())  # the same remote
    assert agent("install", cwd=plain).returncode == 0
    ours = r"^(filter\.lfs\.|lfs-agent\.installed)"
    assert (
        git("config", "--local", "--get-regexp", ours, cwd=ci).stdout
        == git("config", "--local", "--get-regexp", ours, cwd=plain).stdout
    )
    assert agent("uninstall", cwd=ci).returncode == 0
    assert git("config", "--local", "--get-regexp", ours, cwd=ci, check=False).stdout == b""


def test_clone_outranks_a_filter_given_in_the_environment(project):
    root, server, _bucket = project
    # Config in the environment outranks the repository's own: the clone's checkout
    # must still run our filter, not this one, which fails every file.
    env = dict(
        os.environ,
        GIT_CONFIG_COUNT="2",
        GIT_CONFIG_KEY_0="filter.lfs.process",
        GIT_CONFIG_VALUE_0="false",
        GIT_CONFIG_KEY_1="filter.lfs.required",
        GIT_CONFIG_VALUE_1="true",
    )
    out = agent("clone", str(server), str(root / "ci"), cwd=root, env=env)
    assert out.returncode == 0, out.stderr
    for path, data in FILES.items():
        assert (root / "ci" / path).read_bytes() == data, path


def test_clone_has_git_write_small_files_pulls_large_ones_and_reports_a_missing_one(project):
    root, server, bucket = project
    work = root / "work"
    big = random_bytes(GIT_WRITES_MAX + 1, seed=4)
    (work / "models/big.bin").write_bytes(big)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "big", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    gone = sha256(FILES["data/test.bin"])
    (bucket / "objects" / gone[:2] / gone[2:4] / gone).unlink()

    out = agent("clone", str(server), str(root / "ci"), cwd=root)
    ci = root / "ci"
    assert out.returncode == 2
    err = out.stderr.decode()
    # Said once, by the pull; the filter in git's checkout left it to that.
    assert [line for line in err.splitlines() if gone in line] == [
        f"  {gone}: object {gone} is not on remote {bucket.as_uri()}"
    ]
    # git's checkout wrote the small files; the pull wrote only the large one.
    assert "checked out 1 file(s)" in err
    assert (ci / "models/big.bin").read_bytes() == big
    for path, data in FILES.items():
        expected = pointer_bytes(data) if path == "data/test.bin" else data
        assert (ci / path).read_bytes() == expected, path
    assert git("status", "--porcelain", cwd=ci).stdout == b""
    # Once the object is back, a pull completes the clone.
    (bucket / "objects" / gone[:2] / gone[2:4] / gone).write_bytes(FILES["data/test.bin"])
    pulled = agent("pull", cwd=ci)
    assert pulled.returncode == 0, pulled.stderr
    assert (ci / "data/test.bin").read_bytes() == FILES["data/test.bin"]
    assert git("status", "--porcelain", cwd=ci).stdout == b""


def test_a_corrupt_object_git_would_write_is_reported_once_by_the_pull(project):
    root, server, bucket = project
    work = root / "work"
    edge = random_bytes(GIT_WRITES_MAX, seed=5)  # the largest size git's checkout writes
    (work / "models/edge.bin").write_bytes(edge)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "edge", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    oid = sha256(edge)
    corrupt_in_bucket(bucket, edge)

    out = agent("clone", str(server), str(root / "ci"), cwd=root)
    ci = root / "ci"
    assert out.returncode == 2
    # Checked before git got any of it, so the filter left it to the pull quietly.
    said = [line for line in out.stderr.decode().splitlines() if oid in line]
    assert len(said) == 1 and "is corrupt" in said[0], said
    assert (ci / "models/edge.bin").read_bytes() == pointer_bytes(edge)
    assert not (ci / ".git/lfs/objects" / oid[:2]).exists()
    assert git("status", "--porcelain", cwd=ci).stdout == b""


def test_clone_runs_no_pull_when_git_got_every_file_from_the_filter(project):
    root, server, _bucket = project
    trace = root / "git-trace"  # git's own trace of every git command, in a file
    env = {**os.environ, "GIT_TRACE": str(trace)}
    out = agent("clone", str(server), str(root / "ci"), cwd=root, env=env)
    assert out.returncode == 0, out.stderr
    ci = root / "ci"
    for path, data in FILES.items():
        assert (ci / path).read_bytes() == data
    assert git("status", "--porcelain", cwd=ci).stdout == b""
    assert stored(ci) == {sha256(d) for d in FILES.values()}
    # The filter said it smudged every pointer: no pull, which starts by listing the
    # index (as the clone with a large file above does).
    traced = trace.read_text()
    assert "git clone" in traced and "ls-files" not in traced


def test_pull_include_after_a_lazy_clone_materializes_more(project):
    root, server, _bucket = project
    agent("clone", "-I", "models/resnet.bin", str(server), str(root / "ci"), cwd=root)
    ci = root / "ci"
    assert (ci / "models/bert.bin").read_bytes() == pointer_bytes(FILES["models/bert.bin"])
    out = agent("pull", "--include", "data/train.bin", cwd=ci)
    assert out.returncode == 0, out.stderr
    assert (ci / "data/train.bin").read_bytes() == FILES["data/train.bin"]
    assert (ci / "data/test.bin").read_bytes() == pointer_bytes(FILES["data/test.bin"])
    assert (ci / "models/bert.bin").read_bytes() == pointer_bytes(FILES["models/bert.bin"])
    assert git("status", "--porcelain", cwd=ci).stdout == b""


def test_skip_smudge_clone_install_pull_equals_lfs_agent_clone(project):
    root, server, _ = project
    agent(
        "clone",
        "--include",
        "models/*",
        "--exclude",
        "models/bert.bin",
        str(server),
        str(root / "a"),
        cwd=root,
    )
    env = dict(os.environ, GIT_LFS_SKIP_SMUDGE="1")
    process = " ".join(shlex.quote(x) for x in AGENT) + " filter-process"
    git(
        "clone",
        "-q",
        "-c",
        f"filter.lfs.process={process}",
        str(server),
        str(root / "b"),
        cwd=root,
        env=env,
    )
    assert agent("install", cwd=root / "b").returncode == 0
    pulled = agent("pull", "--include", "models/*", "--exclude", "models/bert.bin", cwd=root / "b")
    assert pulled.returncode == 0, pulled.stderr
    for path in [*FILES, "README"]:
        assert (root / "a" / path).read_bytes() == (root / "b" / path).read_bytes(), path
    assert stored(root / "a") == stored(root / "b") == {sha256(FILES["models/resnet.bin"])}
    assert git("status", "--porcelain", cwd=root / "b").stdout == b""


def test_pull_from_a_subdirectory_restores_pointers_and_deleted_files(project):
    root, server, _ = project
    env = dict(os.environ, GIT_LFS_SKIP_SMUDGE="1")  # as a CI job would set it throughout
    ci = pointers_clone(root, server)
    (ci / "data/test.bin").unlink()  # deleted in the work tree only
    (ci / "models/bert.bin").write_bytes(b"local edit\n")  # must survive
    pulled = agent("pull", cwd=ci / "models", env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert "checked out 3 file(s)" in pulled.stderr.decode()
    for path, data in FILES.items():
        expected = b"local edit\n" if path == "models/bert.bin" else data
        assert (ci / path).read_bytes() == expected, path
    status = git("status", "--porcelain", cwd=ci).stdout
    assert status == b" M models/bert.bin\n"


def skip_smudge_clone_of_large_files(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A clone holding pointers to two objects over GIT_WRITES_MAX (b.bin executable)."""
    work, bucket, server = tmp_path / "work", tmp_path / "bucket", tmp_path / "server.git"
    git("init", "-q", "--bare", str(server), cwd=tmp_path)
    git("init", "-q", str(work), cwd=tmp_path)
    agent("install", "--remote", str(bucket), cwd=work)
    agent("track", "*.bin", cwd=work)
    big = {name: random_bytes(GIT_WRITES_MAX + 1, seed=i) for i, name in enumerate("ab")}
    for name, data in big.items():
        (work / f"{name}.bin").write_bytes(data)
    (work / "b.bin").chmod(0o755)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "big", cwd=work)
    git("remote", "add", "origin", str(server), cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    return pointers_clone(tmp_path, server), big


def test_pull_streams_objects_git_would_hold_whole(tmp_path: Path, no_git_lfs_path):
    # Above GIT_WRITES_MAX lfs-agent writes the file itself; a missing one keeps its mode.
    ci, big = skip_smudge_clone_of_large_files(tmp_path)
    env = dict(os.environ, GIT_LFS_SKIP_SMUDGE="1")
    (ci / "b.bin").unlink()
    pulled = agent("pull", cwd=ci, env=env)
    assert pulled.returncode == 0, pulled.stderr
    for name, data in big.items():
        assert (ci / f"{name}.bin").read_bytes() == data
    assert os.access(ci / "b.bin", os.X_OK)
    assert git("status", "--porcelain", cwd=ci).stdout == b""
    assert [p.name for p in (ci / ".git/lfs/tmp").iterdir() if "restage" in p.name] == []
    # The re-stage told git's clean filter which oids to expect, so that it only hashes:
    # content that is none of them (edited meanwhile) is refused, never stored.
    (ci / "a.bin").write_bytes(b"edited\n" * 10)
    expected = tmp_path / "oids"
    write_restaged(expected, [("a.bin", sha256(big["a"]))])
    refused = git(
        "add", "a.bin", cwd=ci, env={**os.environ, RESTAGE_ENV: str(expected)}, check=False
    )
    assert refused.returncode != 0
    assert b"changed while lfs-agent wrote it" in refused.stderr
    edited = sha256(b"edited\n" * 10)
    assert not (ci / ".git/lfs/objects" / edited[:2] / edited[2:4] / edited).exists()


@pytest.mark.parametrize("index", ["split", "GIT_INDEX_FILE"])
def test_pull_leaves_an_index_it_does_not_patch_to_git(tmp_path: Path, no_git_lfs_path, index):
    # A split index, or one named by GIT_INDEX_FILE, is not patched in place: git's
    # update-index re-stages the files written, through our clean filter. Without it
    # git would see them as modified.
    ci, big = skip_smudge_clone_of_large_files(tmp_path)
    env = dict(os.environ)
    if index == "split":
        git("update-index", "--split-index", cwd=ci)
    else:
        env["GIT_INDEX_FILE"] = str(ci / ".git" / "index")
    pulled = agent("pull", cwd=ci, env=env)
    assert pulled.returncode == 0, pulled.stderr
    for name, data in big.items():
        assert (ci / f"{name}.bin").read_bytes() == data
    assert git("status", "--porcelain", cwd=ci, env=env).stdout == b""
    assert git("diff", "--stat", cwd=ci, env=env).stdout == b""
    assert stored(ci) == {sha256(data) for data in big.values()}
    assert [p.name for p in (ci / ".git/lfs/tmp").iterdir() if "restage" in p.name] == []


def test_a_warm_shared_cache_serves_a_clone_without_the_bucket(project, monkeypatch):
    root, server, bucket = project
    cache = root / "runner-cache"
    monkeypatch.setenv("LFS_AGENT_CACHE_DIR", str(cache))
    assert agent("clone", str(server), str(root / "first"), cwd=root).returncode == 0
    cached = {p.name for p in (cache / "objects").rglob("*") if p.is_file()}
    assert cached == {sha256(d) for d in FILES.values()}
    shutil.rmtree(bucket)
    out = agent("clone", str(server), str(root / "second"), cwd=root)
    assert out.returncode == 0, out.stderr
    for path, data in FILES.items():
        assert (root / "second" / path).read_bytes() == data
    assert git("status", "--porcelain", cwd=root / "second").stdout == b""
    # Same file system: the clone's objects are hard links to the cache's.
    oid = sha256(FILES["models/bert.bin"])
    linked = root / "second" / ".git/lfs/objects" / oid[:2] / oid[2:4] / oid
    assert linked.stat().st_nlink >= 2


def test_lfsconfig_fetch_filters_are_honoured_by_checkout_smudge(project):
    root, server, _ = project
    work = root / "work"
    (work / ".lfsconfig").write_text("[lfs]\n\tfetchexclude = data\n")
    git("add", ".lfsconfig", cwd=work)
    git("commit", "-qm", "exclude data", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    clone_with_filter(str(server), str(root / "c"), cwd=root)
    c = root / "c"
    assert (c / "models/bert.bin").read_bytes() == FILES["models/bert.bin"]
    assert (c / "data/train.bin").read_bytes() == pointer_bytes(FILES["data/train.bin"])
    assert git("status", "--porcelain", cwd=c).stdout == b""
    # git config overrides .lfsconfig, as with git-lfs.
    git("config", "lfs.fetchexclude", "", cwd=c)
    assert agent("pull", cwd=c).returncode == 0
    assert (c / "data/train.bin").read_bytes() == FILES["data/train.bin"]


def test_committed_files_cannot_run_programs_or_carry_secrets(project):
    root, server, _ = project
    work = root / "work"
    pwned = root / "PWNED"
    evil = f"sh -c 'touch {pwned}'"
    with open(work / ".lfsagent", "a") as f:
        f.write(f"\tpath = {evil}\n\tcommand = {evil}\n")
        f.write('[lfs-agent "s3"]\n\tsecret-access-key = AKIAEXAMPLE\n')
    (work / ".lfsconfig").write_text(
        "[lfs]\n\tstandalonetransferagent = evil\n"
        f"[lfs \"customtransfer.evil\"]\n\tpath = /bin/sh\n\targs = -c 'touch {pwned}'\n"
    )
    git("add", "-A", cwd=work)
    git("commit", "-qm", "evil config", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    out = agent("clone", str(server), str(root / "victim"), cwd=root)
    assert out.returncode == 0, out.stderr
    err = out.stderr.decode()
    assert "ignored lfs-agent.path in .lfsagent" in err
    assert err.count("ignored lfs-agent.path") == 1  # not again by the filter in git's checkout
    assert "ignored lfs-agent.command in .lfsagent" in err
    assert "ignored lfs-agent.s3.secret-access-key in .lfsagent" in err
    assert "ignored lfs.customtransfer.evil.path in .lfsconfig" in err
    assert "ignored lfs.standalonetransferagent in .lfsconfig" in err
    assert not pwned.exists()
    assert (root / "victim" / "models/bert.bin").read_bytes() == FILES["models/bert.bin"]
    config = git("config", "--local", "--list", cwd=root / "victim").stdout.decode()
    assert "evil" not in config and "AKIA" not in config


def test_checkout_writes_what_fetch_stored_and_downloads_nothing(project):
    root, server, bucket = project
    ci = pointers_clone(root, server)
    before = agent("checkout", cwd=ci)  # nothing fetched yet: pointers stay
    assert before.returncode == 0, before.stderr
    assert "checked out 0 file(s)" in before.stderr.decode()
    assert (ci / "data/test.bin").read_bytes() == pointer_bytes(FILES["data/test.bin"])
    fetched = agent("fetch", cwd=ci)
    assert fetched.returncode == 0, fetched.stderr
    shutil.rmtree(bucket)  # checkout reads the store only
    git("config", "lfs-agent.fetchexclude", "data/test.bin", cwd=ci)
    out = agent("checkout", cwd=ci)
    assert out.returncode == 0, out.stderr
    assert "checked out 3 file(s)" in out.stderr.decode()
    for path, data in FILES.items():
        expected = pointer_bytes(data) if path == "data/test.bin" else data
        assert (ci / path).read_bytes() == expected, path
    assert git("status", "--porcelain", cwd=ci).stdout == b""


def test_clone_of_a_repository_naming_no_remote_says_what_to_run(tmp_path: Path, no_git_lfs_path):
    server, work = tmp_path / "server.git", tmp_path / "work"
    git("init", "-q", "--bare", str(server), cwd=tmp_path)
    git("init", "-q", str(work), cwd=tmp_path)
    (work / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    (work / "model.bin").write_bytes(pointer_bytes(b"weights\n"))  # no .lfsagent
    git("add", "-A", cwd=work)
    git("commit", "-qm", "pointer", cwd=work)
    git("push", "-q", str(server), "main", cwd=work)
    out = agent("clone", str(server), str(tmp_path / "c"), cwd=tmp_path)
    assert out.returncode == 2
    said = out.stderr.decode().strip().splitlines()[-1]
    assert said == (
        f"lfs-agent: cloned into {tmp_path / 'c'}, but it names no remote (.lfsagent): run "
        "'lfs-agent install --remote URL' there, then 'lfs-agent pull'"
    )
    assert (tmp_path / "c/model.bin").read_bytes() == pointer_bytes(b"weights\n")
    assert (tmp_path / "c/.git/hooks/pre-push").exists()  # installed, waiting for a remote


@pytest.mark.parametrize("link", ["true", "false"])
def test_a_full_disk_fails_in_one_line_and_leaves_pointers(tmp_path, no_git_lfs_path, link):
    # RLIMIT_FSIZE makes writes past 1 MiB fail (EFBIG) as a full disk would (ENOSPC),
    # in a real process, without a small file system to fill. Linked from the folder
    # bucket, the objects fail as they are written into the work tree; copied, as they
    # are downloaded into the store.
    ci, big = skip_smudge_clone_of_large_files(tmp_path)
    git("config", "lfs-agent.local.link", link, cwd=ci)
    limit = 1024 * 1024

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    pulled = subprocess.run(
        [*AGENT, "pull"], cwd=ci, capture_output=True, preexec_fn=small_files, check=False
    )
    assert pulled.returncode == 2, pulled.stderr
    said = pulled.stderr.decode()
    assert "Traceback" not in said and "internal error" not in said
    if link == "true":
        assert said.splitlines()[-3:] == [
            "lfs-agent: error: 2 file(s) could not be written:",
            "  a.bin: File too large",
            "  b.bin: File too large",
        ]
    else:
        assert said.splitlines()[-4:] == [
            f"lfs-agent: error: 2 object(s) failed to download ({(tmp_path / 'bucket').as_uri()}):",
            "  2 objects: File too large",
            *(f"    {oid}" for oid in sorted(sha256(data) for data in big.values())),
        ]
    assert stored(ci) == set()
    for name, data in big.items():
        assert (ci / f"{name}.bin").read_bytes() == pointer_bytes(data)


def test_clone_of_one_branch_at_depth_one(project):
    root, server, _ = project
    work = root / "work"
    git("checkout", "-qb", "release", cwd=work)
    (work / "models/resnet.bin").write_bytes(b"resnet v2\n" * 100)
    git("commit", "-qam", "resnet v2", cwd=work)
    git("push", "-q", "origin", "release", cwd=work)
    url = server.as_uri()  # git ignores --depth for a plain path
    out = agent("clone", "--branch", "release", "--depth", "1", url, "ci", cwd=root)
    assert out.returncode == 0, out.stderr
    ci = root / "ci"
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=ci).stdout == b"release\n"
    assert git("rev-parse", "--is-shallow-repository", cwd=ci).stdout == b"true\n"
    assert (ci / "models/resnet.bin").read_bytes() == b"resnet v2\n" * 100
    assert (ci / "data/test.bin").read_bytes() == FILES["data/test.bin"]
    assert git("status", "--porcelain", cwd=ci).stdout == b""


def test_a_pull_while_git_holds_the_index_says_so_in_one_line(project):
    root, server, _ = project
    ci = pointers_clone(root, server)
    lock = ci / ".git" / "index.lock"
    lock.write_bytes(b"")  # another git command at work
    pulled = agent("pull", cwd=ci)
    assert pulled.returncode == 2
    assert pulled.stderr.decode().splitlines()[-1] == (
        f"lfs-agent: error: git checkout-index failed: Unable to create '{lock}': File exists."
    )
    lock.unlink()
    assert agent("pull", cwd=ci).returncode == 0
    assert git("status", "--porcelain", cwd=ci).stdout == b""
