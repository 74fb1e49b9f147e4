"""The JSON API of DESIGN.md over the real Flask app: tokens, roles, the ticket routes, their errors."""
from __future__ import annotations

import itertools

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from channels.wechat_push import WeChatServer, text_xml
from crm_store import models, staff
from crm_store.models import Message, Ticket
from tests.conftest import ACCOUNT, APP_ID, TOKEN
from web.cli import main as crmbot

_ids = itertools.count(7_000)
OPENID = "oApiCustomer00000000000001"


def says(client, text: str, openid: str = OPENID) -> str:  # type: ignore[no-untyped-def]
    server = WeChatServer(TOKEN, APP_ID)
    query, body = server.push(text_xml(ACCOUNT, openid, text, next(_ids)))
    response = client.post(f"/webhooks/wechat?{query}", data=body)
    assert response.status_code == 200
    return (server.read_reply(response.data) or {}).get("Content", "")


@pytest.fixture()
def tokens(runtime) -> dict[str, str]:  # type: ignore[no-untyped-def]
    made = {}
    with runtime.uow() as uow:
        for name, role in (("alice", "agent"), ("bob", "agent"), ("mia", "marketer"), ("sam", "supervisor")):
            staff.create_user(name, role, f"{name}-password-long", uow)
            made[name] = staff.create_token(name, uow)
        uow.commit()
    return made


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def complaint(client, runtime) -> str:  # type: ignore[no-untyped-def]
    assert "工单号" in says(client, "我昨天买的奶茶里有异物，太恶心了")
    with runtime.uow() as uow:
        return uow.session.scalar(select(Ticket.reference))


def test_no_token_or_a_bad_one_is_401(client, tokens) -> None:
    for headers in ({}, auth("crm_not-a-token"), {"Authorization": "Basic abc"}):
        response = client.get("/api/v1/tickets", headers=headers)
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthorized" and "token" in response.json["error"]["message"]


def test_a_revoked_token_is_401(client, runtime, tokens) -> None:
    with runtime.uow() as uow:
        staff.revoke_token(1, uow, actor="admin")  # alice's
        uow.commit()
    assert client.get("/api/v1/tickets", headers=auth(tokens["alice"])).status_code == 401
    assert client.get("/api/v1/tickets", headers=auth(tokens["bob"])).status_code == 200


def test_a_marketer_may_not_work_tickets(client, tokens, complaint) -> None:
    mia = auth(tokens["mia"])
    for method, path, body in (("get", "/api/v1/tickets", None), ("get", f"/api/v1/tickets/{complaint}", None),
                               ("post", f"/api/v1/tickets/{complaint}/reply", {"text": "hi"})):
        response = getattr(client, method)(path, headers=mia, json=body)
        assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"


def test_queue_lists_tickets_by_due_time_with_filters(client, tokens, complaint) -> None:
    says(client, "人工", openid="oApiSecond000000000000001")
    alice = auth(tokens["alice"])
    page = client.get("/api/v1/tickets", headers=alice).json
    assert [t["reference"] for t in page["items"]][0] == complaint  # the complaint is due first
    assert len(page["items"]) == 2 and page["next"] is None
    assert page["items"][0]["breached"] is False and page["items"][0]["status"] == "open"
    assert client.get("/api/v1/tickets?breached=true", headers=alice).json["items"] == []
    priority = page["items"][0]["priority"]
    same = client.get(f"/api/v1/tickets?status=open&priority={priority}", headers=alice).json["items"]
    assert complaint in [t["reference"] for t in same] and {t["priority"] for t in same} == {priority}
    assert client.get("/api/v1/tickets?assignee=bob", headers=alice).json["items"] == []


