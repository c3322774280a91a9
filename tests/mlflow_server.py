"""A real MLflow tracking server for the tests, run from a virtual environment of its own.

MLflow brings many dependencies (a web stack, SQLAlchemy, pandas ...); they live in
their own venv, never in the test environment, made once under the user's cache and
reused. ``python -m tests.mlflow_server install`` makes it (``scripts/setup --dev``
runs it); a test needing the server makes it too when missing, and fails, never skips,
when it cannot.

The server is the one users run: ``mlflow server`` with a SQLite store and artifacts
served through its ``mlflow-artifacts`` proxy, on a free loopback port.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

#: What is installed; a venv made for another requirement is made again.
REQUIREMENT = "mlflow>=3,<4"
#: Where the venv lives (``LFS_AGENT_TEST_MLFLOW_VENV`` chooses another place). Read at
#: import, before the tests' hermetic environment replaces ``HOME``.
VENV = Path(
    os.environ.get("LFS_AGENT_TEST_MLFLOW_VENV")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "lfs-agent"
    / "mlflow-venv"
)
STARTUP_SECONDS = 180


def _ready(venv: Path) -> bool:
    """Whether the venv was made for :data:`REQUIREMENT` (a broken one fails to start)."""
    marker = venv / "lfs-agent-requirement.txt"
    return marker.is_file() and marker.read_text().strip() == REQUIREMENT


def install(venv: Path = VENV) -> Path:
    """Make (or reuse) the venv with MLflow in it; return its Python.

    Raises:
        RuntimeError: when the venv cannot be made or MLflow not installed, with pip's
            last lines.
    """
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:  # one installer at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _ready(venv):
            return venv / "bin" / "python"
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            [*pip, "--disable-pip-version-check", REQUIREMENT],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                output = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
                raise RuntimeError(
                    f"cannot install {REQUIREMENT} into {venv}: {' '.join(step)} "
                    f"exited {done.returncode}:\n{output}"
                )
        python = venv / "bin" / "python"
        probe = subprocess.run(
            [str(python), "-c", "import mlflow.server"], capture_output=True, text=True, check=False
        )
        if probe.returncode != 0:
            raise RuntimeError(f"{REQUIREMENT} in {venv} does not import:\n{probe.stderr[-2000:]}")
        (venv / "lfs-agent-requirement.txt").write_text(REQUIREMENT + "\n")
    return venv / "bin" / "python"


class MlflowServer:
    """``mlflow server`` on a free loopback port, with its store and artifacts in ``root``."""

    def __init__(self, root: Path) -> None:
        from tests.servers import free_port

        python = install()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = root
        self.log_path = root / "mlflow-server.log"
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "PYTHONPATH"
        }
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no job runner process
        # A new store is made by running every schema migration; a copy of one made
        # before starts at once.
        template = python.parent.parent / "lfs-agent-empty-store.db"
        database = root / "mlflow.db"
        if template.is_file():
            shutil.copyfile(template, database)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        args = [str(python), "-m", "mlflow", "server"]
        args += ["--backend-store-uri", f"sqlite:///{database}"]
        args += ["--artifacts-destination", str(root / "artifacts")]
        args += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        self.proc = subprocess.Popen(
            args,
            cwd=root,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own group: uvicorn's processes end with it
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"mlflow server exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.25)
        else:
            self.stop()
            raise RuntimeError(f"mlflow server did not answer /health:\n{self.log_tail()}")
        if not template.is_file():
            partial = template.with_name(f"{template.name}.{os.getpid()}")
            source, copy = sqlite3.connect(database), sqlite3.connect(partial)
            try:
                source.backup(copy)
            finally:
                source.close()
                copy.close()
            os.replace(partial, template)

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(5)
                break
            except subprocess.TimeoutExpired:
                continue
        self._log.close()


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python -m tests.mlflow_server install")
    print(f"MLflow for the tests: {install()}")
