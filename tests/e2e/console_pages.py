"""Page objects of the staff console (Playwright's page-object pattern): one small class per page,
named for what a staff member does there. Locators go by role, label and visible text, in the
console's default language (Chinese), as a staff member finds things; never by CSS path."""
from __future__ import annotations

import re
from typing import Self

from playwright.sync_api import Locator, Page


class ConsolePage:
    """What every console page has: the header (navigation, language switch, sign out) and the
    flashed messages."""

    path = "/console/"

    def __init__(self, page: Page) -> None:
        self.page = page

    def open(self) -> Self:
        self.page.goto(self.path)
        return self

    @property
    def heading(self) -> Locator:
        return self.page.get_by_role("heading", level=1)

    def notice(self, words: str) -> Locator:
        """A flashed message: ``status`` for news, ``alert`` for a refusal."""
        return self.page.get_by_role("status").or_(self.page.get_by_role("alert")).filter(has_text=words)

    def menu(self, name: str) -> Locator:
        return self.page.get_by_role("navigation").get_by_role("link", name=name)

    def switch_language(self) -> None:
        """The header's button names the other language: English on a Chinese page, 中文 on an English one."""
        self.page.get_by_role("button", name=re.compile("^(English|中文)$")).click()

    def sign_out(self) -> None:
        self.page.get_by_role("button", name="退出登录").click()

    def csrf_token(self) -> str:
        """The page's CSRF token, as its forms post it (a hidden field, so not found by role)."""
        return self.page.locator("input[name=csrf_token]").first.input_value()


class LoginPage(ConsolePage):
    path = "/console/login"

    def sign_in(self, name: str, password: str, *, expect_success: bool = True) -> None:
        self.page.get_by_label("用户名").fill(name)
        self.page.get_by_label("密码").fill(password)
        self.page.get_by_role("button", name="登录").click()
        if expect_success:  # each role starts on its own page: the queue, or the mentions for marketers
            self.page.wait_for_url(re.compile(r"/console/(?!login)"))


class QueuePage(ConsolePage):
    """The escalation queue: counts, and one row per open ticket by due time."""

    path = "/console/tickets"

    def count(self, name: str) -> int:
        """A figure of the counts strip (待处理, 已认领, 未分配, 已超时, 我的)."""
        item = self.page.get_by_role("list", name="队列统计").get_by_role("listitem").filter(has_text=name)
        return int(re.search(r"(\d+)\s*$", item.inner_text()).group(1))  # type: ignore[union-attr]

    def row(self, reference: str) -> Locator:
        return self.page.get_by_role("row").filter(has=self.page.get_by_role("link", name=reference, exact=True))

    def open_ticket(self, reference: str) -> "TicketPage":
        self.row(reference).get_by_role("link", name=reference, exact=True).click()
        return TicketPage(self.page, reference)

    def claim(self, reference: str) -> "TicketPage":
        self.row(reference).get_by_role("button", name="认领").click()
        return TicketPage(self.page, reference)


class TicketPage(ConsolePage):
    """The ticket workspace: the conversation, the reply box, resolve, notes, the customer's profile."""

    def __init__(self, page: Page, reference: str) -> None:
        super().__init__(page)
        self.reference = reference
        self.path = f"/console/tickets/{reference}"

    @property
    def assignee(self) -> Locator:
        return self.page.get_by_test_id("assignee")

    @property
    def rating(self) -> Locator:
        return self.page.get_by_test_id("csat")

    @property
    def reply_box(self) -> Locator:
        return self.page.get_by_label("回复客户")

    @property
    def claim_button(self) -> Locator:
        return self.page.get_by_role("button", name="认领", exact=True)

    def claim(self) -> None:
        self.claim_button.click()

    def pick_canned_reply(self, title: str) -> str:
        """Fill the reply box from a canned reply; the text as filled in, for the agent to review."""
        self.page.wait_for_load_state()  # the picker's script (deferred) listens from the load on
        self.page.get_by_label("快捷回复").select_option(label=title)
        return self.reply_box.input_value()

    def send_reply(self, words: str | None = None) -> None:
        """Send what is in the reply box, after typing ``words`` into it if given."""
        if words is not None:
            self.reply_box.fill(words)
        self.page.get_by_role("button", name="发送回复").click()

    def message(self, words: str) -> Locator:
        """The conversation's message holding ``words``."""
        return self.page.get_by_role("listitem").filter(has_text=words)

    def delivery_of(self, words: str) -> Locator:
        """The delivery state shown on an outgoing message (排队中, 已送达, 无法送达 ...)."""
        return self.message(words).get_by_test_id("delivery")

    def resolve(self, level: str, category: str, compensation: str = "", note: str = "") -> None:
        self.page.get_by_text("结案", exact=True).click()  # unfold the resolve card
        self.page.get_by_label("投诉等级").select_option(label=level)
        self.page.get_by_label("类别").select_option(label=category)
        self.page.get_by_label("优惠券或其他补偿").fill(compensation)
        self.page.get_by_label("处理说明").fill(note)
        self.page.get_by_role("button", name="结案并邀请评分").click()

    @property
    def resolution(self) -> Locator:
        return self.page.get_by_role("heading", name="处理结果").locator("..")

    def add_note(self, words: str) -> None:
        self.page.get_by_label("内部备注").fill(words)
        self.page.get_by_role("button", name="添加备注").click()

    def open_customer(self) -> "CustomerPage":
        """The customer's 360° page, from the name on the profile card."""
        self.page.get_by_role("heading", level=2).get_by_role("link").click()
        return CustomerPage(self.page)


