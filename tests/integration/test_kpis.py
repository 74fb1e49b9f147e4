"""Every KPI of DESIGN.md for a hand-built store whose numbers are worked out by hand below, on
both stores: brand days in Asia/Shanghai, late CSAT answers that belong to the day they were
asked, a day boundary that is midnight in Shanghai but not in UTC."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from crm_store import models
from crm_store.kpis import Period, fan_kpis, service_kpis
from workers.runtime import Runtime

SHANGHAI = timezone(timedelta(hours=8))
D = date(2026, 11, 10)
SLA = {"P1": 15, "P2": 60, "P3": 240, "P4": 1440}


def at(day: date, hh: int, mm: int = 0, ss: float = 0.0) -> datetime:
    """A moment of a brand day, as UTC."""
    return (datetime(day.year, day.month, day.day, hh, mm, tzinfo=SHANGHAI) + timedelta(seconds=ss)
            ).astimezone(timezone.utc)


class Store:
    def __init__(self, uow: Any) -> None:
        self.uow, self.n = uow, 0

    def conversation(self, account: str = "gh_a", channel: str = "wechat") -> models.Conversation:
        self.n += 1
        customer = models.Customer(display_name=f"c{self.n}")
        self.uow.session.add(customer)
        self.uow.flush()
        identity = models.ChannelIdentity(customer_id=customer.id, channel=channel, account=account,
                                          external_id=f"o{self.n}", subscribed=True)
        self.uow.session.add(identity)
        self.uow.flush()
        conversation = models.Conversation(customer_id=customer.id, identity_id=identity.id, channel=channel,
                                           account=account)
        self.uow.session.add(conversation)
        self.uow.flush()
        return conversation

    def says(self, conversation: models.Conversation, when: datetime, kind: str = "text") -> models.Message:
        self.n += 1
        message = models.Message(conversation_id=conversation.id, customer_id=conversation.customer_id,
                                 direction="in", kind=kind, text="hi", dedupe_key=f"k{self.n}", author="customer",
                                 sent_at=when, created_at=when)
        self.uow.session.add(message)
        self.uow.flush()
        return message

    def answer(self, message: models.Message, after_s: float, latency_ms: int | None = None,
               delivery: str = models.PASSIVE) -> None:
        self.uow.session.add(models.Message(
            conversation_id=message.conversation_id, customer_id=message.customer_id, direction="out", kind="text",
            text="bot", author="bot", reply_to_id=message.id, delivery=delivery,
            attributes={"latency_ms": latency_ms} if latency_ms is not None else {},
            sent_at=message.created_at + timedelta(seconds=after_s),
            created_at=message.created_at + timedelta(seconds=after_s)))

    def agent(self, conversation: models.Conversation, when: datetime, name: str) -> None:
        self.uow.session.add(models.Message(
            conversation_id=conversation.id, customer_id=conversation.customer_id, direction="out", kind="text",
            text="agent", author=f"agent:{name}", delivery=models.SENT, sent_at=when, created_at=when))

    def ticket(self, conversation: models.Conversation, opened: datetime, priority: str, **fields: Any
               ) -> models.Ticket:
        self.n += 1
        ticket = models.Ticket(
            reference=f"T-{self.n}", customer_id=conversation.customer_id, conversation_id=conversation.id,
            source="complaint", category="quality", priority=priority, status=fields.pop("status", models.OPEN),
            first_response_due=opened + timedelta(minutes=SLA[priority]),
            resolution_due=opened + timedelta(hours=48), created_at=opened, **fields)
        self.uow.session.add(ticket)
        return ticket


@pytest.fixture()
def store(runtime: Runtime) -> Runtime:
    with runtime.uow() as uow:
        s = Store(uow)
        a, b, c = s.conversation(), s.conversation(), s.conversation()
        # Conversation A: answered by the bot in time (80 ms), then too late (10 s, sent later).
        s.answer(s.says(a, at(D, 10)), 0.1, latency_ms=80)
        s.answer(s.says(a, at(D, 10, 5)), 10, delivery=models.SENT)
        s.says(a, at(D, 10, 6), kind="subscribe")  # an event: nothing to answer
        # Conversation B: a hand-off (P2, 60 min) by alice; the bot answers the first message, an
        # agent the next two, within the hour; rated 5.
        s.answer(s.says(b, at(D, 11)), 0.2, latency_ms=120)
        s.ticket(b, at(D, 11), "P2", status=models.RESOLVED, assignee="alice", first_response_at=at(D, 11, 30),
                 resolved_at=at(D, 12), csat_asked_at=at(D, 12), csat_score=5)
        s.says(b, at(D, 11, 10))
        s.says(b, at(D, 11, 20))
        s.agent(b, at(D, 11, 30), "alice")
        # Conversation C, the next day: a complaint (P3) answered by the bot (200 ms), bob replies
        # after an hour; rated 2 days later. A second ticket there was cancelled.
        s.answer(s.says(c, at(D + timedelta(days=1), 9)), 0.3, latency_ms=200)
        s.ticket(c, at(D + timedelta(days=1), 9), "P3", status=models.CLAIMED, assignee="bob",
                 first_response_at=at(D + timedelta(days=1), 10), csat_asked_at=at(D + timedelta(days=1), 18),
                 csat_score=2)
        s.agent(c, at(D + timedelta(days=1), 10), "bob")
        s.ticket(c, at(D + timedelta(days=1), 10), "P3", status=models.CANCELLED)
        # A ticket of the day before, whose rating is answered within the period: it belongs to
        # the day it was asked, outside.
        s.ticket(a, at(D - timedelta(days=1), 9), "P3", status=models.RESOLVED, assignee="alice",
                 first_response_at=at(D - timedelta(days=1), 9, 5), resolved_at=at(D - timedelta(days=1), 10),
                 csat_asked_at=at(D - timedelta(days=1), 10), csat_score=1)
        uow.commit()
    return runtime


def row(rows: list[dict[str, Any]], agent: str | None = None, day: date | None = None) -> dict[str, Any]:
    [found] = [r for r in rows if r["agent"] == agent and r["day"] == (day.isoformat() if day else None)]
    return found


def test_service_kpis_of_the_hand_built_store(store) -> None:
    with store.uow() as uow:
        rows = service_kpis(uow, Period(D, D + timedelta(days=1)), SLA, by_day=True)
    total = row(rows)
    assert (total["channel"], total["account"]) == ("wechat", "gh_a")
    # Six customer messages; the one the bot answered after 10 s is the only one not in time.
    assert (total["response_rate"], total["response_rate_numerator"], total["response_rate_denominator"]) == \
        (round(5 / 6, 4), 5, 6)
    # Passive replies 80, 120, 200 ms: nearest-rank p50 = 120, p99 = 200.
    assert (total["bot_latency_p50_ms"], total["bot_latency_p99_ms"], total["bot_latency_replies"]) == (120, 200, 3)
    # First responses 1,800 s and 3,600 s (the cancelled ticket has none).
    assert (total["response_time_median_s"], total["response_time_p90_s"], total["response_time_tickets"]) == \
        (2700.0, 3600.0, 2)
    # Opened in the period: resolved, claimed, cancelled (not counted).
    assert (total["resolution_rate"], total["resolution_rate_numerator"], total["resolution_rate_denominator"]) == \
        (0.5, 1, 2)
    # Conversations with customer messages: A without a ticket; B and C with one.
    assert (total["self_service_rate_numerator"], total["self_service_rate_denominator"]) == (1, 3)
    # Ratings asked in the period: 5 and 2 (the 1 was asked the day before).
    assert (total["satisfaction_rate"], total["satisfaction_rate_numerator"], total["satisfaction_rate_denominator"]) \
        == (0.5, 1, 2)
    assert (total["csat_answer_rate"], total["csat_answer_rate_denominator"]) == (1.0, 2)
    # Per day.
    first, second = row(rows, day=D), row(rows, day=D + timedelta(days=1))
    assert (first["response_rate_numerator"], first["response_rate_denominator"]) == (4, 5)
    assert (second["response_rate_numerator"], second["response_rate_denominator"]) == (1, 1)
    assert first["satisfaction_rate"] == 1.0 and second["satisfaction_rate"] == 0.0
    # Per agent: alice's ticket and bob's.
    alice, bob = row(rows, "alice"), row(rows, "bob")
    assert (alice["response_time_median_s"], alice["resolution_rate"], alice["satisfaction_rate"]) == (1800.0, 1.0, 1.0)
    assert (bob["response_time_median_s"], bob["resolution_rate"], bob["satisfaction_rate"]) == (3600.0, 0.0, 0.0)
    assert "response_rate" not in alice  # the bot's answers belong to no agent


def test_the_day_before_holds_its_late_rating_and_a_day_with_nothing_is_empty(store) -> None:
    with store.uow() as uow:
        before = row(service_kpis(uow, Period(D - timedelta(days=1), D - timedelta(days=1)), SLA))
        assert (before["satisfaction_rate"], before["satisfaction_rate_denominator"]) == (0.0, 1)
        assert service_kpis(uow, Period(D + timedelta(days=30), D + timedelta(days=30)), SLA) == []
        assert fan_kpis(uow, Period(D + timedelta(days=30), D + timedelta(days=30))) == []


def test_a_day_ends_at_midnight_in_shanghai_not_in_utc(runtime) -> None:
    with runtime.uow() as uow:
        s = Store(uow)
        talk = s.conversation()
        late, early = at(D, 23, 30), at(D + timedelta(days=1), 0, 30)
        assert late.date() == early.date()  # the same UTC day ...
        s.answer(s.says(talk, late), 0.1, latency_ms=50)
        s.says(talk, early)
        uow.commit()
        rows = service_kpis(uow, Period(D, D + timedelta(days=1)), SLA, by_day=True)
    # ... two brand days.
    assert row(rows, day=D)["response_rate_denominator"] == 1 and row(rows, day=D)["response_rate"] == 1.0
    assert row(rows, day=D + timedelta(days=1))["response_rate"] == 0.0


def test_fan_kpis_of_the_hand_built_store(runtime) -> None:
    with runtime.uow() as uow:
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
        for status in ("converted", "new", "lost"):
            uow.session.add(models.Lead(customer_id=author, name="x", phone="", interest="i", source_channel="weibo",
                                        status=status, created_at=at(D, 12)))
        uow.commit()
        rows = fan_kpis(uow, Period(D, D + timedelta(days=1)), by_day=True)
    total = row(rows)
    assert (total["channel"], total["account"], total["followers"], total["net_growth"]) == ("weibo", "W", 105, 5)
    assert (total["reach"], total["engagement"], total["reposts_comments"]) == (1050, 17, 4)
    assert (total["net_sentiment"], total["net_sentiment_numerator"], total["net_sentiment_denominator"]) == (0.0, 0, 3)
    assert (total["conversion_rate"], total["conversion_rate_numerator"], total["conversion_rate_denominator"]) == \
        (round(1 / 3, 4), 1, 3)
    assert (row(rows, day=D)["followers"], row(rows, day=D)["net_growth"]) == (110, 10)
    assert (row(rows, day=D + timedelta(days=1))["net_growth"], row(rows, day=D + timedelta(days=1))["reach"]) == (-5, 0)


def test_the_api_and_crmbot_kpi_give_the_same_figures(store, settings, client) -> None:
    import json
    import os

    from click.testing import CliRunner

    from crm_store import staff
    from web.cli import main as crmbot

    with store.uow() as uow:
        tokens = {}
        for name, role in (("sue", "supervisor"), ("mia", "marketer"), ("al", "agent")):
            staff.create_user(name, role, f"{name}-password-long", uow)
            tokens[name] = {"Authorization": f"Bearer {staff.create_token(name, uow)}"}
        uow.commit()
    url = f"/api/v1/kpis/service?from={D}&to={D + timedelta(days=1)}&channel=wechat"
    document = client.get(url, headers=tokens["sue"]).json
    assert (document["from"], document["to"], document["timezone"], document["next"]) == \
        (str(D), str(D + timedelta(days=1)), "Asia/Shanghai", None)
    total = row(document["items"])
    assert (total["response_rate"], total["response_rate_numerator"], total["response_rate_denominator"]) == \
        (round(5 / 6, 4), 5, 6)
    assert total["response_time_median_s"] == 2700.0 and total["bot_latency_p99_ms"] == 200
    assert [r["agent"] for r in client.get(url + "&agent=alice", headers=tokens["sue"]).json["items"]] == ["alice"]
    daily = client.get(url + "&by=day", headers=tokens["sue"]).json["items"]
    assert row(daily, day=D)["response_rate_denominator"] == 5
    assert client.get(url, headers=tokens["al"]).status_code == 403  # agents do not see the team's KPIs
    assert client.get(url, headers=tokens["mia"]).status_code == 403
    assert client.get(f"/api/v1/kpis/fans?from={D}&to={D}", headers=tokens["mia"]).status_code == 200
    for bad in ("from=2026-13-01", "from=2026-11-10&to=2026-11-01", "from=2020-01-01&to=2026-01-01", "by=hour",
                "from=9999-12-30&to=9999-12-31", "from=0001-01-01&to=0001-01-02"):
        answer = client.get(f"/api/v1/kpis/service?{bad}", headers=tokens["sue"])
        assert answer.status_code in (400, 422) and answer.json["error"]["message"], bad
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMBOT_")}
    env.update({"CRMBOT_VAR_DIR": str(settings.var_dir), "CRMBOT_DATABASE_URL": settings.database_url,
                "CRMBOT_SECRET_KEY": settings.secret_key, "CRMBOT_REDIS_URL": settings.redis_url})
    cli = CliRunner().invoke(crmbot, ["kpi", "--from", str(D), "--to", str(D + timedelta(days=1)), "--channel",
                                      "wechat", "--format", "json"], env=env)
    assert cli.exit_code == 0, cli.output
    printed = json.loads(cli.output)
    assert {k: v for k, v in row(printed["items"]).items() if k in total} == total
    table = CliRunner().invoke(crmbot, ["kpi", "--from", str(D), "--to", str(D + timedelta(days=1))], env=env)
    assert table.exit_code == 0 and "response_rate" in table.output and "(5/6)" in table.output
    csv_out = CliRunner().invoke(crmbot, ["kpi", "--from", str(D), "--to", str(D), "--format", "csv"], env=env)
    assert csv_out.exit_code == 0 and csv_out.output.splitlines()[0].startswith("channel,account,agent,day")
    backwards = CliRunner().invoke(crmbot, ["kpi", "--from", str(D), "--to", str(D - timedelta(days=1))], env=env)
    assert backwards.exit_code == 2 and "ends on or after" in backwards.output


@pytest.fixture()
def clock(monkeypatch) -> dict[str, datetime]:
    """One test clock for the KPIs, the rollup job and the tickets' ``updated_at``."""
    from crm_store import kpis
    import workers.kpis as job_module

    clock = {"now": at(D, 0)}
    for module in (kpis, job_module, models):
        monkeypatch.setattr(module, "utcnow", lambda: clock["now"])
    return clock


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollups_refreshed_as_events_come_equal_a_recomputation_from_scratch(runtime, clock, seed: int) -> None:
    """Events in time order over three brand days (messages, bot answers fast and slow, tickets
    opened by a message, answered, resolved, cancelled, reassigned, rated, or left to pass their
    due times; agent replies). At random moments a KPI read brings the rollups up to date, as the
    job and the reads do, and must equal the figures computed from the messages and tickets, then
    and at the end."""
    import random

    rng = random.Random(seed)
    period = Period(D, D + timedelta(days=2))
    checked = 0
    with runtime.uow() as uow:
        s = Store(uow)
        talks = [s.conversation(account=rng.choice(("gh_a", "gh_b"))) for _ in range(6)]
        tickets: list[models.Ticket] = []
        moment = at(D, 0, 5)
        for _ in range(160):
            moment += timedelta(minutes=rng.randint(1, 50))
            clock["now"] = moment
            talk = rng.choice(talks)
            roll = rng.random()
            if roll < 0.4:
                message = s.says(talk, moment, kind=rng.choice(("text", "text", "image", "subscribe")))
                if rng.random() < 0.7:
                    s.answer(message, rng.choice((0.1, 0.4, 3, 8)), latency_ms=rng.randint(5, 400),
                             delivery=rng.choice((models.PASSIVE, models.PASSIVE, models.SENT, models.FAILED)))
            elif roll < 0.52:  # a complaint: the message that opens a ticket
                s.says(talk, moment)
                tickets.append(s.ticket(talk, moment, rng.choice(("P1", "P2", "P3"))))
            elif roll < 0.72 and tickets:
                ticket = rng.choice(tickets)
                step = rng.choice(("answer", "resolve", "cancel", "reassign", "rate"))
                if step == "answer" and ticket.first_response_at is None and ticket.status != models.CANCELLED:
                    ticket.first_response_at, ticket.status = moment, models.CLAIMED
                    ticket.assignee = ticket.assignee or rng.choice(("alice", "bob"))
                    s.agent(uow.session.get(models.Conversation, ticket.conversation_id), moment, ticket.assignee)
                elif step == "resolve" and ticket.status in (models.OPEN, models.CLAIMED):
                    ticket.status, ticket.resolved_at, ticket.csat_asked_at = models.RESOLVED, moment, moment
                elif step == "cancel" and ticket.status == models.OPEN:
                    ticket.status = models.CANCELLED
                elif step == "reassign" and ticket.status == models.CLAIMED:
                    ticket.assignee = rng.choice(("alice", "bob", "carol"))
                elif step == "rate" and ticket.csat_asked_at is not None and ticket.csat_score is None:
                    ticket.csat_score = rng.randint(1, 5)
            elif roll < 0.9:
                s.agent(talk, moment, rng.choice(("alice", "bob")))
            else:
                uow.flush()
                rolled = service_kpis(uow, period, SLA, by_day=True)
                assert rolled == service_kpis(uow, period, SLA, by_day=True, fresh=True), moment
                checked += 1
        uow.flush()
        clock["now"] = at(D + timedelta(days=4), 12)  # every day has settled
        rolled = service_kpis(uow, period, SLA, by_day=True)
        scratch = service_kpis(uow, period, SLA, by_day=True, fresh=True)
    assert rolled == scratch and checked >= 5
    total = [r for r in rolled if r["day"] is None and r["agent"] is None]
    assert sum(r["response_rate_denominator"] for r in total) > 20  # it counted something
    assert sum(r["resolution_rate_denominator"] + r["csat_answer_rate_denominator"] + r["sla_breaches"]
               for r in total) > 10


