"""Benchmarks: lfs-agent against git-lfs and DVC, on the same machine, in one run.

Each case is run for every tool, alternating tools within each round, and the table shows
median seconds, the ratio ours/peer, and peak RSS (the largest process of the command,
from getrusage of its children). Run through ``scripts/bench``, which installs the peers.
"""

from __future__ import annotations

import argparse
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)\n"
)


@dataclass
class Sample:
    seconds: float
    rss_mb: float


@dataclass
class Case:
    name: str
    results: dict[str, list[Sample]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


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
        rss_kb, rc = proc.stdout.decode().split()
        if rc != "0":
            raise RuntimeError(
                f"measured command failed: {' '.join(args)}\n"
                f"{proc.stderr.decode(errors='replace')[-2000:]}"
            )
        return Sample(seconds, int(rss_kb) / 1024)

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
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(x) for x in col) for col in zip(header, *lines, strict=False)]
    for line in [header, *lines]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


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
