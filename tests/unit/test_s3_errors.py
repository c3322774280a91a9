"""S3 error translation and the checksum fallback, with an injected fake client."""

from __future__ import annotations

import datetime
import types
from pathlib import Path

import botocore.exceptions
import pytest
import urllib3.exceptions

from lfs_agent.backends import Deleted, Entry
from lfs_agent.backends.s3 import S3Backend
from lfs_agent.errors import BackendError, ConfigError, RetriableError, UnreachableError
from tests.contract.backend_contract import Recorder
from tests.helpers import sha256


def client_error(
    code: str, status: int, message: str = "", headers=None
) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}},
        },
        "GetObject",
    )


@pytest.mark.parametrize(
    ("error", "kind", "text"),
    [
        (client_error("NoSuchBucket", 404), BackendError, "bucket 'bkt' does not exist"),
        (client_error("AccessDenied", 403), BackendError, "access denied to s3://bkt/pre/objects/"),
        (client_error("InvalidAccessKeyId", 403), BackendError, "bad or expired AWS credentials"),
        (client_error("ExpiredToken", 400), BackendError, "bad or expired AWS credentials"),
        (
            client_error("PermanentRedirect", 301, headers={"x-amz-bucket-region": "eu-west-1"}),
            BackendError,
            "wrong region for bucket 'bkt': set lfs-agent.s3.region to eu-west-1",
        ),
        (
            client_error("SlowDown", 503, "Please reduce your request rate"),
            RetriableError,
            "S3 failed for s3://bkt/pre/objects/",
        ),
        (client_error("Weird", 400, "odd"), BackendError, "S3 error for s3://bkt/pre/objects/"),
        (botocore.exceptions.NoCredentialsError(), BackendError, "no AWS credentials found"),
        (
            botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
            UnreachableError,
            "cannot reach the S3 endpoint for s3://bkt/pre",
        ),
        (
            botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
            RetriableError,
            "cannot reach the S3 endpoint for s3://bkt/pre",
        ),
    ],
)
def test_errors_become_one_line_naming_the_bucket_and_fix(error, kind, text):
    backend = S3Backend("s3://bkt/pre", {})
    translated = backend._translate(error, sha256(b"x"))
    assert type(translated) is kind
    assert text in str(translated)
    assert "\n" not in str(translated)


RESET = urllib3.exceptions.ProtocolError(
    "Connection broken: ConnectionResetError(104, 'Connection reset by peer')",
    ConnectionResetError(104, "Connection reset by peer"),
)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (botocore.exceptions.ResponseStreamingError(error=RESET), "connection reset by peer"),
        (
            botocore.exceptions.IncompleteReadError(actual_bytes=16696, expected_bytes=54145),
            "the body ended early",
        ),
        (
            botocore.exceptions.ResponseStreamingError(
                error=urllib3.exceptions.ProtocolError(
                    "Connection broken: IncompleteRead(16696 bytes read, 37449 more expected)",
                    urllib3.exceptions.IncompleteRead(16696, 37449),
                )
            ),
            "the body ended early",
        ),
    ],
)
def test_a_body_that_broke_off_is_told_in_words(error, reason):
    backend = S3Backend("s3://bkt/pre", {})
    oid = sha256(b"x")
    translated = backend._translate(error, oid)
    assert type(translated) is RetriableError
    assert str(translated) == (
        f"the connection to S3 broke off while reading "
        f"s3://bkt/pre/objects/{oid[:2]}/{oid[2:4]}/{oid}: {reason}"
    )


class RefusesChecksums:
    """A client for an S3-compatible endpoint without SHA-256 checksum support."""

    def __init__(self) -> None:
        self.puts: list[dict] = []

    def put_object(self, **kwargs):
        if "ChecksumSHA256" in kwargs:
            raise botocore.exceptions.ClientError(
                {
                    "Error": {
                        "Code": "NotImplemented",
                        "Message": "x-amz-checksum-sha256 not supported",
                    },
                    "ResponseMetadata": {"HTTPStatusCode": 501},
                },
                "PutObject",
            )
        body = kwargs["Body"]
        if hasattr(body, "read"):  # a file; small objects are sent as bytes
            body.read()
        self.puts.append(kwargs)
        return {}


