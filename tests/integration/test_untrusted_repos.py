"""A cloned repository, a shared cache and a folder bucket are someone else's.

Each test builds what an attacker controls (committed symbolic links, a committed
``.lfsagent``, a cache entry, a bucket object) and checks that lfs-agent writes nothing
outside the work tree, and takes no byte into the store or the work tree that it has
not hashed.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from lfs_agent.checkout import GIT_WRITES_MAX
from tests.conftest import agent, git
from tests.helpers import pointer_bytes, random_bytes, sha256

pytestmark = pytest.mark.integration

BIG = random_bytes(GIT_WRITES_MAX + 1, seed=24)
SMALL = b"small weights\n" * 64


def snapshot(directory: Path) -> dict[str, bytes | str]:
    """Every entry below ``directory``: a file's bytes, a link's target, a dir's mark."""
    found: dict[str, bytes | str] = {}
    for path in sorted(directory.rglob("*")):
        name = str(path.relative_to(directory))
        if path.is_symlink():
            found[name] = "-> " + os.readlink(path)
        elif path.is_dir():
            found[name] = "dir"
        else:
            found[name] = path.read_bytes()
    return found


def object_path(base: Path, data: bytes) -> Path:
    oid = sha256(data)
    return base / "objects" / oid[:2] / oid[2:4] / oid