class CustomerSearchPage(ConsolePage):
    path = "/console/customers"

    def search(self, words: str) -> None:
        self.page.get_by_role("searchbox").fill(words)
        self.page.get_by_role("button", name="搜索").click()

    def result(self, name: str) -> Locator:
        return self.page.get_by_role("row").filter(has=self.page.get_by_role("cell", name=name, exact=True))


class CustomerPage(ConsolePage):
    """A customer's 360° page: recent messages, identities, membership, tickets, leads, sentiment."""

    def message(self, words: str) -> Locator:
        return self.page.get_by_role("listitem").filter(has_text=words)

    def ticket_link(self, reference: str) -> Locator:
        return self.page.get_by_role("link", name=reference, exact=True)


class AuditPage(ConsolePage):
    path = "/console/admin/audit"

    def filter_by(self, actor: str) -> None:
        self.page.get_by_label("员工").fill(actor)
        self.page.get_by_role("button", name="筛选").click()

    def actions(self, record: str = "") -> list[str]:
        """The actions listed (newest first), of the entries whose record mentions ``record``."""
        rows = self.page.get_by_role("row").filter(has=self.page.get_by_role("cell")).filter(has_text=record)
        return [row.get_by_role("cell").nth(2).inner_text() for row in rows.all()]


class UsersPage(ConsolePage):
    """Users and API tokens (admins)."""

    path = "/console/admin/users"

    def row(self, name: str) -> Locator:
        return self.page.get_by_role("row").filter(has=self.page.get_by_role("cell", name=name, exact=True))

    def create_user(self, name: str, role: str, password: str) -> None:
        form = self.page.locator("section").filter(has=self.page.get_by_role("heading", name="新建用户"))
        form.get_by_label("用户名").fill(name)
        form.get_by_label("角色").select_option(role)
        form.get_by_label("密码").fill(password)
        form.get_by_role("button", name="创建").click()

    def new_token(self, name: str) -> str:
        """A new API token for ``name``, as the page shows it (once)."""
        self.row(name).get_by_role("button", name="新建 API 令牌").click()
        return self.new_token_shown.inner_text().strip()

    @property
    def new_token_shown(self) -> Locator:
        return self.page.get_by_test_id("new-token")


