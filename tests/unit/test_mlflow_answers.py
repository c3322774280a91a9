"""MlflowExporter against answers MLflow should not give (`responses`, no server)."""

from __future__ import annotations

import pytest
import responses

from lfs_agent.errors import BackendError, ConfigError
from lfs_agent.metrics import TagRecord
from lfs_agent.mlflow import API, MlflowExporter

URI = "https://bot:S3CRET@mlflow.example.com"
BASE = f"{URI}{API}"
RECORD = TagRecord(tag="v1", commit="c" * 40, metrics={"accuracy": 0.9})


def exporter() -> MlflowExporter:
    return MlflowExporter(URI, "lfs-agent")


@responses.activate
@pytest.mark.parametrize(
    "body",
    [{}, {"experiment": None}, {"experiment": {"name": "x"}}, [], "text"],
)
def test_an_answer_without_the_expected_fields_is_a_clear_error(body):
    responses.add(responses.GET, f"{BASE}/experiments/get-by-name", json=body)
    with pytest.raises(BackendError) as caught:
        exporter().export(RECORD)
    message = str(caught.value)
    assert message.startswith(
        "MLflow at https://***@mlflow.example.com sent an answer without the expected fields"
    )
    assert "S3CRET" not in message


@responses.activate
def test_an_error_answer_that_is_not_an_object_still_names_the_call():
    responses.add(responses.GET, f"{BASE}/experiments/get-by-name", json=["no"], status=500)
    with pytest.raises(BackendError) as caught:
        exporter().export(RECORD)
    assert str(caught.value).startswith(
        "MLflow at https://***@mlflow.example.com: experiments/get-by-name failed (500)"
    )


@responses.activate
def test_the_password_is_sent_as_basic_auth_and_never_shown():
    responses.add(
        responses.GET,
        f"{BASE}/experiments/get-by-name",
        json={"error_code": "PERMISSION_DENIED", "message": f"bad login for {URI}"},
        status=403,
    )
    with pytest.raises(BackendError) as caught:
        exporter().export(RECORD)
    assert "S3CRET" not in str(caught.value)
    assert "bad login for https://***@mlflow.example.com" in str(caught.value)
    assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")


@pytest.mark.parametrize("tag", ["v1' OR tags.`lfs-agent.tag` = 'v2", "a\\b"])
def test_a_tag_that_would_change_the_run_search_is_refused(tag: str):
    record = RECORD.model_copy(update={"tag": tag})
    with pytest.raises(ConfigError, match="its name holds a quote"):
        exporter().export(record)