def test_a_ticket_past_its_first_response_due_is_breached(client, runtime, tokens, complaint) -> None:
    from datetime import timedelta

    with runtime.uow() as uow:
        ticket = uow.session.scalar(select(Ticket).filter_by(reference=complaint))
        ticket.first_response_due = models.utcnow() - timedelta(minutes=1)
        uow.commit()
    alice = auth(tokens["alice"])
    [late] = client.get("/api/v1/tickets?breached=true", headers=alice).json["items"]  # the SQL rule
    assert late["reference"] == complaint and late["breached"] is True  # the Python rule
    assert client.get(f"/api/v1/tickets/{complaint}", headers=alice).json["breached"] is True
    assert complaint not in [t["reference"] for t in
                             client.get("/api/v1/tickets?breached=false", headers=alice).json["items"]]
    bad = client.get("/api/v1/tickets?status=lost", headers=alice)
    assert bad.status_code == 422 and "status" in bad.json["error"]["message"]


def test_two_agents_claim_one_wins_the_other_sees_who(client, tokens, complaint) -> None:
    first = client.post(f"/api/v1/tickets/{complaint}/claim", headers=auth(tokens["alice"]))
    assert first.status_code == 200 and first.json["assignee"] == "alice" and first.json["status"] == "claimed"
    second = client.post(f"/api/v1/tickets/{complaint}/claim", headers=auth(tokens["bob"]))
    assert second.status_code == 409 and "alice" in second.json["error"]["message"]
    again = client.post(f"/api/v1/tickets/{complaint}/claim", headers=auth(tokens["alice"]))
    assert again.status_code == 200  # claiming one's own ticket again changes nothing


def test_work_a_ticket_from_claim_to_the_customers_rating(client, runtime, tokens, complaint) -> None:
    alice = auth(tokens["alice"])
    reply = client.post(f"/api/v1/tickets/{complaint}/reply", headers=alice, json={"text": "您好，我们马上处理"})
    assert reply.status_code == 202 and reply.json["delivery"] == "queued"
    with runtime.uow() as uow:
        queued = uow.session.get(Message, reply.json["message_id"])
        assert (queued.text, queued.author, queued.delivery) == ("您好，我们马上处理", "agent:alice", models.QUEUED)
    assert client.post(f"/api/v1/tickets/{complaint}/reply", headers=auth(tokens["bob"]),
                       json={"text": "我来"}).status_code == 409
    assert client.post(f"/api/v1/tickets/{complaint}/reply", headers=alice, json={"text": ""}).status_code == 422
    resolved = client.post(f"/api/v1/tickets/{complaint}/resolve", headers=alice,
                           json={"complaint_level": "minor", "compensation": "20元券", "note": "已退款"})
    assert resolved.status_code == 200 and resolved.json["status"] == "resolved"
    assert client.post(f"/api/v1/tickets/{complaint}/resolve", headers=alice, json={}).status_code == 409
    late = client.post(f"/api/v1/tickets/{complaint}/reply", headers=alice, json={"text": "还在吗"})
    assert late.status_code == 409 and "resolved" in late.json["error"]["message"]
    assert "还有什么想对我们说的" in says(client, "5")  # the customer answers the rating question
    detail = client.get(f"/api/v1/tickets/{complaint}", headers=alice).json
    assert detail["csat_score"] == 5 and detail["compensation"] == "20元券"
    assert [a["action"] for a in detail["audit"]] == ["claim", "reply", "resolve"]
    assert all(a["actor"] == "alice" for a in detail["audit"])
    texts = [m["text"] for m in detail["messages"]]
    assert texts[0] == "我昨天买的奶茶里有异物，太恶心了" and "您好，我们马上处理" in texts and texts[-1]
    assert any(complaint in t and "1-5" in t for t in texts)  # the rating question, in the conversation