def test_the_rollup_job_refreshes_what_changed_once(store, monkeypatch, clock) -> None:
    from sqlalchemy import update

    from workers import jobs
    from workers.kpis import TICKET_DAYS, refresh_kpis

    monkeypatch.setattr(jobs, "RUNTIME", store)
    clock["now"] = at(D + timedelta(days=1), 20)
    with store.uow() as uow:  # the fixture's tickets were written before now
        uow.execute(update(models.Ticket).values(updated_at=at(D + timedelta(days=1), 19)))
        uow.commit()
    first = refresh_kpis()
    # Every day the job keeps is computed once, empty or not; the messages' of D and D + 1.
    assert len(first) == TICKET_DAYS and first[-2:] == [str(D), str(D + timedelta(days=1))]
    assert refresh_kpis() == []  # nothing new since
    with store.uow() as uow:
        rows = {(r.day, r.channel): (r.needing, r.answered) for r in uow.session.scalars(select(models.KpiDay))}
    assert rows[(D, "wechat")] == (5, 4) and rows[(D + timedelta(days=1), "wechat")] == (1, 1)
    assert (D, "") in rows  # the day's marker: computed, whatever it held
    # The ticket of the day before D goes to carol: only that day's ticket rollup is redone, and
    # for a minute after the write (it may have committed after a read), not after.
    clock["now"] = at(D + timedelta(days=1), 20, 10)
    with store.uow() as uow:
        before = uow.session.scalar(select(models.Ticket).where(models.Ticket.created_at < at(D, 0)))
        before.assignee = "carol"
        uow.commit()
    assert refresh_kpis() == [str(D - timedelta(days=1))]
    clock["now"] = at(D + timedelta(days=1), 20, 12)
    assert refresh_kpis() == [str(D - timedelta(days=1))]  # within a minute of the write: again
    clock["now"] = at(D + timedelta(days=1), 20, 13)
    assert refresh_kpis() == []
    with store.uow() as uow:
        agents = {r.agent: (r.counted, r.csat_asked) for r in uow.session.scalars(select(models.KpiTicketDay).where(
            models.KpiTicketDay.day == D - timedelta(days=1), models.KpiTicketDay.channel != ""))}
    assert agents == {"carol": (1, 1)}


