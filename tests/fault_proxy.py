"""A fault-injecting HTTP proxy on loopback, in front of a test server (moto's S3, the
GCS emulator, the HTTP object server).

Clients talk to :attr:`FaultProxy.url` as they would to the server. Each request is
forwarded upstream over a kept-alive connection, and its answer sent back, unless a
fault is due: a scripted one (:meth:`FaultProxy.script`, for the next requests whose
path holds a string) or, at a seeded ``rate``, a random one. The faults:

* ``reset``: the answer's head and part of its body are sent, then the connection is
  reset (an RST: the client may lose what it had not read yet);
* ``cut``: the same, then the connection is closed cleanly (a body cut short);
* ``stall``: the same, then nothing more is sent for ``stall_seconds``;
* ``status``: the server is not asked; the answer is a 503 (by default ``SlowDown`` as
  S3 sends; ``status_body`` and ``status_type`` give another server's);
* ``lost``: the server is asked, and acts on the request, but the connection is reset
  before any of its answer is sent: what a client uploading meets when the network
  fails after the server stored the bytes.

``reset``, ``cut`` and ``stall`` break a body, so an answer without one (a HEAD's, a
PUT's ``201`` with no content) comes through them whole.

Random faults are drawn from a generator seeded by the seed and the request (method,
path, ``Range`` header, and how often that request was seen before), so which requests
fail does not depend on how threads interleave. Everything stays on 127.0.0.1; the
proxy is bounded in connections, in faults (``max_faults``) and in time (socket
timeouts, ``stall_seconds``), and :meth:`FaultProxy.close` ends it all.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import BinaryIO, Literal
from urllib.parse import urlparse

Kind = Literal["reset", "cut", "stall", "status", "lost"]
CHUNK = 64 * 1024
SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)
# Connection-scoped headers, never forwarded either way.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection"}


@dataclass(frozen=True)
class Fault:
    """What goes wrong with one answer.

    ``after`` is the number of body bytes sent before a ``reset``, ``cut`` or ``stall``;
    None draws it from the seeded generator, somewhere inside the body.
    """

    kind: Kind
    after: int | None = None


@dataclass
class Exchange:
    """One request the proxy was sent, and what became of it."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    fault: Fault | None = None  # with ``after`` resolved
    status: int | None = None  # the answer's status, as sent
    sent: int = 0  # body bytes sent back

    @property
    def range(self) -> str | None:
        return self.headers.get("range")


class _Dropped(Exception):
    """The client's connection was ended by a fault."""


