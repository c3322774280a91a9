"""The benchmark script runs end to end on tiny inputs (no timing is asserted)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_quick_runs_every_case_end_to_end(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "AWS_"))}
    out_json = tmp_path / "rows.json"
    proc = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--quick", "--json", str(out_json)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    import json

    rows = json.loads(out_json.read_text())
    cases = {r["case"] for r in rows}
    for prefix in (
        "start-up: --version",
        "start-up: filter-process handshake",
        "clean:",
        "small files: git add",
        "small files: fresh checkout",
        "push ",
        "clone/pull ",
        "lazy CI clone",
        "push 2 MiB to S3",
        "pull 2 MiB from S3",
        "gc: mark and condemn, 2000 objects",
        "gc: sweep of the 600 condemned objects",
        "gc: moto server alone listing 2000 objects",
        "gc: a push's extra requests",
    ):
        assert any(c.startswith(prefix) for c in cases), prefix

    def notes(prefix: str) -> str:
        return " ".join(n for r in rows if r["case"].startswith(prefix) for n in r["notes"])

    # The gc rows check their own counts (the sweep deletes exactly what was condemned).
    assert "600 keys in all" in notes("gc: sweep of")
    assert "1 GET of meta/gc/state.json" in notes("gc: a push's extra requests")
    for row in rows:
        assert row["ours_s"] is not None and row["ours_s"] > 0
        assert row["peer_s"] is not None or row["skipped"] or row["peer"] == "-"
    assert "lfs-agent / peer" in proc.stdout.decode()
