"""The KPI dashboards of the console (issue 15) over the real Flask app, on both stores: who may
open them, the period's numbers on the page and in each chart's CSV (equal to crm_store.kpis'),
bad periods, and text from customers and staff that stays text (also inside the page's JSON).

The store is test_kpis' hand-built one, whose figures are worked out by hand there."""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, timedelta
from typing import Any

import pytest

from crm_store import kpis, models
from crm_store.models import utcnow
from tests.integration.test_console import sign_in, team  # noqa: F401 (a fixture)
from tests.integration.test_kpis import D, Store, at, store  # noqa: F401 (a fixture)

SERVICE, FANS = "/console/dashboards/service", "/console/dashboards/fans"
PERIOD = f"from={D}&to={D + timedelta(days=1)}"
EVIL = "</script><script>alert(1)</script>"


def signed_in(client, name: str):  # type: ignore[no-untyped-def]
    assert sign_in(client, name).status_code == 302
    return client


def figures(page: str) -> dict[str, Any]:
    """The charts' data the page carries for dashboards.js."""
    found = re.search(r'<script type="application/json" id="dashboard-data">(.*?)</script>', page, re.S)
    assert found, "the page has no chart data"
    return json.loads(found.group(1))


def typed(cell: str) -> Any:
    if cell == "":
        return None
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    return cell


def download(client, path: str) -> tuple[list[str], list[list[Any]]]:  # type: ignore[no-untyped-def]
    """A CSV export: its header and its rows (numbers as numbers); checks that Excel gets UTF-8."""
    answer = client.get(path)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.mimetype == "text/csv" and answer.data.startswith("\ufeff".encode())
    assert answer.headers["Content-Disposition"].startswith("attachment; filename=")
    header, *rows = csv.reader(io.StringIO(answer.data.decode("utf-8-sig")))
    return header, [[typed(cell) for cell in row] for row in rows]


def service_rows(runtime, start: date, end: date, **kw: Any) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    with runtime.uow() as uow:
        rows = kpis.service_kpis(uow, kpis.Period(start, end), kpis.first_response_minutes(runtime.content.rules),
                                 by_day=True, **kw)
        uow.commit()
    return rows


@pytest.fixture()
def fans(store):  # type: ignore[no-untyped-def]  # noqa: F811
    """test_kpis' fan figures: a Weibo account W, three mentions, three leads."""
    with store.uow() as uow:
        for day, followers in ((D - timedelta(days=1), 100), (D, 110), (D + timedelta(days=1), 105)):
            uow.session.add(models.FollowerSnapshot(channel="weibo", account="W", day=day, followers=followers))
        s = Store(uow)
        author = s.conversation("W", "weibo").customer_id
        for n, (who, followers, counts, sentiment) in enumerate((
                ("a1", 1000, (1, 2, 3), "pos"), ("a1", 900, (0, 1, 0), "neg"), ("a2", 50, (0, 0, 10), "neu"))):
            uow.session.add(models.Mention(
                channel="weibo", account="W", external_id=str(10 + n), kind="post", text="t", author_id=who,
                author_followers=followers, reposts=counts[0], comments=counts[1], likes=counts[2],
                created_at=at(D, 9 + n), sentiment=sentiment, customer_id=author))
        for status, campaign in (("converted", "#秋日#"), ("new", "#秋日#"), ("lost", None)):
            uow.session.add(models.Lead(customer_id=author, name="x", phone="", interest="i", source_channel="weibo",
                                        campaign=campaign, status=status, created_at=at(D, 12)))
        uow.commit()
    return store


@pytest.mark.parametrize("name, path, status", [
    ("alice", SERVICE, 403), ("alice", FANS, 403), ("alice", f"{SERVICE}.csv?chart=rates", 403),
    ("alice", f"{FANS}.csv?chart=followers", 403),
    ("mia", SERVICE, 403), ("mia", f"{SERVICE}.csv?chart=agents", 403), ("mia", FANS, 200),
    ("mia", f"{FANS}.csv?chart=followers", 200),
    ("sam", SERVICE, 200), ("sam", FANS, 200), ("root", SERVICE, 200), ("root", f"{FANS}.csv?chart=conversion", 200),
])
def test_each_dashboard_is_for_its_roles(client, team, name: str, path: str, status: int) -> None:  # noqa: F811
    assert signed_in(client, name).get(path).status_code == status


def test_signed_out_the_dashboards_lead_to_sign_in(client) -> None:
    for path in (SERVICE, f"{FANS}.csv?chart=followers"):
        answer = client.get(path)
        assert answer.status_code == 302 and "/console/login" in answer.headers["Location"]


def test_the_menu_shows_each_role_its_dashboards(client, team) -> None:  # noqa: F811
    marketer = signed_in(client, "mia").get(FANS).text
    assert 'href="/console/dashboards/fans"' in marketer and 'href="/console/dashboards/service"' not in marketer
    supervisor = signed_in(client.application.test_client(), "sam").get(SERVICE).text
    assert 'href="/console/dashboards/fans"' in supervisor and 'href="/console/dashboards/service"' in supervisor


