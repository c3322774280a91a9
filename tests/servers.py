"""Loopback server processes for backend tests (moto's S3, the GCS emulator ...)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """Starts a server on 127.0.0.1 and waits until its port accepts connections."""

    def __init__(
        self, args: Sequence[str], port: int, log: Path, env: dict[str, str] | None = None
    ):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            list(args), stdout=self._log, stderr=subprocess.STDOUT, env=env or dict(os.environ)
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{args[0]} exited early: see {log}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{' '.join(args)} did not start listening on {port}: see {log}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def moto_server(log_dir: Path, extra_env: dict[str, str] | None = None) -> ServerProcess:
    port = free_port()
    env = dict(os.environ, **(extra_env or {}))
    return ServerProcess(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        port,
        log_dir / f"moto-{port}.log",
        env,
    )


def gcs_emulator(log_dir: Path) -> ServerProcess:
    port = free_port()
    exe = Path(sys.executable).parent / "gcp-storage-emulator"
    return ServerProcess(
        [str(exe), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"],
        port,
        log_dir / f"gcs-{port}.log",
    )


def http_object_server(root: Path, log_dir: Path, auth: str | None = None) -> ServerProcess:
    port = free_port()
    script = Path(__file__).with_name("http_object_server.py")
    args = [sys.executable, str(script), str(root), str(port), *([auth] if auth else [])]
    return ServerProcess(args, port, log_dir / f"http-{port}.log")
