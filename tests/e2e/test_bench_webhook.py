"""The webhook benchmark, short: it must run on both stores, and under its concurrent load the
service must store every accepted push exactly once. Its speed is judged in bench/RESULTS.md,
not here."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_webhook_benchmark_runs_and_stores_each_push_once(request: pytest.FixtureRequest, store: str) -> None:
    if store == "postgres":
        request.getfixturevalue("postgres_url")  # PostgreSQL's binaries: required in CI, else skipped
    only = ["--no-postgres"] if store == "sqlite" else ["--no-sqlite"]
    done = subprocess.run([sys.executable, "-m", "bench.webhook", "--duration", "2", "--rounds", "2", "--warmup",
                           "0.5", "--json", *only], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["ok"] and report["failure"] is None and store not in report["skipped"]
    echo, service = report["runs"]
    assert echo["kind"] == "echo" and echo["accepted"] > 0 and echo["errors"] == 0
    assert service["name"] == f"service/{store}"
    assert service["accepted"] > 0 and service["errors"] == service["failed"] == service["bad_replies"] == 0
    stored = service["stored"]
    assert stored["rows"] == stored["distinct_keys"] == stored["replies"] == service["accepted"]
    assert service["log"]["tracebacks"] == service["log"]["errors"] == 0
    assert len(service["round_ratios"]) == 2 and all(ratio > 0 for ratio in service["round_ratios"])
