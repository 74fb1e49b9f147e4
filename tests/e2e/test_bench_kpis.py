"""The KPI benchmark, tiny: it fills the store, rolls up days, times every dashboard query without
an error and measures the analysis lag with a real analysis process, on both stores. Its speed is
judged in bench/RESULTS.md, not here."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

GROUPS = {"baseline", "store", "api", "console", "live"}


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_kpi_benchmark_prints_rollups_queries_and_lag(request: pytest.FixtureRequest, store: str) -> None:
    if store == "postgres":
        request.getfixturevalue("postgres_url")  # PostgreSQL's binaries: required in CI, else skipped
    done = subprocess.run([sys.executable, "-m", "bench.kpis", "--tickets", "200", "--messages", "2000",
                           "--store", store, "--requests", "3", "--warmup", "1", "--rollup-days", "2",
                           "--rate", "20", "--lag-seconds", "4", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["failure"] is None
    (run,) = report["stores"]
    assert run["store"] == store
    assert run["counts"]["tickets"] == 200 and 1900 <= run["counts"]["messages"] <= 2000
    assert run["counts"]["mentions"] > 0 and run["counts"]["follower snapshots"] > 0
    # Rollups: the 30 days, then single days (the busiest two and today).
    rollups = run["rollups"]
    assert rollups["rows"] >= 30 and 2 <= len(rollups["days"]) <= 3
    assert 0 <= rollups["p50_s"] <= rollups["max_s"]
    # Queries: every one answered, every call timed.
    queries = [q for q in run["queries"] if "query" in q]
    assert {q["group"] for q in queries} == GROUPS
    for query in queries:
        assert query["n"] == 3 and query["error_count"] == 0, query
        assert 0 < query["p50_ms"] <= query["p95_ms"] <= query["max_ms"], query
    # The lag: every message written was analysed by the other process, with a lag.
    lag = run["lag"]
    assert lag["written"] == 80 and lag["analysed"] == 80, lag
    assert 0 < lag["lag_p50_s"] <= lag["lag_p95_s"] <= lag["lag_max_s"] < 60, lag
    assert lag["analyzer"]["runs"] >= 2 and lag["analyzer"]["analysed"] >= 80, lag
    # The table a person reads: one line per query and per goal, with its figures.
    lines = done.stderr.splitlines()
    for query in queries:
        assert any(line.startswith(query["query"]) and f"{query['p95_ms']:.1f}" in line for line in lines), query
    assert any(line.startswith("incremental, one day") for line in lines)
    assert any(line.startswith("analysis lag (s)") and f"{lag['lag_p95_s']:.2f}" in line for line in lines)
