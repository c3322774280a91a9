"""GCS error translation: each failure the SDK raises becomes one line naming the fix."""

from __future__ import annotations

import google.auth.exceptions
import pytest
import requests
from google.api_core import exceptions as gexc

from lfs_agent.backends.gcs import GCSBackend
from lfs_agent.errors import BackendError, RetriableError, UnreachableError

KEY = "team/objects/ab/cd/abcd"


def refused() -> requests.ConnectionError:
    """What requests raises for a refused connection, with the socket's error inside."""
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as exc:
            raise requests.ConnectionError("HTTPConnectionPool(...): Max retries exceeded") from exc
    except requests.ConnectionError as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "kind", "text"),
    [
        (
            google.auth.exceptions.RefreshError("token expired"),
            BackendError,
            "no valid Google credentials for gs://bkt/team: run 'gcloud auth "
            "application-default login'",
        ),
        (
            gexc.Forbidden("nope"),
            BackendError,
            f"permission denied on gs://bkt/{KEY}: the account needs "
            "storage.objects.get/create on the bucket",
        ),
        (
            gexc.Unauthorized("who"),
            BackendError,
            f"permission denied on gs://bkt/{KEY}: the account needs "
            "storage.objects.get/create on the bucket",
        ),
        (
            gexc.ServiceUnavailable("busy"),
            RetriableError,
            f"GCS failed for gs://bkt/{KEY} after retries: busy",
        ),
        (
            gexc.TooManyRequests("slow down"),
            RetriableError,
            f"GCS failed for gs://bkt/{KEY} after retries: slow down",
        ),
        (gexc.BadRequest("odd"), BackendError, f"GCS error for gs://bkt/{KEY}: odd"),
        (
            gexc.RetryError("Timeout of 30.0s exceeded", refused()),
            UnreachableError,
            "cannot reach GCS for gs://bkt/team: Connection refused (retried for 30s)",
        ),
        (
            gexc.RetryError("Timeout of 30.0s exceeded", requests.ReadTimeout("timed out")),
            RetriableError,
            "cannot reach GCS for gs://bkt/team: timed out (retried for 30s)",
        ),
        (
            gexc.RetryError("Timeout of 30.0s exceeded", gexc.ServiceUnavailable("busy")),
            RetriableError,
            f"GCS failed for gs://bkt/{KEY} after retries: busy",
        ),
        (refused(), UnreachableError, "cannot reach GCS for gs://bkt/team: Connection refused"),
    ],
    ids=[
        "refresh",
        "forbidden",
        "unauthorized",
        "unavailable",
        "too-many",
        "bad-request",
        "retries-ran-out",
        "retries-timed-out",
        "retries-met-503",
        "connection",
    ],
)
def test_errors_become_one_line_naming_the_object_and_fix(error, kind, text):
    translated = GCSBackend("gs://bkt/team", {})._translate(error, KEY)
    assert type(translated) is kind
    assert str(translated) == text


def test_an_error_about_no_object_names_the_bucket():
    translated = GCSBackend("gs://bkt/team", {})._translate(gexc.BadRequest("odd"))
    assert str(translated) == "GCS error for gs://bkt/team: odd"


def test_anything_else_is_raised_as_it_is():
    surprise = ValueError("not a request failure")
    with pytest.raises(ValueError, match="not a request failure"):
        GCSBackend("gs://bkt/team", {})._translate(surprise, KEY)


def test_credentials_in_a_url_an_error_repeats_are_never_shown():
    error = gexc.BadRequest("bad request for http://user:PASSWORD@gcs.example/b/o")
    translated = GCSBackend("gs://bkt/team", {})._translate(error, KEY)
    assert str(translated) == (
        f"GCS error for gs://bkt/{KEY}: bad request for http://***@gcs.example/b/o"
    )
