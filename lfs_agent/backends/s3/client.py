"""The S3 client: options, session and client creation, and error translation.

Credentials, regions and endpoints come from boto3's own chain (environment, shared
config and profiles, SSO, instance roles; ``AWS_ENDPOINT_URL`` works as it is); the
options only choose among them. Every botocore error a request raises becomes one line
naming the bucket (or object) and the fix, in :func:`translate`.
"""

from __future__ import annotations

import functools
import http.client
import io
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.exceptions
import urllib3.exceptions
from botocore.config import Config

from lfs_agent.backends import bucket_and_prefix, object_key
from lfs_agent.backends.filewindow import SourceEndedError
from lfs_agent.backends.network import causes, connection_error, masked_error
from lfs_agent.backends.s3.limits import S3_LIMITS
from lfs_agent.errors import (
    BackendError,
    ConfigError,
    IntegrityError,
    LfsAgentError,
    RetriableError,
)
from lfs_agent.options import MAX_ATTEMPTS, MIB, Options

__all__ = [
    "BROKEN_OFF",
    "SMALL_OBJECT",
    "TRANSFER_PERMISSIONS",
    "S3Location",
    "S3Settings",
    "break_reason",
    "cut_short",
    "error_code",
    "make_client",
    "translate",
    "worth_retrying",
]

#: Default part size for multipart uploads and ranged downloads (32 MiB).
DEFAULT_PART_SIZE = 32 * MIB
#: Objects larger than this (bytes) go multipart / ranged (64 MiB).
DEFAULT_MULTIPART_THRESHOLD = 64 * MIB
#: Most parallel parts or ranges of one object; each holds a connection.
MAX_CONCURRENCY = 64
#: Objects up to this size are read once into memory, hashed and sent from there: a
#: bytes body also spares the ``Expect: 100-continue`` round trip botocore adds to
#: file bodies.
SMALL_OBJECT = MIB

# Error codes that mean "the credentials are wrong", "no access", "wrong region".
_BAD_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "ExpiredTokenException",
}
_ACCESS_DENIED = {"AccessDenied", "AllAccessDisabled", "403", "Forbidden"}
_WRONG_REGION = {
    "PermanentRedirect",
    "AuthorizationHeaderMalformed",
    "301",
    "IllegalLocationConstraintException",
}
_THROTTLED = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "500",
    "503",
}
#: Errors of a body that broke off while it was read (botocore's, urllib3's, the
#: socket's), or of a request whose connection was lost before its answer came.
BROKEN_OFF = (
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True)
class S3Settings:
    """The ``s3.*`` options, read and bounded once when the backend is opened.

    A bad value fails then, in one line naming the key, even for options only the
    client uses (built at the first request).
    """

    part_size: int
    threshold: int
    concurrency: int
    #: botocore's retries per request (it tries once more than this), and our tries
    #: per downloaded body or range.
    max_attempts: int
    retry_mode: str | None
    addressing_style: str | None
    checksums: bool
    profile: str | None
    region: str | None
    endpoint_url: str | None
    #: Extra arguments of every PUT and CreateMultipartUpload (encryption, class).
    put_args: dict[str, str]

    @classmethod
    def read(cls, options: dict[str, str] | None) -> S3Settings:
        """The settings from ``lfs-agent.*`` options (only their ``s3.*`` keys).

        Raises:
            ConfigError: a value out of its bounds, or not of its kind.
        """
        opts = Options(options, "s3")
        limits = S3_LIMITS
        put_args = {}
        sse = opts.text("sse")
        if sse:
            put_args["ServerSideEncryption"] = sse
            key_id = opts.text("sse-kms-key-id")
            if key_id:
                put_args["SSEKMSKeyId"] = key_id
        storage_class = opts.text("storage-class")
        if storage_class:
            put_args["StorageClass"] = storage_class
        return cls(
            part_size=opts.size(
                "part-size",
                DEFAULT_PART_SIZE,
                minimum=limits.min_part_size,
                maximum=limits.max_part_size,
            ),
            # Below a part's least size a multipart upload is all overhead; above S3's
            # largest PUT a single request cannot carry the object.
            threshold=opts.size(
                "multipart-threshold",
                DEFAULT_MULTIPART_THRESHOLD,
                minimum=limits.min_part_size,
                maximum=limits.max_put_size,
            ),
            concurrency=opts.whole("concurrency", 4, minimum=1, maximum=MAX_CONCURRENCY),
            max_attempts=opts.whole("max-attempts", 5, minimum=1, maximum=MAX_ATTEMPTS),
            retry_mode=opts.choice("retry-mode", "standard", ("standard", "adaptive", "legacy")),
            addressing_style=opts.choice("addressing-style", None, ("path", "virtual", "auto")),
            checksums=opts.choice("checksum", "sha256", ("sha256", "off")) == "sha256",
            profile=opts.text("profile"),
            region=opts.text("region"),
            endpoint_url=opts.text("endpoint-url"),
            put_args=put_args,
        )


