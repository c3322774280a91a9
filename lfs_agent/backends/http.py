"""A plain HTTP object store: HEAD, GET and PUT of ``<base>/objects/ab/cd/<oid>``.

Works with WebDAV servers (nginx's dav module, Apache mod_dav), Artifactory generic
repositories and simple object gateways. One ``requests`` session per backend keeps
connections alive. Failures worth retrying (connection resets, 408, 429, 5xx) are
retried by urllib3's :class:`~urllib3.util.Retry`, mounted on the session, with
exponential backoff, honouring ``Retry-After``; PUTs too, since an object's PUT is
idempotent (the same oid, the same bytes). Two rounds are ours: a 401 asks git's
credential helpers once, and a download cut off mid-body continues with a ``Range``
request from the bytes already written (a record cut off is asked for again).

Authentication, in order: a header from git config (``lfs-agent.http.header``, e.g.
``Authorization: Bearer ...``; never from a committed file), ``~/.netrc`` (requests
reads it), and on a 401 git's own credential helpers (``git credential fill``, then
``approve`` or ``reject``), as git-lfs does.

The remote is trusted with no more than the object it names. Bodies are asked for and
read as sent (``Accept-Encoding: identity``, never decompressed), a body announced
longer than the object is refused before it is read, and reading stops the moment
more arrives than the pointer's size; records (``meta/``) are capped the same way. A
configured header and the credentials of the remote's URL go only to the remote's own
scheme, host and port: a redirect elsewhere drops them. A PUT never follows a
redirect. The URL's credentials are used for requests and shown masked everywhere.

Options (``lfs-agent.http.<name>``, read by :class:`~lfs_agent.options.Options`):
``header``, ``max-attempts`` (1 to 100, default 5), ``timeout`` (seconds, 1 to 3600,
default 60), ``git-credentials`` (a git boolean: ``true``/``false``, ``yes``/``no``,
``on``/``off``, ``1``/``0``; default true).
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import requests
import requests.adapters
import urllib3.exceptions
import urllib3.response
from urllib3.util import Retry

from lfs_agent.backends import (
    META_MAX_BYTES,
    Capability,
    check_meta_key,
    check_source,
    meta_too_large,
    object_key,
    read_meta,
)
from lfs_agent.backends.filewindow import FileWindow
from lfs_agent.backends.network import causes, connection_error, masked_error, network_reason
from lfs_agent.errors import (
    BackendError,
    IntegrityError,
    LfsAgentError,
    ObjectNotFoundError,
    RetriableError,
)
from lfs_agent.hashing import CHUNK_SIZE, WriteHash
from lfs_agent.options import MAX_ATTEMPTS, MAX_SECONDS, Options
from lfs_agent.pointer import Pointer
from lfs_agent.progress import Progress
from lfs_agent.redact import redact_text, redact_url

__all__ = ["HTTPBackend"]

logger = logging.getLogger(__name__)

#: Statuses worth retrying.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Methods retried: every one we send. A PUT stores the oid's own bytes, so sending it
#: twice stores the same object.
RETRY_METHODS = frozenset({"HEAD", "GET", "PUT"})
#: First backoff delay in seconds; doubled per attempt, capped at MAX_BACKOFF.
BASE_BACKOFF = 0.5
MAX_BACKOFF = 30.0
#: Most bytes of an unwanted body (an error page, a PUT's answer) read so that its
#: connection can be reused; a longer body closes the connection instead.
DRAIN_BYTES = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str | None) -> tuple[str, str, int | None]:
    """Scheme, host and port of ``url``: what a secret is given to."""
    parsed = urlparse(url or "")
    scheme = parsed.scheme.lower()
    try:
        port = parsed.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number: an origin of its own
        port = -1
    return scheme, (parsed.hostname or "").lower(), port


class _Session(requests.Session):
    """A session whose secrets stay with the origin they were configured for.

    requests carries every header of a request across redirects, and strips only
    ``Authorization``, and only when the host changes. Here ``Authorization`` and the
    configured headers (:attr:`secret_headers`) are dropped whenever a redirect leaves
    the scheme, host and port they were sent to, before the next request is sent.
    """

    def __init__(self) -> None:
        super().__init__()
        #: Names of headers that carry secrets (``lfs-agent.http.header``).
        self.secret_headers: set[str] = set()

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        """Where ``resp`` redirects to; its body is then read bounded, as sent.

        requests reads a redirect's whole body, decompressed, before it follows the
        redirect (or, for a request that does not follow it, before it returns): here
        at most :data:`DRAIN_BYTES` of it are read, and the body counts as empty.
        """
        target = super().get_redirect_target(resp)
        if target is not None and not getattr(resp, "_content_consumed", True):
            _release(resp)
            resp._content = b""  # what requests then takes for the body it reads
        return target

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        """Drop secrets from a redirected request bound elsewhere, then as requests does."""
        if _origin(response.request.url) != _origin(prepared_request.url):
            for name in (*self.secret_headers, "Authorization"):
                prepared_request.headers.pop(name, None)
        # types-requests leaves this method unannotated.
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]


def _header_int(response: requests.Response, name: str) -> int | None:
    """A header's value as a whole number, or None when absent or not one."""
    value = response.headers.get(name, "").strip()
    return int(value) if value.isdigit() else None


