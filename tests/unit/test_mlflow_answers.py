"""MlflowExporter against answers MLflow should not give (`responses`, no server), and
the pure parts: filter quoting, batching, where the URI and credentials come from.

What an export does to a run is tested against a real server in
tests/integration/test_mlflow.py.
"""

from __future__ import annotations

import json

import pytest
import responses

from lfs_agent.errors import BackendError, ConfigError
from lfs_agent.metrics import Artifact, TagRecord, check_name
from lfs_agent.mlflow import (
    API,
    MAX_ENTITIES_PER_BATCH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_PER_BATCH,
    MAX_TAGS_PER_BATCH,
    MlflowExporter,
    Tracking,
    _batches,
    search_filter,
)

URI = "https://bot:S3CRET@mlflow.example.com"
# Credentials go in the Authorization header, never in the URL requested.
BASE = f"https://mlflow.example.com{API}"
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


@pytest.mark.parametrize(
    ("value", "expected", "loose"),
    [
        ("v1.0", "tags.`k` = 'v1.0'", False),
        ("it's", 'tags.`k` = "it\'s"', False),
        ('say"hi"', "tags.`k` = 'say\"hi\"'", False),
        ("v1' OR tags.`k` = 'v2", "tags.`k` = \"v1' OR tags.`k` = 'v2\"", False),
        ("a'\"b", "tags.`k` LIKE 'a__b'", True),
        ("a\\b", "tags.`k` LIKE 'a_b'", True),
        ("a\\", "tags.`k` LIKE 'a_'", True),
    ],
)
def test_filter_values_are_quoted_as_mlflow_reads_them(value: str, expected: str, loose: bool):
    # MLflow strips the outer quotes and reads no escape: a value is put in the quote it
    # does not hold, or matched loosely and checked exactly by the caller.
    assert search_filter("k", value) == (expected, loose)


def test_batches_keep_within_mlflow_limits_and_lose_nothing():
    metrics = [{"key": f"m{i}"} for i in range(2500)]
    params = [{"key": f"p{i}"} for i in range(250)]
    tags = [{"key": f"t{i}"} for i in range(130)]
    batches = list(_batches(metrics, params, tags))
    for b in batches:
        assert len(b["metrics"]) <= MAX_METRICS_PER_BATCH
        assert len(b["params"]) <= MAX_PARAMS_PER_BATCH
        assert len(b["tags"]) <= MAX_TAGS_PER_BATCH
        assert len(b["metrics"]) + len(b["params"]) + len(b["tags"]) <= MAX_ENTITIES_PER_BATCH
    for kind, items in (("metrics", metrics), ("params", params), ("tags", tags)):
        assert [x for b in batches for x in b[kind]] == items
    assert list(_batches([], [], [])) == []


def test_the_flag_wins_over_the_environment():
    env = {
        "MLFLOW_TRACKING_URI": "http://env:5000",
        "MLFLOW_TRACKING_USERNAME": "u",
        "MLFLOW_TRACKING_PASSWORD": "p",
        "MLFLOW_TRACKING_TOKEN": "t",
        "USER": "someone",
    }
    assert Tracking.resolve("http://flag:5000", env).uri == "http://flag:5000"
    resolved = Tracking.resolve(None, env)
    assert resolved == Tracking("http://env:5000", "u", "p", "t", "someone")
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_URI"):
        Tracking.resolve(None, {})


@responses.activate
@pytest.mark.parametrize(
    ("tracking", "header"),
    [
        # The URI's user-info first, then the username and password, then the token.
        (Tracking(URI, "u", "p", "tok"), "Basic Ym90OlMzQ1JFVA=="),
        (Tracking("https://mlflow.example.com", "u", "p", "tok"), "Basic dTpw"),
        (Tracking("https://mlflow.example.com", None, None, "tok"), "Bearer tok"),
        (Tracking("https://mlflow.example.com"), None),
    ],
)
def test_credentials_are_sent_as_mlflow_clients_send_them(tracking: Tracking, header):
    responses.add(
        responses.GET, f"{BASE}/experiments/get-by-name", json={"experiment": {"experiment_id": 7}}
    )
    assert MlflowExporter(tracking, "x").experiment_id() == "7"
    assert responses.calls[0].request.headers.get("Authorization") == header


@pytest.mark.parametrize("name", ["eval.accuracy", "layer1/loss", "top-5 acc:val", "ünï_ç0de"])
def test_names_mlflow_takes_are_taken(name: str):
    check_name("metric", name)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("top@1", "may hold only letters"),
        ("it's", "may hold only letters"),
        ("a" * 251, "longer than 250"),
        ("a//b", "plain relative path"),
        ("/abs", "plain relative path"),
        ("../up", "plain relative path"),
        (".", "plain relative path"),
        ("", "may hold only letters"),
    ],
)
def test_names_mlflow_refuses_are_refused_with_the_fix(name: str, problem: str):
    with pytest.raises(ConfigError) as caught:
        check_name("param", name)
    assert problem in str(caught.value) and str(caught.value).endswith("rename it")
    assert repr(name) in str(caught.value)


@responses.activate
def test_a_server_not_serving_artifacts_gets_the_list_in_a_tag():
    # `mlflow server --no-serve-artifacts`: runs' artifact URIs point at the store itself.
    responses.add(
        responses.GET, f"{BASE}/experiments/get-by-name", json={"experiment": {"experiment_id": 1}}
    )
    responses.add(responses.POST, f"{BASE}/runs/search", json={})
    run = {"info": {"run_id": "r1", "status": "RUNNING", "artifact_uri": "s3://b/1/r1/artifacts"}}
    responses.add(responses.POST, f"{BASE}/runs/create", json={"run": run})
    responses.add(responses.POST, f"{BASE}/runs/log-batch", json={})
    responses.add(responses.POST, f"{BASE}/runs/update", json={})
    record = RECORD.model_copy(
        update={"artifacts": [Artifact(path="model.h5", oid="a" * 64, size=3)]}
    )
    result = exporter().export(record)
    assert result.created and "the artifact list" not in result.sent
    # responses.calls, not the registered response's own calls: those need responses 0.24.
    batches = [c for c in responses.calls if c.request.url.endswith("/runs/log-batch")]
    sent = json.loads(batches[0].request.body)
    tags = {t["key"]: t["value"] for t in sent["tags"]}
    assert json.loads(tags["lfs-agent.artifacts"]) == [
        {"path": "model.h5", "oid": "a" * 64, "size": 3}
    ]
    assert sent["metrics"] == [{"key": "accuracy", "value": 0.9, "timestamp": 0, "step": 0}]
    assert not any("mlflow-artifacts" in c.request.url for c in responses.calls)