def test_unknown_ticket_is_404(client, tokens) -> None:
    response = client.get("/api/v1/tickets/T20000101-9999", headers=auth(tokens["sam"]))
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def test_openapi_document_is_generated_from_the_routes(client) -> None:
    document = client.get("/api/v1/openapi.json").json
    assert {"/api/v1/tickets", "/api/v1/tickets/{reference}", "/api/v1/tickets/{reference}/claim",
            "/api/v1/tickets/{reference}/reply", "/api/v1/tickets/{reference}/resolve",
            "/api/v1/tickets/{reference}/assign", "/api/v1/tickets/{reference}/notes", "/api/v1/customers",
            "/api/v1/customers/{customer_id}", "/api/v1/customers/{customer_id}/merge", "/api/v1/merges/{merge_id}/undo",
            "/api/v1/conversations/{conversation_id}/messages", "/api/v1/members/{member_id}/points",
            "/api/v1/leads", "/api/v1/leads/{lead_id}", "/api/v1/audit", "/api/v1/mentions",
            "/api/v1/mentions/{mention_id}", "/api/v1/mentions/{mention_id}/reply", "/api/v1/mentions/{mention_id}/ticket",
            "/api/v1/mentions/{mention_id}/lead", "/api/v1/watch-terms", "/api/v1/watch-terms/{term_id}",
            "/api/v1/poll-runs"} <= set(document["paths"])
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_crmbot_user_and_token_commands(settings, runtime) -> None:
    env = {"CRMBOT_VAR_DIR": str(settings.var_dir), "CRMBOT_DATABASE_URL": settings.database_url,
           "CRMBOT_REDIS_URL": settings.redis_url, "CRMBOT_SECRET_KEY": settings.secret_key}
    made = CliRunner().invoke(crmbot, ["user", "create", "carol", "--role", "agent"], input="carol-password-1\n",
                              env=env)
    assert made.exit_code == 0, made.output
    short = CliRunner().invoke(crmbot, ["user", "create", "dave", "--role", "agent"], input="short\n", env=env)
    assert short.exit_code != 0 and "10 characters" in short.output
    issued = CliRunner().invoke(crmbot, ["token", "create", "carol"], env=env)
    assert issued.exit_code == 0, issued.output
    secret = issued.output.strip().splitlines()[-1]
    with runtime.uow() as uow:
        assert staff.user_for_token(secret, uow).name == "carol"
        assert staff.authenticate("carol", "carol-password-1", uow) is not None
        assert staff.authenticate("carol", "wrong-password", uow) is None
        assert secret not in str(uow.session.scalars(select(models.ApiToken.token_hash)).all())  # hashed at rest


def test_an_api_reply_reaches_wechat_through_a_real_worker(tmp_path, database_url, redis_url, redis) -> None:
    """The owner's path: a complaint through the signed webhook; an agent's token claims, replies and
    resolves through the API; `crmbot worker` sends both messages to (a fake of) WeChat's API."""
    from tests.conftest import make_settings
    from tests.fakes.wechat_api import FakeWeChatAPI
    from tests.integration.test_wechat_send import SECRET, run_worker
    from web.app import create_app
    from workers.runtime import Runtime

    with FakeWeChatAPI(APP_ID, SECRET) as fake:
        settings = make_settings(tmp_path, database_url, redis_url, wechat_api_base=fake.base_url,
                                 wechat_app_secret=SECRET)
        runtime = Runtime.build(settings)
        try:
            client = create_app(settings, runtime).test_client()
            says(client, "牛奶是酸的，孩子喝了吐了")
            with runtime.uow() as uow:
                staff.create_user("alice", "agent", "alice-password-long", uow)
                agent = auth(staff.create_token("alice", uow))
                reference = uow.session.scalar(select(Ticket.reference))
                uow.commit()
            assert client.post(f"/api/v1/tickets/{reference}/claim", headers=agent).status_code == 200
            assert client.post(f"/api/v1/tickets/{reference}/reply", headers=agent,
                               json={"text": "非常抱歉，已为您安排退款"}).status_code == 202
            assert client.post(f"/api/v1/tickets/{reference}/resolve", headers=agent, json={}).status_code == 200
            run_worker(runtime, fake)
            sent = [m["text"]["content"] for m in fake.sent]
            assert sent[0] == "非常抱歉，已为您安排退款" and reference in sent[1] and "1-5" in sent[1]
            assert all(m["touser"] == OPENID for m in fake.sent)
            says(client, "4")
            detail = client.get(f"/api/v1/tickets/{reference}", headers=agent).json
            assert detail["csat_score"] == 4
            assert {m["delivery"] for m in detail["messages"] if m["author"] == "agent:alice"} == {"sent"}
        finally:
            runtime.engine.dispose()


def _customer_id(runtime, openid: str = OPENID) -> int:  # type: ignore[no-untyped-def]
    with runtime.uow() as uow:
        return uow.identities.find("wechat", ACCOUNT, openid).customer_id