def test_an_open_ticket_passing_its_due_time_makes_its_day_stale(runtime, clock) -> None:
    from crm_store import kpis

    clock["now"] = at(D, 10)
    period = Period(D, D)
    with runtime.uow() as uow:
        s = Store(uow)
        s.ticket(s.conversation(), at(D, 10), "P2")  # a first response due at 11:00
        uow.flush()
        assert kpis.refresh_stale(uow, period, SLA) == [D]
        clock["now"] = at(D, 10, 59)  # once more: the ticket was written within a minute of the refresh
        assert kpis.refresh_stale(uow, period, SLA) == [D]
        assert kpis.stale_ticket_days(uow, period) == []
        clock["now"] = at(D, 11, 1)  # no write, but a breach now
        assert kpis.stale_ticket_days(uow, period) == [D]
        assert row(service_kpis(uow, period, SLA))["sla_breaches"] == 1
        assert kpis.stale_ticket_days(uow, period) == []


def test_csat_distribution_and_conversion_by_source(store) -> None:
    from crm_store.kpis import csat_distribution, lead_sources

    with store.uow() as uow:
        author = Store(uow).conversation("W", "weibo").customer_id
        for source, campaign, keyword, status in (("weibo", "#秋日#", None, "converted"), ("weibo", "#秋日#", None, "new"),
                                                  ("weibo", None, "加盟", "converted"), ("wechat", None, None, "lost")):
            uow.session.add(models.Lead(customer_id=author, name="x", phone="", interest="i", source_channel=source,
                                        campaign=campaign, keyword=keyword, status=status, created_at=at(D, 12)))
        uow.commit()
        period = Period(D, D + timedelta(days=1))
        assert csat_distribution(uow, period) == {1: 0, 2: 1, 3: 0, 4: 0, 5: 1}
        assert csat_distribution(uow, Period(D - timedelta(days=1), D - timedelta(days=1))) == {1: 1, 2: 0, 3: 0, 4: 0,
                                                                                                 5: 0}
        assert [(r["source_channel"], r["term"], r["captured"], r["converted"], r["conversion_rate"])
                for r in lead_sources(uow, period)] == [("wechat", "", 1, 0, 0.0), ("weibo", "#秋日#", 2, 1, 0.5),
                                                        ("weibo", "加盟", 1, 1, 1.0)]


