"""Export tag records to an MLflow tracking server through its REST API.

One run per (tag, commit) in one experiment (``lfs-agent`` by default), found again by
its ``lfs-agent.tag`` and ``mlflow.source.git.commit`` tags. An export is idempotent and
completes what an earlier one left undone: it reads the run, sends only the metrics,
params and tags not there yet (each metric once, at step 0 and the tag's time, so the
history holds one point), uploads the artifact list when it differs, and sets the run
``FINISHED``. A run a killed export left ``RUNNING``, or a failed one left ``FAILED``,
is completed the same way. When a tag moves to another commit (or is recorded again with
a param changed, which MLflow never lets a run change), the export makes a new run and
marks the earlier one ``lfs-agent.superseded-by`` the new one; it stays, as the record's
history stays in the bucket, and is set ``FAILED`` if it was left ``RUNNING``.

The tracking URI may carry a password (``https://user:password@host``), sent as basic
auth, as are ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``; a
``MLFLOW_TRACKING_TOKEN`` is sent as a bearer token. Every message shows the URI
without the password.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests

from lfs_agent.errors import BackendError, ConfigError, LfsAgentError
from lfs_agent.git import Git
from lfs_agent.metrics import TagRecord, check_name, check_param_value
from lfs_agent.redact import redact_text, redact_url

__all__ = ["API", "ARTIFACT_FILE", "Exported", "MlflowExporter", "Tracking", "search_filter"]

API = "/api/2.0/mlflow"
#: The artifact proxy a server runs when it serves artifacts (``mlflow-artifacts:`` URIs).
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
#: Where in a run the artifact list goes.
ARTIFACT_FILE = "lfs-agent/artifacts.json"
#: MLflow's limits on one ``log-batch`` call.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
#: A tag value is cut to this many characters (older servers keep no more).
MAX_TAG_VALUE = 5000
#: Most runs one search answer holds.
MAX_SEARCH_RESULTS = 1000

TAG_KEY = "lfs-agent.tag"
COMMIT_KEY = "mlflow.source.git.commit"
SUPERSEDED_KEY = "lfs-agent.superseded-by"


@dataclass(frozen=True)
class Tracking:
    """Where the tracking server is and how to log in.

    Args:
        uri: Tracking server URL as given, perhaps with ``user:password@``.
        username: Basic auth user, when the URI carries none.
        password: Basic auth password, with ``username``.
        token: Bearer token, used without basic auth.
        user: Who exports: ``mlflow.user`` of a run whose tag names no tagger.
    """

    uri: str
    username: str | None = None
    password: str | None = None
    token: str | None = None
    user: str | None = None

    @classmethod
    def resolve(cls, flag: str | None, env: Mapping[str, str]) -> Tracking:
        """The ``--mlflow`` flag, else MLflow's own environment variables.

        Args:
            flag: The ``--mlflow`` value, or None.
            env: The environment (``MLFLOW_TRACKING_URI``, ``MLFLOW_TRACKING_USERNAME``,
                ``MLFLOW_TRACKING_PASSWORD``, ``MLFLOW_TRACKING_TOKEN``, ``LOGNAME``/``USER``).

        Raises:
            ConfigError: when neither gives a URI.
        """
        uri = flag or env.get("MLFLOW_TRACKING_URI", "")
        if not uri:
            raise ConfigError("metrics export needs --mlflow URI or MLFLOW_TRACKING_URI")
        return cls(
            uri=uri,
            username=env.get("MLFLOW_TRACKING_USERNAME") or None,
            password=env.get("MLFLOW_TRACKING_PASSWORD") or None,
            token=env.get("MLFLOW_TRACKING_TOKEN") or None,
            user=env.get("LOGNAME") or env.get("USER") or env.get("USERNAME") or None,
        )


@dataclass
class Exported:
    """What one export did to one tag's run."""

    run_id: str
    created: bool
    #: What was sent, e.g. ``["3 metrics", "2 params"]``; empty: the run was up to date.
    sent: list[str] = field(default_factory=list)
    #: Earlier runs of the tag (another commit, or params MLflow cannot change) marked
    #: superseded by this one.
    superseded: int = 0

    def summary(self) -> str:
        """One line for people, without the tag."""
        if self.created:
            text = f"created MLflow run {self.run_id}"
        elif self.sent:
            text = f"updated MLflow run {self.run_id}"
        else:
            text = f"MLflow run {self.run_id} is up to date"
        if self.sent:
            text += f" (sent {', '.join(self.sent)})"
        if self.superseded:
            text += f"; marked {self.superseded} earlier run(s) of the tag superseded"
        return text