def test_customer_search_and_360_view_with_phones_masked_for_agents(client, runtime, tokens, complaint) -> None:
    from crm_store import membership

    customer_id = _customer_id(runtime)
    with runtime.uow() as uow:
        member, _ = membership.bind_member(customer_id, "13812345678", uow)
        membership.add_points(member.id, "earn", 300, "门店消费", "api-test-1", uow)
        uow.commit()
    alice, sam = auth(tokens["alice"]), auth(tokens["sam"])
    for q in (OPENID, "13812345678", member.card_no):
        found = client.get(f"/api/v1/customers?q={q}", headers=alice).json["items"]
        assert [c["id"] for c in found] == [customer_id], q
    assert client.get("/api/v1/customers?q=nobody-like-this", headers=alice).json["items"] == []
    assert client.get("/api/v1/customers", headers=alice).status_code == 422  # q is required
    view = client.get(f"/api/v1/customers/{customer_id}", headers=alice).json
    assert view["phone"] == "138****5678"  # an agent reaches the customer on the channel
    assert client.get(f"/api/v1/customers/{customer_id}", headers=sam).json["phone"] == "13812345678"
    assert [i["external_id"] for i in view["identities"]] == [OPENID]
    assert view["member"]["balance"] == 300 and view["member"]["card_no"] == member.card_no
    assert [t["reference"] for t in view["tickets"]] == [complaint]
    assert view["recent_messages"][0]["text"] == "我昨天买的奶茶里有异物，太恶心了"
    points = client.get(f"/api/v1/members/{member.id}/points", headers=alice).json
    assert points["balance"] == 300 and [e["reason"] for e in points["history"]] == ["门店消费"]
    assert client.get("/api/v1/customers/999999", headers=alice).status_code == 404
    assert client.get("/api/v1/members/999999/points", headers=alice).status_code == 404
    assert client.get(f"/api/v1/customers/{customer_id}", headers=auth(tokens["mia"])).status_code == 403
    assert [m["label"] for m in view["sentiment"]] == ["neg"]  # the customer's one message, read by the model


def test_conversation_messages_in_order(client, runtime, tokens, complaint) -> None:
    with runtime.uow() as uow:
        conversation_id = uow.session.scalar(select(Ticket.conversation_id))
    messages = client.get(f"/api/v1/conversations/{conversation_id}/messages", headers=auth(tokens["alice"])).json
    assert [m["direction"] for m in messages][:2] == ["in", "out"] and messages[1]["delivery"] == "passive"
    assert client.get("/api/v1/conversations/999999/messages", headers=auth(tokens["alice"])).status_code == 404


def test_leads_for_marketers_and_their_pipeline(client, runtime, tokens) -> None:
    says(client, "我姓李，手机13912345678，想谈谈加盟", openid="oLeadCustomer0000000000001")
    mia = auth(tokens["mia"])
    [lead] = client.get("/api/v1/leads", headers=mia).json["items"]
    assert lead["phone"] == "13912345678" and lead["status"] == "new" and "加盟" in lead["interest"]
    assert client.get("/api/v1/leads", headers=auth(tokens["alice"])).status_code == 403  # agents do not
    moved = client.patch(f"/api/v1/leads/{lead['id']}", headers=mia, json={"status": "contacted"})
    assert moved.status_code == 200 and moved.json["status"] == "contacted"
    assert client.get("/api/v1/leads?status=new", headers=mia).json["items"] == []
    assert client.patch(f"/api/v1/leads/{lead['id']}", headers=mia, json={"status": "won"}).status_code == 422
    assert client.patch("/api/v1/leads/999999", headers=mia, json={"status": "lost"}).status_code == 404
    with runtime.uow() as uow:
        [entry] = uow.session.scalars(select(models.AuditEntry).filter_by(action="lead.status")).all()
        assert (entry.actor, entry.target_id, entry.detail) == ("mia", str(lead["id"]), {"status": "contacted"})