def _range_total(response: requests.Response) -> int | None:
    """The object's total size from ``Content-Range: bytes a-b/total``, when given."""
    total = response.headers.get("Content-Range", "").rpartition("/")[2].strip()
    return int(total) if total.isdigit() else None


def _release(response: requests.Response) -> None:
    """Close a response whose body is not wanted, reading at most :data:`DRAIN_BYTES`.

    A short rest of a body is read so that its connection goes back to the pool; a
    longer one is not worth reading, and closing drops the connection instead.
    """
    with contextlib.suppress(urllib3.exceptions.HTTPError, OSError):
        response.raw.read(DRAIN_BYTES, decode_content=False)
    response.close()


def _drain_bounded(raw: urllib3.response.BaseHTTPResponse) -> None:
    """Read at most :data:`DRAIN_BYTES` of an answer about to be retried; close a longer one.

    urllib3 reads the whole body of an answer it retries (``drain_conn``), however long
    the server makes it: closing it first leaves nothing for that read.
    """
    total = 0
    with contextlib.suppress(urllib3.exceptions.HTTPError, OSError):
        while total <= DRAIN_BYTES:
            chunk = raw.read(DRAIN_BYTES + 1 - total, decode_content=False)
            if not chunk:
                return
            total += len(chunk)
    raw.close()


