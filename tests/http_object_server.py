"""A tiny HTTP object server for tests: HEAD, GET (with Range) and PUT under a folder.

Run as ``python tests/http_object_server.py ROOT PORT [USER:PASSWORD]``. PUT writes a
temp file and renames it, so a killed upload never leaves a partial object. ``GET
/_stats`` returns the number of requests per method and of GETs per path, as JSON.
While ``ROOT/.throttle`` holds a number, each PUT body is read at that many bytes per
second: a slow link, for tests that interrupt a push.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(sys.argv[1])
AUTH = sys.argv[3] if len(sys.argv) > 3 else None
STATS: Counter[str] = Counter()
LOCK = threading.Lock()


def _throttle() -> float | None:
    """Bytes per second PUT bodies are read at, from ``ROOT/.throttle``; None: at once."""
    try:
        return float((ROOT / ".throttle").read_text())
    except (FileNotFoundError, ValueError):
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _count(self, key: str) -> None:
        with LOCK:
            STATS[key] += 1

    def _path(self) -> Path | None:
        rel = self.path.split("?", 1)[0].lstrip("/")
        target = (ROOT / rel).resolve()
        return target if str(target).startswith(str(ROOT.resolve())) else None

    def _authorized(self) -> bool:
        if AUTH is None:
            return True
        expected = "Basic " + base64.b64encode(AUTH.encode()).decode()
        if self.headers.get("Authorization") == expected:
            return True
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="objects"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        self._count("HEAD")
        if not self._authorized():
            return
        path = self._path()
        if path is None or not path.is_file():
            self._empty(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.end_headers()

    def do_GET(self) -> None:
        if self.path == "/_stats":
            body = json.dumps(STATS).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self._count("GET")
        self._count("GET " + self.path)
        if not self._authorized():
            return
        path = self._path()
        if path is None or not path.is_file():
            self._empty(404)
            return
        size = path.stat().st_size
        start = 0
        status = 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            status = 206
        self.send_response(status)
        self.send_header("Content-Length", str(size - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(start)
            while chunk := f.read(1 << 20):
                self.wfile.write(chunk)

    def do_PUT(self) -> None:
        self._count("PUT")
        if not self._authorized():
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            return
        path = self._path()
        if path is None:
            self._empty(403)
            return
        length = int(self.headers["Content-Length"])
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
        rate = _throttle()
        with open(temp, "wb") as f:
            remaining = length
            while remaining:
                if rate:
                    time.sleep(min(remaining, 1 << 16) / rate)
                chunk = self.rfile.read(min(remaining, 1 << 16 if rate else 1 << 20))
                if not chunk:
                    break
                f.write(chunk)
                remaining -= len(chunk)
        if remaining:
            temp.unlink()
            return
        os.replace(temp, path)
        self._empty(201)


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler).serve_forever()