def test_api_errors_keep_their_shape_when_the_store_is_down(tmp_path, redis_url, redis) -> None:
    from tests.conftest import make_settings
    from web.app import create_app
    from workers.runtime import Runtime

    settings = make_settings(tmp_path, "postgresql+psycopg://crmbot@127.0.0.1:1/crmbot", redis_url)
    runtime = Runtime.build(settings)
    response = create_app(settings, runtime).test_client().get("/api/v1/tickets", headers=auth("crm_x"))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.json["error"]["code"] == "service_unavailable" and "store" in response.json["error"]["message"]
    runtime.engine.dispose()


def test_assign_transfer_and_notes(client, runtime, tokens, complaint) -> None:
    alice, bob, sam = (auth(tokens[name]) for name in ("alice", "bob", "sam"))
    base = f"/api/v1/tickets/{complaint}"
    assert client.post(f"{base}/claim", headers=alice).status_code == 200
    taken = client.post(f"{base}/assign", headers=bob, json={"assignee": "bob"})
    assert taken.status_code == 409 and "alice" in taken.json["error"]["message"]
    assert client.post(f"{base}/assign", headers=alice, json={"assignee": "mia"}).status_code == 400  # a marketer
    assert client.post(f"{base}/assign", headers=alice, json={"assignee": "bob"}).json["assignee"] == "bob"
    assert client.post(f"{base}/assign", headers=sam, json={"assignee": "alice"}).json["assignee"] == "alice"
    assert client.post(f"{base}/assign", headers=alice, json={}).status_code == 422
    note = client.post(f"{base}/notes", headers=bob, json={"text": "客户要求门店店长回电"})
    assert note.status_code == 201 and note.json["author"] == "bob"
    assert client.post(f"{base}/notes", headers=bob, json={"text": ""}).status_code == 422
    assert client.post(f"{base}/notes", headers=auth(tokens["mia"]), json={"text": "x"}).status_code == 403
    detail = client.get(base, headers=alice).json
    assert [n["text"] for n in detail["notes"]] == ["客户要求门店店长回电"]
    assert [(a["actor"], a["action"]) for a in detail["audit"]] == [
        ("alice", "claim"), ("alice", "transfer"), ("sam", "assign"), ("bob", "note")]
    assert detail["channel"] == "wechat" and detail["reply_window_closes_at"] is not None


def test_resolve_with_category_and_points_once(client, runtime, tokens, complaint) -> None:
    from crm_store import membership

    alice = auth(tokens["alice"])
    base = f"/api/v1/tickets/{complaint}"
    refused = client.post(f"{base}/resolve", headers=alice, json={"compensation_points": 100})
    assert refused.status_code == 400 and "membership card" in refused.json["error"]["message"]
    with runtime.uow() as uow:
        member, _ = membership.bind_member(_customer_id(runtime), "13812340000", uow)
        uow.commit()
    assert client.post(f"{base}/resolve", headers=alice, json={"compensation_points": -1}).status_code == 422
    done = client.post(f"{base}/resolve", headers=alice, json={
        "complaint_level": "minor", "category": "quality", "compensation": "满30减10券", "compensation_points": 100})
    assert done.status_code == 200 and done.json["category"] == "quality"
    assert done.json["compensation"] == "满30减10券; 100 points"
    assert client.post(f"{base}/resolve", headers=alice, json={"compensation_points": 100}).status_code == 409
    points = client.get(f"/api/v1/members/{member.id}/points", headers=alice).json
    assert points["balance"] == 100 and [e["kind"] for e in points["history"]] == ["adjust"]


