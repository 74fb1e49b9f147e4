"""The KPIs of a scripted day, as the owner's check plays one: customers write through the signed
webhook, staff work the tickets through the API, customers rate them; then `/api/v1/kpis/service`,
`/api/v1/kpis/fans` and `crmbot kpi --format json` must give the numbers worked out by hand."""
from __future__ import annotations

import json
import os

from click.testing import CliRunner
from sqlalchemy import select

from crm_store import kpis, models, staff
from tests.integration.test_api import says
from web.cli import main as crmbot


def test_a_scripted_day_gives_the_expected_kpis(client, runtime, settings) -> None:
    with runtime.uow() as uow:
        staff.create_user("sue", "supervisor", "sue-password-long", uow)
        staff.create_user("amy", "agent", "amy-password-long", uow)
        sue, amy = ({"Authorization": f"Bearer {staff.create_token(name, uow)}"} for name in ("sue", "amy"))
        uow.commit()
    # A question the bot answers; a complaint and a hand-off that staff work; a lead.
    assert says(client, "你们几点开门", openid="oScriptA")
    assert "工单号" in says(client, "我昨天买的奶茶里有异物，太恶心了", openid="oScriptB")
    assert says(client, "人工", openid="oScriptC")
    says(client, "我想加盟你们品牌，我姓李，手机13912345678", openid="oScriptD")
    tickets = client.get("/api/v1/tickets", headers=amy).json["items"]
    assert len(tickets) == 2
    for ticket, rating in zip(sorted(tickets, key=lambda t: t["reference"]), ("5", "2")):
        assert client.post(f"/api/v1/tickets/{ticket['reference']}/reply", headers=amy,
                           json={"text": "您好，马上为您处理"}).status_code == 202
        assert client.post(f"/api/v1/tickets/{ticket['reference']}/resolve", headers=amy,
                           json={"complaint_level": "minor"}).status_code == 200
    with runtime.uow() as uow:
        openid_of = {t.id: uow.identities.get(uow.conversations.get(t.conversation_id).identity_id).external_id
                     for t in uow.session.scalars(select(models.Ticket).order_by(models.Ticket.reference))}
        first_responses = sorted((models.as_utc(t.first_response_at) - models.as_utc(t.created_at)).total_seconds()
                                 for t in uow.session.scalars(select(models.Ticket)))
    for openid, rating in zip(openid_of.values(), ("5", "2")):
        says(client, rating, openid=openid)

    today = kpis.brand_day(models.utcnow(), settings.timezone)
    document = client.get(f"/api/v1/kpis/service?from={today}&to={today}&channel=wechat", headers=sue).json
    [total] = [r for r in document["items"] if r["agent"] is None]
    # Customer messages: 4 openers + 2 ratings, each answered by the bot at once.
    assert (total["response_rate"], total["response_rate_numerator"], total["response_rate_denominator"]) == \
        (1.0, 6, 6)
    assert (total["resolution_rate"], total["resolution_rate_numerator"], total["resolution_rate_denominator"]) == \
        (1.0, 2, 2)
    assert (total["satisfaction_rate"], total["satisfaction_rate_numerator"],
            total["satisfaction_rate_denominator"]) == (0.5, 1, 2)
    assert (total["csat_answer_rate"], total["csat_answer_rate_denominator"]) == (1.0, 2)
    # Four conversations, two of them with a ticket.
    assert (total["self_service_rate"], total["self_service_rate_denominator"]) == (0.5, 4)
    assert total["response_time_tickets"] == 2
    assert total["response_time_median_s"] == round(sum(first_responses) / 2, 1)
    assert total["response_time_p90_s"] == round(first_responses[-1], 1)
    assert total["bot_latency_replies"] == 6 and 0 <= total["bot_latency_p50_ms"] <= total["bot_latency_p99_ms"]
    [amy_row] = [r for r in document["items"] if r["agent"] == "amy"]
    assert (amy_row["resolution_rate"], amy_row["satisfaction_rate"]) == (1.0, 0.5)
    fans = client.get(f"/api/v1/kpis/fans?from={today}&to={today}&channel=wechat", headers=sue).json["items"]
    assert any(r["conversion_rate_denominator"] == 1 and r["conversion_rate"] == 0.0 for r in fans)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMBOT_")}
    env.update({"CRMBOT_VAR_DIR": str(settings.var_dir), "CRMBOT_DATABASE_URL": settings.database_url,
                "CRMBOT_SECRET_KEY": settings.secret_key, "CRMBOT_REDIS_URL": settings.redis_url})
    printed = CliRunner().invoke(crmbot, ["kpi", "--from", str(today), "--to", str(today), "--channel", "wechat",
                                          "--format", "json"], env=env)
    assert printed.exit_code == 0, printed.output
    [cli_total] = [r for r in json.loads(printed.output)["items"] if r["agent"] is None and r["account"]]
    assert {name: cli_total[name] for name in kpis.SERVICE} == {name: total[name] for name in kpis.SERVICE}