def test_the_service_page_shows_the_periods_numbers(client, store, team) -> None:  # noqa: F811
    page = signed_in(client, "sam").get(f"{SERVICE}?{PERIOD}").text
    assert "服务看板" in page and f'value="{D}"' in page and f'value="{D + timedelta(days=1)}"' in page
    # The period's headline, as test_kpis worked it out: response 5 of 6, resolution 1 of 2,
    # satisfaction 1 of 2, self-service 1 of 3.
    headline = re.search(r'<ul class="kpis".*?</ul>', page, re.S).group(0)  # type: ignore[union-attr]
    for name, shown in (("响应率", "83.3%"), ("解决率", "50.0%"), ("满意率", "50.0%"), ("自助率", "33.3%")):
        assert re.search(rf"{name}</span>\s*<strong>{re.escape(shown)}</strong>", headline), name
    assert "5/6" in headline and "1/3" in headline
    rows = service_rows(store, D, D + timedelta(days=1))
    data = figures(page)
    days = [str(D), str(D + timedelta(days=1))]
    assert data["rates"]["labels"] == days
    response_rate = next(s for s in data["rates"]["datasets"] if s["label"] == "响应率")
    assert response_rate["data"] == [next(r["response_rate"] for r in rows if r["day"] == day and r["agent"] is None)
                                     for day in days] == [0.8, 1.0]
    assert data["csat"] == {"kind": "bar", "labels": ["1", "2", "3", "4", "5"], "percent": False, "from_zero": True,
                            "horizontal": False,
                            "datasets": [{"label": "回复数", "data": [0, 1, 0, 0, 1]}]}
    median = next(s for s in data["response_time"]["datasets"] if s["label"].endswith("响应时间中位数"))
    assert median["data"] == [1800.0, 3600.0]
    assert data["response_time"]["units"] == {"s": "%(n)s 秒", "min": "%(n)s 分钟", "h": "%(n)s 小时"}
    # The per-agent table and the breach list (bob's ticket: claimed, its resolution overdue).
    assert re.search(r'<tr data-agent="alice">', page) and re.search(r'<tr data-agent="bob">', page)
    with store.uow() as uow:
        [breached] = [t.reference for t in uow.session.query(models.Ticket).filter_by(assignee="bob")]
    assert f'<a href="/console/tickets/{breached}">{breached}</a>' in page


def test_each_service_csv_holds_the_numbers_of_crm_store_kpis(client, store, team) -> None:  # noqa: F811
    signed_in(client, "sam")
    rows = service_rows(store, D, D + timedelta(days=1))
    team_days = {r["day"]: r for r in rows if r["agent"] is None and r["day"]}

    header, got = download(client, f"{SERVICE}.csv?chart=rates&{PERIOD}")
    assert header[:4] == ["day", "response_rate", "response_rate_numerator", "response_rate_denominator"]
    assert len(header) == 13 and header[-1] == "self_service_rate_denominator"
    assert [dict(zip(header, row)) for row in got] == [
        {"day": day, **{c: team_days[day][c] for c in header[1:]}} for day in (str(D), str(D + timedelta(days=1)))]
    assert got[0][1:4] == [0.8, 4, 5]  # by hand: four of the first day's five messages answered in time

    header, got = download(client, f"{SERVICE}.csv?chart=response_time&{PERIOD}")
    assert header == ["day", "channel", "account", "response_time_median_s", "response_time_p90_s",
                      "response_time_tickets"]
    assert got == [[day, "wechat", "gh_a", team_days[day]["response_time_median_s"],
                    team_days[day]["response_time_p90_s"], 1] for day in (str(D), str(D + timedelta(days=1)))]

    assert download(client, f"{SERVICE}.csv?chart=csat&{PERIOD}") == (
        ["score", "answers"], [[1, 0], [2, 1], [3, 0], [4, 0], [5, 1]])

    header, got = download(client, f"{SERVICE}.csv?chart=agents&{PERIOD}")
    assert header[:4] == ["agent", "channel", "account", "response_time_median_s"]
    agents = {r["agent"]: r for r in rows if r["agent"] and not r["day"]}
    assert {row[0]: dict(zip(header, row)) for row in got} == {
        name: {c: agents[name].get(c) for c in header} for name in ("alice", "bob")}
    assert dict(zip(header, got[0]))["resolution_rate"] == 1.0 and dict(zip(header, got[1]))["resolution_rate"] == 0.0

    header, got = download(client, f"{SERVICE}.csv?chart=breaches&{PERIOD}")
    assert header[:4] == ["reference", "priority", "status", "assignee"]
    assert [(row[1], row[2], row[3]) for row in got] == [("P3", "claimed", "bob")]

    # A channel without any of it: the same charts, empty.
    assert download(client, f"{SERVICE}.csv?chart=agents&{PERIOD}&channel=weibo")[1] == []
    assert client.get(f"{SERVICE}.csv?chart=nonsense&{PERIOD}").status_code == 404


