"""The marketer's side of listening over the real Flask app, on both stores: mentions polled from
the fake Weibo and Twitter servers through the real adapters, read and filtered through
``/api/v1/mentions``; public replies that go through the outbox and reach the fake servers with
the right parameters; mentions turned into tickets and leads by hand; watch terms; the leads
pipeline; the poll record."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
from redis import Redis
from sqlalchemy import select

from crm_store import listening, models, staff
from crm_store.models import Message
from nlp import analysis
from tests.conftest import make_settings
from tests.fakes.twitter_api import FakeTwitterAPI
from tests.fakes.weibo_api import FakeWeiboAPI
from web.app import create_app
from workers import jobs
from workers.listening import listener_for
from workers.runtime import Runtime

COMPLAINT = "@品牌官方微博 奶茶里有头发！太恶心了，要投诉，退款"
LEAD = "@品牌官方微博 想加盟你们品牌，怎么联系招商？"
PRAISE = "@品牌官方微博 新品芝士奶盖太好喝了，推荐大家"


@pytest.fixture(scope="module", autouse=True)
def models_loaded() -> None:
    analysis.load()


@pytest.fixture()
def fakes() -> Iterator[tuple[FakeWeiboAPI, FakeTwitterAPI]]:
    with FakeWeiboAPI() as weibo, FakeTwitterAPI() as twitter:
        yield weibo, twitter


@pytest.fixture()
def rt(tmp_path: Path, database_url: str, redis_url: str, redis: Redis, fakes, monkeypatch) -> Iterator[Runtime]:
    weibo, twitter = fakes
    settings = make_settings(
        tmp_path, database_url, redis_url, weibo_access_token=weibo.access_token, weibo_uid=weibo.uid,
        weibo_api_base=weibo.base_url, twitter_bearer_token=twitter.bearer_token, twitter_user_id=twitter.user_id,
        twitter_api_base=twitter.base_url, twitter_consumer_key=twitter.consumer_key,
        twitter_consumer_secret="test-consumer-secret", twitter_access_token="test-access-token",
        twitter_access_token_secret="test-access-secret")
    runtime = Runtime.build(settings)
    monkeypatch.setattr(jobs, "RUNTIME", runtime)  # the send job runs in this process
    yield runtime
    runtime.engine.dispose()


@pytest.fixture()
def api(rt: Runtime):  # type: ignore[no-untyped-def]
    return create_app(rt.settings, rt).test_client()


@pytest.fixture()
def tokens(rt: Runtime) -> dict[str, str]:
    made = {}
    with rt.uow() as uow:
        for name, role in (("mia", "marketer"), ("alice", "agent"), ("sam", "supervisor"), ("ada", "admin")):
            staff.create_user(name, role, f"{name}-password-long", uow)
            made[name] = staff.create_token(name, uow)
        uow.commit()
    return made


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def poll(rt: Runtime, channel: str) -> None:
    listener_for(channel, rt.settings, rt.uow, rt.content.rules).poll(force=True)


def all_mentions(api, token: str, query: str = "") -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    items, url = [], f"/api/v1/mentions{query}"
    while url:
        page = api.get(url, headers=auth(token))
        assert page.status_code == 200, page.json
        items += page.json["items"]
        url = page.json["next"]
    return items


def sent(rt: Runtime, message_id: int) -> Message:
    assert jobs.send_outbound(message_id) == models.SENT
    with rt.uow() as uow:
        return uow.session.get(Message, message_id)


# ---------------------------------------------------------------------------------- reading
def test_mentions_are_listed_with_exact_ids_and_what_they_became(api, rt, fakes, tokens) -> None:
    weibo, twitter = fakes
    big = weibo.add_user("美食博主", followers=250_000, verified=True)
    complaint = weibo.mention_post(COMPLAINT, big)
    lead = weibo.mention_post(LEAD)
    praise = weibo.mention_post(PRAISE)
    fan = twitter.add_user("teafan", followers=12)
    tweet = twitter.add_tweet("@brand love the new cheese foam tea!", fan)
    poll(rt, "weibo")
    poll(rt, "twitter")
    mia = tokens["mia"]
    items = {m["external_id"]: m for m in all_mentions(api, mia)}
    assert set(items) == {complaint["idstr"], lead["idstr"], praise["idstr"], tweet}  # strings, exact
    assert int(complaint["idstr"]) > 2 ** 53
    filed = items[complaint["idstr"]]
    assert filed["ticket_reference"] and filed["lead_id"] is None and filed["sentiment"] == "neg"
    assert (filed["author_screen_name"], filed["author_followers"], filed["author_verified"]) == ("美食博主", 250_000, True)
    assert items[lead["idstr"]]["lead_id"] is not None and items[lead["idstr"]]["ticket_reference"] is None
    # The link, the other way: the ticket and the lead name their mention.
    ticket = api.get(f"/api/v1/tickets/{filed['ticket_reference']}", headers=auth(tokens["alice"])).json
    assert ticket["mention_id"] == filed["id"] and ticket["channel"] == "weibo" and ticket["source"] == "mention"
    leads = api.get("/api/v1/leads", headers=auth(mia)).json["items"]
    assert [(x["id"], x["mention_id"], x["source_channel"]) for x in leads] == \
        [(items[lead["idstr"]]["lead_id"], items[lead["idstr"]]["id"], "weibo")]
    # Filters.
    assert [m["external_id"] for m in all_mentions(api, mia, "?channel=twitter")] == [tweet]
    assert [m["external_id"] for m in all_mentions(api, mia, "?linked=ticket")] == [complaint["idstr"]]
    assert [m["external_id"] for m in all_mentions(api, mia, "?min_followers=100000")] == [complaint["idstr"]]
    assert complaint["idstr"] in [m["external_id"] for m in all_mentions(api, mia, "?sentiment=neg")]
    assert complaint["idstr"] not in [m["external_id"] for m in all_mentions(api, mia, "?sentiment=pos")]
    assert {m["external_id"] for m in all_mentions(api, mia, "?linked=none")} == {praise["idstr"], tweet}
    [listed] = api.get("/api/v1/tickets?channel=weibo", headers=auth(tokens["alice"])).json["items"]
    assert (listed["reference"], listed["mention_id"], listed["breached"]) == (filed["ticket_reference"], filed["id"],
                                                                             False)


def test_mentions_page_and_refuse_bad_filters_and_roles(api, rt, fakes, tokens) -> None:
    weibo, _ = fakes
    for n in range(55):
        weibo.mention_post(f"@品牌官方微博 打卡第{n}天")
    poll(rt, "weibo")
    first = api.get("/api/v1/mentions", headers=auth(tokens["mia"])).json
    assert len(first["items"]) == 50 and first["next"]
    assert len(all_mentions(api, tokens["mia"])) == 55
    for query in ("?sentiment=angry", "?min_followers=-1", "?linked=maybe", "?page=0"):
        bad = api.get(f"/api/v1/mentions{query}", headers=auth(tokens["mia"]))
        assert bad.status_code == 422 and bad.json["error"]["message"]
    assert api.get("/api/v1/mentions", headers=auth(tokens["alice"])).status_code == 403  # agents work tickets
    assert api.get("/api/v1/mentions").status_code == 401
    assert api.get("/api/v1/mentions/999999", headers=auth(tokens["mia"])).status_code == 404


# ---------------------------------------------------------------------------------- replying
def test_a_reply_to_a_weibo_comment_reaches_the_fake_as_a_comment_reply(api, rt, fakes, tokens) -> None:
    weibo, _ = fakes
    comment = weibo.mention_comment("@品牌官方微博 请问周末有活动吗？")
    post = weibo.mention_post(PRAISE)
    poll(rt, "weibo")
    by_id = {m["external_id"]: m for m in all_mentions(api, tokens["mia"])}
    queued = api.post(f"/api/v1/mentions/{by_id[comment['idstr']]['id']}/reply", headers=auth(tokens["mia"]),
                      json={"text": "周末第二杯半价，欢迎来店～"})
    assert queued.status_code == 202 and queued.json["delivery"] == "queued"
    assert weibo.replies == []  # nothing is sent from the web request: the outbox does it
    message = sent(rt, queued.json["message_id"])
    assert message.author == "agent:mia" and message.direction == "out"
    assert weibo.replies == [{"endpoint": "comments/reply", "id": comment["status"]["idstr"], "cid": comment["idstr"],
                              "comment": "周末第二杯半价，欢迎来店～", "created_id": weibo.replies[0]["created_id"]}]
    on_post = api.post(f"/api/v1/mentions/{by_id[post['idstr']]['id']}/reply", headers=auth(tokens["mia"]),
                       json={"text": "谢谢喜欢！"})
    sent(rt, on_post.json["message_id"])
    assert weibo.replies[1]["endpoint"] == "comments/create" and weibo.replies[1]["id"] == post["idstr"]
    detail = api.get(f"/api/v1/mentions/{by_id[comment['idstr']]['id']}", headers=auth(tokens["mia"])).json
    assert [(r["text"], r["delivery"]) for r in detail["replies"]] == [("周末第二杯半价，欢迎来店～", "sent")]
    audit = api.get("/api/v1/audit?actor=mia", headers=auth(tokens["sam"])).json["items"]
    assert [a["action"] for a in audit].count("mention.reply") == 2


def test_a_reply_tweet_reaches_the_fake_with_in_reply_to_and_user_keys(api, rt, fakes, tokens) -> None:
    _, twitter = fakes
    fan = twitter.add_user("latte_lover")
    tweet = twitter.add_tweet("@brand where can I buy your oolong latte in Shanghai?", fan)
    poll(rt, "twitter")
    [mention] = all_mentions(api, tokens["mia"])
    queued = api.post(f"/api/v1/mentions/{mention['id']}/reply", headers=auth(tokens["mia"]),
                      json={"text": "Hi! Any of our 40 Shanghai stores has it."})
    assert sent(rt, queued.json["message_id"]).delivery == models.SENT
    [posted] = twitter.posted
    assert (posted["text"], posted["in_reply_to_tweet_id"]) == ("Hi! Any of our 40 Shanghai stores has it.", tweet)
    assert posted["authorization"].startswith("OAuth ")  # user context, not the app's bearer token


def test_a_failed_public_reply_keeps_its_state_and_error(api, rt, fakes, tokens) -> None:
    weibo, _ = fakes
    post = weibo.mention_post(PRAISE)
    poll(rt, "weibo")
    [mention] = all_mentions(api, tokens["mia"])
    weibo.delete_status(post["idstr"])
    queued = api.post(f"/api/v1/mentions/{mention['id']}/reply", headers=auth(tokens["mia"]), json={"text": "谢谢！"})
    state = jobs.send_outbound(queued.json["message_id"])
    assert state != models.SENT and weibo.replies == []
    with rt.uow() as uow:
        message = uow.session.get(Message, queued.json["message_id"])
        assert message.delivery == state and "20101" in (message.delivery_error or "")


def test_an_agents_reply_to_a_mention_ticket_goes_public_and_no_rating_is_asked(api, rt, fakes, tokens) -> None:
    weibo, _ = fakes
    post = weibo.mention_post(COMPLAINT)
    poll(rt, "weibo")
    [mention] = all_mentions(api, tokens["mia"])
    reference, alice = mention["ticket_reference"], auth(tokens["alice"])
    reply = api.post(f"/api/v1/tickets/{reference}/reply", headers=alice, json={"text": "非常抱歉，已私信您处理"})
    assert reply.status_code == 202
    sent(rt, reply.json["message_id"])
    assert [(r["endpoint"], r["id"], r["comment"]) for r in weibo.replies] == \
        [("comments/create", post["idstr"], "非常抱歉，已私信您处理")]
    ticket = api.get(f"/api/v1/tickets/{reference}", headers=alice).json
    assert ticket["status"] == "claimed" and ticket["assignee"] == "alice" and ticket["first_response_at"]
    assert "reply" in [a["action"] for a in ticket["audit"]]
    resolved = api.post(f"/api/v1/tickets/{reference}/resolve", headers=alice, json={"complaint_level": "minor"})
    assert resolved.status_code == 200
    with rt.uow() as uow:  # a rating question is not posted in public
        outbound = list(uow.session.scalars(select(Message.text).filter_by(direction="out")))
    assert outbound == ["非常抱歉，已私信您处理"]


def test_a_reply_needs_text_and_a_mention_that_can_be_answered(api, rt, fakes, tokens) -> None:
    weibo, _ = fakes
    weibo.mention_post(PRAISE)
    poll(rt, "weibo")
    [mention] = all_mentions(api, tokens["mia"])
    mia = auth(tokens["mia"])
    assert api.post(f"/api/v1/mentions/{mention['id']}/reply", headers=mia, json={"text": ""}).status_code == 422
    assert api.post(f"/api/v1/mentions/{mention['id']}/reply", headers=mia, json={}).status_code == 422
    assert api.post(f"/api/v1/mentions/{mention['id']}/reply", headers=mia,
                    json={"text": "   "}).status_code == 400
    assert api.post("/api/v1/mentions/424242/reply", headers=mia, json={"text": "hi"}).status_code == 404
    with rt.uow() as uow:
        uow.session.get(models.Mention, mention["id"]).deleted = True
        uow.commit()
    gone = api.post(f"/api/v1/mentions/{mention['id']}/reply", headers=mia, json={"text": "hi"})
    assert gone.status_code == 400 and "deleted" in gone.json["error"]["message"]
    with rt.uow() as uow:
        assert uow.session.scalar(select(Message.id).filter_by(direction="out")) is None


# ---------------------------------------------------------------------------------- by hand
def test_a_mention_becomes_a_ticket_or_a_lead_by_hand_once(api, rt, fakes, tokens) -> None:
    weibo, _ = fakes
    big = weibo.add_user("大V", followers=500_000)
    quiet = weibo.mention_post("@品牌官方微博 今天外卖送到的时候杯子是漏的", big)
    asks = weibo.mention_post("@品牌官方微博 公司团建想订50杯，有优惠吗")
    poll(rt, "weibo")
    by_id = {m["external_id"]: m for m in all_mentions(api, tokens["mia"])}
    mia = auth(tokens["mia"])
    target = by_id[quiet["idstr"]]
    if target["ticket_reference"] is None:
        made = api.post(f"/api/v1/mentions/{target['id']}/ticket", headers=mia)
        assert made.status_code == 201 and made.json["source"] == "mention"
        assert made.json["priority"] in ("P1", "P2")  # an influential author jumps the queue
        reference = made.json["reference"]
    else:
        reference = target["ticket_reference"]
    again = api.post(f"/api/v1/mentions/{target['id']}/ticket", headers=mia)
    assert again.status_code == 409 and "ticket already" in again.json["error"]["message"]
    assert api.get(f"/api/v1/mentions/{target['id']}", headers=mia).json["ticket_reference"] == reference
    lead_target = by_id[asks["idstr"]]
    if lead_target["lead_id"] is None:
        lead = api.post(f"/api/v1/mentions/{lead_target['id']}/lead", headers=mia)
        assert lead.status_code == 201 and lead.json["source_channel"] == "weibo"
    assert api.post(f"/api/v1/mentions/{lead_target['id']}/lead", headers=mia).status_code == 409
    assert api.post(f"/api/v1/mentions/{target['id']}/lead", headers=mia).status_code == 201
    assert api.post("/api/v1/mentions/31337/ticket", headers=mia).status_code == 404
    assert api.post(f"/api/v1/mentions/{target['id']}/ticket", headers=auth(tokens["alice"])).status_code == 403


# ---------------------------------------------------------------------------------- watch terms
def test_watch_terms_are_managed_and_matched_from_the_next_poll(api, rt, fakes, tokens) -> None:
    weibo, _ = fakes
    mia = auth(tokens["mia"])
    made = api.post("/api/v1/watch-terms", headers=mia, json={"term": "  芝士  奶盖 ", "kind": "product"})
    assert made.status_code == 201 and made.json["term"] == "芝士 奶盖" and made.json["active"] is True
    rival = api.post("/api/v1/watch-terms", headers=mia, json={"term": "Rival Tea", "kind": "competitor"}).json
    assert [t["term"] for t in api.get("/api/v1/watch-terms", headers=mia).json["items"]] == ["rival tea", "芝士 奶盖"]
    for body in ({"term": "x", "kind": "enemy"}, {"term": "", "kind": "brand"}, {"kind": "brand"},
                 {"term": "y" * 65, "kind": "brand"}):
        bad = api.post("/api/v1/watch-terms", headers=mia, json=body)
        assert bad.status_code == 422, body
    weibo.mention_post("@品牌官方微博 比 rival tea 好喝多了")
    weibo.mention_post("@品牌官方微博 今天没什么特别的")
    poll(rt, "weibo")
    matched = all_mentions(api, tokens["mia"], "?watch_term=rival%20tea")
    assert len(matched) == 1 and matched[0]["watch_terms"] == ["rival tea"]
    assert all_mentions(api, tokens["mia"], "?watch_term=rival") == []  # a whole term, not a part
    assert api.delete(f"/api/v1/watch-terms/{rival['id']}", headers=mia).status_code == 204
    assert [t["term"] for t in api.get("/api/v1/watch-terms", headers=mia).json["items"]] == ["芝士 奶盖"]
    assert len(all_mentions(api, tokens["mia"], "?watch_term=rival%20tea")) == 1  # the match is kept
    assert api.delete("/api/v1/watch-terms/777", headers=mia).status_code == 404
    assert api.post("/api/v1/watch-terms", headers=auth(tokens["alice"]),
                    json={"term": "z", "kind": "brand"}).status_code == 403
    actions = [a["action"] for a in api.get("/api/v1/audit?actor=mia", headers=auth(tokens["sam"])).json["items"]]
    assert actions.count("watch_term.add") == 2 and actions.count("watch_term.remove") == 1


# ---------------------------------------------------------------------------------- leads, polls
def test_leads_are_assigned_and_converted(api, rt, fakes, tokens) -> None:
    weibo, _ = fakes
    weibo.mention_post(LEAD)
    poll(rt, "weibo")
    mia = auth(tokens["mia"])
    [lead] = api.get("/api/v1/leads", headers=mia).json["items"]
    assigned = api.patch(f"/api/v1/leads/{lead['id']}", headers=mia, json={"assignee": "mia", "status": "contacted"})
    assert assigned.status_code == 200 and (assigned.json["assignee"], assigned.json["status"]) == ("mia", "contacted")
    assert assigned.json["converted_at"] is None
    converted = api.patch(f"/api/v1/leads/{lead['id']}", headers=mia, json={"status": "converted"}).json
    assert converted["converted_at"] and converted["mention_id"] == lead["mention_id"]
    assert api.patch(f"/api/v1/leads/{lead['id']}", headers=mia, json={"assignee": "alice"}).status_code == 400
    assert api.patch(f"/api/v1/leads/{lead['id']}", headers=mia, json={"assignee": "nobody"}).status_code == 400
    assert api.patch(f"/api/v1/leads/{lead['id']}", headers=mia, json={}).status_code == 422
    assert api.patch("/api/v1/leads/9999", headers=mia, json={"status": "lost"}).status_code == 404
    unassigned = api.patch(f"/api/v1/leads/{lead['id']}", headers=mia, json={"assignee": None}).json
    assert unassigned["assignee"] is None


def test_the_poll_record_shows_fetched_new_errors_and_cursors(api, rt, fakes, tokens) -> None:
    weibo, _ = fakes
    posts = [weibo.mention_post(f"@品牌官方微博 第{i}条") for i in range(3)]
    poll(rt, "weibo")
    weibo.rate_limit_next(1)
    poll(rt, "weibo")
    runs = api.get("/api/v1/poll-runs?channel=weibo", headers=auth(tokens["mia"])).json["items"]
    first = [r for r in runs if r["source"] == "statuses"][-1]
    assert (first["outcome"], first["fetched"], first["new"]) == ("ok", 3, 3)
    assert (first["cursor_before"], first["cursor_after"]) == (None, posts[-1]["idstr"])
    assert any(r["source"] == "followers" for r in runs)
    assert api.get("/api/v1/poll-runs", headers=auth(tokens["alice"])).status_code == 403


def test_wechat_followers_are_counted_from_subscribe_and_unsubscribe_events(api, rt) -> None:
    from channels.wechat_push import WeChatServer, event_xml
    from crm_store.references import SHANGHAI
    from tests.conftest import ACCOUNT, APP_ID, TOKEN
    from workers.listening import snapshot_wechat_followers

    server = WeChatServer(TOKEN, APP_ID)
    for n, (openid, event) in enumerate((("oFan1", "subscribe"), ("oFan2", "subscribe"), ("oFan3", "subscribe"),
                                         ("oFan2", "unsubscribe"), ("oFan2", "subscribe"), ("oFan3", "unsubscribe"))):
        query, body = server.push(event_xml(ACCOUNT, openid, event, create_time=1_700_000_000 + n))
        assert api.post(f"/webhooks/wechat?{query}", data=body).status_code == 200
    today = models.utcnow().astimezone(SHANGHAI).date()
    assert snapshot_wechat_followers() == {ACCOUNT: 2}  # no earlier count: those the events left subscribed
    with rt.uow() as uow:
        [snapshot] = uow.session.scalars(select(models.FollowerSnapshot).filter_by(channel="wechat"))
        assert (snapshot.account, snapshot.followers, snapshot.day) == (ACCOUNT, 2, today)
        # With yesterday's count known, today is yesterday's plus the day's subscribes less its
        # unsubscribes: 4 - 2.
        listening.record_followers("wechat", ACCOUNT, today - timedelta(days=1), 1_000, uow)
        listening.record_followers("wechat", ACCOUNT, today - timedelta(days=3), 5, uow)
        uow.commit()
    assert snapshot_wechat_followers() == {ACCOUNT: 1_002}
    with rt.uow() as uow:  # tomorrow, before any event: today's count carries over
        assert listening.wechat_followers(today + timedelta(days=1), uow) == {ACCOUNT: 1_002}
