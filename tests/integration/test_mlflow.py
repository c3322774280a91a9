"""`lfs-agent metrics export` against a real MLflow tracking server.

One ``mlflow server`` (SQLite store, artifacts served) for the module, from MLflow's own
venv (tests/mlflow_server.py); each test exports into an experiment of its own. Faults
come from the fault proxy in front of the server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import agent, git
from tests.fault_proxy import Fault, FaultProxy
from tests.helpers import sha256
from tests.mlflow_server import MlflowServer
from tests.servers import free_port

# The first test may make MLflow's venv (a pip install) before the server starts.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

PASSWORD = "S3CRETPASS"
ORIGIN = f"https://bot:{PASSWORD}@git.example.com/team/models.git"


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    yield server
    server.stop()


@pytest.fixture
def experiment(request: pytest.FixtureRequest) -> str:
    return request.node.name


@pytest.fixture
def repo(tmp_path: Path, no_git_lfs_path) -> Path:
    """A repository with a bucket, one LFS file, a remote with credentials, tag v1.0."""
    work = tmp_path / "work"
    git("init", "-q", str(work), cwd=tmp_path)
    assert agent("install", "--remote", str(tmp_path / "bucket"), cwd=work).returncode == 0
    assert agent("track", "*.h5", cwd=work).returncode == 0
    (work / "model.h5").write_bytes(b"weights v1\n" * 100)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "v1", cwd=work)
    git("remote", "add", "origin", ORIGIN, cwd=work)
    tag(work, "v1.0", "--metric", "accuracy=0.81", "--metric", "epochs=10", "--param", "lr=0.01")
    return work


def tag(work: Path, name: str, *args: str) -> None:
    out = agent("tag", name, *args, cwd=work)
    assert out.returncode == 0, out.stderr.decode()


def export(
    work: Path, uri: str | None, experiment: str, *tags: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    flag = ["--mlflow", uri] if uri else []
    out = agent("metrics", "export", *flag, "--experiment", experiment, *tags, cwd=work, env=env)
    stdout, stderr = out.stdout.decode(), out.stderr.decode()
    assert PASSWORD not in stdout + stderr
    assert "internal error" not in stderr
    return out.returncode, stdout, stderr


def api(server: MlflowServer, path: str, **body: Any) -> dict[str, Any]:
    url = f"{server.url}/api/2.0/mlflow/{path}"
    answer = requests.post(url, json=body, timeout=30) if body else requests.get(url, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def runs(server: MlflowServer, experiment: str) -> list[dict[str, Any]]:
    """Every run of the experiment, with params and tags as mappings, oldest first."""
    url = f"{server.url}/api/2.0/mlflow/experiments/get-by-name"
    got = requests.get(url, params={"experiment_name": experiment}, timeout=30).json()
    found = api(
        server,
        "runs/search",
        experiment_ids=[got["experiment"]["experiment_id"]],
        run_view_type="ALL",
        max_results=1000,
        order_by=["attributes.start_time ASC"],
    ).get("runs", [])
    for run in found:
        data = run.setdefault("data", {})
        for kind in ("params", "tags"):
            data[kind] = {p["key"]: p["value"] for p in data.get(kind, [])}
        data["metrics"] = {m["key"]: m["value"] for m in data.get("metrics", [])}
    return found


def by_tag(server: MlflowServer, experiment: str) -> dict[str, dict[str, Any]]:
    found = runs(server, experiment)
    named = {r["data"]["tags"]["lfs-agent.tag"]: r for r in found}
    assert len(named) == len(found), "one run per tag"
    return named


def history(server: MlflowServer, run_id: str, key: str) -> list[dict[str, Any]]:
    url = f"{server.url}/api/2.0/mlflow/metrics/get-history"
    answer = requests.get(url, params={"run_id": run_id, "metric_key": key}, timeout=30)
    return answer.json()["metrics"]


def tag_time_ms(work: Path, name: str) -> int:
    out = git("for-each-ref", "--format=%(taggerdate:unix)", f"refs/tags/{name}", cwd=work)
    return int(out.stdout) * 1000


def commit_of(work: Path, name: str) -> str:
    return git("rev-parse", f"{name}^{{commit}}", cwd=work).stdout.decode().strip()


def test_an_export_makes_a_complete_run_and_the_next_sends_nothing(
    mlflow: MlflowServer, repo: Path, experiment: str
):
    code, out, err = export(repo, mlflow.url, experiment)
    assert code == 0, err
    assert out.startswith("v1.0: created MLflow run ")
    run = by_tag(mlflow, experiment)["v1.0"]
    info, data = run["info"], run["data"]
    when = tag_time_ms(repo, "v1.0")
    assert info["status"] == "FINISHED"
    assert info["start_time"] == when == info["end_time"]
    assert data["metrics"] == {"accuracy": 0.81, "epochs": 10}
    assert data["params"] == {"lr": "0.01"}
    tags = data["tags"]
    assert tags["mlflow.runName"] == "v1.0"
    assert tags["mlflow.source.git.commit"] == commit_of(repo, "v1.0")
    assert tags["mlflow.source.git.branch"] == "main"
    assert tags["mlflow.source.git.repoURL"] == "https://***@git.example.com/team/models.git"
    assert tags["mlflow.source.type"] == "PROJECT"
    assert tags["mlflow.user"] == "Test Committer"
    assert PASSWORD not in json.dumps(run)
    for key in ("accuracy", "epochs"):
        assert [(p["timestamp"], p["step"]) for p in history(mlflow, info["run_id"], key)] == [
            (when, 0)
        ]
    # The artifact list is a run artifact, served by MLflow's artifact proxy.
    listing = requests.get(
        f"{mlflow.url}/api/2.0/mlflow-artifacts/artifacts/"
        f"{info['artifact_uri'].removeprefix('mlflow-artifacts:/')}/lfs-agent/artifacts.json",
        timeout=30,
    ).json()
    weights = b"weights v1\n" * 100
    assert listing["artifacts"] == [
        {"path": "model.h5", "oid": sha256(weights), "size": len(weights)}
    ]
    assert listing["commit"] == commit_of(repo, "v1.0")
    assert listing["bucket"].startswith("file://") and listing["bucket"].endswith("/bucket")

    code, out, err = export(repo, mlflow.url, experiment)
    assert code == 0, err
    assert out == f"v1.0: MLflow run {info['run_id']} is up to date\n"
    assert len(runs(mlflow, experiment)) == 1
    assert len(history(mlflow, info["run_id"], "accuracy")) == 1


def test_a_failed_export_fails_loudly_and_the_next_completes_it(
    mlflow: MlflowServer, repo: Path, experiment: str
):
    git("commit", "-q", "--allow-empty", "-m", "v2", cwd=repo)
    tag(repo, "v2.0", "--metric", "accuracy=0.9", "--param", "lr=0.02", "--param", "images=9")
    with FaultProxy(mlflow.url) as proxy:
        # v1.0's first batch is refused: its params must not be lost for good, and v2.0
        # is exported all the same.
        proxy.script("runs/log-batch", Fault("status"))
        code, out, err = export(repo, proxy.url, experiment)
        assert code == 2
        assert "cannot export tag 'v1.0' to MLflow" in err
        assert "runs/log-batch failed (503)" in err
        assert "v2.0: created MLflow run" in out
        v1 = by_tag(mlflow, experiment)["v1.0"]
        assert v1["info"]["status"] == "FAILED"
        assert v1["data"]["params"] == {}

        code, out, err = export(repo, proxy.url, experiment)
        assert code == 0, err
        run_id = v1["info"]["run_id"]
        assert f"v1.0: updated MLflow run {run_id} (sent 2 metrics, 1 params, " in out
        assert "status (was FAILED)" in out
        assert (
            f"v2.0: MLflow run {by_tag(mlflow, experiment)['v2.0']['info']['run_id']} is up to date"
            in out
        )
        v1 = by_tag(mlflow, experiment)["v1.0"]
        assert v1["info"]["status"] == "FINISHED"
        assert v1["data"]["params"] == {"lr": "0.01"}
        assert v1["data"]["metrics"] == {"accuracy": 0.81, "epochs": 10}

        # The server acts on a batch whose answer is lost: the next export finds it all
        # there and logs no second point.
        git("commit", "-q", "--allow-empty", "-m", "v3", cwd=repo)
        tag(repo, "v3.0", "--metric", "accuracy=0.95")
        proxy.script("runs/log-batch", Fault("lost"))
        code, _, err = export(repo, proxy.url, experiment, "v3.0")
        assert code == 2 and "cannot export tag 'v3.0'" in err
        code, out, err = export(repo, proxy.url, experiment, "v3.0")
        assert code == 0, err
        v3 = by_tag(mlflow, experiment)["v3.0"]
        assert v3["info"]["status"] == "FINISHED"
        assert len(history(mlflow, v3["info"]["run_id"], "accuracy")) == 1
        assert "metrics" not in out


def test_a_moved_tag_gets_a_new_run_and_its_old_run_is_marked(
    mlflow: MlflowServer, repo: Path, experiment: str
):
    assert export(repo, mlflow.url, experiment)[0] == 0
    old_commit = commit_of(repo, "v1.0")
    git("commit", "-q", "--allow-empty", "-m", "retrained", cwd=repo)
    tag(repo, "v1.0", "--force", "--metric", "accuracy=0.88", "--param", "lr=0.05")
    code, out, err = export(repo, mlflow.url, experiment)
    assert code == 0, err
    assert "v1.0: created MLflow run" in out
    assert "marked 1 earlier run(s) of the tag superseded" in out
    # Both runs start at their tag's time, which may be the same second: tell them apart
    # by which one was superseded, not by order.
    both = runs(mlflow, experiment)
    assert len(both) == 2
    old, new = sorted(both, key=lambda r: "lfs-agent.superseded-by" not in r["data"]["tags"])
    assert old["data"]["tags"]["mlflow.source.git.commit"] == old_commit
    assert old["data"]["tags"]["lfs-agent.superseded-by"] == new["info"]["run_id"]
    assert old["data"]["metrics"] == {"accuracy": 0.81, "epochs": 10}
    assert old["data"]["params"] == {"lr": "0.01"}
    assert new["data"]["tags"]["mlflow.source.git.commit"] == commit_of(repo, "v1.0")
    assert new["data"]["metrics"] == {"accuracy": 0.88}
    assert new["data"]["params"] == {"lr": "0.05"}
    assert "lfs-agent.superseded-by" not in new["data"]["tags"]
    code, out, _ = export(repo, mlflow.url, experiment)
    assert code == 0 and out.endswith("is up to date\n")
    assert len(runs(mlflow, experiment)) == 2


def test_tag_names_with_quotes_find_their_own_run(
    mlflow: MlflowServer, repo: Path, experiment: str
):
    # Valid git tag names the filter must quote; "q'\"a" and "q__a" meet in one LIKE.
    names = ["it's", 'say"hi"', "q'\"a", "q__a"]
    for i, name in enumerate(names):
        tag(repo, name, "--metric", f"rank={i}")
    code, out, err = export(repo, mlflow.url, experiment, *names)
    assert code == 0, err
    assert out.count("created MLflow run") == 4
    code, out, err = export(repo, mlflow.url, experiment, *names)
    assert code == 0, err
    assert out.count("is up to date") == 4
    found = by_tag(mlflow, experiment)
    assert set(found) == set(names)
    for i, name in enumerate(names):
        assert found[name]["data"]["metrics"] == {"rank": i}
        assert found[name]["data"]["tags"]["mlflow.runName"] == name


def test_a_run_left_running_is_completed_and_one_of_an_old_commit_failed(
    mlflow: MlflowServer, repo: Path, experiment: str
):
    # What a killed export leaves: a run made, nothing logged, never finished.
    exp = api(mlflow, "experiments/create", name=experiment)["experiment_id"]

    def orphan(commit: str) -> str:
        made = api(
            mlflow,
            "runs/create",
            experiment_id=exp,
            run_name="v1.0",
            start_time=1,
            tags=[
                {"key": "lfs-agent.tag", "value": "v1.0"},
                {"key": "mlflow.source.git.commit", "value": commit},
            ],
        )
        return made["run"]["info"]["run_id"]

    stale, left = orphan("0" * 40), orphan(commit_of(repo, "v1.0"))
    code, out, err = export(repo, mlflow.url, experiment)
    assert code == 0, err
    assert f"v1.0: updated MLflow run {left} (sent 2 metrics, 1 params" in out
    found = {r["info"]["run_id"]: r for r in runs(mlflow, experiment)}
    assert set(found) == {stale, left}
    assert found[left]["info"]["status"] == "FINISHED"
    assert found[left]["data"]["metrics"] == {"accuracy": 0.81, "epochs": 10}
    assert found[stale]["info"]["status"] == "FAILED"
    assert found[stale]["data"]["tags"]["lfs-agent.superseded-by"] == left


def test_large_records_are_sent_in_batches_mlflow_accepts(
    mlflow: MlflowServer, repo: Path, experiment: str, tmp_path: Path
):
    metrics = {f"layer{i}/loss": i / 7 for i in range(1500)}
    (tmp_path / "many.json").write_text(json.dumps(metrics))
    params = [f"--param=p{i}={'x' * 100}" for i in range(150)]
    tag(repo, "big", "--metrics", str(tmp_path / "many.json"), *params)
    with FaultProxy(mlflow.url) as proxy:
        code, _, err = export(repo, proxy.url, experiment, "big")
        assert code == 0, err
        assert len(proxy.requests("runs/log-batch", method="POST")) == 2
    run = by_tag(mlflow, experiment)["big"]
    assert run["data"]["metrics"] == pytest.approx(metrics)
    assert len(run["data"]["params"]) == 150


def test_names_mlflow_refuses_are_refused_by_tag_and_named_by_export(
    mlflow: MlflowServer, repo: Path, experiment: str, tmp_path: Path
):
    cases = {
        ("--metric", "top@1=0.5"): "metric name 'top@1' may hold only letters",
        ("--param", "a/../b=1"): "param name 'a/../b' must be a plain relative path",
        ("--param", f"notes={'x' * 6001}"): "param 'notes' is 6001 characters long",
    }
    for args, expected in cases.items():
        out = agent("tag", "v9", *args, cwd=repo)
        err = out.stderr.decode().strip()
        assert out.returncode == 2 and expected in err and len(err.splitlines()) == 1, err
        assert "MLflow" in err
        assert git("tag", "-l", "v9", cwd=repo).stdout == b""
    # A record another tool wrote to the bucket: that tag fails, the others go on.
    record = json.loads((tmp_path / "bucket/meta/tags/v1.0.json").read_text())
    record.update(tag="odd", metrics={"bad'name": 1})
    (tmp_path / "bucket/meta/tags/odd.json").write_text(json.dumps(record))
    code, out, err = export(repo, mlflow.url, experiment)
    assert code == 2
    assert "cannot export tag 'odd' to MLflow: metric name \"bad'name\"" in err
    assert "v1.0: created MLflow run" in out


def test_mlflow_environment_variables_are_honoured(
    mlflow: MlflowServer, repo: Path, experiment: str
):
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    with FaultProxy(mlflow.url) as proxy:
        host = proxy.url.removeprefix("http://")
        cases = [
            ({"MLFLOW_TRACKING_URI": proxy.url, "MLFLOW_TRACKING_TOKEN": "tok"}, "Bearer tok"),
            (
                {
                    "MLFLOW_TRACKING_URI": proxy.url,
                    "MLFLOW_TRACKING_USERNAME": "bot",
                    "MLFLOW_TRACKING_PASSWORD": PASSWORD,
                },
                "Basic Ym90OlMzQ1JFVFBBU1M=",
            ),
            # The URI's password wins, and is never shown.
            (
                {
                    "MLFLOW_TRACKING_URI": f"http://bot:{PASSWORD}@{host}",
                    "MLFLOW_TRACKING_TOKEN": "tok",
                },
                "Basic Ym90OlMzQ1JFVFBBU1M=",
            ),
        ]
        for env, header in cases:
            seen = len(proxy.log)
            code, _, err = export(repo, None, experiment, env={**base, **env})
            assert code == 0, err
            assert {e.headers.get("authorization") for e in proxy.log[seen:]} == {header}
        # The flag wins over the environment.
        dead = f"http://127.0.0.1:{free_port()}"
        code, out, err = export(
            repo, proxy.url, experiment, env={**base, "MLFLOW_TRACKING_URI": dead}
        )
        assert code == 0 and "is up to date" in out, err
    code, _, err = export(repo, None, experiment, env=base)
    assert code == 2 and "needs --mlflow URI or MLFLOW_TRACKING_URI" in err
    code, _, err = export(repo, f"http://bot:{PASSWORD}@127.0.0.1:{free_port()}", experiment)
    assert code == 2
    assert "cannot export tag 'v1.0' to MLflow: cannot reach MLflow at http://***@127.0.0.1:" in err