def publish(tmp_path: Path, files: dict[str, bytes], links: dict[str, str]) -> tuple[Path, Path]:
    """A pushed repository holding ``files`` (``*.bin`` tracked) and symbolic ``links``.

    Returns:
        The bare server repository and the folder bucket.
    """
    server, bucket, work = tmp_path / "server.git", tmp_path / "bucket", tmp_path / "author"
    git("init", "-q", "--bare", str(server), cwd=tmp_path)
    git("init", "-q", str(work), cwd=tmp_path)
    assert agent("install", "--remote", str(bucket), cwd=work).returncode == 0
    assert agent("track", "*.bin", cwd=work).returncode == 0
    for name, data in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "files", cwd=work)
    for name, target in links.items():  # may replace .gitattributes or .lfsagent
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).unlink(missing_ok=True)
        os.symlink(target, work / name)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "links", "--allow-empty", cwd=work)
    git("config", "lfs-agent.remote", str(bucket), cwd=work)  # .lfsagent may be a link now
    git("remote", "add", "origin", str(server), cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    return server, bucket


def pointers_clone(server: Path, dest: Path) -> Path:
    """A clone of ``server`` holding pointers, then installed."""
    env = {**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"}
    git("clone", "-q", str(server), str(dest), cwd=dest.parent, env=env)
    assert agent("install", cwd=dest).returncode == 0
    return dest


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory of the user's outside every work tree, holding files worth stealing."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh/id_ed25519").write_bytes(b"PRIVATE KEY\n" * 10)
    (home / ".bashrc").write_bytes(b"# rc\n")
    (home / "hooks").mkdir()
    (home / "hooks/pre-commit").write_bytes(b"#!/bin/sh\n")
    return home


def test_a_committed_link_at_a_predictable_temp_name_is_not_written_through(
    tmp_path: Path, no_git_lfs_path, outside: Path
):
    # Before, a file over GIT_WRITES_MAX was written to ".<name>.lfs-agent-<oid[:12]>"
    # through open(), which follows the link the repository committed there.
    oid = sha256(BIG)
    links = {
        f"models/.model.bin.lfs-agent-{oid[:12]}": str(outside / "hooks/pre-commit"),
        f".model.bin.lfs-agent-{oid[:12]}": str(outside / ".bashrc"),
    }
    server, _ = publish(tmp_path, {"models/model.bin": BIG, "model.bin": BIG}, links)
    before = snapshot(outside)
    out = agent("clone", str(server), str(tmp_path / "victim"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert snapshot(outside) == before
    assert (tmp_path / "victim/models/model.bin").read_bytes() == BIG
    assert (tmp_path / "victim/model.bin").read_bytes() == BIG
    leftovers = [p.name for p in (tmp_path / "victim").rglob(".lfs-agent-*")]
    assert leftovers == []


def test_pull_refuses_a_large_file_below_a_directory_that_became_a_link(
    tmp_path: Path, no_git_lfs_path, outside: Path
):
    server, _ = publish(tmp_path, {"data/model.bin": BIG}, {})
    ci = pointers_clone(server, tmp_path / "ci")
    # data/ is replaced by a link to a directory of the user's holding the same pointer.
    (outside / "model.bin").write_bytes((ci / "data/model.bin").read_bytes())
    (ci / "data/model.bin").unlink()
    (ci / "data").rmdir()
    os.symlink(outside, ci / "data")
    before = snapshot(outside)
    out = agent("pull", cwd=ci)
    assert out.returncode != 0
    err = out.stderr.decode()
    assert "data/model.bin: refusing to write below data: it is a symbolic link" in err
    assert "Traceback" not in err
    assert snapshot(outside) == before


CANDIDATES = [
    # (link name in the repository, target below the user's directory)
    ("models/.model.bin.lfs-agent-{oid12}", ".bashrc"),
    (".model.bin.lfs-agent-{oid12}", "hooks/pre-commit"),
    ("models/.lfs-agent-0123456789abcdef.tmp", ".ssh/id_ed25519"),
    ("linked.bin", ".ssh/id_ed25519"),
    ("sub", "hooks"),
    ("nested/deeper", ".ssh"),
    (".gitattributes", ".bashrc"),
    (".lfsagent", ".bashrc"),
    (".lfsconfig", ".bashrc"),
]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_random_committed_links_never_make_lfs_agent_write_outside(
    tmp_path: Path, no_git_lfs_path, outside: Path, seed: int
):
    rng = random.Random(seed)
    chosen = rng.sample(CANDIDATES, k=rng.randint(3, len(CANDIDATES)))
    oid12 = sha256(BIG)[:12]
    links = {name.format(oid12=oid12): str(outside / target) for name, target in chosen}
    files = {"models/model.bin": BIG, "model.bin": BIG, "small.bin": SMALL}
    server, bucket = publish(tmp_path, files, links)
    before = snapshot(outside)
    victim = tmp_path / "victim"

    steps = [
        lambda: agent("clone", str(server), str(victim), cwd=tmp_path),
        lambda: agent("pull", cwd=victim),
        lambda: agent("checkout", cwd=victim),
        lambda: agent("track", "*.dat", cwd=victim),
        lambda: agent("untrack", "*.bin", cwd=victim),
        lambda: agent("install", "--remote", str(bucket), cwd=victim),
        lambda: agent("fetch", "--all", cwd=victim),
        lambda: agent("fsck", cwd=victim),
    ]
    for step in steps:
        out = step()
        err = out.stderr.decode()
        assert "Traceback" not in err and "internal error" not in err, (chosen, err)
        assert snapshot(outside) == before, chosen
    # Every file the clone wrote holds the committed content or its pointer.
    for name, data in files.items():
        if (victim / name).is_file() and not (victim / name).is_symlink():
            assert (victim / name).read_bytes() in (data, pointer_bytes(data)), name


def test_a_committed_cachedir_is_ignored_and_its_links_never_followed(
    tmp_path: Path, no_git_lfs_path, outside: Path
):
    # The secret has the object's size, so a cache trusted by size alone would serve it.
    secret = outside / ".ssh/id_ed25519"
    data = random_bytes(len(secret.read_bytes()), seed=9)
    oid = sha256(data)
    links = {f".lfs-cache/objects/{oid[:2]}/{oid[2:4]}/{oid}": str(secret)}
    server, _ = publish(tmp_path, {"key.bin": data}, links)
    author = tmp_path / "author"
    with open(author / ".lfsagent", "a") as f:
        f.write("\tcachedir = .lfs-cache\n")
    git("commit", "-qam", "cache", cwd=author)
    git("push", "-q", "origin", "main", cwd=author)
    out = agent("clone", str(server), str(tmp_path / "victim"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "ignored lfs-agent.cachedir in .lfsagent" in out.stderr.decode()
    assert (tmp_path / "victim/key.bin").read_bytes() == data
    stored = object_path(tmp_path / "victim/.git/lfs", data)
    assert not stored.is_symlink() and stored.read_bytes() == data


@pytest.mark.parametrize("kind", ["wrong-bytes", "link-to-secret"])
def test_a_shared_cache_entry_is_hashed_before_use(
    tmp_path: Path, no_git_lfs_path, outside: Path, kind: str
):
    data = random_bytes(len((outside / ".ssh/id_ed25519").read_bytes()), seed=3)
    server, _ = publish(tmp_path, {"w.bin": data}, {})
    cache = tmp_path / "shared-cache"
    entry = object_path(cache, data)
    entry.parent.mkdir(parents=True)
    if kind == "wrong-bytes":
        entry.write_bytes(b"X" * len(data))  # right size, wrong bytes
    else:
        os.symlink(outside / ".ssh/id_ed25519", entry)
    env = {**os.environ, "LFS_AGENT_CACHE_DIR": str(cache)}
    out = agent("clone", str(server), str(tmp_path / "ci"), cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert f"passing over {sha256(data)}" in out.stderr.decode()
    ci = tmp_path / "ci"
    assert (ci / "w.bin").read_bytes() == data  # from the bucket, checked
    stored = object_path(ci / ".git/lfs", data)
    assert not stored.is_symlink() and stored.read_bytes() == data
    # A push of everything to another bucket sends the right bytes.
    other = tmp_path / "other-bucket"
    pushed = agent("push", "--all", cwd=ci, env={**env, "LFS_AGENT_REMOTE": str(other)})
    assert pushed.returncode == 0, pushed.stderr
    assert object_path(other, data).read_bytes() == data


def test_a_link_in_a_folder_bucket_never_enters_the_store(
    tmp_path: Path, no_git_lfs_path, outside: Path
):
    server, bucket = publish(tmp_path, {"w.bin": SMALL}, {})
    # The bucket's object is swapped for a link to a file that holds the right bytes now,
    # and could hold anything after the check.
    swapped = outside / "today.bin"
    swapped.write_bytes(SMALL)
    obj = object_path(bucket, SMALL)
    obj.chmod(0o644)
    obj.unlink()
    os.symlink(swapped, obj)
    ci = pointers_clone(server, tmp_path / "ci")
    out = agent("pull", cwd=ci)
    assert out.returncode != 0
    assert "not a regular file" in out.stderr.decode() or "symbolic link" in out.stderr.decode()
    assert not object_path(ci / ".git/lfs", SMALL).exists()
    assert (ci / "w.bin").read_bytes() == pointer_bytes(SMALL)


def test_track_and_untrack_refuse_a_linked_gitattributes(
    tmp_path: Path, no_git_lfs_path, outside: Path
):
    work = tmp_path / "w"
    git("init", "-q", str(work), cwd=tmp_path)
    os.symlink(outside / ".bashrc", work / ".gitattributes")
    before = snapshot(outside)
    for args in (["track", "*.bin"], ["untrack", "*.bin"], ["track"]):
        out = agent(*args, cwd=work)
        assert out.returncode != 0, args
        err = out.stderr.decode()
        assert "refusing to use .gitattributes: it is a symbolic link" in err, err
        assert len(err.strip().splitlines()) == 1, err
    assert snapshot(outside) == before


def test_install_refuses_a_linked_lfsagent_and_credentials_in_the_remote(
    tmp_path: Path, no_git_lfs_path, outside: Path
):
    work = tmp_path / "w"
    git("init", "-q", str(work), cwd=tmp_path)
    os.symlink(outside / ".bashrc", work / ".lfsagent")
    before = snapshot(outside)
    out = agent("install", "--remote", str(tmp_path / "bucket"), cwd=work)
    assert out.returncode != 0
    assert "refusing to write .lfsagent" in out.stderr.decode()
    assert snapshot(outside) == before
    (work / ".lfsagent").unlink()
    out = agent("install", "--remote", "https://alice:hunter2@example.com/lfs", cwd=work)
    assert out.returncode != 0
    err = out.stderr.decode()
    assert "refusing to write credentials into .lfsagent" in err
    assert "hunter2" not in err
    assert not (work / ".lfsagent").exists()


def test_track_writes_gitattributes_as_a_regular_file_keeping_its_mode(
    tmp_path: Path, no_git_lfs_path
):
    work = tmp_path / "w"
    git("init", "-q", str(work), cwd=tmp_path)
    (work / ".gitattributes").write_text("*.txt text\n")
    (work / ".gitattributes").chmod(0o640)
    assert agent("track", "*.bin", cwd=work).returncode == 0
    assert (work / ".gitattributes").read_text() == (
        "*.txt text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
    )
    assert (work / ".gitattributes").stat().st_mode & 0o777 == 0o640
    assert [p.name for p in work.iterdir() if p.name.startswith(".lfs-agent-")] == []


def test_a_large_file_with_a_name_of_255_bytes_is_written(tmp_path: Path, no_git_lfs_path):
    # The temp file beside it has a name of fixed length, whatever the target's.
    name = "m" * 251 + ".bin"
    server, _ = publish(tmp_path, {name: BIG}, {})
    out = agent("clone", str(server), str(tmp_path / "c"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "c" / name).read_bytes() == BIG
    assert git("status", "--porcelain", cwd=tmp_path / "c").stdout == b""


def test_committed_patterns_cannot_hang_a_clone_nor_break_the_filter(
    tmp_path: Path, no_git_lfs_path
):
    # A backtracking matcher took minutes on this pattern and a long path; a bad range
    # made every filter call an internal error.
    deep = "a" * 60 + "/" + "a" * 60 + "/" + "a" * 60 + ".bin"
    server, _ = publish(tmp_path, {deep: SMALL, "ok.bin": SMALL * 2}, {})
    author = tmp_path / "author"
    (author / ".lfsconfig").write_text(
        "[lfs]\n\tfetchexclude = **a**a**a**a**a**a**a**a**a**a**a**z\n"
        "\tfetchinclude = [z-a],*.bin\n"
    )
    git("add", ".lfsconfig", cwd=author)
    git("commit", "-qm", "patterns", cwd=author)
    git("push", "-q", "origin", "main", cwd=author)
    out = agent("clone", str(server), str(tmp_path / "c"), cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    err = out.stderr.decode()
    assert "ignored the fetch pattern '[z-a]'" in err
    assert "internal error" not in err
    assert (tmp_path / "c" / deep).read_bytes() == SMALL
    assert (tmp_path / "c/ok.bin").read_bytes() == SMALL * 2


def test_a_scoped_install_keeps_the_remote_password_out_of_git_config(
    tmp_path: Path, no_git_lfs_path
):
    work = tmp_path / "w"
    git("init", "-q", str(work), cwd=tmp_path)
    git("remote", "add", "origin", "https://alice:hunter2@git.example.com/team/repo.git", cwd=work)
    out = agent("install", "--with-git-lfs", "--scope-remote", "origin", cwd=work)
    assert out.returncode == 0, out.stderr
    assert b"hunter2" not in out.stdout + out.stderr
    keys = git("config", "--local", "--list", cwd=work).stdout.decode()
    assert "lfs.https://git.example.com/team/repo.git/info/lfs.standalonetransferagent" in keys
    assert keys.count("hunter2") == 1  # the git remote's own URL, as the user set it