def test_the_fan_page_and_its_csvs_hold_the_numbers_of_crm_store_kpis(client, fans, team) -> None:  # noqa: F811
    page = signed_in(client, "mia").get(f"{FANS}?{PERIOD}").text
    assert "粉丝看板" in page
    for name in ("粉丝数", "净增长", "影响力/触达", "互动量", "转评数", "转化率", "净情感"):
        assert name in page, name
    accounts = re.search(r'<tr data-account="W">.*?</tr>', page, re.S).group(0)  # type: ignore[union-attr]
    for shown in ("105", "+5", "1,050", "17", "4", "0.0%"):  # worked out by hand in test_kpis
        assert f"<td>{shown}" in accounts, shown
    with fans.uow() as uow:
        rows = kpis.fan_kpis(uow, kpis.Period(D, D + timedelta(days=1)), by_day=True)
        sources = kpis.lead_sources(uow, kpis.Period(D, D + timedelta(days=1)))
    daily = {r["day"]: r for r in rows if r["day"] and r["account"] == "W"}
    data = figures(page)
    assert data["followers"]["datasets"] == [{"label": "微博 · W · 粉丝数", "data": [110, 105]}]
    for chart in ("followers", "net_growth", "reach", "engagement", "reposts_comments", "net_sentiment"):
        header, got = download(client, f"{FANS}.csv?chart={chart}&{PERIOD}")
        assert header[:4] == ["day", "channel", "account", chart]
        assert got == [[daily[day].get(c) for c in header] for day in (str(D), str(D + timedelta(days=1)))], chart
        plotted = data[chart]["datasets"][0]["data"]
        assert plotted == [row[3] for row in got], chart  # the chart draws what the CSV holds
    header, got = download(client, f"{FANS}.csv?chart=conversion&{PERIOD}")
    assert header == ["source", "source_channel", "term", "captured", "converted", "conversion_rate"]
    assert [row[1:] for row in got] == [[s[c] if s[c] != "" else None for c in header[1:]] for s in sources] == [
        ["weibo", None, 1, 0, 0.0], ["weibo", "#秋日#", 2, 1, 0.5]]
    assert data["conversion"]["datasets"][0]["data"] == [0.0, 0.5]
    assert re.search(r"转化率</span><strong>33.3%</strong>", page)  # one of three leads


def test_a_period_that_is_not_one_goes_back_to_the_last_7_days(client, team) -> None:  # noqa: F811
    signed_in(client, "sam")
    today = kpis.brand_day(utcnow(), "Asia/Shanghai")
    for query in ("from=2026-13-01", f"from={D}&to={D - timedelta(days=1)}", "from=2020-01-01&to=2026-01-01",
                  "days=5", "to=nonsense", "from=%3Cscript%3E", "from=0001-01-01&to=0001-01-03", "to=0001-01-03",
                  "from=9999-12-30&to=9999-12-31"):
        answer = client.get(f"{SERVICE}?{query}&channel=wechat")
        assert answer.status_code == 302 and answer.headers["Location"] == f"{SERVICE}?channel=wechat", query
        page = client.get(answer.headers["Location"]).text
        assert "不是最长 366 天的时间段" in page, query
        assert f'value="{today - timedelta(days=6)}"' in page and f'value="{today}"' in page
    # A year is the longest period; the quick choices count back from today.
    assert client.get(f"{FANS}?from=2025-01-01&to=2026-01-01").status_code == 200
    page = client.get(f"{FANS}?days=30").text
    assert f'value="{today - timedelta(days=29)}"' in page and "aria-current" in page.split("最近 30 天")[0][-120:]
    # A CSV asked for a period that is not one is refused, not guessed.
    assert client.get(f"{SERVICE}.csv?chart=rates&from=2020-01-01&to=2026-01-01").status_code == 400
    assert client.get(f"{FANS}.csv?chart=reach&from=2026-02-30").status_code == 400


def test_names_stay_text_in_the_page_its_chart_data_and_its_csv(client, runtime, team) -> None:  # noqa: F811
    """An agent and an account named like markup: shown as text, and the JSON block holding the
    account name cannot be closed by it."""
    formula = "=HYPERLINK(\"http://x\")"
    with runtime.uow() as uow:
        s = Store(uow)
        talk = s.conversation(account=EVIL)
        s.answer(s.says(talk, at(D, 10)), 0.1, latency_ms=90)
        s.ticket(talk, at(D, 10), "P2", status=models.RESOLVED, assignee=EVIL, first_response_at=at(D, 10, 20),
                 resolved_at=at(D, 11))
        s.ticket(talk, at(D, 12), "P2", status=models.RESOLVED, assignee=formula, first_response_at=at(D, 12, 5),
                 resolved_at=at(D, 13))
        uow.commit()
    page = signed_in(client, "sam").get(f"{SERVICE}?from={D}&to={D}").text
    assert EVIL not in page and "<script>alert(1)" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the table shows it as text
    data = figures(page)  # the JSON block ends where the page ends it, not in the name
    assert data["response_time"]["datasets"][0]["label"].startswith(f"微信 · {EVIL} · ")
    _, agents = download(client, f"{SERVICE}.csv?chart=agents&from={D}&to={D}")
    assert sorted(row[0] for row in agents) == sorted([EVIL, "'" + formula])  # a spreadsheet will not run it
