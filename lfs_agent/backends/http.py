"""A plain HTTP object store: HEAD, GET and PUT of ``<base>/objects/ab/cd/<oid>``.

Works with WebDAV servers (nginx's dav module, Apache mod_dav), Artifactory generic
repositories and simple object gateways. One ``requests`` session per backend keeps
connections alive. Failures worth retrying (connection resets, 429, 5xx) are retried
with exponential backoff, honouring ``Retry-After``; a download cut off mid-body
continues with a ``Range`` request from the bytes already written.

Authentication, in order: a header from git config (``lfs-agent.http.header``, e.g.
``Authorization: Bearer ...``; never from a committed file), ``~/.netrc`` (requests
reads it), and on a 401 git's own credential helpers (``git credential fill``, then
``approve`` or ``reject``), as git-lfs does.

Options (``lfs-agent.http.<name>``): ``header``, ``max-attempts`` (default 5),
``timeout`` (seconds, default 60), ``git-credentials`` (``true``/``false``).
"""

from __future__ import annotations

import email.utils
import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

from lfs_agent.backends import (
    SourceBody,
    check_meta_key,
    check_source,
    connection_error,
    network_reason,
    object_key,
    scoped_options,
)
from lfs_agent.errors import (
    BackendError,
    LfsAgentError,
    ObjectNotFoundError,
    RetriableError,
)
from lfs_agent.pointer import Pointer
from lfs_agent.progress import Progress
from lfs_agent.store import WriteHash

__all__ = ["HTTPBackend"]

logger = logging.getLogger(__name__)

#: Bytes per read/write while streaming (1 MiB).
CHUNK_SIZE = 1024 * 1024
#: Statuses worth retrying.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: First backoff delay in seconds; doubled per attempt, capped at MAX_BACKOFF.
BASE_BACKOFF = 0.5
MAX_BACKOFF = 30.0