@dataclass(frozen=True)
class S3Location:
    """Where a remote's objects are: its URL, bucket and key prefix."""

    url: str
    bucket: str
    prefix: str

    @classmethod
    def of(cls, url: str) -> S3Location:
        """The location of ``s3://bucket/prefix``."""
        bucket, prefix = bucket_and_prefix(url)
        return cls(url, bucket, prefix)

    def key(self, oid: str | None) -> str:
        """The object's key (``<prefix>/objects/ab/cd/<oid>``); the objects' prefix for None."""
        key = object_key(oid) if oid else ""
        return f"{self.prefix}/{key}" if self.prefix else key

    def where(self, oid: str | None = None) -> str:
        """The object's ``s3://`` URL for messages; the remote's for None."""
        return f"s3://{self.bucket}/{self.key(oid)}" if oid else self.url


def _no_continue_for_small_puts(params: dict[str, Any], model: Any, **_: Any) -> None:
    """Send a small PutObject body at once instead of waiting for ``100 Continue``.

    botocore asks every file-like body (bytes become one) to wait for the server's
    go-ahead, a round trip per object; for a body this small resending it after a
    refusal costs less than that wait.
    """
    body = params.get("body")
    if (
        model.name == "PutObject"
        and isinstance(body, io.BytesIO)
        and len(body.getbuffer()) <= SMALL_OBJECT
    ):
        params["headers"].pop("Expect", None)


def _unsigned_when_checksummed(unsigned: Config, request: Any, **_: Any) -> None:
    """Skip the payload hash of a request whose body our SHA-256 checksum covers.

    Over plain HTTP botocore reads and hashes every body to sign it (over HTTPS it skips
    that when a checksum header is present). The signed ``x-amz-checksum-sha256``
    header already binds the body, and S3 refuses a body that does not match it, so
    that second pass over each part buys nothing. Requests without it stay signed.
    """
    if "x-amz-checksum-sha256" in request.headers:
        request.context["client_config"] = unsigned


def make_client(settings: S3Settings) -> Any:
    """A boto3 S3 client for ``settings``; boto3 clients are shared by threads.

    Raises:
        ConfigError: the profile does not exist.
    """
    config_args: dict[str, Any] = {
        "retries": {"mode": settings.retry_mode, "max_attempts": settings.max_attempts},
        "max_pool_connections": max(10, settings.concurrency * 4),
        "connect_timeout": 10,
        "read_timeout": 60,
        # We send our own SHA-256 checksums; botocore's default CRC32s are refused
        # by some S3-compatible endpoints.
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
    }
    style = settings.addressing_style
    s3_args = {"addressing_style": style} if style else {}
    config = Config(**config_args, s3=s3_args)
    try:
        session = boto3.session.Session(profile_name=settings.profile)
        client = session.client(
            "s3", region_name=settings.region, endpoint_url=settings.endpoint_url, config=config
        )
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigError(f"AWS profile not found: {exc}") from None
    client.meta.events.register_last("before-call.s3", _no_continue_for_small_puts)
    unsigned = client.meta.config.merge(Config(s3={**s3_args, "payload_signing_enabled": False}))
    client.meta.events.register(
        "before-sign.s3", functools.partial(_unsigned_when_checksummed, unsigned)
    )
    return client