def search_filter(key: str, value: str) -> tuple[str, bool]:
    """A ``runs/search`` filter for tag ``key`` equal to ``value``.

    MLflow takes a value in single or double quotes and strips them without reading any
    escape, so a value is put in whichever quote it does not hold. A value holding both
    quotes (or a backslash, which the filter parser reads as an escape) cannot be written
    exactly: it becomes a ``LIKE`` pattern with ``_`` for those characters, and the caller
    keeps only the runs whose tag is exactly ``value``.

    Returns:
        The filter, and whether it may match more than ``value``.
    """
    name = f"tags.`{key}`"
    if "\\" not in value:
        if "'" not in value:
            return f"{name} = '{value}'", False
        if '"' not in value:
            return f'{name} = "{value}"', False
    pattern = "".join("_" if c in "'\"\\" else c for c in value)
    return f"{name} LIKE '{pattern}'", True


class MlflowExporter:
    """Creates or completes one MLflow run per tag record.

    Args:
        tracking: The server (a URL, or :class:`Tracking` with credentials).
        experiment: Experiment name; created when missing.
        git: The repository, for the remote URL, branch and commit time; None: unknown.
        bucket_url: The bucket the artifacts are in, named in the artifact list.
        session: A ``requests.Session``; a new one by default.
    """

    def __init__(
        self,
        tracking: Tracking | str,
        experiment: str,
        *,
        git: Git | None = None,
        bucket_url: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        if isinstance(tracking, str):
            tracking = Tracking(uri=tracking)
        uri = tracking.uri
        if not uri.startswith(("http://", "https://")):
            raise ConfigError(f"--mlflow needs an http(s):// tracking URI, got {redact_url(uri)!r}")
        #: The URI as messages show it.
        self.shown_uri = redact_url(uri.rstrip("/"))
        parts = urlsplit(uri.rstrip("/"))
        host = parts.netloc.rpartition("@")[2]
        self.uri = urlunsplit((parts.scheme, host, parts.path, parts.query, ""))
        self.experiment = experiment
        self._session = session or requests.Session()
        if parts.username is not None:
            self._session.auth = (unquote(parts.username), unquote(parts.password or ""))
        elif tracking.username and tracking.password is not None:
            self._session.auth = (tracking.username, tracking.password)
        elif tracking.token:
            self._session.headers["Authorization"] = f"Bearer {tracking.token}"
        self._user = tracking.user
        self._git = git
        self._bucket_url = redact_url(bucket_url) if bucket_url else None
        self._experiment_id: str | None = None
        self._repo_url: str | None = None

    # --- calls ----------------------------------------------------------------------------

    def _request(
        self, method: str, url: str, call: str, ok: Sequence[int] = (200,), **kwargs: Any
    ) -> requests.Response:
        try:
            response = self._session.request(method, url, timeout=30, **kwargs)
        except requests.RequestException as exc:
            raise BackendError(
                f"cannot reach MLflow at {self.shown_uri}: {redact_text(str(exc))}"
            ) from None
        if response.status_code not in ok:
            try:
                body = response.json() if response.content else {}
            except ValueError:
                body = {}
            if not isinstance(body, dict):
                body = {}
            code = body.get("error_code", response.status_code)
            message = redact_text(str(body.get("message", response.text[:200])))
            raise _MlflowError(
                code, f"MLflow at {self.shown_uri}: {call} failed ({code}): {message}"
            )
        return response

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._request(method, f"{self.uri}{API}/{path}", path, **kwargs)
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        return body if isinstance(body, dict) else {}

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

    # --- exporting ------------------------------------------------------------------------

    def export_all(
        self,
        records: Iterable[TagRecord],
        done: Callable[[str], None],
        failed: Callable[[str], None],
    ) -> int:
        """Export every record; one failing tag does not stop the others.

        Args:
            records: The records, in the order to export them.
            done: Told one line per exported tag.
            failed: Told one line per tag that failed, naming it.

        Returns:
            How many tags failed.
        """
        failures = 0
        for record in records:
            try:
                result = self.export(record)
            except LfsAgentError as exc:
                failures += 1
                failed(f"cannot export tag {record.tag!r} to MLflow: {exc}")
            else:
                done(f"{record.tag}: {result.summary()}")
        return failures

    def export(self, record: TagRecord) -> Exported:
        """Create or complete the run of ``record``.

        Raises:
            ConfigError: for a metric or param MLflow would refuse (a record written by
                another tool or an older version).
            BackendError: when MLflow cannot be reached, refuses a call, or answers
                without the fields its API promises; a run left unfinished is set
                ``FAILED`` first, when MLflow still answers.
        """
        try:
            return self._export(record)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise BackendError(
                f"MLflow at {self.shown_uri} sent an answer without the expected fields "
                f"({type(exc).__name__}: {redact_text(str(exc))})"
            ) from None

    def _export(self, record: TagRecord) -> Exported:
        for name in record.metrics:
            check_name("metric", name)
        for name, value in record.params.items():
            check_name("param", name)
            check_param_value(name, value)
        experiment = self.experiment_id()
        runs = self._runs_of(experiment, record.tag)
        current: dict[str, Any] | None = None
        stale: list[dict[str, Any]] = []
        for run in runs:
            tags = _pairs(run, "tags")
            if tags.get(SUPERSEDED_KEY):
                continue
            if (
                current is None
                and tags.get(COMMIT_KEY) == record.commit
                and not _param_conflicts(run, record)
            ):
                current = run
            else:
                stale.append(run)
        when = self._tag_time(record)
        created = current is None
        if current is None:
            current = self._call(
                "POST",
                "runs/create",
                json={
                    "experiment_id": experiment,
                    "start_time": when,
                    "run_name": record.tag,
                    "tags": [
                        {"key": TAG_KEY, "value": record.tag},
                        {"key": COMMIT_KEY, "value": record.commit},
                    ],
                },
            )["run"]
        run_id = str(current["info"]["run_id"])
        try:
            sent = self._complete(current, record, when, created)
        except LfsAgentError:
            # The next export finds the run again and completes it.
            self._set_failed(run_id)
            raise
        for run in stale:
            self._supersede(run, run_id)
        return Exported(run_id=run_id, created=created, sent=sent, superseded=len(stale))

    def _runs_of(self, experiment: str, tag: str) -> list[dict[str, Any]]:
        """Every active run of ``tag``, the latest tag time first."""
        text, loose = search_filter(TAG_KEY, tag)
        runs: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            body: dict[str, Any] = {
                "experiment_ids": [experiment],
                "filter": text,
                "max_results": MAX_SEARCH_RESULTS,
                "order_by": ["attributes.start_time DESC"],
            }
            if token:
                body["page_token"] = token
            answer = self._call("POST", "runs/search", json=body)
            page = answer.get("runs", [])
            runs += page
            token = answer.get("next_page_token")
            if not token or not page:  # an empty page ends a server's endless paging
                break
        if loose:
            runs = [r for r in runs if _pairs(r, "tags").get(TAG_KEY) == tag]
        return runs

    def _complete(
        self, run: dict[str, Any], record: TagRecord, when: int, created: bool
    ) -> list[str]:
        """Send what ``run`` lacks of ``record``; say what was sent."""
        run_id = str(run["info"]["run_id"])
        logged = {m["key"]: m for m in run.get("data", {}).get("metrics", [])}
        metrics = [
            {"key": k, "value": v, "timestamp": when, "step": 0}
            for k, v in sorted(record.metrics.items())
            if not (
                k in logged
                and int(logged[k].get("step", 0)) == 0
                and float(logged[k]["value"]) == float(v)
            )
        ]
        have_params = _pairs(run, "params")
        params = [
            {"key": k, "value": v} for k, v in sorted(record.params.items()) if k not in have_params
        ]
        have_tags = _pairs(run, "tags")
        wanted = self._run_tags(record)
        artifacts_sent = self._send_artifact_list(run, record, wanted)
        tags = [{"key": k, "value": v} for k, v in sorted(wanted.items()) if have_tags.get(k) != v]
        for batch in _batches(metrics, params, tags):
            self._call("POST", "runs/log-batch", json={"run_id": run_id, **batch})
        sent = [
            f"{len(items)} {kind}"
            for kind, items in (("metrics", metrics), ("params", params), ("tags", tags))
            if items
        ]
        if artifacts_sent:
            sent.append("the artifact list")
        status = str(run["info"].get("status", ""))
        if status != "FINISHED" or int(run["info"].get("end_time") or -1) != when:
            self._call(
                "POST",
                "runs/update",
                json={"run_id": run_id, "status": "FINISHED", "end_time": when},
            )
            if not created:
                sent.append("end time" if status == "FINISHED" else f"status (was {status})")
        return sent

    def _run_tags(self, record: TagRecord) -> dict[str, str]:
        """The tags a run of ``record`` carries, so the MLflow UI links its commit."""
        tagger_name = record.tagger.split("<", 1)[0].strip()
        tags = {
            TAG_KEY: record.tag,
            COMMIT_KEY: record.commit,
            "mlflow.runName": record.tag,
            "mlflow.source.type": "PROJECT",
            "lfs-agent.message": record.message,
            "lfs-agent.artifact-count": str(len(record.artifacts)),
        }
        user = tagger_name or self._user
        if user:
            tags["mlflow.user"] = user
        repo = self._remote_url()
        if repo:
            tags["mlflow.source.git.repoURL"] = repo
            tags["mlflow.source.name"] = repo
        branch = self._branch_of(record.commit)
        if branch:
            tags["mlflow.source.git.branch"] = branch
        return {k: v[:MAX_TAG_VALUE] for k, v in tags.items()}

    def _send_artifact_list(
        self, run: dict[str, Any], record: TagRecord, tags: dict[str, str]
    ) -> bool:
        """Upload the artifact list as a run artifact, when it differs from the one there.

        A server that does not serve artifacts (its runs' artifact URIs are not
        ``mlflow-artifacts:``) gets the list in the ``lfs-agent.artifacts`` tag instead,
        cut to a count when too long for a tag.

        Returns:
            Whether the file was uploaded.
        """
        listing = {
            "tag": record.tag,
            "commit": record.commit,
            "bucket": self._bucket_url,
            "artifacts": [a.model_dump() for a in record.artifacts],
        }
        data = (json.dumps(listing, indent=2, sort_keys=True) + "\n").encode()
        root = str(run["info"].get("artifact_uri", ""))
        if not root.startswith("mlflow-artifacts:"):
            inline = json.dumps(listing["artifacts"], sort_keys=True)
            if len(inline) > MAX_TAG_VALUE:
                inline = json.dumps({"count": len(record.artifacts), "truncated": True})
            tags["lfs-agent.artifacts"] = inline
            return False
        path = urlsplit(root).path.strip("/")
        url = f"{self.uri}{ARTIFACTS_API}/{quote(path)}/{ARTIFACT_FILE}"
        there = self._request("GET", url, "artifact download", ok=(200, 404))
        if there.status_code == 200 and there.content == data:
            return False
        self._request(
            "PUT", url, "artifact upload", data=data, headers={"Content-Type": "application/json"}
        )
        return True

    def _set_failed(self, run_id: str) -> None:
        """Mark a run whose export failed; MLflow may be the reason, so never raise."""
        with contextlib.suppress(LfsAgentError):
            self._call("POST", "runs/update", json={"run_id": run_id, "status": "FAILED"})

    def _supersede(self, run: dict[str, Any], run_id: str) -> None:
        """Mark a run of the tag's earlier commit (or params); fail it if left running."""
        old = str(run["info"]["run_id"])
        self._call(
            "POST", "runs/set-tag", json={"run_id": old, "key": SUPERSEDED_KEY, "value": run_id}
        )
        if run["info"].get("status") == "RUNNING":
            self._call("POST", "runs/update", json={"run_id": old, "status": "FAILED"})

    # --- what git knows -------------------------------------------------------------------

    def _tag_time(self, record: TagRecord) -> int:
        """The tag's time (else its commit's) in milliseconds: every metric's timestamp."""
        if record.tagged_at:
            try:
                return int(datetime.fromisoformat(record.tagged_at).timestamp() * 1000)
            except ValueError:
                pass
        if self._git is not None:
            out = self._git.run(
                ["show", "-s", "--format=%ct", f"{record.commit}^{{commit}}"], check=False
            )
            if out.returncode == 0 and out.stdout.strip().isdigit():
                return int(out.stdout.strip()) * 1000
        return 0

    def _remote_url(self) -> str | None:
        if self._git is None:
            return None
        if self._repo_url is None:
            url = self._git.config_get("remote.origin.url")
            if url is None:
                names = self._git.run(["remote"], check=False).stdout.decode().split()
                url = self._git.config_get(f"remote.{names[0]}.url") if len(names) == 1 else None
            self._repo_url = redact_url(url) if url else ""
        return self._repo_url or None

    def _branch_of(self, commit: str) -> str | None:
        """The checked-out branch, when ``commit`` is on it."""
        if self._git is None:
            return None
        head = self._git.run(["symbolic-ref", "-q", "--short", "HEAD"], check=False)
        branch = head.stdout.decode("utf-8", "replace").strip()
        if head.returncode or not branch:
            return None
        on = self._git.run(["merge-base", "--is-ancestor", commit, "HEAD"], check=False)
        return branch if on.returncode == 0 else None


def _pairs(run: dict[str, Any], kind: str) -> dict[str, str]:
    """A run's params or tags as a mapping."""
    return {str(p["key"]): str(p.get("value", "")) for p in run.get("data", {}).get(kind, [])}


def _param_conflicts(run: dict[str, Any], record: TagRecord) -> bool:
    """Whether ``run`` logged a param ``record`` gives another value (MLflow keeps the first)."""
    logged = _pairs(run, "params")
    return any(k in logged and logged[k] != v for k, v in record.params.items())


def _batches(
    metrics: list[dict[str, Any]], params: list[dict[str, Any]], tags: list[dict[str, Any]]
) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """``log-batch`` bodies within MLflow's limits per call."""
    while metrics or params or tags:
        p, params = params[:MAX_PARAMS_PER_BATCH], params[MAX_PARAMS_PER_BATCH:]
        t, tags = tags[:MAX_TAGS_PER_BATCH], tags[MAX_TAGS_PER_BATCH:]
        room = min(MAX_METRICS_PER_BATCH, MAX_ENTITIES_PER_BATCH - len(p) - len(t))
        m, metrics = metrics[:room], metrics[room:]
        yield {"metrics": m, "params": p, "tags": t}


class _MlflowError(BackendError):
    """An error answer from MLflow, with its ``error_code``."""

    def __init__(self, mlflow_code: object, message: str) -> None:
        super().__init__(message)
        self.mlflow_code = mlflow_code