def test_an_endpoint_refusing_checksums_falls_back_and_says_so(tmp_path: Path, caplog):
    client = RefusesChecksums()
    backend = S3Backend("s3://bkt/pre", {}, client=client)
    src = tmp_path / "x"
    src.write_bytes(b"data")
    with caplog.at_level("DEBUG", logger="lfs_agent.backends.s3"):
        backend.upload(sha256(b"data"), src, 4, Recorder())
        backend.upload(sha256(b"data"), src, 4, Recorder())
    assert len(client.puts) == 2
    assert backend.uploader.checksums is False
    assert "refused a SHA-256 checksum" in caplog.text


def test_a_profile_that_does_not_exist_is_named(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    backend = S3Backend("s3://bkt/pre", {"s3.profile": "nope"})
    with pytest.raises(ConfigError) as caught:
        backend.stat(sha256(b"x"))
    assert str(caught.value) == (
        "AWS profile not found: The config profile (nope) could not be found"
    )


def test_credentials_in_the_endpoint_url_are_never_shown(monkeypatch):
    from tests.conftest import S3_CREDENTIALS
    from tests.servers import free_port

    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    port = free_port()  # nothing listens: refused
    backend = S3Backend(
        "s3://bkt/pre",
        {"s3.endpoint-url": f"http://user:PASSWORD@127.0.0.1:{port}", "s3.max-attempts": "1"},
    )
    with pytest.raises(UnreachableError) as caught:
        backend.stat(sha256(b"x"))
    assert str(caught.value) == (
        f"cannot reach the S3 endpoint http://***@127.0.0.1:{port} for s3://bkt/pre: "
        "Connection refused"
    )


class RefusesSomeDeletes:
    """A client whose DeleteObjects answers per key: deleted, or refused with a code."""

    meta = types.SimpleNamespace(endpoint_url=None)

    def __init__(self, refusals: dict[str, str]) -> None:
        self.refusals = refusals  # full key -> error code

    def head_object(self, Bucket, Key):
        return {"ContentLength": 2, "ETag": '"e"', "LastModified": MODIFIED}

    def delete_objects(self, Bucket, Delete):
        keys = [o["Key"] for o in Delete["Objects"]]
        return {
            "Deleted": [{"Key": k} for k in keys if k not in self.refusals],
            "Errors": [
                {"Key": k, "Code": self.refusals[k], "Message": "no"}
                for k in keys
                if k in self.refusals
            ],
        }

    def get_bucket_versioning(self, Bucket):
        raise client_error("AccessDenied", 403)


MODIFIED = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def entry(key: str) -> Entry:
    return Entry(key, 2, MODIFIED.timestamp(), '"e"@2026-01-02T03:04:05Z')


def test_deletes_s3_refuses_are_left_for_later_unless_none_was_deleted(caplog):
    client = RefusesSomeDeletes({"pre/meta/b": "SlowDown", "pre/meta/c": "PreconditionFailed"})
    backend = S3Backend("s3://bkt/pre", {}, client=client)
    with caplog.at_level("WARNING", logger="lfs_agent.backends.s3"):
        deleted = backend.delete_entries([entry("meta/a"), entry("meta/b"), entry("meta/c")])
    assert deleted == [Deleted("meta/a", "")]
    assert "did not delete meta/b" in caplog.text
    assert "meta/c" not in caplog.text  # changed since its listing: skipped, not refused

    denied = S3Backend(
        "s3://bkt/pre", {}, client=RefusesSomeDeletes({"pre/meta/a": "AccessDenied"})
    )
    with pytest.raises(BackendError, match=r"refused to delete meta/a .*s3:DeleteObject"):
        denied.delete_entries([entry("meta/a")])


def test_a_denied_collect_request_names_the_permission_it_needs():
    backend = S3Backend("s3://bkt/pre", {}, client=RefusesSomeDeletes({}))
    with pytest.raises(BackendError, match="the credentials need s3:GetBucketVersioning"):
        backend.versioned()
