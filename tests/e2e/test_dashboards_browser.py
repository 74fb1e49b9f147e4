"""The KPI dashboards in a real browser (issue 15, "Done means: Browser tests of both dashboards").

Customers write through the signed WeChat webhook and an agent works their complaints through
the API, as in production (``crmbot serve`` and ``crmbot worker``); then a supervisor reads the
service dashboard and a marketer the fan dashboard in headless Chromium. Each chart must be drawn
by Chart.js (vendored, no CDN, no inline script under the console's CSP), and its CSV must hold
the numbers it draws. Full-page screenshots land in tests/e2e/screenshots/.
"""
from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Locator, expect
from sqlalchemy import update

from crm_store import kpis, models
from crm_store.models import utcnow
from tests.e2e.conftest import ConsoleService, screenshot, wait_until
from tests.e2e.console_pages import ConsolePage
from tests.integration.test_kpis import Store

# The browser first: without chromium the module skips (or fails in CI) before starting the service.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("browser")]
ZONE = "Asia/Shanghai"


class DashboardPage(ConsolePage):
    """A KPI dashboard: the period picker, headline figures, charts with their CSV links."""

    def chart(self, title: str) -> Locator:
        return self.page.get_by_role("region", name=title, exact=True)

    @property
    def canvases(self) -> Locator:
        return self.page.locator("canvas[data-chart]")

    def headline(self, name: str) -> Locator:
        return self.page.get_by_role("list", name="本期概览").get_by_role("listitem").filter(has_text=name)

    def drawn(self) -> dict[str, Any]:
        """Every chart Chart.js drew: its labels and datasets, by the canvas' chart name."""
        return self.page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('canvas[data-chart]')]
            .map((canvas) => { const chart = Chart.getChart(canvas);
              return [canvas.dataset.chart, chart === undefined ? null : {
                labels: chart.data.labels, width: chart.width,
                datasets: chart.data.datasets.map((d) => ({label: d.label, data: d.data}))}]; }))""")

    def download_csv(self, title: str) -> tuple[list[str], list[list[str]]]:
        """Click a chart's CSV link; the file's header and rows."""
        with self.page.expect_download() as download:
            self.chart(title).get_by_role("link", name=re.compile("CSV")).click()
        raw = Path(download.value.path()).read_bytes()
        assert raw.startswith("\ufeff".encode())  # Excel reads the Chinese right
        header, *rows = csv.reader(io.StringIO(raw.decode("utf-8-sig")))
        return header, rows


def number(cell: str) -> float | None:
    return None if cell == "" else float(cell)


def watch_console(page: Any) -> list[str]:
    """Console errors, such as a script or a style the CSP refused."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    return errors


def test_a_supervisor_reads_the_service_dashboard_after_a_day_of_work(console: ConsoleService, staff) -> None:
    # A day at the service: two complaints, one worked to a rating of 5 by erin through the API,
    # one left open past its SLA; a customer the bot serves alone.
    worked = console.complaint("oDashWorked000000000000001", "我昨天买的奶茶里有异物，太恶心了")
    waiting = console.complaint("oDashWaiting00000000000001", "外卖送错了，我点的是拿铁，给了美式")
    console.customer_says("oDashSelf0000000000000001", "你好")
    console.add_staff("erin", "agent")
    erin = {"Authorization": f"Bearer {console.api_token('erin')}"}
    for step, body in (("claim", None), ("reply", {"text": "非常抱歉，已为您安排退款"}),
                       ("resolve", {"complaint_level": "minor", "compensation": "退款"})):
        answer = requests.post(f"{console.url}/api/v1/tickets/{worked}/{step}", headers=erin, json=body, timeout=10)
        assert answer.status_code in (200, 202), answer.text
    wait_until(lambda: any(worked in t and "1-5" in t for t in console.sent_to("oDashWorked000000000000001")),
               what="the rating question")
    assert "谢谢您的评分" in console.customer_says("oDashWorked000000000000001", "5")
    with console.uow() as uow:  # the waiting complaint's first response was due an hour ago
        uow.execute(update(models.Ticket).where(models.Ticket.reference == waiting)
                    .values(first_response_due=utcnow() - timedelta(hours=1)))
        uow.commit()

    sam = staff("sam", "supervisor")
    errors = watch_console(sam.page)
    board = DashboardPage(sam.page)
    board.menu("服务看板").click()
    expect(board.heading).to_have_text("服务看板")
    expect(board.canvases).to_have_count(3)
    drawn = board.drawn()
    assert set(drawn) == {"rates", "response_time", "csat"} and all(drawn.values()), drawn  # Chart.js drew each
    assert all(chart["width"] > 200 for chart in drawn.values())  # laid out, not collapsed

    # The headline equals the API's figures for the same days.
    today = kpis.brand_day(utcnow(), ZONE)
    supervisor = {"Authorization": f"Bearer {console.api_token('sam')}"}
    api = requests.get(f"{console.url}/api/v1/kpis/service?from={today - timedelta(days=6)}&to={today}&by=day",
                       headers=supervisor, timeout=30).json()["items"]
    totals = [r for r in api if r["agent"] is None and r["day"] is None]
    answered, needing = (sum(r[f"response_rate_{part}"] for r in totals) for part in ("numerator", "denominator"))
    assert needing >= 4  # the customers' messages were counted
    expect(board.headline("响应率")).to_contain_text(f"{answered / needing * 100:.1f}%")
    expect(board.headline("响应率")).to_contain_text(f"{answered:.0f}/{needing:.0f}")
    expect(board.headline("满意率")).to_contain_text("100.0%")  # the one rating: 5
    expect(board.headline("超时未结工单")).to_contain_text("1")
    assert drawn["csat"]["datasets"][0]["data"] == [0, 0, 0, 0, 1]

    # The breach list leads to the ticket's workspace; the agent table shows erin.
    expect(board.chart("超时未结工单").get_by_role("link", name=waiting)).to_have_attribute(
        "href", f"/console/tickets/{waiting}")
    expect(board.chart("各客服").get_by_role("row").filter(has_text="erin")).to_contain_text("100.0%")

    # Each chart's CSV holds the numbers it draws.
    header, rows = board.download_csv("每日各项比率")
    assert header[:2] == ["day", "response_rate"] and [r[0] for r in rows] == drawn["rates"]["labels"]
    response_rate = next(d for d in drawn["rates"]["datasets"] if d["label"] == "响应率")["data"]
    assert [number(r[1]) for r in rows] == response_rate
    assert response_rate[-1] == next(r["response_rate"] for r in api
                                     if r["agent"] is None and r["day"] == str(today))
    header, rows = board.download_csv("满意度评分分布")
    assert header == ["score", "answers"] and [int(r[1]) for r in rows] == drawn["csat"]["datasets"][0]["data"]
    screenshot(sam.page, "20-service-dashboard")

    board.page.get_by_role("link", name="最近 30 天").click()
    expect(board.page).to_have_url(re.compile(r"days=30"))
    expect(board.canvases).to_have_count(3)
    assert len(board.drawn()["rates"]["labels"]) == 30
    assert errors == [], errors