def _retry_after(response: requests.Response) -> float | None:
    """Seconds to wait that ``Retry-After`` asks for: a number, or a date.

    None without one, or for one that is neither: the usual backoff applies then.
    """
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HTTPBackend:
    """Objects under a base URL.

    Args:
        url: ``http(s)://host/base``.
        options: ``http.*`` settings (see the module docstring).
        state_dir: Unused.
        session: A ready ``requests.Session`` (tests); a new one otherwise.
        sleep: Waits between retries; injected by tests.
        credential_helper: Runs ``git credential <action>`` with the given input and
            returns its output; injected by tests.
    """

    #: Transfers are network-bound: every configured worker helps.
    max_workers: int | None = None

    def __init__(
        self,
        url: str,
        options: dict[str, str] | None = None,
        state_dir: Path | None = None,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        credential_helper: Callable[[str, str], str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        opts = scoped_options(options, "http")
        self.max_attempts = max(1, int(opts.get("max-attempts", "5")))
        self.timeout = float(opts.get("timeout", "60"))
        self.use_git_credentials = opts.get("git-credentials", "true").lower() != "false"
        self._sleep = sleep
        self._credential_helper = credential_helper or _git_credential
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = "lfs-agent"
        header = opts.get("header")
        if header:
            name, _, value = header.partition(":")
            self._session.headers[name.strip()] = value.strip()
        # Credentials from git's helper, asked for once after the first 401.
        self._credentials: dict[str, str] | None = None
        self._auth_lock = threading.Lock()

    def _object_url(self, oid: str) -> str:
        return f"{self.url}/{object_key(oid)}"

    # --- requests with retries and auth -----------------------------------------------

    def _request(
        self, method: str, oid: str, url: str | None = None, **kwargs: Any
    ) -> requests.Response:
        """Send a request, retrying transient failures; return the final response."""
        url = url or self._object_url(oid)
        asked_credentials = False
        attempt = 0
        while True:
            attempt += 1
            if self._credentials:
                kwargs["auth"] = (self._credentials["username"], self._credentials["password"])
            rewind = kwargs.get("data")
            if rewind is not None and hasattr(rewind, "seek"):
                rewind.seek(0)
            try:
                response = self._session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= self.max_attempts:
                    raise connection_error(f"cannot reach {self.url}", exc) from None
                self._backoff(attempt, None)
                continue
            if response.status_code == 401 and self.use_git_credentials and not asked_credentials:
                asked_credentials = True
                response.close()
                if self._fill_credentials(url):
                    attempt -= 1
                    continue
                return response
            if response.status_code in RETRY_STATUSES and attempt < self.max_attempts:
                delay = _retry_after(response)
                response.close()
                self._backoff(attempt, delay)
                continue
            if asked_credentials and self._credentials:
                action = "reject" if response.status_code in (401, 403) else "approve"
                self._credential_call(action, url)
            return response

    def _backoff(self, attempt: int, retry_after: float | None) -> None:
        delay = (
            retry_after
            if retry_after is not None
            else min(MAX_BACKOFF, BASE_BACKOFF * 2 ** (attempt - 1))
        )
        logger.debug("retrying %s in %.1fs (attempt %d)", self.url, delay, attempt + 1)
        self._sleep(delay)

    def _credential_input(self, url: str) -> str:
        parsed = urlparse(url)
        return f"protocol={parsed.scheme}\nhost={parsed.netloc}\npath={parsed.path.lstrip('/')}\n"

    def _fill_credentials(self, url: str) -> bool:
        with self._auth_lock:
            if self._credentials is None:
                try:
                    out = self._credential_helper("fill", self._credential_input(url))
                except (OSError, subprocess.SubprocessError):
                    return False
                fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
                if not fields.get("username") or "password" not in fields:
                    return False
                self._credentials = fields
            return True

    def _credential_call(self, action: str, url: str) -> None:
        assert self._credentials is not None
        data = self._credential_input(url) + "".join(
            f"{k}={v}\n" for k, v in self._credentials.items() if k in ("username", "password")
        )
        try:
            self._credential_helper(action, data)
        except (OSError, subprocess.SubprocessError):
            logger.debug("git credential %s failed", action)

    def _error(self, response: requests.Response, oid: str) -> LfsAgentError:
        where = f"{self.url}/{oid}" if oid.startswith("meta/") else self._object_url(oid)
        status = response.status_code
        if status == 401:
            return BackendError(
                f"authentication required for {self.url} (401): add it to "
                "~/.netrc, a git credential helper, or lfs-agent.http.header"
            )
        if status == 403:
            return BackendError(f"permission denied for {where} (403)")
        if status in RETRY_STATUSES:
            return RetriableError(
                f"{where} kept failing ({status}) after {self.max_attempts} attempts"
            )
        return BackendError(f"unexpected HTTP {status} from {where}")

    # --- the Backend interface ------------------------------------------------------

    def stat_many(self, oids: Sequence[str]) -> dict[str, int | None]:
        """Nothing: a plain HTTP server offers no listing; each object gets a HEAD."""
        return {}

    def stat(self, oid: str) -> int | None:
        """HEAD the object: its Content-Length, or None on 404."""
        response = self._request("HEAD", oid, allow_redirects=True)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._error(response, oid)
        length = response.headers.get("Content-Length")
        return int(length) if length is not None else None

    def upload(
        self, oid: str, src_path: Path, size: int, progress: Progress, checked: bool = False
    ) -> None:
        """PUT the file, after checking it hashes to ``oid`` (unless the store ``checked`` it)."""
        check_source(oid, src_path, size, checked)
        headers = {"Content-Type": "application/octet-stream", "X-Checksum-Sha256": oid}
        with open(src_path, "rb") as src:
            body = SourceBody(src, oid, src_path, size, progress)
            response = self._request("PUT", oid, data=body, headers=headers)
            if response.status_code not in (200, 201, 204):
                body.seek(0)  # nothing was stored: take the progress back
                raise self._error(response, oid)

    def download(self, oid: str, dest_path: Path, size: int, progress: Progress) -> Pointer:
        """GET the object into ``dest_path``; a body cut off continues with Range.

        Returns:
            The sha256 and length of what the file holds, hashed as it was written.
        """
        have = dest_path.stat().st_size if dest_path.exists() else 0
        if have >= size:
            have = 0
        if have:
            progress(have)
        resets = 0
        with open(dest_path, "r+b" if have else "wb") as dst, WriteHash(dst, have) as written:
            while True:  # written.size: the bytes the file holds so far
                start = written.size
                headers = {"Range": f"bytes={start}-"} if start else {}
                response = self._request("GET", oid, headers=headers, stream=True)
                if response.status_code == 404:
                    raise ObjectNotFoundError(f"object {oid} is not on remote {self.url}")
                if response.status_code == 200 and start:
                    progress(-start)  # the server ignored Range: start over
                    written.restart()
                elif response.status_code not in (200, 206):
                    raise self._error(response, oid)
                try:
                    for chunk in response.iter_content(CHUNK_SIZE):
                        written.write(chunk)
                        progress(len(chunk))
                except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                    resets += 1
                    if resets >= self.max_attempts:
                        raise RetriableError(
                            f"download of {oid} from {self.url} kept breaking off: "
                            f"{network_reason(exc)}"
                        ) from None
                    logger.debug("download of %s broke off at byte %d; resuming", oid, written.size)
                    self._backoff(resets, None)
                    continue
                finally:
                    response.close()
                if written.size >= size:
                    return written.pointer()
                resets += 1
                if resets >= self.max_attempts:
                    raise RetriableError(
                        f"download of {oid} from {self.url} ended early at byte "
                        f"{written.size} of {size}"
                    )

    # Records: plain HTTP has no listing, so ``meta/index.json`` lists the keys.
    META_INDEX = "meta/index.json"

    def _meta_request(self, method: str, key: str, **kwargs: Any) -> requests.Response:
        check_meta_key(key)
        return self._request(method, "", url=f"{self.url}/{key}", **kwargs)

    def put_meta(self, key: str, data: bytes) -> None:
        """PUT a record, then add its key to the index record."""
        response = self._meta_request(
            "PUT", key, data=data, headers={"Content-Type": "application/json"}
        )
        if response.status_code not in (200, 201, 204):
            raise self._error(response, key)
        if key != self.META_INDEX:
            keys = set(self.list_meta("meta/"))
            if key not in keys:
                keys.add(key)
                self.put_meta(self.META_INDEX, json.dumps(sorted(keys)).encode())

    def get_meta(self, key: str) -> bytes | None:
        """GET a record, or None on 404."""
        response = self._meta_request("GET", key)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._error(response, key)
        return response.content

    def list_meta(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, from the index record."""
        raw = self.get_meta(self.META_INDEX)
        keys = json.loads(raw) if raw else []
        return sorted(k for k in keys if isinstance(k, str) and k.startswith(prefix))

    def close(self) -> None:
        """Close the session's connections."""
        self._session.close()


def _git_credential(action: str, data: str) -> str:
    """Run ``git credential <action>`` (fill, approve, reject) and return its output."""
    proc = subprocess.run(
        ["git", "credential", action],
        input=data,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.stdout if proc.returncode == 0 else ""
