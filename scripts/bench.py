"""Benchmarks: lfs-agent against git-lfs and DVC, on the same machine, in one run.

Each case is run for every tool, alternating tools within each round, and the table shows
median seconds, the ratio ours/peer, and peak RSS (the largest process of the command,
from getrusage of its children). Run through ``scripts/bench``, which installs the peers.
Garbage collection has no peer to compare with: its rows show the product's goal in the
peer's columns (peer ``goal``, ratio = lfs-agent / goal), and the figures beside the
timings (request counts, CPU time) under the table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
DVC = ROOT / ".venv-bench" / "bin" / "dvc"
PYTHON = str(VENV_BIN / "python")
MIB = 1024 * 1024
# Rounds of the short start-up cases and of the small-file cases, per --runs.
STARTUP_ROUNDS = 5
SMALL_ROUNDS = 2
# Runs a command and prints the peak RSS (KiB) of the largest process it started.
MEASURE = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[2:], cwd=sys.argv[1], stdout=subprocess.DEVNULL).returncode\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(usage.ru_maxrss, rc, usage.ru_utime + usage.ru_stime)\n"
)
#: The sweep delay of the gc rows' runs (seconds), waited out between mark and sweep.
GC_SWEEP_AFTER = 2
#: The product's goal for one ``gc --remote`` of a bucket of 100,000 objects.
GC_GOAL_SECONDS = 60.0
GC_GOAL_RSS_MB = 200.0
#: Share of a gc case's objects the registered repositories reach, and push records each
#: repository has published since its snapshot (of this many objects each).
GC_REACHABLE = 0.7
GC_PUSHES = 5
GC_PUSH_OIDS = 200
# Lists the keys under a prefix with boto3 alone: what the S3 server's listing costs.
LIST_ONLY = (
    "import sys, boto3\n"
    "s3 = boto3.client('s3', endpoint_url=sys.argv[1])\n"
    "pages = s3.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[2], Prefix=sys.argv[3])\n"
    "print(sum(len(p.get('Contents', [])) for p in pages), file=sys.stderr)\n"
)


@dataclass
class Sample:
    seconds: float
    rss_mb: float
    cpu_s: float | None = None  # user and system time of the command's processes


@dataclass(frozen=True)
class Goal:
    """The product's goal for a case without a peer: the most seconds and peak RSS."""

    seconds: float
    rss_mb: float