def _ended_early(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a body shorter than its ``Content-Length``.

    urllib3 then says "IncompleteRead(3112 bytes read, 19078 more expected)".
    """
    return any(isinstance(e, http.client.IncompleteRead) for e in causes(exc))


def _break_reason(exc: BaseException) -> str:
    """Why a body broke off, in a few words."""
    return "the body ended early" if _ended_early(exc) else network_reason(exc)


def _json_kind(value: object) -> str:
    """What a JSON value is, in a few words: "an object", "a number" ..."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return "null"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait that ``Retry-After`` asks for: a number, or a date.

    None without one, or for one that is neither: the usual backoff applies then.
    """
    value = headers.get("Retry-After")
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


def _backoff_delay(retries: int) -> float:
    """Seconds to wait before the retry numbered ``retries`` (1 for the first)."""
    return float(min(MAX_BACKOFF, BASE_BACKOFF * 2 ** (retries - 1)))


class _Retry(Retry):
    """urllib3's retries, waiting through an injected ``pause`` on our schedule.

    Each wait is taken as the retry is counted (:meth:`increment`), not in urllib3's
    ``sleep``, so that every client of the adapter (a mocked one too) waits alike: for
    ``Retry-After`` when the answer has one (a date long past: not at all), else
    :func:`_backoff_delay`. An answer retried is read no further than
    :data:`DRAIN_BYTES` (:func:`_drain_bounded`).
    """

    #: Waits between attempts: the backend's ``sleep``.
    pause: Callable[[float], None] = time.sleep
    #: The remote's URL as shown, for the debug line of each retry.
    shown_url: str = ""

    def new(self, **kw: Any) -> _Retry:
        """A copy with ``kw`` changed, keeping :attr:`pause` (urllib3 copies per retry)."""
        retry = super().new(**kw)
        retry.pause, retry.shown_url = self.pause, self.shown_url
        return retry

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: urllib3.response.BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> _Retry:
        """Count a retry (raising urllib3's ``MaxRetryError`` past the last), then wait."""
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        delay = None
        if response is not None:
            delay = _retry_after(response.headers)
            _drain_bounded(response)
        if delay is None:
            delay = _backoff_delay(len(retry.history))
        logger.debug(
            "retrying %s in %.1fs (attempt %d)", self.shown_url, delay, len(retry.history) + 1
        )
        retry.pause(delay)
        return retry

    def sleep(self, response: urllib3.response.BaseHTTPResponse | None = None) -> None:
        """Nothing: :meth:`increment` has waited."""


class HTTPBackend:
    """Objects under a base URL.

    Args:
        url: ``http(s)://host/base``; user-info in it is used for basic auth, and is
            masked wherever the URL is shown (:attr:`url`).
        options: ``http.*`` settings (see the module docstring).
        state_dir: Unused.
        session: A ready ``requests.Session`` (tests); a new one otherwise, which drops
            secrets on redirects to another origin (a given one is used as it is, but
            for the retrying adapter mounted on it).
        sleep: Waits between retries; injected by tests.
        credential_helper: Runs ``git credential <action>`` with the given input and
            returns its output; injected by tests.
    """

    #: Transfers are network-bound: every configured worker helps.
    max_workers: int | None = None
    #: Records only: a plain server offers no listing, and a PUT is one request.
    capabilities: frozenset[Capability] = frozenset({Capability.RECORDS})
    #: Most bytes a record may hold (:data:`~lfs_agent.backends.META_MAX_BYTES`).
    meta_max_bytes: int = META_MAX_BYTES

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
        # The URL as given, credentials and all, goes only into requests.
        self._base = url.rstrip("/")
        self.url = redact_url(self._base)
        opts = Options(options, "http")
        self.max_attempts = opts.whole("max-attempts", 5, minimum=1, maximum=MAX_ATTEMPTS)
        self.timeout = opts.seconds("timeout", 60.0, minimum=1, maximum=MAX_SECONDS)
        self.use_git_credentials = opts.flag("git-credentials", True)
        self._sleep = sleep
        self._credential_helper = credential_helper or _git_credential
        self._session = session or _Session()
        # Answers worth retrying are retried below requests, up to max-attempts in all.
        retry = _Retry(
            total=self.max_attempts - 1,
            allowed_methods=RETRY_METHODS,
            status_forcelist=RETRY_STATUSES,
            raise_on_status=False,  # the last answer comes back, for _error to name
            # Retry-After is waited for in _Retry.increment; urllib3's own reading of it
            # would also retry statuses outside RETRY_STATUSES (a 413).
            respect_retry_after_header=False,
        )
        retry.pause, retry.shown_url = sleep, self.url
        adapter = requests.adapters.HTTPAdapter(max_retries=retry)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["User-Agent"] = "lfs-agent"
        # Bodies as stored: nothing decompresses what a remote sends (see read_meta).
        self._session.headers["Accept-Encoding"] = "identity"
        header = opts.text("header")
        if header:
            name, _, value = header.partition(":")
            self._session.headers[name.strip()] = value.strip()
            if isinstance(self._session, _Session):
                self._session.secret_headers.add(name.strip())
        # Credentials from git's helper, asked for once after the first 401.
        self._credentials: dict[str, str] | None = None
        self._auth_lock = threading.Lock()

    def _object_url(self, oid: str) -> str:
        """The object's URL for requests (with the remote URL's credentials)."""
        return f"{self._base}/{object_key(oid)}"

    def _where(self, key: str) -> str:
        """The URL of an object (by oid) or a record (``meta/...``), as shown."""
        return f"{self.url}/{key if key.startswith('meta/') else object_key(key)}"

    # --- requests with retries and auth -----------------------------------------------

    def _request(
        self, method: str, oid: str, url: str | None = None, **kwargs: Any
    ) -> requests.Response:
        """Send a request (retried by the session's adapter); return the final response.

        A 401 asks git's credential helpers once (when allowed) and sends the request
        again with what they answer, then tells them whether it worked. The body is
        never read here (``stream``): the caller reads what it wants of it, bounded,
        and closes the response.

        Raises:
            RetriableError: no answer came, after the adapter's retries
                (:class:`~lfs_agent.errors.UnreachableError`: no connection at all).
        """
        url = url or self._object_url(oid)
        kwargs["stream"] = True
        asked_credentials = False
        while True:
            if self._credentials:
                kwargs["auth"] = (self._credentials["username"], self._credentials["password"])
            body = kwargs.get("data")
            if body is not None and hasattr(body, "seek"):
                body.seek(0)  # a body sent before the 401 is sent again whole
            try:
                response = self._session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise masked_error(connection_error(f"cannot reach {self.url}", exc)) from None
            if response.status_code == 401 and self.use_git_credentials and not asked_credentials:
                asked_credentials = True
                _release(response)
                if self._fill_credentials(url):
                    continue
                return response
            if asked_credentials and self._credentials:
                action = "reject" if response.status_code in (401, 403) else "approve"
                self._credential_call(action, url)
            return response

    def _backoff(self, attempt: int) -> None:
        """Wait before asking again for a body that broke off (``attempt``: 1 first)."""
        delay = _backoff_delay(attempt)
        logger.debug("retrying %s in %.1fs (attempt %d)", self.url, delay, attempt + 1)
        self._sleep(delay)

    def _credential_input(self, url: str) -> str:
        parsed = urlparse(url)
        host = parsed.netloc.rpartition("@")[2]  # git's host field: no user-info
        return f"protocol={parsed.scheme}\nhost={host}\npath={parsed.path.lstrip('/')}\n"

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
        where = self._where(oid)
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

    def _put(self, key: str, url: str, **kwargs: Any) -> LfsAgentError | None:
        """PUT to ``url`` (an object's, or a record's ``key``).

        A redirect is not followed: requests would send the body (and, to the same
        origin, the credentials) on to wherever the server points, unasked.

        Returns:
            None once stored; else the error saying why not, for the caller to raise.
        """
        response = self._request("PUT", key, url=url, allow_redirects=False, **kwargs)
        _release(response)
        status = response.status_code
        if 300 <= status < 400:
            location = response.headers.get("Location", "")
            to = f" to {redact_text(urljoin(self._where(key), location))}" if location else ""
            return BackendError(
                f"{self._where(key)} answered the upload with a redirect ({status}){to}: "
                "the upload was not sent on; point lfs-agent.remote at the final URL"
            )
        return None if status in (200, 201, 204) else self._error(response, key)

    # --- the Backend interface ------------------------------------------------------

    def stat(self, oid: str) -> int | None:
        """HEAD the object: its Content-Length, or None on 404."""
        response = self._request("HEAD", oid, allow_redirects=True)
        try:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise self._error(response, oid)
            length = response.headers.get("Content-Length")
            return int(length) if length is not None else None
        finally:
            _release(response)

    def upload(
        self, oid: str, src_path: Path, size: int, progress: Progress, checked: bool = False
    ) -> None:
        """PUT the file, after checking it hashes to ``oid`` (unless the store ``checked`` it)."""
        check_source(oid, src_path, size, checked)
        headers = {"Content-Type": "application/octet-stream", "X-Checksum-Sha256": oid}
        with FileWindow(src_path, oid, 0, size, progress) as body:
            refused = self._put(oid, self._object_url(oid), data=body, headers=headers)
            if refused is not None:
                body.seek(0)  # nothing was stored: take the progress back
                raise refused

    def _check_length(self, response: requests.Response, oid: str, size: int, start: int) -> None:
        """Refuse a body announced longer than the ``size - start`` bytes still expected.

        Before any of it is read: a server may announce (and send) anything.
        """
        total = _range_total(response) if response.status_code == 206 else None
        if total is not None and total != size:
            raise IntegrityError(
                f"object {oid} from {self.url} is {total} bytes, but its pointer says {size}"
            )
        length = _header_int(response, "Content-Length")
        if length is None or length <= size - start:
            return
        if start:
            raise IntegrityError(
                f"object {oid} from {self.url} sends {length} bytes from byte {start}, "
                f"but its pointer leaves {size - start}"
            )
        raise IntegrityError(
            f"object {oid} from {self.url} is {length} bytes, but its pointer says {size}"
        )

    def download(self, oid: str, dest_path: Path, size: int, progress: Progress) -> Pointer:
        """GET the object into ``dest_path``; a body cut off continues with Range.

        The body is written as sent, never decompressed, and never past ``size``
        bytes: a longer one fails (:class:`IntegrityError`), before it is read when
        its length is announced.

        Returns:
            The sha256 and length of what the file holds, hashed as it was written.
        """
        have = dest_path.stat().st_size if dest_path.exists() else 0
        if have >= size:
            have = 0
        if have:
            progress(have)
        resets = 0
        what = f"object {oid} from {self.url}"
        with (
            open(dest_path, "r+b" if have else "wb") as dst,
            WriteHash(dst, have, limit=size, what=what) as written,
        ):
            while True:  # written.size: the bytes the file holds so far
                start = written.size
                headers = {"Range": f"bytes={start}-"} if start else {}
                response = self._request("GET", oid, headers=headers)
                try:
                    if response.status_code == 404:
                        raise ObjectNotFoundError(f"object {oid} is not on remote {self.url}")
                    if response.status_code == 200 and start:
                        progress(-start)  # the server ignored Range: start over
                        written.restart()
                        start = 0
                    elif response.status_code not in (200, 206):
                        raise self._error(response, oid)
                    self._check_length(response, oid, size, start)
                    for chunk in response.raw.stream(CHUNK_SIZE, decode_content=False):
                        written.write(chunk)
                        progress(len(chunk))
                except urllib3.exceptions.HTTPError as exc:  # the body broke off
                    resets += 1
                    if resets >= self.max_attempts:
                        raise RetriableError(
                            f"download of {oid} from {self.url} kept breaking off: "
                            f"{redact_text(_break_reason(exc))}"
                        ) from None
                    logger.debug("download of %s broke off at byte %d; resuming", oid, written.size)
                    self._backoff(resets)
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

    def _meta_url(self, key: str) -> str:
        return f"{self._base}/{check_meta_key(key)}"

    def put_meta(self, key: str, data: bytes) -> None:
        """PUT a record, then add its key to the index record."""
        refused = self._put(
            key, self._meta_url(key), data=data, headers={"Content-Type": "application/json"}
        )
        if refused is not None:
            raise refused
        if key != self.META_INDEX:
            keys = set(self.list_meta("meta/"))
            if key not in keys:
                keys.add(key)
                self.put_meta(self.META_INDEX, json.dumps(sorted(keys)).encode())

    def get_meta(self, key: str) -> bytes | None:
        """GET a record, or None on 404; one whose body breaks off is asked for again.

        Raises:
            BackendError: the record is larger than :attr:`meta_max_bytes`.
        """
        breaks = 0
        while True:
            response = self._request("GET", key, url=self._meta_url(key))
            try:
                if response.status_code == 404:
                    return None
                if response.status_code != 200:
                    raise self._error(response, key)
                return self._read_record(response, key)
            except urllib3.exceptions.HTTPError as exc:
                breaks += 1
                if breaks >= self.max_attempts:
                    what = f"cannot read {key} from {self.url}"
                    if _ended_early(exc):
                        raise RetriableError(f"{what}: the body ended early") from None
                    raise masked_error(connection_error(what, exc)) from None
                logger.debug("reading %s broke off; asking again", key)
            finally:
                _release(response)
            self._backoff(breaks)

    def _read_record(self, response: requests.Response, key: str) -> bytes:
        """A record's body, read as sent and refused past :attr:`meta_max_bytes`."""
        cap = self.meta_max_bytes
        length = _header_int(response, "Content-Length")
        if length is not None and length > cap:
            raise meta_too_large(key, self.url, cap)
        return read_meta(lambda n: response.raw.read(n, decode_content=False), key, self.url, cap)

    def list_meta(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, from the index record.

        Raises:
            BackendError: the index is not a JSON list of strings.
        """
        raw = self.get_meta(self.META_INDEX)
        if not raw:
            return []
        try:
            keys = json.loads(raw)
        except ValueError as exc:  # not JSON, or not text
            raise self._bad_index(str(exc)) from None
        if not isinstance(keys, list):
            raise self._bad_index(f"found {_json_kind(keys)}")
        for number, key in enumerate(keys):
            if not isinstance(key, str):
                raise self._bad_index(f"item {number} is {_json_kind(key)}")
        return sorted(k for k in keys if k.startswith(prefix))

    def _bad_index(self, reason: str) -> BackendError:
        return BackendError(f"{self.META_INDEX} on {self.url} is not a JSON list of keys: {reason}")

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
