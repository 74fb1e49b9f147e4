"""The staff console in a real browser (issue 13, "Done means: Browser tests").

Headless Chromium drives the console served by ``crmbot serve``; customers write through the
signed WeChat webhook; ``crmbot worker`` delivers the agents' replies to a fake of WeChat's API.
Each test is a piece of a staff member's day, with customers and staff of its own. Full-page
screenshots of the main pages land in tests/e2e/screenshots/ for a person to look at.
"""
from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import text

from tests.e2e.conftest import ConsoleService, screenshot, wait_until
from tests.e2e.console_pages import AuditPage, CustomerSearchPage, LoginPage, QueuePage, TicketPage, UsersPage

# The browser first: without chromium the module skips (or fails in CI) before starting the service.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("browser")]
LIVE_REFRESH_MS = 15_000  # the conversation refreshes every 5 s; the worker's send comes within that


def test_an_agent_works_a_complaint_from_the_queue_to_the_customers_rating(console: ConsoleService, staff) -> None:
    openid = "oBrowserComplaint000000001"
    alice = staff("alice", "agent", signed_in=False)
    page = alice.page
    login = LoginPage(page)
    login.open()
    expect(login.heading).to_have_text("登录")  # Chinese is the console's language
    screenshot(page, "01-login")
    login.sign_in("alice", alice.password)

    queue = QueuePage(page)
    expect(queue.heading).to_have_text("工单队列")
    open_before, unassigned_before = queue.count("待处理"), queue.count("未分配")
    reference = console.complaint(openid, "我昨天买的奶茶里有异物，太恶心了")
    page.reload()
    row = queue.row(reference)
    expect(row).to_contain_text("我昨天买的奶茶里有异物")
    expect(row).to_contain_text("待处理")
    expect(row.get_by_role("button", name="认领")).to_be_visible()
    assert (queue.count("待处理"), queue.count("未分配")) == (open_before + 1, unassigned_before + 1)
    screenshot(page, "02-queue")

    ticket = queue.open_ticket(reference)
    expect(ticket.heading).to_contain_text(reference)
    expect(ticket.message("我昨天买的奶茶里有异物，太恶心了")).to_be_visible()
    expect(ticket.assignee).to_have_text("暂无")
    ticket.claim()
    expect(ticket.notice("你已认领此工单。")).to_be_visible()
    expect(ticket.assignee).to_have_text("alice")

    words = ticket.pick_canned_reply("致歉")
    assert reference in words and words.startswith("非常抱歉")
    with console.worker_paused():  # the worker is busy: the reply waits in the outbox, and says so
        ticket.send_reply()
        expect(ticket.notice("回复已进入发送队列。")).to_be_visible()
        expect(ticket.delivery_of(words)).to_have_text("排队中")
    expect(ticket.delivery_of(words)).to_have_text("已送达", timeout=LIVE_REFRESH_MS)  # htmx, no reload
    assert console.sent_to(openid) == [words]  # exactly that text, to that customer, once
    screenshot(page, "03-ticket")

    ticket.resolve("轻微", "异物", compensation="满30减10优惠券", note="已退款并致歉")
    expect(ticket.notice("已结案，已邀请客户评分。")).to_be_visible()
    expect(ticket.heading).to_contain_text("已结案")
    expect(ticket.resolution).to_contain_text("满30减10优惠券")
    expect(ticket.resolution).to_contain_text("轻微")
    expect(ticket.rating).to_have_text("已邀请评分，尚未回复。")
    expect(ticket.reply_box).to_have_count(0)  # a resolved ticket takes no more replies

    wait_until(lambda: any(reference in t and "1-5" in t for t in console.sent_to(openid)),
               what="the rating question at the customer's WeChat")
    assert "谢谢您的评分" in console.customer_says(openid, "5")
    page.reload()
    expect(ticket.rating).to_have_text(re.compile(r"客户评分:\s*5/5"))
    screenshot(page, "04-ticket-resolved")

    customer = ticket.open_customer()
    expect(customer.heading).to_have_text(re.compile(r"^客户 \d+$"))
    expect(customer.ticket_link(reference)).to_be_visible()
    expect(customer.page.get_by_role("listitem").filter(has=customer.ticket_link(reference))).to_contain_text("★5")
    expect(customer.message(words)).to_contain_text("已送达")
    screenshot(page, "05-customer")