@dataclass
class Case:
    name: str
    results: dict[str, list[Sample]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    goal: Goal | None = None
    # Figures beside the timings (request counts, CPU time), printed under the table.
    notes: list[str] = field(default_factory=list)


class Bench:
    def __init__(self, work: Path, quick: bool, runs: int) -> None:
        self.work = work
        self.quick = quick
        self.runs = runs
        self.cases: list[Case] = []
        home = work / "home"
        home.mkdir(parents=True)
        self.env = {
            "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.com",
            "LC_ALL": "C",
            "DVC_NO_ANALYTICS": "1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        self.git("config", "--global", "init.defaultBranch", "main", cwd=work)
        self.git("config", "--global", "protocol.file.allow", "always", cwd=work)
        self.has_git_lfs = shutil.which("git-lfs", path=self.env["PATH"]) is not None
        if self.has_git_lfs:
            self.git("lfs", "install", "--skip-repo", cwd=work)
        self.has_dvc = DVC.exists()
        self.counter = 0
        # Directories of the tool run being measured; deleted once it is done (but see
        # ``case``), so that full-size runs do not fill the disk with copies of 1 GiB files.
        self.scratch: list[Path] = []

    # --- helpers --------------------------------------------------------------------

    def run(
        self, args: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(args, cwd=cwd, env=env or self.env, capture_output=True, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed in {cwd}:\n{proc.stderr.decode(errors='replace')[-2000:]}"
            )
        return proc

    def git(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.run(["git", *args], cwd, env)

    def measure(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Sample:
        # Write back what the set-up (and the last tool's clean-up) left dirty first, so
        # that no command pays for the file-system work of the one before it.
        os.sync()
        start = time.perf_counter()
        proc = self.run([sys.executable, "-c", MEASURE, str(cwd), *args], cwd, env, check=False)
        seconds = time.perf_counter() - start
        rss_kb, rc, cpu = proc.stdout.decode().split()
        if rc != "0":
            raise RuntimeError(
                f"measured command failed: {' '.join(args)}\n"
                f"{proc.stderr.decode(errors='replace')[-2000:]}"
            )
        return Sample(seconds, int(rss_kb) / 1024, float(cpu))

    def fresh(self, name: str) -> Path:
        path = self.scratch_path(name)
        path.mkdir()
        return path

    def scratch_path(self, name: str) -> Path:
        """A new path under the work dir, removed after the current tool run."""
        self.counter += 1
        path = self.work / f"{name}-{self.counter}"
        self.scratch.append(path)
        return path

    def clean_scratch(self) -> None:
        for path in self.scratch:
            shutil.rmtree(path, ignore_errors=True)
        self.scratch.clear()

    def case(
        self,
        name: str,
        tools: dict[str, Callable[[], Sample] | str],
        rounds: int = 0,
        keep: bool = False,
    ) -> None:
        """Run ``tools`` (name -> measuring function, or a reason it is skipped).

        Tools alternate within each of ``rounds`` rounds (default: ``--runs``), and the
        tool that goes first changes from round to round, so that neither always runs
        right after the other's clean-up. With ``keep`` the repositories of each run are
        left for the end of the benchmark instead of removed after it: ext4 without a
        journal (as on the machine of docs/benchmarks.md) passes over inodes freed in the
        last minute when it allocates new ones, so a run creating thousands of files
        right after thousands were removed spends much of its time in the kernel's inode
        allocator (``perf``: more than half of a small-file ``git add``), whichever tool
        it measures.
        """
        case = Case(name)
        self.cases.append(case)
        print(f"== {name}", file=sys.stderr, flush=True)
        names = list(tools)
        for round_ in range(rounds or self.runs):
            start = round_ % len(names)
            for tool in names[start:] + names[:start]:
                fn = tools[tool]
                if isinstance(fn, str):
                    case.skipped[tool] = fn
                    continue
                try:
                    case.results.setdefault(tool, []).append(fn())
                except (RuntimeError, OSError) as exc:
                    first = str(exc).strip().splitlines()[0][:160]
                    print(f"   {tool} failed: {first}", file=sys.stderr, flush=True)
                    case.skipped[tool] = f"failed: {first}"
                    tools[tool] = case.skipped[tool]
                finally:
                    if keep:
                        self.scratch.clear()  # removed with the work dir, at the end
                    else:
                        self.clean_scratch()

    # --- data -------------------------------------------------------------------------

    def make_file(self, path: Path, size: int, seed: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        block = os.urandom(MIB) if size >= MIB else os.urandom(size)
        with open(path, "wb") as f:
            remaining = size
            while remaining:
                chunk = block[: min(len(block), remaining)]
                f.write(chunk)
                remaining -= len(chunk)
            f.write(seed.to_bytes(8, "big"))  # distinct content per file

    def place(self, src: Path, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)

    # --- repositories per tool ---------------------------------------------------------------

    def ours_repo(self, name: str, remote: str | None = None) -> Path:
        repo = self.fresh(name)
        self.git("init", "-q", cwd=repo)
        args = [str(VENV_BIN / "lfs-agent"), "install"]
        if remote:
            args += ["--remote", remote]  # into the committed .lfsagent, for clones
        self.run(args, repo)
        self.run([str(VENV_BIN / "lfs-agent"), "track", "*.bin"], repo)
        return repo

    def lfs_repo(self, name: str) -> Path:
        repo = self.fresh(name)
        self.git("init", "-q", cwd=repo)
        self.git("lfs", "track", "*.bin", cwd=repo)
        return repo

    def dvc_repo(self, name: str) -> Path:
        repo = self.fresh(name)
        self.git("init", "-q", cwd=repo)
        self.run([str(DVC), "init", "-q"], repo)
        return repo

    def bare(self, name: str) -> Path:
        path = self.fresh(name)
        self.git("init", "-q", "--bare", cwd=path)
        return path

    def commit_copy(self, repo: Path, masters: Path, folder: str, origin: str) -> None:
        """Copy ``masters`` into ``repo/folder``, commit it, and add ``origin`` as a remote."""
        shutil.copytree(masters, repo / folder)
        self.git("add", "-A", cwd=repo)
        self.git("commit", "-qm", folder, cwd=repo)
        self.git("remote", "add", "origin", origin, cwd=repo)

    # --- cases ------------------------------------------------------------------------------

    def bench_clean(self, size: int) -> None:
        master = self.work / "master-big.bin"
        self.make_file(master, size, 1)

        def ours() -> Sample:
            repo = self.ours_repo("clean-ours")
            self.place(master, repo / "big.bin")
            return self.measure(["git", "add", "big.bin"], repo)

        def lfs() -> Sample:
            repo = self.lfs_repo("clean-lfs")
            self.place(master, repo / "big.bin")
            return self.measure(["git", "add", "big.bin"], repo)

        def dvc() -> Sample:
            repo = self.dvc_repo("clean-dvc")
            self.place(master, repo / "big.bin")
            return self.measure([str(DVC), "add", "-q", "big.bin"], repo)

        self.case(
            f"clean: git add of one {human(size)} file",
            {
                "lfs-agent": ours,
                "git-lfs": lfs if self.has_git_lfs else "git-lfs not installed",
                "dvc": dvc if self.has_dvc else "dvc not installed",
            },
        )

    def bench_small(self, count: int, size: int) -> None:
        masters = self.work / "small-masters"
        for i in range(count):
            self.make_file(masters / f"f{i:05d}.bin", size, i)

        def populate(repo: Path) -> None:
            shutil.copytree(masters, repo / "files")

        def run_tool(make: Callable[[str], Path]) -> tuple[Sample, Path]:
            repo = make("small")
            populate(repo)
            return self.measure(["git", "add", "files"], repo), repo

        checkout_samples: dict[str, list[Sample]] = {}

        def add_then_checkout(tool: str, make: Callable[[str], Path]) -> Sample:
            sample, repo = run_tool(make)
            self.git("commit", "-qm", "files", cwd=repo)
            # Moved away, not removed: freeing 2,000 inodes would slow the checkout's
            # own file creation (see ``case``).
            (repo / "files").rename(self.scratch_path("checked-in-files"))
            checkout_samples.setdefault(tool, []).append(
                self.measure(["git", "checkout", "--", "files"], repo)
            )
            return sample

        name = f"small files: git add of {count} x {human(size)}"
        self.case(
            name,
            {
                "lfs-agent": lambda: add_then_checkout("lfs-agent", self.ours_repo),
                "git-lfs": (lambda: add_then_checkout("git-lfs", self.lfs_repo))
                if self.has_git_lfs
                else "git-lfs not installed",
            },
            # Mostly git creating files, which a disk times unevenly: twice the rounds.
            SMALL_ROUNDS * self.runs,
            keep=True,
        )
        checkout = Case(
            f"small files: fresh checkout of {count} x {human(size)}", results=checkout_samples
        )
        self.cases.append(checkout)

    def bench_push_clone(self, label: str, files: dict[str, int]) -> None:
        masters = self.work / f"masters-{label}"
        for i, (path, size) in enumerate(files.items()):
            self.make_file(masters / path, size, 1000 + i)
        push: dict[str, Callable[[], Sample] | str] = {}
        pull: dict[str, list[Sample]] = {}
        by_clone: list[Sample] = []  # lfs-agent clone, against the same peers' samples

        def ours() -> Sample:
            bucket = self.fresh("bucket")
            server = self.bare("server")
            repo = self.ours_repo("push-ours", remote=str(bucket))
            self.commit_copy(repo, masters, "data", str(server))
            sample = self.measure(["git", "push", "-q", "origin", "main"], repo)
            clone = self.scratch_path("clone-ours")
            pull.setdefault("lfs-agent", []).append(
                self.measure(
                    [
                        "git",
                        "clone",
                        "-q",
                        "-c",
                        f"filter.lfs.process={PYTHON} -m lfs_agent filter-process",
                        "-c",
                        "filter.lfs.required=true",
                        str(server),
                        str(clone),
                    ],
                    self.work,
                )
            )
            # lfs-agent clone: git writes the small files through the filter, then
            # pull writes the large ones itself instead of through git's buffer.
            clone = self.scratch_path("lfs-agent-clone")
            by_clone.append(
                self.measure(
                    [str(VENV_BIN / "lfs-agent"), "clone", str(server), str(clone)], self.work
                )
            )
            return sample

        def lfs() -> Sample:
            server = self.bare("server")
            repo = self.lfs_repo("push-lfs")
            self.commit_copy(repo, masters, "data", server.as_uri())
            sample = self.measure(["git", "push", "-q", "origin", "main"], repo)
            clone = self.scratch_path("clone-lfs")
            pull.setdefault("git-lfs", []).append(
                self.measure(["git", "clone", "-q", server.as_uri(), str(clone)], self.work)
            )
            return sample

        def dvc() -> Sample:
            remote = self.fresh("dvc-remote")
            repo = self.dvc_repo("push-dvc")
            shutil.copytree(masters, repo / "data")
            self.run([str(DVC), "add", "-q", "data"], repo)
            self.run([str(DVC), "remote", "add", "-d", "store", str(remote)], repo)
            sample = self.measure([str(DVC), "push", "-q"], repo)
            shutil.rmtree(repo / ".dvc" / "cache")
            shutil.rmtree(repo / "data")
            pull.setdefault("dvc", []).append(self.measure([str(DVC), "pull", "-q"], repo))
            return sample

        push["lfs-agent"] = ours
        push["git-lfs"] = lfs if self.has_git_lfs else "git-lfs not installed"
        push["dvc"] = dvc if self.has_dvc else "dvc not installed"
        self.case(f"push {label} to a local bucket (git-lfs: file:// remote)", push)
        self.cases.append(Case(f"clone/pull {label} from a local bucket", results=pull))
        peers = {tool: samples for tool, samples in pull.items() if tool != "lfs-agent"}
        self.cases.append(
            Case(
                f"clone/pull {label} from a local bucket (lfs-agent clone)",
                results={"lfs-agent": by_clone, **peers},
            )
        )

    def bench_s3(
        self, label: str, files: dict[str, int], server: S3Server, part_size: str | None = None
    ) -> None:
        import boto3

        masters = self.work / f"masters-s3-{label}"
        for i, (path, size) in enumerate(files.items()):
            self.make_file(masters / path, size, 2000 + i)
        s3 = boto3.client(
            "s3",
            endpoint_url=server.url,
            aws_access_key_id=server.key,
            aws_secret_access_key=server.key,
            region_name="us-east-1",
        )
        env = dict(
            self.env,
            AWS_ENDPOINT_URL=server.url,
            AWS_ACCESS_KEY_ID=server.key,
            AWS_SECRET_ACCESS_KEY=server.key,
        )
        pull: dict[str, list[Sample]] = {}

        def bucket() -> str:
            self.counter += 1
            name = f"bench-{self.counter}"
            s3.create_bucket(Bucket=name)
            return name

        def ours() -> Sample:
            server = self.bare("server")
            repo = self.ours_repo("s3-ours", remote=f"s3://{bucket()}/repo")
            if part_size:
                self.git("config", "lfs-agent.s3.part-size", part_size, cwd=repo)
            self.commit_copy(repo, masters, "data", str(server))
            sample = self.measure(["git", "push", "-q", "origin", "main"], repo, env)
            shutil.rmtree(repo / ".git" / "lfs" / "objects")
            shutil.rmtree(repo / "data")
            pull.setdefault("lfs-agent", []).append(
                self.measure([str(VENV_BIN / "lfs-agent"), "pull"], repo, env)
            )
            return sample

        def dvc() -> Sample:
            repo = self.dvc_repo("s3-dvc")
            shutil.copytree(masters, repo / "data")
            self.run([str(DVC), "add", "-q", "data"], repo)
            self.run([str(DVC), "remote", "add", "-d", "s3", f"s3://{bucket()}/repo"], repo)
            self.run([str(DVC), "remote", "modify", "s3", "endpointurl", server.url], repo)
            sample = self.measure([str(DVC), "push", "-q"], repo, env)
            shutil.rmtree(repo / ".dvc" / "cache")
            shutil.rmtree(repo / "data")
            pull.setdefault("dvc", []).append(self.measure([str(DVC), "pull", "-q"], repo, env))
            return sample

        setting = f", s3.part-size={part_size}" if part_size else ""
        self.case(
            f"push {label} to S3 ({server.label}{setting})",
            {"lfs-agent": ours, "dvc": dvc if self.has_dvc else "dvc not installed"},
        )
        self.cases.append(Case(f"pull {label} from S3 ({server.label}{setting})", results=pull))

    def gc_bucket(
        self, server: GcServer, s3: Any, env: dict[str, str], count: int, repos: int
    ) -> tuple[str, Path, Path]:
        """A bucket of ``count`` objects and ``repos`` registered repositories.

        The repositories' snapshots are written with the real record model and key, and
        name :data:`GC_REACHABLE` of the objects between them; each repository also has
        :data:`GC_PUSHES` push records newer than its snapshot. Repository 0 is a real
        git server with a clone that pushes through lfs-agent's pre-push hook.

        Returns:
            The bucket's name, the collecting repository (configured for the bucket, with
            no git remote) and the clone of repository 0.
        """
        from lfs_agent.gcrecords import Snapshot
        from lfs_agent.git import Git
        from lfs_agent.registry import _snapshot_key, new_stamp, repository_id

        reachable = int(count * GC_REACHABLE)
        self.counter += 1
        bucket = f"gc-{self.counter}"
        oids = [hashlib.sha256(f"{bucket}/{i}".encode()).hexdigest() for i in range(count)]
        server.fill(bucket, [f"repo/objects/{o[:2]}/{o[2:4]}/{o}" for o in oids])
        url = f"s3://{bucket}/repo"
        origin = self.bare("gc-server")
        clone = self.ours_repo("gc-clone", remote=url)
        (clone / "first.bin").write_bytes(os.urandom(4096))
        self.git("add", "first.bin", cwd=clone)
        self.git("commit", "-qm", "first", cwd=clone)
        self.git("remote", "add", "origin", str(origin), cwd=clone)
        self.git("push", "-q", "origin", "main", cwd=clone, env=env)
        git = Git(clone)
        ids = [repository_id(git, "origin")] + [
            repository_id(git, f"https://git.example.com/models/model-{r}.git")
            for r in range(1, repos)
        ]
        basis = round(time.time(), 3)
        for r, repo in enumerate(ids):
            share = sorted(oids[r:reachable:repos])
            snapshot = Snapshot(
                repo=repo.id, url=repo.url, policy="history", basis=basis,
                refs={"refs/heads/main": "0" * 40}, oids=share,
            )  # fmt: skip
            key = f"repo/{_snapshot_key(repo.id, basis, os.urandom(4).hex(), 0)}"
            s3.put_object(Bucket=bucket, Key=key, Body=snapshot.model_dump_json().encode())
            for k in range(GC_PUSHES):
                record = {
                    "version": 1, "repo": repo.id, "url": repo.url, "by": "pre-push",
                    "refs": {"refs/heads/main": "0" * 40},
                    "oids": share[k * GC_PUSH_OIDS : (k + 1) * GC_PUSH_OIDS],
                }  # fmt: skip
                key = f"repo/meta/repos/{repo.id}/pushes/{new_stamp()}-0.json"
                s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(record).encode())
        collector = self.ours_repo("gc-collect", remote=url)
        return bucket, collector, clone

    def bench_gc(self, count: int, repos: int, server: GcServer) -> None:
        """``gc --remote`` of a bucket of ``count`` objects shared by ``repos`` repositories.

        Each round fills a new bucket of moto's (not measured), publishes the
        repositories' snapshots through the real record model and key, then times: moto
        listing the objects alone (the floor under any collection on this server), the
        mark (condemn only), one push through the pre-push hook of
        a registered repository while the condemned list is pending (its requests
        counted), and the sweep of the list once its short sweep delay has passed, which
        then marks anew.
        The collecting repository has no git remote, so no run refreshes a snapshot.
        """
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=server.url,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        )
        env = dict(self.env, AWS_ENDPOINT_URL=server.url)
        reachable = int(count * GC_REACHABLE)
        condemned = count - reachable
        gc = [str(VENV_BIN / "lfs-agent"), "gc", "--remote", "--grace", "1d"]
        listing: list[Sample] = []
        sweeps: list[Sample] = []
        pushes: list[Sample] = []
        said: dict[str, list[str]] = {}

        def one_round() -> Sample:
            bucket, collector, clone = self.gc_bucket(server, s3, env, count, repos)
            try:
                server.requests()
                listing.append(
                    self.measure([PYTHON, "-c", LIST_ONLY, server.url, bucket, "repo/objects/"],
                                 self.work, env)
                )  # fmt: skip
                server.requests()
                # A short sweep delay, waited out below: a list is never swept sooner
                # than the delay it was condemned with.
                mark = self.measure([*gc, "--sweep-after", f"{GC_SWEEP_AFTER}s"], collector, env)
                marked = server.requests()
                state = json.loads(
                    s3.get_object(Bucket=bucket, Key="repo/meta/gc/state.json")["Body"].read()
                )
                if state["count"] != condemned:
                    raise RuntimeError(f"the mark condemned {state['count']}, not {condemned}")
                said["mark"] = [cpu_note(mark), "requests: " + request_counts(marked, bucket)]

                (clone / "new.bin").write_bytes(os.urandom(4096))
                self.git("add", "new.bin", cwd=clone)
                self.git("commit", "-qm", "new", cwd=clone)
                server.requests()  # not the bench's own reading of the state
                pushes.append(self.measure(["git", "push", "-q", "origin", "main"], clone, env))
                said["push"] = push_notes(server.requests(), bucket, s3)

                time.sleep(GC_SWEEP_AFTER)
                sweep = self.measure([*gc, "--sweep-after", f"{GC_SWEEP_AFTER}s"], collector, env)
                swept = server.requests()
                sweeps.append(sweep)
                said["sweep"] = [cpu_note(sweep), *delete_notes(swept, bucket, condemned)]
                said["sweep"].append("requests: " + request_counts(swept, bucket))
                return mark
            finally:
                server.drop(bucket)

        mark_name = (
            f"gc: mark and condemn, {count} objects, {repos} registered repositories, "
            "S3 (moto server)"
        )
        self.case(mark_name, {"lfs-agent": one_round})
        goal = Goal(GC_GOAL_SECONDS, GC_GOAL_RSS_MB)
        mark_case = self.cases[-1]
        mark_case.goal, mark_case.notes = goal, said.get("mark", [])
        self.cases.append(
            Case(
                f"gc: sweep of the {condemned} condemned objects, then a new mark, "
                "S3 (moto server)",
                results={"lfs-agent": sweeps},
                goal=goal,
                notes=said.get("sweep", []),
            )
        )
        self.cases.append(
            Case(
                f"gc: moto server alone listing {count} objects (boto3, no lfs-agent)",
                results={"lfs-agent": listing},
            )
        )
        self.cases.append(
            Case(
                "gc: a push's extra requests (one new object, pre-push hook, S3 (moto server))",
                results={"lfs-agent": pushes},
                notes=said.get("push", []),
            )
        )

    def bench_lazy(self, count: int, size: int) -> None:
        masters = self.work / "masters-lazy"
        for i in range(count):
            self.make_file(masters / f"m{i}.bin", size, 3000 + i)
        # One repository per tool, cloned lazily again in each round; kept (not scratch)
        # until the case is done.
        bucket = self.fresh("lazy-bucket")
        ours_server = self.bare("lazy-server")
        repo = self.ours_repo("lazy-ours", remote=str(bucket))
        self.commit_copy(repo, masters, "models", str(ours_server))
        self.git("push", "-q", "origin", "main", cwd=repo)
        tools: dict[str, Callable[[], Sample] | str] = {}

        def ours() -> Sample:
            dest = self.scratch_path("lazy-clone-ours")
            return self.measure(
                [
                    str(VENV_BIN / "lfs-agent"),
                    "clone",
                    "--include",
                    "models/m0.bin",
                    str(ours_server),
                    str(dest),
                ],
                self.work,
            )

        tools["lfs-agent"] = ours
        if self.has_git_lfs:
            lfs_server = self.bare("lazy-lfs-server")
            lrepo = self.lfs_repo("lazy-lfs")
            self.commit_copy(lrepo, masters, "models", lfs_server.as_uri())
            self.git("push", "-q", "origin", "main", cwd=lrepo)

            def lfs() -> Sample:
                dest = self.scratch_path("lazy-clone-lfs")
                script = (
                    f"GIT_LFS_SKIP_SMUDGE=1 git clone -q {lfs_server.as_uri()} {dest} && "
                    f"cd {dest} && git lfs pull -I models/m0.bin"
                )
                return self.measure(["sh", "-c", script], self.work)

            tools["git-lfs"] = lfs
        else:
            tools["git-lfs"] = "git-lfs not installed"
        keep, self.scratch = self.scratch, []  # the repositories outlive each round
        self.case(f"lazy CI clone of 1 x {human(size)} out of {count} x {human(size)}", tools)
        self.scratch = keep
        self.clean_scratch()

    def bench_startup(self) -> None:
        handshake = (
            b"0016git-filter-client\n000eversion=2\n0000"
            b"0015capability=clean\n0016capability=smudge\n0015capability=delay\n0000"
        )
        repo = self.ours_repo("startup")
        lrepo = self.lfs_repo("startup-lfs") if self.has_git_lfs else None

        def direct(cmd: list[str], cwd: Path, send: bytes = b"") -> Sample:
            """Time one process from spawn to exit, with no wrapper process in between.

            The filter is sent the handshake and stdin is closed once its reply is in:
            git keeps the filter's stdin open, so the reply is what git waits for.
            """
            start = time.perf_counter()
            proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            assert proc.stdin is not None and proc.stdout is not None
            if send:
                proc.stdin.write(send)
                proc.stdin.flush()
            reply = b""
            while not (send and reply.endswith(b"0000") and b"capability=" in reply):
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                reply += chunk
            proc.stdin.close()
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            proc.stdout.close()
            if proc.returncode != 0 or not reply:
                raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {reply[-200:]!r}")
            return Sample(seconds, usage.ru_maxrss / 1024)

        # Start-up is short and noisy: more rounds than the other cases.
        rounds = STARTUP_ROUNDS * self.runs
        keep, self.scratch = self.scratch, []  # the repositories outlive each round
        self.case(
            "start-up: --version",
            {
                "lfs-agent": lambda: direct([str(VENV_BIN / "lfs-agent"), "--version"], repo),
                "git-lfs": (lambda: direct(["git-lfs", "version"], repo))
                if self.has_git_lfs
                else "git-lfs not installed",
            },
            rounds,
        )
        self.case(
            "start-up: filter-process handshake",
            {
                "lfs-agent": lambda: direct(
                    [PYTHON, "-m", "lfs_agent", "filter-process"], repo, handshake
                ),
                "git-lfs": (lambda: direct(["git-lfs", "filter-process"], lrepo, handshake))
                if lrepo is not None
                else "git-lfs not installed",
            },
            rounds,
        )
        self.scratch = keep
        self.clean_scratch()

    # --- report -------------------------------------------------------------------------------

    def report(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for case in self.cases:
            medians = {
                tool: (
                    statistics.median(s.seconds for s in samples),
                    max(s.rss_mb for s in samples),
                )
                for tool, samples in case.results.items()
                if samples
            }
            ours = medians.get("lfs-agent")
            if case.goal is not None and ours:
                rows.append(
                    {
                        "case": case.name,
                        "peer": "goal",
                        "ours_s": ours[0],
                        "peer_s": case.goal.seconds,
                        "ratio": ours[0] / case.goal.seconds,
                        "ours_rss_mb": ours[1],
                        "peer_rss_mb": case.goal.rss_mb,
                        "skipped": None,
                        "notes": case.notes,
                    }
                )
                continue
            for peer in ("git-lfs", "dvc"):
                if peer in medians and ours:
                    medians_ratio = ours[0] / medians[peer][0] if medians[peer][0] else None
                else:
                    medians_ratio = None
                if peer in medians or peer in case.skipped:
                    rows.append(
                        {
                            "case": case.name,
                            "peer": peer,
                            "ours_s": ours[0] if ours else None,
                            "peer_s": medians[peer][0] if peer in medians else None,
                            "ratio": medians_ratio,
                            "ours_rss_mb": ours[1] if ours else None,
                            "peer_rss_mb": medians[peer][1] if peer in medians else None,
                            "skipped": case.skipped.get(peer),
                            "notes": case.notes,
                        }
                    )
            if not any(r["case"] == case.name for r in rows) and ours:
                rows.append(
                    {
                        "case": case.name,
                        "peer": "-",
                        "ours_s": ours[0],
                        "peer_s": None,
                        "ratio": None,
                        "ours_rss_mb": ours[1],
                        "peer_rss_mb": None,
                        "skipped": None,
                        "notes": case.notes,
                    }
                )
        return rows


def human(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} B"


def fmt(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict[str, object]], markdown: bool) -> None:
    header = ["case", "peer", "lfs-agent s", "peer s", "ratio", "lfs-agent RSS MB", "peer RSS MB"]
    lines = []
    for r in rows:
        peer_s = fmt(r["peer_s"], ".3f") if not r["skipped"] else f"skipped: {r['skipped']}"
        lines.append(
            [
                str(r["case"]),
                str(r["peer"]),
                fmt(r["ours_s"], ".3f"),
                peer_s,
                fmt(r["ratio"], ".2f"),
                fmt(r["ours_rss_mb"], ".0f"),
                fmt(r["peer_rss_mb"], ".0f"),
            ]
        )
    notes = {str(r["case"]): r["notes"] for r in rows if r.get("notes")}
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(x) for x in col) for col in zip(header, *lines, strict=False)]
        for line in [header, *lines]:
            print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    if notes:
        print()
    for case, said in notes.items():
        assert isinstance(said, list)
        print(f"- {case}:")
        for note in said:
            print(f"  - {note}")


@dataclass
class S3Server:
    """A local S3-compatible server for the S3 cases."""

    proc: subprocess.Popen[bytes]
    url: str
    label: str
    key: str  # access key id and secret: the server accepts only its own


#: s3rver (Node.js; objects are files, and a ranged GET reads only its range).
S3RVER = ROOT / ".bench-node" / "node_modules" / ".bin" / "s3rver"


def start_s3_server(kind: str, work: Path) -> S3Server:
    """Start moto (``moto``) or s3rver (``s3rver``, installed with npm when missing)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if kind == "s3rver":
        if not S3RVER.exists():
            subprocess.run(
                ["npm", "install", "-s", "--no-audit", "--no-fund", "--prefix",
                 str(S3RVER.parents[2]), "s3rver@3.7.1"],
                check=True,
            )  # fmt: skip
        data = work / "s3rver-data"
        data.mkdir()
        args = [str(S3RVER), "-d", str(data), "-a", "127.0.0.1", "-p", str(port), "-s",
                "--allow-mismatched-signatures"]  # fmt: skip
        label, key = "s3rver", "S3RVER"
    else:
        args = [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        label, key = "moto server", "bench"
    log = open(work / f"{kind}.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return S3Server(proc, f"http://127.0.0.1:{port}", label, key)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the {label} did not start")


class GcServer:
    """The moto server of the gc cases (scripts/bench_moto.py): fills buckets, counts requests."""

    def __init__(self, work: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(work / "gc-moto.log", "wb")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            [PYTHON, str(ROOT / "scripts" / "bench_moto.py"), str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise RuntimeError("the moto server of the gc cases did not start") from None
                time.sleep(0.1)

    def _ask(self, command: dict[str, object]) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        self.proc.stdin.flush()
        answer: dict[str, object] = json.loads(self.proc.stdout.readline() or b"null")
        if not answer:
            raise RuntimeError("the moto server of the gc cases stopped")
        return answer

    def fill(self, bucket: str, keys: list[str]) -> None:
        """Create ``bucket`` holding ``keys`` (100 bytes each), straight in moto's store."""
        self._ask({"fill": bucket, "keys": keys, "size": 100})

    def drop(self, bucket: str) -> None:
        self._ask({"drop": bucket})

    def requests(self) -> list[tuple[str, str, str, int, str]]:
        """The requests served since the last call: method, path, query, deleted keys, first."""
        seen = self._ask({"requests": True})["requests"]
        assert isinstance(seen, list)
        return [(m, p, q, int(k), f) for m, p, q, k, f in seen]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def key_class(key: str) -> str:
    """A bucket key (below the remote's prefix) as counted: its kind of record or object."""
    parts = key.split("/")
    if parts[0] == "objects":
        return "objects/"
    if parts[:2] == ["meta", "repos"] and len(parts) > 3:
        return f"meta/repos/*/{parts[3]}/"
    if parts[:2] == ["meta", "gc"] and len(parts) > 3:
        return "/".join(parts[:3]) + "/"
    return key


def request_kind(request: tuple[str, str, str, int, str], bucket: str) -> str:
    """``GET meta/gc/state.json``, ``LIST objects/``, ``DeleteObjects objects/``, ..."""
    method, path, query, _, first = request
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    below = f"/{bucket}/repo/"
    if "list-type" in params:
        return "LIST " + key_class(params.get("prefix", [""])[0].removeprefix("repo/"))
    if "delete" in params:
        return "DeleteObjects " + key_class(first.removeprefix("repo/"))
    if "versioning" in params:
        return f"{method} ?versioning"
    if path.startswith(below):
        return f"{method} {key_class(path.removeprefix(below))}"
    return f"{method} {path}"


def request_counts(requests: list[tuple[str, str, str, int, str]], bucket: str) -> str:
    counted: dict[str, int] = {}
    for request in requests:
        kind = request_kind(request, bucket)
        counted[kind] = counted.get(kind, 0) + 1
    ranked = sorted(counted.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{kind} {n}" for kind, n in ranked)


def cpu_note(sample: Sample) -> str:
    return (
        f"lfs-agent's own CPU time (user + system), last round: {fmt(sample.cpu_s, '.1f')} s "
        f"of {sample.seconds:.1f} s"
    )


def delete_notes(
    requests: list[tuple[str, str, str, int, str]], bucket: str, condemned: int
) -> list[str]:
    """The sweep's DeleteObjects requests of objects, checked against the condemned count."""
    batches = [r[3] for r in requests if request_kind(r, bucket) == "DeleteObjects objects/"]
    heads = sum(1 for r in requests if request_kind(r, bucket) == "HEAD objects/")
    if sum(batches) != condemned or max(batches, default=0) > 1000:
        raise RuntimeError(f"the sweep deleted {sum(batches)} objects in {batches}")
    return [
        f"{len(batches)} DeleteObjects requests of objects, {min(batches)} to {max(batches)} "
        f"keys each (at most 1,000), {sum(batches)} keys in all; {heads} HEADs of objects "
        "before them"
    ]


def push_notes(requests: list[tuple[str, str, str, int, str]], bucket: str, s3: Any) -> list[str]:
    """What a push asked of the bucket, and which of it garbage collection adds."""
    kinds = [request_kind(r, bucket) for r in requests]
    state = s3.head_object(Bucket=bucket, Key="repo/meta/gc/state.json")["ContentLength"]
    gets = kinds.count("GET meta/gc/state.json")
    records = kinds.count("PUT meta/repos/*/pushes/")
    others = [k for k in kinds if k.startswith("GET meta/gc/")]
    met = gets <= 1 and not set(others) - {"GET meta/gc/state.json"}
    return [
        "requests: " + request_counts(requests, bucket),
        f"for garbage collection: {gets} GET of meta/gc/state.json ({state} bytes; a "
        f"condemned list was pending) and {records} PUT of the push record; goal: at most "
        f"one small GET, plus the record's PUT: {'met' if met else 'not met'}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny inputs, one run")
    parser.add_argument(
        "--runs",
        type=int,
        help=f"rounds per case (default 3; 1 with --quick); start-up takes {STARTUP_ROUNDS} "
        f"times as many, the small-file group {SMALL_ROUNDS} times",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--only", metavar="WORD", help="run only cases whose group has WORD")
    parser.add_argument(
        "--s3-part-size",
        metavar="SIZE",
        help="lfs-agent's s3.part-size in the S3 cases: the part size, and the smallest "
        "download range (moto reads a whole object for every ranged GET)",
    )
    parser.add_argument(
        "--s3-server",
        choices=["moto", "s3rver"],
        default="moto",
        help="the S3-compatible server of the S3 cases: moto (default) or s3rver "
        "(Node.js, installed with npm; serves a ranged GET without reading the whole object)",
    )
    parser.add_argument(
        "--work-dir",
        metavar="DIR",
        help="where the repositories and buckets are made (default: the system temp dir); "
        "a tmpfs such as /dev/shm takes the disk out of the measurement",
    )
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    big = 2 * MIB if args.quick else 1 << 30
    small_n = 20 if args.quick else 2000
    push_small_n = 20 if args.quick else 1000
    lazy_size = 1 * MIB if args.quick else 100 * MIB
    work = Path(tempfile.mkdtemp(prefix="lfs-agent-bench-", dir=args.work_dir))
    bench = Bench(work, args.quick, runs)
    server = None
    try:
        groups: list[tuple[str, Callable[[], None]]] = [
            ("startup", bench.bench_startup),
            ("clean", lambda: bench.bench_clean(big)),
            ("small", lambda: bench.bench_small(small_n, 16 * 1024)),
            ("push", lambda: bench.bench_push_clone(human(big), {"big.bin": big})),
            (
                "push",
                lambda: bench.bench_push_clone(
                    f"{push_small_n} small files",
                    {f"s{i:04d}.bin": 16 * 1024 for i in range(push_small_n)},
                ),
            ),
            ("lazy", lambda: bench.bench_lazy(10 if not args.quick else 4, lazy_size)),
        ]
        for group, fn in groups:
            if not args.only or args.only in group:
                fn()
        if not args.only or args.only in "gc":
            gc_server = GcServer(work)
            try:
                bench.bench_gc(2000 if args.quick else 100_000, 10, gc_server)
            finally:
                gc_server.close()
        if not args.only or args.only in "s3":
            server = start_s3_server(args.s3_server, work)
            bench.bench_s3(human(big), {"big.bin": big}, server, args.s3_part_size)
            bench.bench_s3(
                f"{push_small_n} small files",
                {f"s{i:04d}.bin": 16 * 1024 for i in range(push_small_n)},
                server,
                args.s3_part_size,
            )
    finally:
        if server is not None:
            server.proc.send_signal(signal.SIGTERM)
            server.proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    rows = bench.report()
    print(
        f"\nlfs-agent benchmarks ({'quick' if args.quick else 'full'}, {runs} run(s) per case "
        f"({STARTUP_ROUNDS * runs} for start-up, {SMALL_ROUNDS * runs} for small files), "
        f"median seconds; ratio = lfs-agent / peer, lower is better; work dir {work.parent})"
    )
    print_table(rows, args.markdown)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