def error_code(exc: botocore.exceptions.ClientError) -> str:
    """S3's error code of an error answer (``NoSuchKey``, ``404`` ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def cut_short(exc: BaseException) -> IntegrityError | None:
    """The error of a source file that ended before its upload did, or None.

    A :class:`~lfs_agent.backends.filewindow.FileWindow` that ends early raises while
    botocore reads the body, to sign it or to send it; sending wraps the error in
    ``HTTPClientError``.
    """
    if isinstance(exc, botocore.exceptions.HTTPClientError):
        exc = exc.kwargs.get("error") or exc
    return exc if isinstance(exc, SourceEndedError) else None


def break_reason(exc: BaseException) -> str:
    """Why a body broke off, in a few words: never botocore's or urllib3's text."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return f"S3 answered {exc.response.get('Error', {}).get('Code', 'with an error')}"
    errors = list(causes(exc))
    incomplete = botocore.exceptions.IncompleteReadError | http.client.IncompleteRead
    if any(isinstance(e, incomplete) for e in errors):
        return "the body ended early"
    if any(isinstance(e, TimeoutError | urllib3.exceptions.TimeoutError) for e in errors):
        return "timed out"
    for e in errors:
        if isinstance(e, OSError) and e.strerror:
            return e.strerror[:1].lower() + e.strerror[1:]
    return "the connection was lost"


def worth_retrying(exc: botocore.exceptions.ClientError) -> bool:
    """Whether S3's error answer is one that a later attempt may not get (5xx, throttling)."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return error_code(exc) in _THROTTLED or int(status) >= 500


#: The permissions a denied request needs, named in its error unless the caller says.
TRANSFER_PERMISSIONS = "s3:GetObject, s3:PutObject and s3:ListBucket"


def translate(
    exc: Exception,
    location: S3Location,
    oid: str | None = None,
    endpoint: str | None = None,
    needs: str = TRANSFER_PERMISSIONS,
) -> LfsAgentError:
    """Map a botocore exception to one line naming the bucket and the fix.

    Credentials in a URL the line shows (an endpoint's) are masked.

    Args:
        exc: What a request raised.
        location: The remote it was sent to.
        oid: The object it was about, if any.
        endpoint: The client's endpoint URL, named when it cannot be reached.
        needs: The permissions the request needs, named when it is denied.

    Raises:
        Exception: ``exc`` itself when it is not botocore's (nor a file cut short).
    """
    return masked_error(_translate_unmasked(exc, location, oid, endpoint, needs))


def _translate_unmasked(
    exc: Exception, location: S3Location, oid: str | None, endpoint: str | None, needs: str
) -> LfsAgentError:
    where = location.where(oid)
    if cut := cut_short(exc):
        return cut
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return BackendError(
            f"no AWS credentials found for {location.url}: set AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE (or lfs-agent.s3.profile), or run "
            "'aws sso login'"
        )
    if isinstance(
        exc,
        botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.ConnectionClosedError
        | botocore.exceptions.ReadTimeoutError
        | botocore.exceptions.ConnectTimeoutError,
    ):
        named = f" {endpoint}" if endpoint else ""
        return connection_error(f"cannot reach the S3 endpoint{named} for {location.url}", exc)
    if isinstance(exc, BROKEN_OFF):
        return RetriableError(
            f"the connection to S3 broke off while reading {where}: {break_reason(exc)}"
        )
    if isinstance(exc, botocore.exceptions.ClientError):
        return _answer_error(exc, location, where, needs)
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return BackendError(f"S3 error for {location.url}: {exc}")
    raise exc


def _answer_error(
    exc: botocore.exceptions.ClientError, location: S3Location, where: str, needs: str
) -> LfsAgentError:
    """The error of S3's error answer to a request about ``where``."""
    error = exc.response.get("Error", {})
    code = error_code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code == "NoSuchBucket":
        return no_such_bucket(location)
    if code in _BAD_CREDENTIALS:
        return BackendError(
            f"bad or expired AWS credentials for {location.url} ({code}): "
            "refresh them or check AWS_PROFILE"
        )
    if code in _ACCESS_DENIED or status == 403:
        return BackendError(f"access denied to {where}: the credentials need {needs} on it")
    if code in _WRONG_REGION or status == 301:
        region = (
            exc.response.get("ResponseMetadata", {})
            .get("HTTPHeaders", {})
            .get("x-amz-bucket-region", "the bucket's region")
        )
        return BackendError(
            f"wrong region for bucket {location.bucket!r}: set lfs-agent.s3.region to {region}"
        )
    if code in _THROTTLED or (status or 0) >= 500:
        return RetriableError(
            f"S3 failed for {where} after retries ({code}): {error.get('Message', '')}".rstrip(": ")
        )
    return BackendError(f"S3 error for {where} ({code}): {error.get('Message', exc)}")


def no_such_bucket(location: S3Location) -> BackendError:
    """The error of a bucket that does not exist."""
    return BackendError(
        f"bucket {location.bucket!r} does not exist: create it, or fix lfs-agent.remote"
    )