def test_two_agents_claim_the_same_ticket_and_one_wins(console: ConsoleService, staff) -> None:
    reference = console.complaint("oBrowserRace00000000000001", "外卖送错了，我点的是拿铁，给了美式")
    agents = {name: staff(name, "agent") for name in ("bob", "carol")}
    tickets = {name: TicketPage(agent.page, reference) for name, agent in agents.items()}
    for ticket in tickets.values():
        ticket.open()
        expect(ticket.claim_button).to_be_visible()

    # Both press 认领 at the same moment, each in their own browser.
    claim_url = f"{console.url}/console/tickets/{reference}/claim"
    with tickets["bob"].page.expect_response(claim_url) as bob_claim, \
            tickets["carol"].page.expect_response(claim_url) as carol_claim:
        for ticket in tickets.values():
            ticket.claim_button.evaluate("button => button.form.requestSubmit(button)")
    answers = {"bob": bob_claim.value.status, "carol": carol_claim.value.status}
    assert sorted(answers.values()) == [302, 409], answers
    winner = next(name for name, status in answers.items() if status == 302)
    loser = next(name for name in answers if name != winner)

    expect(tickets[winner].notice("你已认领此工单。")).to_be_visible()
    expect(tickets[winner].assignee).to_have_text(winner)
    expect(tickets[loser].notice(f"已由 {winner} 认领处理")).to_be_visible()  # who holds it
    expect(tickets[loser].assignee).to_have_text(winner)
    expect(tickets[loser].claim_button).to_have_count(0)
    screenshot(tickets[loser].page, "09-claim-conflict")
    assert console.scalar("SELECT assignee FROM tickets WHERE reference = :r", r=reference) == winner


def test_each_role_opens_only_its_own_pages(console: ConsoleService, staff) -> None:
    reference = console.complaint("oBrowserRoles0000000000001", "奶茶里有一根头发")
    marketer = staff("mia", "marketer")
    expect(marketer.page).to_have_url(re.compile(r"/console/mentions$"))  # a marketer starts on the mentions
    expect(QueuePage(marketer.page).menu("工单队列")).to_have_count(0)
    for path in ("/console/tickets", f"/console/tickets/{reference}", "/console/customers"):
        answer = marketer.page.goto(path)
        assert answer is not None and answer.status == 403, path
        expect(marketer.page.get_by_role("heading", level=1)).to_contain_text("403")
    # Nor may her session reply, even with a good CSRF token.
    refused = marketer.page.request.post(f"{console.url}/console/tickets/{reference}/reply",
                                         form={"csrf_token": QueuePage(marketer.page).csrf_token(), "text": "hi"})
    assert refused.status == 403
    assert console.scalar("SELECT status FROM tickets WHERE reference = :r", r=reference) == "open"

    agent = staff("dan", "agent")
    expect(QueuePage(agent.page).menu("用户")).to_have_count(0)
    for path in ("/console/admin/users", "/console/admin/audit"):
        answer = agent.page.goto(path)
        assert answer is not None and answer.status == 403, path


def test_a_supervisor_reads_the_audit_log_of_a_worked_ticket(console: ConsoleService, staff) -> None:
    reference = console.complaint("oBrowserAudit0000000000001", "牛奶是酸的，孩子喝了吐了")
    console.add_staff("erin", "agent")
    erin = {"Authorization": f"Bearer {console.api_token('erin')}"}
    for step, body in (("claim", None), ("reply", {"text": "非常抱歉，已为您安排退款"}),
                       ("resolve", {"complaint_level": "major", "compensation": "退款"})):
        answer = requests.post(f"{console.url}/api/v1/tickets/{reference}/{step}", headers=erin, json=body, timeout=10)
        assert answer.status_code in (200, 202), answer.text

    supervisor = staff("sam", "supervisor")
    audit = AuditPage(supervisor.page)
    audit.menu("操作日志").click()
    expect(audit.heading).to_have_text("操作日志")
    audit.filter_by("erin")
    assert audit.actions(f"工单 {reference}") == ["结案", "回复", "认领"]  # newest first, in Chinese
    screenshot(supervisor.page, "06-audit")


