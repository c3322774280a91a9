"""A loopback HTTP server whose answers a test scripts: hostile bodies, redirects.

The object server in ``tests/http_object_server.py`` behaves; this one answers each
``(method, path)`` with whatever the test put there (a gzip bomb, a body longer than
its object, a redirect to another server) and records every request it was sent, with
its headers, so a test can assert what reached it.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: A scripted answer: writes the whole response through the handler.
Answer = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Seen:
    """One request the server was sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedServer:
    """Answers ``(method, path)`` as scripted; 404 for anything else."""

    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def handle(self) -> None:
                # The client may hang up mid-body: what a bounded read does.
                with contextlib.suppress(OSError):
                    super().handle()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.seen.append(
                    Seen(
                        self.command,
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                    )
                )
                answer = server.answers.get((self.command, self.path.split("?", 1)[0]))
                if answer is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _answer

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def requests_for(self, method: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method]


def serve() -> Iterator[ScriptedServer]:
    """A started server, stopped afterwards (for fixtures)."""
    server = ScriptedServer()
    try:
        yield server
    finally:
        server.stop()


def body(
    data: bytes,
    status: int = 200,
    headers: dict[str, str] | None = None,
    chunked: bool = False,
) -> Answer:
    """Send ``data``: with its Content-Length, or chunked (no length announced)."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        elif "Content-Length" not in (headers or {}):
            handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command == "HEAD":
            return
        try:
            if chunked:
                step = 64 * 1024
                for at in range(0, len(data), step):
                    piece = data[at : at + step]
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                handler.wfile.write(b"0\r\n\r\n")
            else:
                handler.wfile.write(data)
        except OSError:
            pass  # the client stopped reading: what a bounded read does

    return answer


def gzip_bomb(expanded: int) -> bytes:
    """A gzip stream of ``expanded`` zero bytes: about a thousandth of that in size."""
    out = io.BytesIO()
    block = bytes(1024 * 1024)
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as compressor:
        left = expanded
        while left > 0:
            compressor.write(block[: min(len(block), left)])
            left -= len(block)
    return out.getvalue()


def redirect(status: int, location: str) -> Answer:
    """Answer with a redirect to ``location``."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer
