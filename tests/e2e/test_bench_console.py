"""The console page-load benchmark, tiny: it fills the store, signs in through the real login form
and measures every page without an error, on both stores. Its speed is judged in
bench/RESULTS.md, not here."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

PAGES = {"baseline", "queue", "workspace", "customer", "api"}


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_console_benchmark_prints_a_figure_for_each_page(request: pytest.FixtureRequest, store: str) -> None:
    if store == "postgres":
        request.getfixturevalue("postgres_url")  # PostgreSQL's binaries: required in CI, else skipped
    done = subprocess.run([sys.executable, "-m", "bench.console", "--tickets", "200", "--messages", "2000",
                           "--store", store, "--requests", "5", "--warmup", "1", "--json"],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["failure"] is None
    (run,) = report["stores"]
    assert run["store"] == store
    assert run["counts"]["tickets"] == 200 and 1900 <= run["counts"]["messages"] <= 2000
    assert {page["group"] for page in run["pages"]} == PAGES
    for page in run["pages"]:
        assert page["requests"] == 5 and page["error_count"] == 0, page
        assert 0 < page["p50_ms"] <= page["p95_ms"] <= page["p99_ms"], page
    # The table a person reads: one line per page, with its figures.
    lines = done.stderr.splitlines()
    for page in run["pages"]:
        assert any(line.startswith(page["page"]) and f"{page['p95_ms']:.1f}" in line for line in lines), page["page"]