def test_an_admin_adds_an_agent_and_an_api_token_shown_once(console: ConsoleService, staff) -> None:
    admin = staff("root", "admin")
    users = UsersPage(admin.page)
    users.menu("用户").click()
    expect(users.heading).to_have_text("用户与 API 令牌")
    users.create_user("frank", "agent", "frank-password-e2e")
    expect(users.notice("用户已创建。")).to_be_visible()
    expect(users.row("frank").get_by_label("角色")).to_have_value("agent")

    token = users.new_token("frank")
    assert token.startswith("crm_")
    expect(users.page.get_by_text("请立即复制：它不会再次显示。")).to_be_visible()
    screenshot(admin.page, "07-users")
    answer = requests.get(f"{console.url}/api/v1/tickets", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200  # the token works for frank, an agent
    users.open()
    expect(users.new_token_shown).to_have_count(0)  # shown once
    expect(users.page.get_by_text(token)).to_have_count(0)

    frank = staff("frank", "agent", signed_in=False)
    LoginPage(frank.page).open().sign_in("frank", "frank-password-e2e")  # the password the admin gave
    expect(QueuePage(frank.page).heading).to_have_text("工单队列")


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(console: ConsoleService, staff) -> None:
    reference = console.complaint("oBrowserCsrf00000000000001", "咖啡里有塑料片")
    agent = staff("gina", "agent")
    ticket = TicketPage(agent.page, reference)
    ticket.open()
    ticket.claim()
    expect(ticket.assignee).to_have_text("gina")

    # Another site's form posts with gina's session cookie, but without (or with a guessed) token.
    for token in ({}, {"csrf_token": "guessed"}):
        forged = agent.page.request.post(f"{console.url}/console/tickets/{reference}/resolve",
                                         form={"complaint_level": "none", "category": "other", **token})
        assert forged.status == 400 and re.search(r"<h1>\s*400\b", forged.text()), forged.text()[:300]

    # The console's own form with its hidden token removed.
    ticket.reply_box.fill("这条不该发出去")
    ticket.reply_box.evaluate("box => box.form.elements.namedItem('csrf_token').remove()")
    with agent.page.expect_response(f"{console.url}/console/tickets/{reference}/reply") as answer:
        ticket.send_reply()
    assert answer.value.status == 400
    expect(agent.page.get_by_role("heading", level=1)).to_contain_text("400")

    ticket.open()
    expect(ticket.heading).to_contain_text("已认领")  # not resolved
    expect(ticket.message("这条不该发出去")).to_have_count(0)
    assert console.scalar("SELECT status FROM tickets WHERE reference = :r", r=reference) == "claimed"
    assert console.scalar("SELECT count(*) FROM messages WHERE text = :t", t="这条不该发出去") == 0


def test_markup_from_customers_and_staff_shows_as_text(console: ConsoleService, staff) -> None:
    openid = "oBrowserXss000000000000001"
    payload = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
    name = '"><svg onload="window.__xss=3">小<b>王</b>'
    note = "<script>window.__xss=4</script>备注"
    reference = console.complaint(openid, "奶茶里有异物")
    console.customer_says(openid, payload)
    with console.uow() as uow:  # a display name from the customer's profile on the platform
        uow.session.execute(text(
            "UPDATE customers SET display_name = :name WHERE id = (SELECT customer_id FROM tickets "
            "WHERE reference = :r)"), {"name": name, "r": reference})
        uow.commit()

    agent = staff("hank", "agent")
    page = agent.page

    def nothing_ran() -> None:
        assert page.evaluate("typeof window.__xss") == "undefined"
        expect(page.get_by_role("img")).to_have_count(0)

    ticket = TicketPage(page, reference)
    ticket.open()
    expect(ticket.message(payload)).to_be_visible()  # the markup, as the customer typed it
    expect(page.get_by_role("link", name=name)).to_be_visible()
    ticket.add_note(note)
    expect(ticket.notice("备注已添加。")).to_be_visible()
    expect(page.get_by_text(note)).to_be_visible()
    nothing_ran()

    customer = ticket.open_customer()
    expect(customer.message(payload)).to_be_visible()
    nothing_ran()
    search = CustomerSearchPage(page)
    search.open()
    search.search("小<b>王")
    expect(search.result(name)).to_be_visible()
    nothing_ran()


def test_the_english_switch_shows_english_labels(console: ConsoleService, staff) -> None:
    reference = console.complaint("oBrowserEnglish00000000001", "我的订单送错了，少了一杯")
    agent = staff("iris", "agent")
    queue = QueuePage(agent.page)
    expect(queue.heading).to_have_text("工单队列")
    queue.switch_language()
    expect(queue.heading).to_have_text("Escalation queue")
    expect(agent.page.locator("html")).to_have_attribute("lang", "en")
    expect(queue.menu("Customers")).to_be_visible()
    expect(agent.page.get_by_role("list", name="Queue counts")).to_contain_text("Unassigned")
    expect(queue.row(reference).get_by_role("button", name="Claim")).to_be_visible()
    screenshot(agent.page, "08-queue-english")
    queue.open_ticket(reference)
    expect(agent.page.get_by_label("Reply to the customer")).to_be_visible()
    expect(agent.page.get_by_role("button", name="Send reply")).to_be_visible()
    expect(agent.page.get_by_role("button", name="Sign out")).to_be_visible()
    queue.switch_language()  # and back
    expect(agent.page.get_by_role("button", name="发送回复")).to_be_visible()


def test_a_reply_wechat_refuses_shows_as_unreachable_and_keeps_its_text(console: ConsoleService, staff) -> None:
    openid = "oBrowserClosed000000000001"
    reference = console.complaint(openid, "面包发霉了")
    agent = staff("jack", "agent")
    ticket = TicketPage(agent.page, reference)
    ticket.open()
    ticket.claim()
    console.wait_for_outbox()  # nothing else is on its way, so the scripted refusal is for this reply
    console.wechat_api.fail_next_send(45015, "response out of time limit or subscription is canceled")
    words = "您好，麻烦提供一下订单号，我们马上核实。"
    ticket.send_reply(words)
    expect(ticket.delivery_of(words)).to_have_text("无法送达（48小时窗口已关闭）", timeout=LIVE_REFRESH_MS)
    expect(ticket.message(words)).to_contain_text(words)  # the text stays, to send another way
    assert words not in console.sent_to(openid)
    screenshot(agent.page, "10-ticket-unreachable")
