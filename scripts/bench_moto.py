"""The moto S3 server of the garbage-collection benchmark: fills buckets and counts requests.

``python scripts/bench_moto.py PORT`` serves S3 on 127.0.0.1:PORT with moto's own
application and request handler, as ``python -m moto.server`` does, and reads commands
from stdin, one JSON object a line, answering each with one JSON line on stdout:

- ``{"fill": BUCKET, "keys": [...], "size": N}`` creates the bucket and puts each key,
  with a body of N bytes, straight into moto's in-process store. 100,000 PUTs over HTTP
  take moto about 5 minutes of CPU on 2 cores; the bench does not measure the set-up,
  so it need not wait for them. Answers ``{"filled": COUNT}``.
- ``{"drop": BUCKET}`` forgets the bucket and its keys, to free moto's memory.
  Answers ``{"dropped": BUCKET}``.
- ``{"requests": true}`` answers ``{"requests": [[METHOD, PATH, QUERY, KEYS, FIRST],
  ...]}``: every request served since the last such command, in order, where KEYS is
  the number of keys a DeleteObjects request named and FIRST the first of them (0 and
  "" for any other request).

The server's process is the bench's child, so the bench can tell every request a
measured command made from the server's side, without a proxy in between.
"""

from __future__ import annotations

import datetime
import io
import json
import re
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.s3.models import s3_backends
from werkzeug.serving import make_server

#: The largest DeleteObjects body read to count its keys (1,000 keys take about 150 KB).
MAX_DELETE_BODY = 8 * 1024 * 1024

Start = Callable[..., Any]
App = Callable[[dict[str, Any], Start], Iterable[bytes]]


class Counting:
    """A WSGI middleware that records each request's method, path, query and deleted keys."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.seen: list[list[object]] = []

    def __call__(self, environ: dict[str, Any], start: Start) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "")
        query = environ.get("QUERY_STRING", "")
        keys, first = 0, ""
        if method == "POST" and "delete" in query.split("&"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(min(length, MAX_DELETE_BODY))
            keys = body.count(b"<Key>")
            found = re.search(rb"<Key>([^<]*)</Key>", body)
            first = found[1].decode() if found else ""
            environ["wsgi.input"] = io.BytesIO(body)
        with self.lock:
            self.seen.append([method, environ.get("PATH_INFO", ""), query, keys, first])
        return self.app(environ, start)

    def take(self) -> list[list[object]]:
        with self.lock:
            seen, self.seen = self.seen, []
        return seen


def fill(bucket: str, keys: list[str], size: int) -> int:
    """Create ``bucket`` and put ``keys`` into moto's store directly."""
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(bucket, "us-east-1")
    body = b"\0" * size
    # Objects of a bucket with a history: older than any grace period.
    then = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    then -= datetime.timedelta(days=30)
    for key in keys:
        backend.put_object(bucket, key, body, disable_notification=True).last_modified = then
    return len(keys)


def drop(bucket: str) -> str:
    """Forget ``bucket`` and its keys."""
    s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets.pop(bucket, None)
    s3_backends.bucket_accounts.pop(bucket, None)
    return bucket


def main() -> int:
    port = int(sys.argv[1])
    counting = Counting(DomainDispatcherApplication(create_backend_app))
    server = make_server(
        "127.0.0.1", port, counting, threaded=True, request_handler=MotoRequestHandler
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for line in sys.stdin:
        command = json.loads(line)
        answer: dict[str, object]
        if "fill" in command:
            answer = {"filled": fill(command["fill"], command["keys"], command["size"])}
        elif "drop" in command:
            answer = {"dropped": drop(command["drop"])}
        else:
            answer = {"requests": counting.take()}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