class FaultProxy:
    """A threaded HTTP/1.1 proxy on 127.0.0.1 that breaks a share of its answers.

    Args:
        upstream: ``http://127.0.0.1:<port>`` of the real server.
        rate: Share of requests (0 to 1) given a random fault.
        seed: Seeds the random faults.
        kinds: The random faults to choose from.
        methods: Only requests with these methods get random faults.
        kinds_by_method: For the methods named, the random faults to choose from
            instead of ``kinds``.
        max_faults: Most random faults, in all (None: no bound).
        stall_seconds: How long a ``stall`` holds the connection before closing it.
        status_body: The body of a ``status`` fault's 503.
        status_type: Its ``Content-Type``.
        max_connections: Most client connections served at once; more wait.
        timeout: Seconds any socket may wait for the other side.
    """

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.0,
        seed: int = 0,
        kinds: Iterable[Kind] = ("reset", "cut", "status"),
        methods: Iterable[str] = ("GET",),
        kinds_by_method: Mapping[str, Iterable[Kind]] | None = None,
        max_faults: int | None = None,
        stall_seconds: float = 10.0,
        status_body: bytes = SLOW_DOWN,
        status_type: str = "application/xml",
        max_connections: int = 32,
        timeout: float = 30.0,
    ) -> None:
        parsed = urlparse(upstream)
        if parsed.hostname not in ("127.0.0.1", "localhost") or parsed.port is None:
            raise ValueError(f"the fault proxy only fronts a loopback server, not {upstream}")
        self._upstream = (parsed.hostname, parsed.port)
        self.rate = rate
        self.seed = seed
        self.kinds = tuple(kinds)
        self.methods = frozenset(methods)
        self.kinds_by_method = {m: tuple(k) for m, k in (kinds_by_method or {}).items()}
        self.max_faults = max_faults
        self.stall_seconds = stall_seconds
        self.status_body = status_body
        self.status_type = status_type
        self.timeout = timeout
        self.log: list[Exchange] = []
        self._lock = threading.Lock()
        self._scripted: list[tuple[str, str | None, Fault]] = []
        self._seen: Counter[tuple[str, str, str]] = Counter()
        self._random_faults = 0
        self._closed = threading.Event()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._clients: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        accept = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        accept.start()
        self._threads.append(accept)

    # --- the test's side ----------------------------------------------------------------

    def script(self, match: str, *faults: Fault, range: str | None = None) -> None:
        """Give the next requests whose path contains ``match`` these faults, in order.

        With ``range``, only requests with that ``Range`` header. A ``reset``, ``cut``
        or ``stall`` scripted for an answer without a body (a HEAD's) is used up
        without effect.
        """
        with self._lock:
            self._scripted += [(match, range, fault) for fault in faults]

    def requests(self, match: str = "", method: str = "GET") -> list[Exchange]:
        """The logged requests of ``method`` whose path contains ``match``."""
        with self._lock:
            return [e for e in self.log if e.method == method and match in e.path]

    def faults(self) -> Counter[str]:
        """How many faults of each kind were dealt."""
        with self._lock:
            return Counter(e.fault.kind for e in self.log if e.fault is not None)

    def close(self) -> None:
        """Stop accepting, end every connection, and wait for the threads."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not
        self._listener.close()
        with self._lock:
            clients = list(self._clients)
            threads = list(self._threads)
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(self.timeout)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- serving ------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed.is_set():
            self._slots.acquire()
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                self._slots.release()
                return
            client.settimeout(self.timeout)
            with self._lock:
                self._clients.add(client)
                self._threads = [t for t in self._threads if t.is_alive()]
                thread = threading.Thread(
                    target=self._serve, args=(client,), name="fault-proxy-conn", daemon=True
                )
                self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        upstream = http.client.HTTPConnection(*self._upstream, timeout=self.timeout)
        reader = client.makefile("rb")
        try:
            while not self._closed.is_set() and self._exchange(client, reader, upstream):
                pass
        except (OSError, http.client.HTTPException, _Dropped):
            pass  # the client hung up, or a fault ended the connection
        finally:
            upstream.close()
            with self._lock:
                self._clients.discard(client)
            # The socket closes (with an RST when a reset set no lingering) only once
            # its reader is closed too.
            reader.close()
            client.close()
            self._slots.release()

    def _exchange(
        self, client: socket.socket, reader: BinaryIO, upstream: http.client.HTTPConnection
    ) -> bool:
        """Serve one request; False once the client is done with the connection."""
        line = reader.readline(65537)
        if not line.strip():
            return False
        method, path, _ = line.decode("latin-1").split(" ", 2)
        headers: list[tuple[str, str]] = []
        while (header := reader.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        named = {name.lower(): value for name, value in headers}
        if "chunked" in named.get("transfer-encoding", "").lower():
            raise _Dropped("chunked request bodies are not supported")
        if named.get("expect", "").lower() == "100-continue":
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = reader.read(int(named.get("content-length") or 0))
        exchange = Exchange(method, path, named)
        fault, rng = self._fault_for(exchange)
        with self._lock:
            self.log.append(exchange)
        if fault is not None and fault.kind == "status":
            exchange.fault, exchange.status = fault, 503
            payload = b"" if method == "HEAD" else self.status_body
            client.sendall(
                f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: {self.status_type}\r\n"
                f"Content-Length: {len(self.status_body)}\r\n\r\n".encode("latin-1")
                + payload
            )
            return True
        upstream.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                upstream.putheader(name, value)
        upstream.endheaders(body or None)
        response = upstream.getresponse()
        exchange.status = response.status
        if fault is not None and fault.kind == "lost":
            exchange.fault = Fault("lost", 0)
            upstream.close()  # its answer is never read
            self._end(client, exchange.fault)
        answer = [(n, v) for n, v in response.getheaders() if n.lower() not in HOP_BY_HOP]
        declared = response.getheader("Content-Length")
        bodyless = method == "HEAD" or response.status in (204, 304)
        if declared is None and not bodyless:  # chunked from upstream: error pages only
            content = response.read()
            answer.append(("Content-Length", str(len(content))))
            length = len(content)
        else:
            content = None
            length = 0 if bodyless else int(declared or 0)
        if fault is not None and length > 0:
            after = fault.after if fault.after is not None else rng.randrange(length)
            exchange.fault = Fault(fault.kind, min(after, length))
        head = f"HTTP/1.1 {response.status} {response.reason}\r\n" + "".join(
            f"{n}: {v}\r\n" for n, v in answer
        )
        client.sendall(head.encode("latin-1") + b"\r\n")
        limit = exchange.fault.after if exchange.fault is not None else None
        self._send_body(client, exchange, response, content, length, limit)
        if exchange.fault is not None:
            upstream.close()  # the rest of its body is never read
            self._end(client, exchange.fault)
        return True

    def _send_body(
        self,
        client: socket.socket,
        exchange: Exchange,
        response: http.client.HTTPResponse,
        content: bytes | None,
        length: int,
        limit: int | None,
    ) -> None:
        """Send the answer's body, or its first ``limit`` bytes."""
        stop = length if limit is None else limit
        if content is not None:
            client.sendall(content[:stop])
            exchange.sent = min(stop, len(content))
            return
        while exchange.sent < stop:
            chunk = response.read(min(CHUNK, stop - exchange.sent))
            if not chunk:
                raise _Dropped("the server's body ended early")
            client.sendall(chunk)
            exchange.sent += len(chunk)
        if limit is None:
            response.read()  # nothing left; frees the upstream connection for reuse

    def _end(self, client: socket.socket, fault: Fault) -> None:
        if fault.kind == "stall":
            self._closed.wait(self.stall_seconds)
        if fault.kind in ("reset", "lost"):
            # No lingering: closing the socket then sends an RST, not a FIN.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            client.shutdown(socket.SHUT_RDWR)
        raise _Dropped(fault.kind)

    def _fault_for(self, exchange: Exchange) -> tuple[Fault | None, random.Random]:
        """The fault due for this request (scripted first), and its generator."""
        key = (exchange.method, exchange.path, exchange.range or "")
        with self._lock:
            for i, (match, range_, fault) in enumerate(self._scripted):
                if match in exchange.path and range_ in (None, exchange.range):
                    del self._scripted[i]
                    return fault, random.Random(f"{self.seed}|{key}|scripted")
            self._seen[key] += 1
            rng = random.Random(f"{self.seed}|{key}|{self._seen[key]}")
            kinds = self.kinds_by_method.get(exchange.method, self.kinds)
            if (
                exchange.method not in self.methods
                or not kinds
                or rng.random() >= self.rate
                or (self.max_faults is not None and self._random_faults >= self.max_faults)
            ):
                return None, rng
            self._random_faults += 1
            return Fault(rng.choice(kinds)), rng