# --- the marketers' pages: listening and leads ----------------------------------------------------
class MentionsPage(ConsolePage):
    """The mention stream: filters, the listening status, one item per mention, newest first."""

    path = "/console/mentions"

    @property
    def mentions(self) -> Locator:
        """Every mention listed (an item names its mention by ``data-mention-id``)."""
        return self.page.get_by_role("listitem").and_(self.page.locator("[data-mention-id]"))

    def mention(self, words: str) -> Locator:
        """The item of the mention holding ``words``."""
        return self.mentions.filter(has_text=words)

    def open_mention(self, words: str) -> "MentionPage":
        self.mention(words).get_by_role("link").click()
        return MentionPage(self.page)

    def filter_by(self, *, channel: str = "", sentiment: str = "", watch_term: str = "", min_followers: str = "",
                  became: str = "") -> None:
        """Set every filter (by its label as shown; "" = 不限) and apply them."""
        for label, choice in (("渠道", channel), ("情感", sentiment), ("监测词", watch_term), ("已转为", became)):
            self.page.get_by_role("combobox", name=label, exact=True).select_option(label=choice or "不限")
        self.page.get_by_role("spinbutton", name="作者粉丝至少").fill(min_followers)
        self.page.get_by_role("button", name="筛选").click()
        self.page.wait_for_load_state()

    @property
    def listening_status(self) -> Locator:
        return self.page.get_by_test_id("poll-status")

    def open_listening_status(self) -> None:
        if self.listening_status.get_attribute("open") is None:
            self.listening_status.get_by_text("监听状态").click()


class MentionPage(ConsolePage):
    """One mention: its text and analysis, the public replies under it, and what it became."""

    def __init__(self, page: Page, mention_id: int | None = None) -> None:
        """``mention_id`` to ``open()`` it; without, the mention the browser is on."""
        super().__init__(page)
        if mention_id is not None:
            self.path = f"/console/mentions/{mention_id}"

    @property
    def text(self) -> Locator:
        return self.page.get_by_test_id("mention-text")

    @property
    def reply_box(self) -> Locator:
        return self.page.get_by_label("公开回复")

    def post_reply(self, words: str) -> None:
        self.reply_box.fill(words)
        self.page.get_by_role("button", name="发布回复").click()

    def reply(self, words: str) -> Locator:
        """The public reply holding ``words``, in the replies list (which htmx refreshes every 5 s)."""
        return self.page.locator("#replies").get_by_role("listitem").filter(has_text=words)

    def delivery_of(self, words: str) -> Locator:
        return self.reply(words).get_by_test_id("delivery")

    @property
    def ticket_button(self) -> Locator:
        return self.page.get_by_role("button", name="加入升级队列")

    @property
    def lead_button(self) -> Locator:
        return self.page.get_by_role("button", name="转为线索")

    def make_ticket(self) -> None:
        self.ticket_button.click()

    def make_lead(self) -> None:
        self.lead_button.click()

    @property
    def ticket_link(self) -> Locator:
        return self.page.get_by_test_id("ticket-link")

    @property
    def lead_link(self) -> Locator:
        return self.page.get_by_test_id("lead-link")


class WatchTermsPage(ConsolePage):
    """The watch terms: one row per term tracked, a form to track one more."""

    path = "/console/watch-terms"

    def row(self, term: str) -> Locator:
        return self.page.get_by_role("row").filter(has=self.page.get_by_role("cell", name=term, exact=True))

    def track(self, term: str, kind: str) -> None:
        """Track ``term`` as a ``kind`` (品牌, 产品, 竞品 ... as the select shows it)."""
        self.page.get_by_role("textbox", name="词", exact=True).fill(term)
        self.page.get_by_role("combobox", name="类型", exact=True).select_option(label=kind)
        self.page.get_by_role("button", name="添加").click()

    def stop_tracking(self, term: str) -> None:
        self.row(term).get_by_role("button", name="停止监测").click()


class LeadsPage(ConsolePage):
    """The leads board: a column per status (新线索, 已联系, 已确认, 已转化, 已流失), a card per lead."""

    path = "/console/leads"
    STATUSES = {"新线索": "new", "已联系": "contacted", "已确认": "qualified", "已转化": "converted", "已流失": "lost"}

    def column(self, status: str) -> Locator:
        """The column of ``status``, as its heading names it."""
        return self.page.locator(f"[data-status={self.STATUSES[status]}]")

    def card(self, lead_id: int) -> Locator:
        return self.page.locator(f"article#lead-{lead_id}")

    def save(self, lead_id: int, status: str, assignee: str) -> None:
        """Move a lead to ``status`` and give it to ``assignee``, as its card's form does."""
        card = self.card(lead_id)
        card.get_by_label("状态").select_option(label=status)
        card.get_by_label("负责人").select_option(label=assignee)
        card.get_by_role("button", name="保存").click()

    def convert_button(self, lead_id: int) -> Locator:
        return self.card(lead_id).get_by_role("button", name="已转化")

    def convert(self, lead_id: int) -> None:
        self.convert_button(lead_id).click()
