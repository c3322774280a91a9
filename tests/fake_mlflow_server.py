"""A stand-in for an MLflow tracking server, for error paths a real one cannot be made
to take (an answer from a path that is not MLflow's, a server that goes away).

``python tests/fake_mlflow_server.py PORT``. Keeps experiments and runs in memory;
``GET /_state`` returns them as JSON. Behaves like MLflow where lfs-agent depends on it:
``RESOURCE_DOES_NOT_EXIST`` for an unknown experiment name, ``runs/search`` with a
``tags.`k` = 'v'`` filter answering whole runs, params that cannot be changed once
logged, and runs whose artifact URI is not served (so the artifact list goes in a tag).
The behaviour itself is tested against a real MLflow server (tests/mlflow_server.py).
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

STATE: dict = {"experiments": {}, "runs": {}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/_state":
            self._send(200, STATE)
        elif url.path == "/api/2.0/mlflow/experiments/get-by-name":
            name = parse_qs(url.query)["experiment_name"][0]
            for exp_id, exp in STATE["experiments"].items():
                if exp["name"] == name:
                    self._send(200, {"experiment": {"experiment_id": exp_id, "name": name}})
                    return
            self._send(
                404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such experiment"}
            )
        else:
            self._send(404, {"error_code": "ENDPOINT_NOT_FOUND"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        path = urlparse(self.path).path.removeprefix("/api/2.0/mlflow/")
        if path == "experiments/create":
            exp_id = str(len(STATE["experiments"]) + 1)
            STATE["experiments"][exp_id] = {"name": body["name"]}
            self._send(200, {"experiment_id": exp_id})
        elif path == "runs/create":
            run_id = uuid.uuid4().hex
            STATE["runs"][run_id] = {
                "experiment_id": body["experiment_id"],
                "metrics": {},
                "params": {},
                "tags": {t["key"]: t["value"] for t in body.get("tags", [])},
                "status": "RUNNING",
                "run_name": body.get("run_name"),
            }
            self._send(200, {"run": _run(run_id)})
        elif path == "runs/search":
            match = re.fullmatch(r"tags\.`([^`]+)` = '([^']*)'", body.get("filter", ""))
            runs = [
                _run(rid)
                for rid, run in STATE["runs"].items()
                if run["experiment_id"] in body["experiment_ids"]
                and (not match or run["tags"].get(match[1]) == match[2])
            ]
            self._send(200, {"runs": runs[: body.get("max_results", 1000)]})
        elif path == "runs/log-batch":
            run = STATE["runs"][body["run_id"]]
            for p in body.get("params", []):
                if p["key"] in run["params"] and run["params"][p["key"]] != p["value"]:
                    self._send(
                        400,
                        {
                            "error_code": "INVALID_PARAMETER_VALUE",
                            "message": f"param {p['key']} cannot be changed",
                        },
                    )
                    return
                run["params"][p["key"]] = p["value"]
            for m in body.get("metrics", []):
                run["metrics"][m["key"]] = m["value"]
            for t in body.get("tags", []):
                run["tags"][t["key"]] = t["value"]
            self._send(200, {})
        elif path == "runs/update":
            STATE["runs"][body["run_id"]]["status"] = body["status"]
            self._send(200, {})
        elif path == "runs/set-tag":
            STATE["runs"][body["run_id"]]["tags"][body["key"]] = body["value"]
            self._send(200, {})
        else:
            self._send(404, {"error_code": "ENDPOINT_NOT_FOUND"})


def _run(run_id: str) -> dict:
    """A run as MLflow's answers hold it."""
    run = STATE["runs"][run_id]
    pairs = lambda d: [{"key": k, "value": v} for k, v in d.items()]  # noqa: E731
    return {
        "info": {
            "run_id": run_id,
            "status": run["status"],
            "artifact_uri": f"/srv/mlruns/{run_id}/artifacts",
        },
        "data": {
            "metrics": [
                {"key": k, "value": v, "timestamp": 0, "step": 0} for k, v in run["metrics"].items()
            ],
            "params": pairs(run["params"]),
            "tags": pairs(run["tags"]),
        },
    }


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