def test_the_sla_job_flags_near_and_past_due_tickets_and_the_kpis_count_breaches(runtime, monkeypatch, client) -> None:
    from workers import jobs
    from workers.sla import check_sla

    monkeypatch.setattr(jobs, "RUNTIME", runtime)
    now = models.utcnow()
    with runtime.uow() as uow:
        s = Store(uow)
        talk = s.conversation()
        s.ticket(talk, now - timedelta(minutes=50), "P2")  # 10 of 60 minutes left: near
        s.ticket(talk, now - timedelta(minutes=90), "P2")  # past its first response: breached
        s.ticket(talk, now - timedelta(minutes=5), "P2")  # fine
        s.ticket(talk, now - timedelta(minutes=90), "P2", status=models.RESOLVED, first_response_at=now - timedelta(
            minutes=80), resolved_at=now - timedelta(minutes=70))  # answered in time, closed
        s.ticket(talk, now - timedelta(minutes=200), "P2", status=models.CANCELLED)  # the customer withdrew
        s.says(talk, now - timedelta(hours=45))  # the customer last wrote 45 hours ago
        uow.commit()
    assert check_sla() == {"near": 1, "breached": 1}
    from crm_store import staff
    from tests.integration.test_console import PASSWORD, sign_in

    with runtime.uow() as uow:
        staff.create_user("sue", "supervisor", PASSWORD, uow)
        uow.commit()
    sign_in(client, "sue")
    queue = client.get("/console/tickets").text
    assert queue.count('data-testid="near"') == 1 and queue.count("badge alarm") >= 1  # the queue shows both
    # ... and that WeChat's 48-hour window of the three open tickets' customer closes in 3 hours.
    assert queue.count('data-testid="window"') == 3 and ("2小时59分" in queue or "3小时0分" in queue)
    with runtime.uow() as uow:
        closes = {models.as_utc(t.window_closes_at) if t.window_closes_at else None
                  for t in uow.session.scalars(select(models.Ticket).where(
                      models.Ticket.status.in_((models.OPEN, models.CLAIMED))))}
    assert closes == {now + timedelta(hours=3)}
    with runtime.uow() as uow:
        tickets = list(uow.session.scalars(select(models.Ticket).order_by(models.Ticket.id)))
        assert [t.sla_state for t in tickets] == ["near", "breached", None, None, None]
        assert models.as_utc(tickets[1].sla_breached_at) == models.as_utc(tickets[1].first_response_due)
        assert [t.sla_breached_at for t in tickets if t is not tickets[1]] == [None] * 4
        today = kpis_day(now)
        [total] = [r for r in service_kpis(uow, Period(today - timedelta(days=1), today), SLA) if r["agent"] is None]
        uow.commit()
    assert total["sla_breaches"] == 1
    with runtime.uow() as uow:  # answered late, then resolved: the flag goes, the missed due time stays
        late = uow.session.get(models.Ticket, tickets[1].id)
        late.first_response_at, late.status, late.resolved_at = now, models.RESOLVED, now
        uow.commit()
    assert check_sla() == {"near": 1, "breached": 0}
    with runtime.uow() as uow:
        late = uow.session.get(models.Ticket, tickets[1].id)
        assert late.sla_state is None and late.sla_breached_at is not None


def kpis_day(moment: datetime) -> date:
    from crm_store.kpis import brand_day

    return brand_day(moment, "Asia/Shanghai")


def test_a_dashboard_takes_a_rollup_younger_than_max_age_but_the_api_is_exact(runtime, monkeypatch) -> None:
    from crm_store import kpis

    clock = {"now": at(D, 12)}
    monkeypatch.setattr(kpis, "utcnow", lambda: clock["now"])
    period = Period(D, D)
    with runtime.uow() as uow:
        s = Store(uow)
        talk = s.conversation()
        s.answer(s.says(talk, at(D, 11)), 0.1, latency_ms=10)
        uow.flush()
        assert kpis.refresh_stale(uow, period, SLA) == [D]
        s.says(talk, at(D, 12))  # a message after the rollup
        uow.flush()
        clock["now"] = at(D, 12, 3)
        assert kpis.stale_days(uow, period, SLA, max_age=timedelta(minutes=5)) == []  # young enough
        assert kpis.stale_days(uow, period, SLA) == [D]  # exact: recompute
        clock["now"] = at(D, 12, 6)
        assert kpis.stale_days(uow, period, SLA, max_age=timedelta(minutes=5)) == [D]  # too old now