def test_merge_and_undo_through_the_api(client, runtime, tokens, complaint) -> None:
    says(client, "你好", openid="oApiMergeOther000000000001")
    alice = auth(tokens["alice"])
    first = _customer_id(runtime)
    second = _customer_id(runtime, "oApiMergeOther000000000001")
    merged = client.post(f"/api/v1/customers/{second}/merge", headers=alice, json={"into": first, "reason": "同一人"})
    assert merged.status_code == 201 and merged.json["into_customer_id"] == first
    view = client.get(f"/api/v1/customers/{first}", headers=alice).json
    assert len(view["identities"]) == 2 and view["merges"][0]["id"] == merged.json["id"]
    assert client.post(f"/api/v1/customers/{first}/merge", headers=alice,
                       json={"into": first, "reason": "x"}).status_code == 400
    assert client.post(f"/api/v1/customers/{first}/merge", headers=alice,
                       json={"into": 999999, "reason": "x"}).status_code == 404
    undo = f"/api/v1/merges/{merged.json['id']}/undo"
    assert client.post(undo, headers=alice).json["reverted_at"] is not None
    assert client.post(undo, headers=alice).status_code == 409
    assert client.post("/api/v1/merges/999999/undo", headers=alice).status_code == 404
    assert len(client.get(f"/api/v1/customers/{first}", headers=alice).json["identities"]) == 1


def test_audit_log_for_supervisors_only(client, tokens, complaint) -> None:
    client.post(f"/api/v1/tickets/{complaint}/claim", headers=auth(tokens["alice"]))
    assert client.get("/api/v1/audit", headers=auth(tokens["alice"])).status_code == 403
    log = client.get("/api/v1/audit?actor=alice", headers=auth(tokens["sam"])).json
    assert [(e["action"], e["target_id"]) for e in log["items"]] == [("claim", complaint)]


def test_a_rating_answered_hours_later_in_english_lands(client, runtime, tokens) -> None:
    from datetime import timedelta

    openid = "oApiEnglishLate00000000001"
    assert "case" in says(client, "The milk in my latte was sour and my kid threw up", openid=openid).lower()
    with runtime.uow() as uow:
        reference = uow.session.scalar(select(Ticket.reference))
        # The customer's last words were long ago: the bot's short-lived conversation state is gone.
        uow.session.execute(models.ChannelIdentity.__table__.update().values(state=None, state_expires_at=None))
        uow.commit()
    alice = auth(tokens["alice"])
    assert client.post(f"/api/v1/tickets/{reference}/resolve", headers=alice, json={}).status_code == 200
    with runtime.uow() as uow:
        question = uow.session.scalar(select(Message).filter_by(author="bot", delivery="queued"))
        assert question.text.startswith("Your request") and reference in question.text  # in English
        # Five hours on: past the 30-minute conversation time, within the rating window.
        expires = uow.session.scalar(select(models.ChannelIdentity.state_expires_at))
        assert expires.replace(tzinfo=None) - models.utcnow().replace(tzinfo=None) > timedelta(hours=20)
        uow.session.execute(models.ChannelIdentity.__table__.update().values(
            state_expires_at=models.utcnow() + timedelta(hours=19)))
        uow.commit()
    says(client, "4", openid=openid)
    assert client.get(f"/api/v1/tickets/{reference}", headers=alice).json["csat_score"] == 4


def test_two_claims_at_the_same_moment_one_wins_the_other_learns_who(runtime, tokens, complaint) -> None:
    import threading

    from crm_store import services
    from tests.lock_waits import wait_for_lock_waiter

    with runtime.uow() as uow:
        ticket_id = uow.session.scalar(select(Ticket.id).filter_by(reference=complaint))
    alice_holds, release = threading.Event(), threading.Event()
    outcome: dict[str, str | None] = {}

    def alice() -> None:
        with runtime.uow() as uow:
            services.claim_ticket(ticket_id, "alice", uow)
            alice_holds.set()
            release.wait(10)  # bob's claim is waiting on the ticket's lock now
            uow.commit()
        outcome["alice"] = "won"

    def bob() -> None:
        with runtime.uow() as uow:
            try:
                services.claim_ticket(ticket_id, "bob", uow)
                uow.commit()
                outcome["bob"] = "won"
            except services.TicketConflict as exc:
                outcome["bob"] = exc.holder

    first = threading.Thread(target=alice)
    first.start()
    assert alice_holds.wait(10)
    second = threading.Thread(target=bob)
    second.start()
    wait_for_lock_waiter(runtime.engine)  # proof that the two claims overlap
    release.set()
    first.join(10)
    second.join(10)
    assert outcome == {"alice": "won", "bob": "alice"}
    with runtime.uow() as uow:
        assert uow.session.get(Ticket, ticket_id).assignee == "alice"
