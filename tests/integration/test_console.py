"""The staff console over the real Flask app (HTTP through the test client, real Redis for the
login limits, both stores): sign-in, roles, CSRF, escaping, masking, conflicts, the ticket's
actions and their audit trail. The browser tests (tests/e2e) drive the same pages in Chromium."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from crm_store import membership, models, staff
from crm_store.models import AuditEntry, Message, PointsEntry, Ticket
from tests.integration.test_api import says

PASSWORD = "a-long-enough-password"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


@pytest.fixture()
def team(runtime) -> None:  # type: ignore[no-untyped-def]
    with runtime.uow() as uow:
        for name, role in (("alice", "agent"), ("bob", "agent"), ("mia", "marketer"), ("sam", "supervisor"),
                           ("root", "admin")):
            staff.create_user(name, role, PASSWORD, uow)
        uow.commit()


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert found, "the page has no CSRF token"
    return found.group(1)


def another(client, address: str = "127.0.0.2"):  # type: ignore[no-untyped-def]
    """A second browser, from another address, on the same app."""
    other = client.application.test_client()
    other.environ_base["REMOTE_ADDR"] = address
    return other


def sign_in(client, name: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    token = csrf_of(client.get("/console/login").text)
    return client.post("/console/login", data={"name": name, "password": password, "csrf_token": token})


def post_form(client, path: str, page: str, **fields):  # type: ignore[no-untyped-def]
    """Submit a console form as the browser would: with the CSRF token of the page it is on."""
    return client.post(path, data={"csrf_token": csrf_of(client.get(page).text), **fields})


@pytest.fixture()
def complaint(client, runtime) -> str:  # type: ignore[no-untyped-def]
    assert "工单号" in says(client, "我昨天买的奶茶里有异物，太恶心了 13912345678")
    with runtime.uow() as uow:
        return uow.session.scalar(select(Ticket.reference))


def ticket(runtime, reference: str) -> Ticket:  # type: ignore[no-untyped-def]
    with runtime.uow() as uow:
        return uow.session.scalar(select(Ticket).filter_by(reference=reference))


def audit_actions(runtime, reference: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with runtime.uow() as uow:
        return [(e.actor, e.action) for e in uow.session.scalars(
            select(AuditEntry).filter_by(target_type="ticket", target_id=reference).order_by(AuditEntry.id))]


def test_sign_in_is_chinese_by_default_and_english_on_request(client, team) -> None:
    page = client.get("/console/login")
    assert page.status_code == 200 and "登录" in page.text and 'lang="zh-CN"' in page.text
    assert "Sign in" in client.get("/console/login", headers={"Accept-Language": "en-US,en"}).text
    post_form(client, "/console/language", "/console/login", lang="en")
    assert "Sign in" in client.get("/console/login").text  # the choice stays for the session
    assert sign_in(client, "alice").headers["Location"] == "/console/tickets"
    assert "Escalation queue" in client.get("/console/tickets").text


def test_sign_in_and_out_are_audited_and_need_the_right_password(client, runtime, team) -> None:
    wrong = sign_in(client, "alice", "not-the-password")
    assert wrong.status_code == 401 and "用户名或密码错误" in wrong.text
    assert client.get("/console/tickets").status_code == 302  # still signed out
    assert sign_in(client, "alice").status_code == 302
    assert client.get("/console/tickets").status_code == 200
    assert client.post("/console/logout").status_code == 400  # no CSRF token: refused, still signed in
    assert client.get("/console/tickets").status_code == 200
    post_form(client, "/console/logout", "/console/tickets")
    assert client.get("/console/tickets").headers["Location"].startswith("/console/login")
    with runtime.uow() as uow:
        actions = [(e.actor, e.action) for e in uow.session.scalars(select(AuditEntry).order_by(AuditEntry.id))
                   if e.action.startswith(("login", "logout"))]
    assert actions == [("alice", "login.failed"), ("alice", "login"), ("alice", "logout")]


def test_a_deactivated_user_is_signed_out_at_once(client, runtime, team) -> None:
    sign_in(client, "alice")
    with runtime.uow() as uow:
        staff.set_active(uow.session.scalar(select(models.StaffUser.id).filter_by(name="alice")), False, uow, "root")
        uow.commit()
    assert client.get("/console/tickets").status_code == 302


def test_brute_force_is_slowed_then_locked_per_account(client, team) -> None:
    for _ in range(5):
        assert sign_in(client, "alice", "guess-guess-guess").status_code == 401
    locked = sign_in(client, "alice")  # even the right password, while locked
    assert locked.status_code == 429
    # From another address the account stays locked; another account is not.
    other = another(client)
    assert sign_in(other, "alice").status_code == 429
    assert sign_in(other, "bob").status_code == 302


def test_no_open_redirect_after_sign_in(client, team) -> None:
    token = csrf_of(client.get("/console/login").text)
    for target, expected in (("//evil.example/x", "/console/tickets"), ("https://evil.example/", "/console/tickets"),
                             ("/console/customers", "/console/customers")):
        client.get("/console/logout")
        client.delete_cookie("session")
        token = csrf_of(client.get("/console/login").text)
        response = client.post(f"/console/login?next={target}",
                               data={"name": "alice", "password": PASSWORD, "csrf_token": token})
        assert response.headers["Location"] == expected


@pytest.mark.parametrize(("name", "path", "status"), [
    ("mia", "/console/tickets", 403), ("mia", "/console/customers", 403), ("mia", "/console/leads", 200),
    ("alice", "/console/admin/users", 403), ("alice", "/console/admin/audit", 403), ("alice", "/console/leads", 403),
    ("sam", "/console/admin/audit", 200), ("sam", "/console/admin/users", 403), ("root", "/console/admin/users", 200),
])
def test_every_page_checks_the_role(client, team, name: str, path: str, status: int) -> None:
    sign_in(client, name)
    response = client.get(path)
    assert response.status_code == status
    if status == 403:
        assert "403" in response.text and "<html" in response.text  # a console page, not JSON


def test_signed_out_pages_lead_to_sign_in(client, team, complaint) -> None:
    for path in ("/", "/console/", "/console/tickets", f"/console/tickets/{complaint}", "/console/admin/users"):
        response = client.get(path, follow_redirects=True)
        assert response.request.path == "/console/login", path


def test_a_marketer_may_not_reply_to_a_ticket(client, runtime, team, complaint) -> None:
    sign_in(client, "mia")
    token = csrf_of(client.get("/console/leads").text)
    response = client.post(f"/console/tickets/{complaint}/reply", data={"text": "hello", "csrf_token": token})
    assert response.status_code == 403
    with runtime.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Message).filter_by(author="agent:mia")) == 0


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(client, runtime, team, complaint) -> None:
    sign_in(client, "alice")
    for path, data in ((f"/console/tickets/{complaint}/claim", {}),
                       (f"/console/tickets/{complaint}/reply", {"text": "hi"}),
                       (f"/console/tickets/{complaint}/resolve", {"complaint_level": "minor", "category": "other"})):
        assert client.post(path, data=data).status_code == 400
        assert client.post(path, data={**data, "csrf_token": "forged"}).status_code == 400
    held = ticket(runtime, complaint)
    assert held.status == models.OPEN and held.assignee is None


def test_queue_lists_open_tickets_by_due_time_with_counts_and_filters(client, runtime, team, complaint) -> None:
    says(client, "转人工", openid="oConsoleSecond00000000001")
    sign_in(client, "alice")
    page = client.get("/console/tickets").text
    rows = re.findall(r'data-reference="([^"]+)"', page)
    assert rows[0] == complaint and len(rows) == 2  # the complaint is due first (its SLA is shorter)
    assert re.search(r'data-count="open">2<', page) and re.search(r'data-count="unassigned">2<', page)
    post_form(client, f"/console/tickets/{complaint}/claim", "/console/tickets")
    mine = client.get("/console/tickets?view=mine").text
    assert re.findall(r'data-reference="([^"]+)"', mine) == [complaint]
    assert re.search(r'data-count="mine">1<', mine)
    unassigned = client.get("/console/tickets?view=unassigned").text
    assert complaint not in re.findall(r'data-reference="([^"]+)"', unassigned)
    category = ticket(runtime, complaint).category
    assert re.findall(r'data-reference="([^"]+)"', client.get(f"/console/tickets?category={category}").text) \
        == [complaint]
    assert "data-reference" not in client.get("/console/tickets?channel=weibo").text
    assert "data-reference" not in client.get("/console/tickets?breached=yes").text
    fragment = client.get("/console/tickets", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and complaint in fragment.text  # the live refresh is the fragment


def test_customer_text_is_escaped_everywhere(client, runtime, team) -> None:
    says(client, f"投诉 {XSS}", openid="oConsoleXss0000000000001")
    with runtime.uow() as uow:
        reference = uow.session.scalar(select(Ticket.reference))
        uow.session.scalar(select(models.Customer)).display_name = XSS
        uow.commit()
    sign_in(client, "alice")
    post_form(client, f"/console/tickets/{reference}/note", f"/console/tickets/{reference}", text=XSS)
    for path in ("/console/tickets", f"/console/tickets/{reference}", f"/console/tickets/{reference}/messages",
                 "/console/customers/1", "/console/customers?q=img"):
        page = client.get(path).text
        assert "<script>window.__xss" not in page and '<img src=x onerror' not in page, path
    assert "&lt;script&gt;window.__xss=2&lt;/script&gt;" in client.get(f"/console/tickets/{reference}").text


def test_phones_are_masked_for_agents_not_supervisors(client, runtime, team, complaint) -> None:
    with runtime.uow() as uow:
        uow.session.scalar(select(models.Customer)).phone = "13912345678"
        uow.commit()
    sign_in(client, "alice")
    page = client.get("/console/customers/1").text + client.get(f"/console/tickets/{complaint}").text
    assert "13912345678" not in page and "139****5678" in page
    client.delete_cookie("session")
    sign_in(client, "sam")
    assert "13912345678" in client.get("/console/customers/1").text


def test_two_agents_claiming_one_ticket_one_wins_and_the_other_sees_who(client, runtime, team,
                                                                        complaint) -> None:
    bob = another(client)
    sign_in(client, "alice")
    sign_in(bob, "bob")
    page = f"/console/tickets/{complaint}"
    alice_token, bob_token = csrf_of(client.get(page).text), csrf_of(bob.get(page).text)
    assert client.post(f"{page}/claim", data={"csrf_token": alice_token}).status_code == 302
    lost = bob.post(f"{page}/claim", data={"csrf_token": bob_token})
    assert lost.status_code == 409 and f"工单 {complaint} 已由 alice 认领处理" in lost.text
    assert "发送回复" not in lost.text and "alice 正在处理此工单" in lost.text  # no forms that would only 409
    assert bob.post(f"{page}/reply", data={"text": "我来处理", "csrf_token": bob_token}).status_code == 409
    assert ticket(runtime, complaint).assignee == "alice"


def test_work_a_ticket_from_claim_to_resolved_with_points(client, runtime, team, complaint) -> None:
    with runtime.uow() as uow:
        customer_id = uow.session.scalar(select(Ticket.customer_id))
        membership.bind_member(customer_id, "13800001111", uow)
        uow.commit()
    sign_in(client, "alice")
    page = f"/console/tickets/{complaint}"
    workspace = client.get(page).text
    assert "回复窗口剩余" in workspace and "快捷回复" in workspace  # the 48-hour window, canned replies
    assert post_form(client, f"{page}/reply", page, text="非常抱歉，我们马上处理").status_code == 302
    assert post_form(client, f"{page}/note", page, text="门店已电话联系").status_code == 302
    resolved = post_form(client, f"{page}/resolve", page, complaint_level="major", category="foreign_object",
                         compensation="满30减10券", compensation_points="200", note="退款并补偿")
    assert resolved.status_code == 302
    done = ticket(runtime, complaint)
    assert (done.status, done.assignee, done.category, done.complaint_level) == \
        ("resolved", "alice", "foreign_object", "major")
    assert "200 points" in done.compensation and "满30减10券" in done.compensation
    with runtime.uow() as uow:
        credited = list(uow.session.scalars(select(PointsEntry).filter_by(kind="adjust")))
        asked = uow.session.scalar(select(Message).filter_by(author="bot", delivery="queued")
                                   .order_by(Message.id.desc()))
    assert [(e.points, e.idempotency_key) for e in credited] == [(200, f"ticket:{complaint}:compensation")]
    assert complaint in asked.text  # the rating question waits in the outbox
    page_text = client.get(page).text
    assert "非常抱歉，我们马上处理" in page_text and "门店已电话联系" in page_text and "排队中" in page_text
    assert audit_actions(runtime, complaint) == [("alice", "claim"), ("alice", "reply"), ("alice", "note"),
                                                 ("alice", "resolve")]
    # Closed: another reply, a second resolve and a claim are all a clear 409.
    for action, fields in (("reply", {"text": "again"}), ("resolve", {"complaint_level": "none", "category": "other"}),
                           ("claim", {})):
        response = post_form(client, f"{page}/{action}", page, **fields)
        assert response.status_code == 409 and f"工单 {complaint} 已是“已结案”状态" in response.text
    says(client, "5")  # the customer's rating lands on the ticket
    assert ticket(runtime, complaint).csat_score == 5
    assert "客户评分" in client.get(page).text


def test_points_for_a_customer_without_a_card_are_refused(client, runtime, team, complaint) -> None:
    sign_in(client, "alice")
    page = f"/console/tickets/{complaint}"
    response = post_form(client, f"{page}/resolve", page, complaint_level="minor", category="quality",
                         compensation_points="50")
    assert response.status_code == 400 and "该客户没有会员卡" in response.text
    assert ticket(runtime, complaint).status == models.OPEN  # nothing half-written


def test_bad_form_values_are_a_400_not_a_500(client, runtime, team, complaint) -> None:
    sign_in(client, "alice")
    page = f"/console/tickets/{complaint}"
    for action, fields in (("reply", {"text": ""}), ("reply", {"text": "长" * 2001}),
                           ("resolve", {"complaint_level": "apocalyptic", "category": "other"}),
                           ("resolve", {"complaint_level": "minor", "category": "other", "compensation_points": "-5"}),
                           ("resolve", {"complaint_level": "minor", "category": "no-such"}),
                           ("assign", {"assignee": "nobody"})):
        assert post_form(client, f"{page}/{action}", page, **fields).status_code == 400, (action, fields)
    assert ticket(runtime, complaint).status == models.OPEN
    assert client.get("/console/tickets/T00000000-0000").status_code == 404
    assert client.get("/console/tickets?page=abc&priority=P9&breached=maybe").status_code == 200


def test_transfer_and_reassign(client, runtime, team, complaint) -> None:
    sign_in(client, "alice")
    page = f"/console/tickets/{complaint}"
    post_form(client, f"{page}/claim", page)
    bob = another(client)
    sign_in(bob, "bob")
    refused = post_form(bob, f"{page}/assign", page, assignee="bob")  # bob may not take alice's ticket
    assert refused.status_code == 409 and ticket(runtime, complaint).assignee == "alice"
    assert post_form(client, f"{page}/assign", page, assignee="bob").status_code == 302  # alice transfers
    assert ticket(runtime, complaint).assignee == "bob"
    sam = another(client)
    sign_in(sam, "sam")
    assert post_form(sam, f"{page}/assign", page, assignee="alice").status_code == 302  # a supervisor reassigns
    assert ticket(runtime, complaint).assignee == "alice"
    assert audit_actions(runtime, complaint)[-2:] == [("alice", "transfer"), ("sam", "assign")]
    assert "转交" in sam.get("/console/admin/audit").text


def test_a_failed_send_shows_its_state_and_keeps_the_text(client, runtime, team, complaint) -> None:
    sign_in(client, "alice")
    page = f"/console/tickets/{complaint}"
    post_form(client, f"{page}/reply", page, text="这条消息发不出去")
    with runtime.uow() as uow:
        sent = uow.session.scalar(select(Message).filter_by(author="agent:alice"))
        sent.delivery, sent.delivery_error = models.UNREACHABLE, "45015: response out of time limit"
        uow.commit()
    fragment = client.get(f"{page}/messages").text
    assert "这条消息发不出去" in fragment and "无法送达" in fragment and "45015" in fragment


def test_merge_and_undo_by_hand_are_audited(client, runtime, team) -> None:
    says(client, "你好", openid="oConsoleMergeA00000000001")
    says(client, "你好", openid="oConsoleMergeB00000000001")
    sign_in(client, "alice")
    merged = post_form(client, "/console/customers/1/merge", "/console/customers/1", into="2", reason="同一手机号，电话确认")
    assert merged.headers["Location"] == "/console/customers/2"
    with runtime.uow() as uow:
        assert {i.customer_id for i in uow.session.scalars(select(models.ChannelIdentity))} == {2}
        merge_id = uow.session.scalar(select(models.CustomerMerge.id))
    assert post_form(client, "/console/customers/1/merge", "/console/customers/2", into="999",
                     reason="x").status_code == 400
    post_form(client, f"/console/customers/merges/{merge_id}/undo", "/console/customers/2")
    with runtime.uow() as uow:
        assert {i.customer_id for i in uow.session.scalars(select(models.ChannelIdentity))} == {1, 2}
        trail = [(e.actor, e.action) for e in uow.session.scalars(
            select(AuditEntry).filter(AuditEntry.action.in_(("merge", "unmerge"))).order_by(AuditEntry.id))]
    assert trail == [("alice", "merge"), ("alice", "unmerge")]


def test_admin_manages_users_roles_and_tokens(client, runtime, team) -> None:
    sign_in(client, "root")
    created = post_form(client, "/console/admin/users", "/console/admin/users", name="新客服", role="agent",
                        password="another-long-password")
    assert created.status_code == 302
    assert post_form(client, "/console/admin/users", "/console/admin/users", name="short", role="agent",
                     password="short").status_code == 400
    with runtime.uow() as uow:
        new_id = uow.session.scalar(select(models.StaffUser.id).filter_by(name="新客服"))
    shown = post_form(client, f"/console/admin/users/{new_id}/tokens", "/console/admin/users")
    token = re.search(r'data-testid="new-token">([^<]+)<', shown.text).group(1)
    assert client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert token not in client.get("/console/admin/users").text  # shown once
    post_form(client, f"/console/admin/users/{new_id}/role", "/console/admin/users", role="marketer")
    assert client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {token}"}).status_code == 403
    with runtime.uow() as uow:
        token_id = uow.session.scalar(select(models.ApiToken.id).filter_by(user_id=new_id))
    post_form(client, f"/console/admin/tokens/{token_id}/revoke", "/console/admin/users")
    assert client.get("/api/v1/leads", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    with runtime.uow() as uow:
        actions = [e.action for e in uow.session.scalars(select(AuditEntry).filter_by(actor="root"))]
    assert {"user.create", "token.create", "user.role", "token.revoke"} <= set(actions)


def test_console_pages_are_not_framed_or_cached(client, team) -> None:
    response = client.get("/console/login")
    assert response.headers["X-Frame-Options"] == "DENY" and response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_canned_replies_come_in_the_customers_language(client, runtime, team) -> None:
    says(client, "The milk in my latte was sour, I want a refund", openid="oConsoleEnglish00000000001")
    with runtime.uow() as uow:
        reference = uow.session.scalar(select(Ticket.reference))
    sign_in(client, "alice")
    page = client.get(f"/console/tickets/{reference}").text
    assert f"Your issue is recorded as ticket {reference}" in page  # the English text of the apology
    assert "致歉" in page  # its title in the console's language
