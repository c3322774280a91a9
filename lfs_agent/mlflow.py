"""Export tag records to an MLflow tracking server through its REST API.

One run per tag in one experiment (``lfs-agent`` by default). A run is found again by
its ``lfs-agent.tag`` tag, so exporting twice updates the same run. Each run carries the
metrics (step 0), the params, ``mlflow.source.git.commit``, ``mlflow.runName`` and the
artifact list as the ``lfs-agent.artifacts`` tag (JSON).

The tracking URI may carry a password (``https://user:password@host``), sent as basic
auth; every message shows the URI without it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from lfs_agent.errors import BackendError, ConfigError
from lfs_agent.metrics import TagRecord
from lfs_agent.redact import redact_text, redact_url

__all__ = ["MlflowExporter"]

API = "/api/2.0/mlflow"
#: MLflow limits a tag value to this many characters.
MAX_TAG_VALUE = 5000


class MlflowExporter:
    """Creates or updates one MLflow run per tag record.

    Args:
        uri: Tracking server URL, e.g. ``http://127.0.0.1:5000``.
        experiment: Experiment name; created when missing.
        session: A ``requests.Session``; a new one by default.
    """

    def __init__(self, uri: str, experiment: str, session: requests.Session | None = None) -> None:
        if not uri.startswith(("http://", "https://")):
            raise ConfigError(f"--mlflow needs an http(s):// tracking URI, got {redact_url(uri)!r}")
        self.uri = uri.rstrip("/")
        #: The URI as messages show it.
        self.shown_uri = redact_url(self.uri)
        self.experiment = experiment
        self._session = session or requests.Session()
        self._experiment_id: str | None = None

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.uri}{API}/{path}"
        try:
            response = self._session.request(method, url, timeout=30, **kwargs)
        except requests.RequestException as exc:
            raise BackendError(
                f"cannot reach MLflow at {self.shown_uri}: {redact_text(str(exc))}"
            ) from None
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if response.status_code != 200:
            code = body.get("error_code", response.status_code)
            message = redact_text(str(body.get("message", response.text[:200])))
            raise _MlflowError(
                code, f"MLflow at {self.shown_uri}: {path} failed ({code}): {message}"
            )
        return body

    def experiment_id(self) -> str:
        """The experiment's id, creating the experiment when needed."""
        if self._experiment_id is None:
            try:
                found = self._call(
                    "GET", "experiments/get-by-name", params={"experiment_name": self.experiment}
                )
                self._experiment_id = str(found["experiment"]["experiment_id"])
            except _MlflowError as exc:
                if exc.mlflow_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                created = self._call("POST", "experiments/create", json={"name": self.experiment})
                self._experiment_id = str(created["experiment_id"])
        return self._experiment_id

    def export(self, record: TagRecord) -> tuple[str, bool]:
        """Create or update the run of ``record``; return ``(run_id, created)``.

        Raises:
            ConfigError: for a tag whose name would change the meaning of the search
                filter that finds its run (a quote or backslash in it).
            BackendError: when MLflow cannot be reached, refuses a call, or answers
                without the fields its API promises.
        """
        try:
            return self._export(record)
        except (KeyError, IndexError, TypeError) as exc:
            raise BackendError(
                f"MLflow at {self.shown_uri} sent an answer without the expected fields "
                f"({type(exc).__name__}: {redact_text(str(exc))})"
            ) from None

    def _export(self, record: TagRecord) -> tuple[str, bool]:
        if "'" in record.tag or "\\" in record.tag:
            # The record may come from a bucket someone else controls: such a name could
            # make the filter find, and overwrite, another tag's run.
            raise ConfigError(f"cannot export tag {record.tag!r} to MLflow: its name holds a quote")
        experiment = self.experiment_id()
        found = self._call(
            "POST",
            "runs/search",
            json={
                "experiment_ids": [experiment],
                "filter": f"tags.`lfs-agent.tag` = '{record.tag}'",
                "max_results": 1,
            },
        ).get("runs", [])
        now = int(time.time() * 1000)
        if found:
            run_id, created = str(found[0]["info"]["run_id"]), False
        else:
            run = self._call(
                "POST",
                "runs/create",
                json={
                    "experiment_id": experiment,
                    "start_time": now,
                    "run_name": record.tag,
                    "tags": [{"key": "lfs-agent.tag", "value": record.tag}],
                },
            )
            run_id, created = str(run["run"]["info"]["run_id"]), True
        artifacts = json.dumps([a.model_dump() for a in record.artifacts], sort_keys=True)
        if len(artifacts) > MAX_TAG_VALUE:
            artifacts = json.dumps({"count": len(record.artifacts), "truncated": True})
        tags = {
            "lfs-agent.tag": record.tag,
            "mlflow.runName": record.tag,
            "mlflow.source.git.commit": record.commit,
            "lfs-agent.artifacts": artifacts,
            "lfs-agent.message": record.message[:MAX_TAG_VALUE],
        }
        self._call(
            "POST",
            "runs/log-batch",
            json={
                "run_id": run_id,
                "metrics": [
                    {"key": k, "value": v, "timestamp": now, "step": 0}
                    for k, v in sorted(record.metrics.items())
                ],
                "params": [{"key": k, "value": v} for k, v in sorted(record.params.items())]
                if created
                else [],
                "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
            },
        )
        self._call(
            "POST", "runs/update", json={"run_id": run_id, "status": "FINISHED", "end_time": now}
        )
        return run_id, created


class _MlflowError(BackendError):
    """An error answer from MLflow, with its ``error_code``."""

    def __init__(self, mlflow_code: object, message: str) -> None:
        super().__init__(message)
        self.mlflow_code = mlflow_code
