"""The marketer's console pages over the real Flask app, on both stores: the mention stream and
its filters, one mention (public reply through the outbox to the fake Weibo, ticket and lead by
hand), watch terms, the leads board, the listening status; roles, CSRF and escaping."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from crm_store import listening, models, staff
from crm_store.models import AuditEntry, Message
from tests.integration.test_console import PASSWORD, XSS, csrf_of, sign_in
from tests.integration import test_mentions_api as listening_api
from tests.integration.test_mentions_api import COMPLAINT, LEAD, PRAISE, poll, sent
from web.app import create_app


# The API tests' world: fake Weibo and Twitter servers, and a runtime whose settings point at them.
models_loaded, fakes, rt = listening_api.models_loaded, listening_api.fakes, listening_api.rt


@pytest.fixture()
def browser(rt):  # type: ignore[no-untyped-def]
    with rt.uow() as uow:
        for name, role in (("mia", "marketer"), ("max", "marketer"), ("alice", "agent"), ("sam", "supervisor")):
            staff.create_user(name, role, PASSWORD, uow)
        uow.commit()
    return create_app(rt.settings, rt).test_client()


def mention_ids(rt) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with rt.uow() as uow:
        return {m.external_id: m.id for m in uow.session.scalars(select(models.Mention))}


def test_the_stream_shows_mentions_with_what_they_became_and_filters(browser, rt, fakes) -> None:
    weibo, _ = fakes
    big = weibo.add_user("美食博主", followers=250_000, verified=True)
    complaint = weibo.mention_post(COMPLAINT, big)
    weibo.mention_post(LEAD)
    weibo.mention_post(PRAISE)
    poll(rt, "weibo")
    assert sign_in(browser, "mia").headers["Location"] == "/console/mentions"  # a marketer starts here
    page = browser.get("/console/mentions").text
    assert page.count('data-mention-id="') == 3 and "美食博主" in page and "250,000" in page
    assert 'data-testid="ticket-link"' in page and 'data-testid="lead-link"' in page
    assert "微博" in page and "posts mentioning us" not in page  # Chinese by default
    assert 'data-testid="poll-status"' in page and "统计" not in page
    negative = browser.get("/console/mentions?sentiment=neg&min_followers=100000").text
    assert negative.count('data-mention-id="') == 1 and f'data-mention-id="{mention_ids(rt)[complaint["idstr"]]}"' in negative
    assert browser.get("/console/mentions?linked=none").text.count('data-mention-id="') == 1
    # Unknown filter values are ignored, not errors.
    assert browser.get("/console/mentions?channel=myspace&min_followers=lots&linked=x").status_code == 200


def test_a_public_reply_from_the_console_reaches_the_fake_weibo(browser, rt, fakes) -> None:
    weibo, _ = fakes
    comment = weibo.mention_comment("@品牌官方微博 门店几点关门？")
    poll(rt, "weibo")
    sign_in(browser, "mia")
    mention_id = mention_ids(rt)[comment["idstr"]]
    page = browser.get(f"/console/mentions/{mention_id}").text
    done = browser.post(f"/console/mentions/{mention_id}/reply",
                        data={"text": "晚上十点打烊，欢迎光临", "csrf_token": csrf_of(page)})
    assert done.status_code == 302
    with rt.uow() as uow:
        message_id = uow.session.scalar(select(Message.id).filter_by(direction="out"))
    assert "排队中" in browser.get(f"/console/mentions/{mention_id}/replies").text
    sent(rt, message_id)
    assert [(r["endpoint"], r["id"], r["cid"], r["comment"]) for r in weibo.replies] == \
        [("comments/reply", comment["status"]["idstr"], comment["idstr"], "晚上十点打烊，欢迎光临")]
    assert "已送达" in browser.get(f"/console/mentions/{mention_id}/replies").text
    empty = browser.post(f"/console/mentions/{mention_id}/reply", data={"text": "", "csrf_token": csrf_of(page)})
    assert empty.status_code == 400
    assert browser.post(f"/console/mentions/{mention_id}/reply", data={"text": "hi"}).status_code == 400  # no CSRF
    with rt.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Message).filter_by(direction="out")) == 1


def test_a_mention_becomes_a_ticket_and_a_lead_by_hand(browser, rt, fakes) -> None:
    weibo, _ = fakes
    post = weibo.mention_post("@品牌官方微博 路过你们新开的店，排队的人好多")
    poll(rt, "weibo")
    sign_in(browser, "mia")
    mention_id = mention_ids(rt)[post["idstr"]]
    with rt.uow() as uow:
        assert uow.session.get(models.Mention, mention_id).ticket_id is None
    page = browser.get(f"/console/mentions/{mention_id}").text
    assert browser.post(f"/console/mentions/{mention_id}/ticket", data={"csrf_token": csrf_of(page)}).status_code == 302
    assert browser.post(f"/console/mentions/{mention_id}/lead", data={"csrf_token": csrf_of(page)}).status_code == 302
    again = browser.post(f"/console/mentions/{mention_id}/ticket", data={"csrf_token": csrf_of(page)})
    assert again.status_code == 409 and "这条提及已在升级队列中" in again.text  # in the reader's language
    with rt.uow() as uow:
        mention = uow.session.get(models.Mention, mention_id)
        ticket = uow.session.get(models.Ticket, mention.ticket_id)
        assert ticket.source == "mention" and ticket.status == models.OPEN and mention.lead_id is not None
        actions = list(uow.session.scalars(select(AuditEntry.action).filter_by(actor="mia", target_type="mention")))
    assert actions == ["mention.ticket", "mention.lead"]
    shown = browser.get(f"/console/mentions/{mention_id}").text
    assert ticket.reference in shown and "加入升级队列" not in shown
    # The agent's workspace shows where the ticket came from, and that a reply is public.
    agent = browser.application.test_client()
    sign_in(agent, "alice")
    workspace = agent.get(f"/console/tickets/{ticket.reference}").text
    assert 'data-testid="mention"' in workspace and "路过你们新开的店，排队的人好多" in workspace and "公开" in workspace
    assert agent.get(f"/console/mentions/{mention_id}").status_code == 403  # agents work tickets, not mentions
    assert agent.get("/console/mentions").status_code == 403


def test_watch_terms_are_added_and_removed_in_the_console(browser, rt) -> None:
    sign_in(browser, "mia")
    page = browser.get("/console/watch-terms")
    assert page.status_code == 200
    added = browser.post("/console/watch-terms", data={"term": "  Oolong   Latte ", "kind": "product",
                                                       "csrf_token": csrf_of(page.text)})
    assert added.status_code == 302
    listed = browser.get("/console/watch-terms").text
    assert 'data-term="oolong latte"' in listed and "产品" in listed
    bad = browser.post("/console/watch-terms", data={"term": "x", "kind": "enemy", "csrf_token": csrf_of(listed)})
    assert bad.status_code == 400
    with rt.uow() as uow:
        [term] = listening.watch_terms(uow)
    removed = browser.post(f"/console/watch-terms/{term.id}/remove", data={"csrf_token": csrf_of(listed)})
    assert removed.status_code == 302
    assert 'data-term="oolong latte"' not in browser.get("/console/watch-terms").text
    assert browser.post("/console/watch-terms/999/remove", data={"csrf_token": csrf_of(listed)}).status_code == 404


def test_the_leads_board_moves_assigns_and_converts(browser, rt, fakes) -> None:
    weibo, _ = fakes
    weibo.mention_post(LEAD)
    poll(rt, "weibo")
    sign_in(browser, "mia")
    board = browser.get("/console/leads").text
    with rt.uow() as uow:
        [lead] = uow.session.scalars(select(models.Lead))
    assert f'id="lead-{lead.id}"' in board and "From a mention" not in board and "来自提及" in board
    assert board.index('data-status="new"') < board.index(f'id="lead-{lead.id}"') < board.index('data-status="contacted"')
    moved = browser.post(f"/console/leads/{lead.id}", data={"status": "qualified", "assignee": "max",
                                                           "csrf_token": csrf_of(board)})
    assert moved.status_code == 302
    board = browser.get("/console/leads").text
    assert board.index('data-status="qualified"') < board.index(f'id="lead-{lead.id}"') < board.index('data-status="converted"')
    for data in ({"status": "won", "assignee": ""}, {"status": "new", "assignee": "alice"}):
        assert browser.post(f"/console/leads/{lead.id}", data={**data, "csrf_token": csrf_of(board)}).status_code == 400
    assert browser.post(f"/console/leads/{lead.id}/convert", data={"csrf_token": csrf_of(board)}).status_code == 302
    with rt.uow() as uow:
        lead = uow.session.get(models.Lead, lead.id)
        assert (lead.status, lead.assignee) == ("converted", "max") and lead.converted_at is not None
    assert browser.get("/console/leads?channel=wechat").text.count('class="card lead"') == 0


def test_customer_text_in_mentions_stays_text(browser, rt, fakes) -> None:
    weibo, _ = fakes
    weibo.mention_post(f"@品牌官方微博 {XSS}", weibo.add_user(XSS[:30]))
    poll(rt, "weibo")
    sign_in(browser, "mia")
    for path in ("/console/mentions", f"/console/mentions/{next(iter(mention_ids(rt).values()))}"):
        page = browser.get(path).text
        assert "<script>window.__xss" not in page and "<img src=x" not in page and "&lt;" in page