def test_a_marketer_reads_the_fan_dashboard(console: ConsoleService, staff) -> None:
    today = kpis.brand_day(utcnow(), ZONE)
    days = [today - timedelta(days=n) for n in (2, 1, 0)]
    with console.uow() as uow:  # follower counts as the snapshot job takes them, mentions as polls store them
        for day, followers in zip(days, (12_000, 12_150, 12_100)):
            uow.session.add(models.FollowerSnapshot(channel="weibo", account="品牌官方微博", day=day, followers=followers))
            uow.session.add(models.FollowerSnapshot(channel="twitter", account="brand", day=day,
                                                    followers=followers // 10))
        author = Store(uow).conversation("品牌官方微博", "weibo").customer_id
        for n, (sentiment, hours_ago) in enumerate((("pos", 30), ("neg", 26), ("pos", 1), ("neu", 2))):
            uow.session.add(models.Mention(
                channel="weibo", account="品牌官方微博", external_id=f"dash{n}", kind="post", text="新品",
                author_id=f"fan{n}", author_followers=100 * (n + 1), reposts=n, comments=2, likes=5,
                created_at=utcnow() - timedelta(hours=hours_ago), sentiment=sentiment, customer_id=author))
        for status in ("converted", "new"):
            uow.session.add(models.Lead(customer_id=author, name="x", phone="", interest="加盟",
                                        source_channel="weibo", campaign="#秋日#", status=status))
        uow.commit()

    mia = staff("mia", "marketer")
    errors = watch_console(mia.page)
    board = DashboardPage(mia.page)
    board.menu("粉丝看板").click()
    expect(board.heading).to_have_text("粉丝看板")
    expect(board.menu("服务看板")).to_have_count(0)  # the service KPIs are the supervisors'
    expect(board.canvases).to_have_count(7)
    drawn = board.drawn()
    assert all(drawn.values()), drawn
    followers = {d["label"]: d["data"][-3:] for d in drawn["followers"]["datasets"]}
    assert followers == {"微博 · 品牌官方微博 · 粉丝数": [12_000, 12_150, 12_100], "Twitter · brand · 粉丝数": [1200, 1215, 1210]}
    expect(board.page.get_by_role("row").filter(has_text="品牌官方微博")).to_contain_text("12,100")
    expect(board.headline("转化率")).to_contain_text("50.0%")

    header, rows = board.download_csv("每日粉丝数")
    assert header == ["day", "channel", "account", "followers"]
    assert sorted((r[0], r[2], int(r[3])) for r in rows if r[0] in map(str, days)) == sorted(
        [(str(day), "品牌官方微博", n) for day, n in zip(days, (12_000, 12_150, 12_100))]
        + [(str(day), "brand", n) for day, n in zip(days, (1200, 1215, 1210))])
    header, rows = board.download_csv("每日转评数")
    plotted = next(d for d in drawn["reposts_comments"]["datasets"] if "品牌官方微博" in d["label"])["data"]
    by_day = {r[0]: int(r[3]) for r in rows if r[2] == "品牌官方微博"}
    assert [by_day.get(day) for day in drawn["reposts_comments"]["labels"]] == plotted
    assert sum(by_day.values()) == sum(n + 2 for n in range(4))  # every mention's reposts + comments
    screenshot(mia.page, "21-fan-dashboard")
    assert errors == [], errors
