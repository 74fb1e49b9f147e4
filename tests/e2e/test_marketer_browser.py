"""The marketers' pages in a real browser (issue 14, "Done means: Browser tests of the marketer pages").

Mentions reach the service as they do in production: people post on local fakes of Weibo's and
Twitter's APIs, ``crmbot poll weibo|twitter`` reads them beside ``crmbot serve`` and ``crmbot
worker`` and its real models decide what each becomes (a ticket, a lead, nothing); public replies
leave through the worker's outbox and reach the fakes. Headless Chromium, as a Chinese-speaking
marketer (or agent), does the rest. Full-page screenshots land in tests/e2e/screenshots/.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ConsoleService, screenshot
from tests.e2e.console_pages import LeadsPage, MentionPage, MentionsPage, TicketPage, WatchTermsPage

# The browser first: without chromium the module skips (or fails in CI) before starting the service.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("browser")]
LIVE_REFRESH_MS = 15_000  # the replies refresh every 5 s; the worker's send comes within that

COMPLAINT = "@品牌官方微博 奶茶里有头发！太恶心了，要投诉，退款"
FRANCHISE = "@品牌官方微博 想加盟你们品牌，怎么联系招商？"
PRAISE = "@品牌官方微博 新品太好喝了，推荐大家"
QUESTION = "@品牌官方微博 门店几点关门？"
PASSING_BY = "@品牌官方微博 路过你们新开的店，排队的人好多"
TWEET = "@brand what time does your Shanghai store open tomorrow?"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
XSS_AUTHOR = '"><svg onload="window.__xss=3">小<b>王</b>'


@dataclass(frozen=True)
class Mentions:
    """What was posted on the fakes before the first poll, as the platforms serve it."""

    complaint: dict[str, Any]  # by a food blogger with 250,000 followers
    franchise: dict[str, Any]
    praise: dict[str, Any]
    question: dict[str, Any]  # a comment, under a brand post
    passing_by: dict[str, Any]  # neutral: neither a ticket nor a lead by itself
    markup: dict[str, Any]
    tweet: str  # its id


@pytest.fixture(scope="module")
def mentions(console: ConsoleService) -> Mentions:
    """People mention the brand on Weibo and Twitter; one poll of each reads them all."""
    weibo, twitter = console.weibo_api, console.twitter_api
    posted = Mentions(
        complaint=weibo.mention_post(COMPLAINT, weibo.add_user("美食博主", followers=250_000, verified=True)),
        franchise=weibo.mention_post(FRANCHISE, weibo.add_user("想开店的小李", followers=80)),
        praise=weibo.mention_post(PRAISE, weibo.add_user("奶茶爱好者", followers=1_200)),
        question=weibo.mention_comment(QUESTION, weibo.add_user("路人甲", followers=35)),
        passing_by=weibo.mention_post(PASSING_BY, weibo.add_user("上班族", followers=15)),
        markup=weibo.mention_post(f"@品牌官方微博 {XSS}", weibo.add_user(XSS_AUTHOR, followers=3)),
        tweet=twitter.add_tweet(TWEET, twitter.add_user("teafan", followers=12)))
    assert "statuses" in console.poll("weibo")
    console.poll("twitter")
    return posted


def mention_id(console: ConsoleService, external_id: str) -> int:
    return console.scalar("SELECT id FROM mentions WHERE external_id = :e", e=external_id)


def ticket_of(console: ConsoleService, external_id: str) -> str | None:
    return console.scalar("SELECT t.reference FROM tickets t JOIN mentions m ON m.ticket_id = t.id "
                          "WHERE m.external_id = :e", e=external_id)


def lead_of(console: ConsoleService, external_id: str) -> int | None:
    return console.scalar("SELECT lead_id FROM mentions WHERE external_id = :e", e=external_id)


def test_a_marketer_reads_the_stream_filters_it_and_checks_the_polls(console: ConsoleService, staff,
                                                                     mentions: Mentions) -> None:
    mia = staff("mia", "marketer")
    page = mia.page
    stream = MentionsPage(page)
    expect(page).to_have_url(re.compile(r"/console/mentions$"))  # where a marketer starts
    expect(stream.heading).to_have_text("提及")
    for menu in ("提及", "销售线索", "监测词"):
        expect(stream.menu(menu)).to_be_visible()
    expect(stream.menu("工单队列")).to_have_count(0)

    total = console.scalar("SELECT count(*) FROM mentions")
    assert total == 7  # every post, comment and tweet, each once
    expect(stream.mentions).to_have_count(total)
    complaint, franchise, praise = (stream.mention(words) for words in ("奶茶里有头发", "想加盟", "新品太好喝了"))
    expect(complaint).to_contain_text("@美食博主")
    expect(complaint).to_contain_text("250,000")
    expect(complaint).to_contain_text("微博")
    reference = ticket_of(console, mentions.complaint["idstr"])
    assert reference is not None  # an influential complaint became a ticket by itself
    expect(complaint.get_by_test_id("ticket-link")).to_have_text(f"工单 {reference}")
    lead_id = lead_of(console, mentions.franchise["idstr"])
    assert lead_id is not None  # purchase intent became a lead
    expect(franchise.get_by_test_id("lead-link")).to_have_text(f"线索 #{lead_id}")
    expect(franchise.get_by_test_id("ticket-link")).to_have_count(0)
    expect(praise.get_by_test_id("ticket-link").or_(praise.get_by_test_id("lead-link"))).to_have_count(0)
    expect(stream.mention(TWEET)).to_contain_text("Twitter")
    screenshot(page, "11-mentions")

    negative = console.scalar("SELECT count(*) FROM mentions WHERE sentiment = 'neg'")
    assert 1 <= negative < total
    stream.filter_by(sentiment="负面")
    expect(page).to_have_url(re.compile(r"sentiment=neg"))
    expect(stream.mentions).to_have_count(negative)
    expect(complaint).to_be_visible()
    expect(praise).to_have_count(0)
    fans = console.scalar("SELECT count(*) FROM mentions WHERE author_followers >= 50")
    assert 1 < fans < total
    stream.filter_by(min_followers="50")
    expect(stream.mentions).to_have_count(fans)
    expect(stream.mention("门店几点关门")).to_have_count(0)  # 35 followers
    stream.filter_by(sentiment="负面", min_followers="100000")
    expect(stream.mentions).to_have_count(1)
    expect(complaint).to_be_visible()
    stream.filter_by(became="线索")
    expect(stream.mentions).to_have_count(1)
    expect(franchise).to_be_visible()
    stream.filter_by()
    expect(stream.mentions).to_have_count(total)

    stream.open_listening_status()
    runs = stream.listening_status.get_by_role("row").filter(has=page.get_by_role("cell"))
    sources = console.scalar("SELECT count(*) FROM (SELECT DISTINCT channel, account, source FROM poll_runs)")
    assert sources >= 3  # Weibo's posts and comments, Twitter's mentions (and the follower counts)
    expect(runs).to_have_count(sources)
    for run in runs.all():
        expect(run.get_by_role("cell").nth(3)).to_have_text("正常")
    expect(runs.filter(has_text="微博")).not_to_have_count(0)
    expect(runs.filter(has_text="Twitter")).not_to_have_count(0)
    expect(stream.listening_status).not_to_contain_text("需要处理")
    screenshot(page, "12-mentions-listening-status")


def test_a_marketer_answers_in_public_on_weibo_and_on_twitter(console: ConsoleService, staff,
                                                             mentions: Mentions) -> None:
    weibo, twitter = console.weibo_api, console.twitter_api
    mia = staff("mia", "marketer")
    mention = MentionsPage(mia.page).open_mention("门店几点关门")
    expect(mention.text).to_contain_text(QUESTION)
    expect(mention.reply("晚上十点")).to_have_count(0)
    words = "晚上十点打烊，欢迎光临"
    before = len(weibo.replies)
    console.wait_for_outbox()
    with console.worker_paused():  # the worker is busy: the reply waits in the outbox, and says so
        mention.post_reply(words)
        expect(mention.notice("公开回复已排队发送。")).to_be_visible()
        expect(mention.delivery_of(words)).to_have_text("排队中")
    expect(mention.delivery_of(words)).to_have_text("已送达", timeout=LIVE_REFRESH_MS)  # htmx, no reload
    assert [(r["endpoint"], r["id"], r["cid"], r["comment"]) for r in weibo.replies[before:]] == \
        [("comments/reply", mentions.question["status"]["idstr"], mentions.question["idstr"], words)]
    screenshot(mia.page, "13-mention-with-reply")

    tweet = MentionPage(mia.page, mention_id(console, mentions.tweet)).open()
    expect(tweet.text).to_contain_text(TWEET)
    words = "We open at 8 am, see you tomorrow!"
    tweet.post_reply(words)
    expect(tweet.delivery_of(words)).to_have_text("已送达", timeout=LIVE_REFRESH_MS)
    assert [(p["text"], p["in_reply_to_tweet_id"]) for p in twitter.posted] == [(words, mentions.tweet)]
    assert len(weibo.replies) == before + 1  # nothing more on Weibo


def test_a_marketer_makes_a_lead_and_a_ticket_of_a_mention_once(console: ConsoleService, staff,
                                                                mentions: Mentions) -> None:
    external_id = mentions.passing_by["idstr"]
    assert (ticket_of(console, external_id), lead_of(console, external_id)) == (None, None)
    mia, max_ = staff("mia", "marketer"), staff("max", "marketer")
    mention = MentionPage(mia.page, mention_id(console, external_id)).open()
    stale = MentionPage(max_.page, mention_id(console, external_id)).open()  # max looks at it too
    expect(stale.ticket_button).to_be_visible()

    mention.make_ticket()
    expect(mention.notice("这条提及已加入升级队列。")).to_be_visible()
    reference = ticket_of(console, external_id)
    assert reference is not None
    expect(mention.ticket_link).to_have_text(reference)
    expect(mention.ticket_button).to_have_count(0)  # a second click is impossible
    mention.make_lead()
    expect(mention.notice("作者已成为线索。")).to_be_visible()
    lead_id = lead_of(console, external_id)
    assert lead_id is not None
    expect(mention.lead_link).to_have_text(f"#{lead_id}")
    expect(mention.lead_button).to_have_count(0)
    expect(mention.ticket_link).to_have_text(reference)

    # Max's page still shows the button: his click is refused, and he sees the ticket there is.
    tickets = console.scalar("SELECT count(*) FROM tickets")
    with max_.page.expect_response(re.compile(r"/ticket$")) as answer:
        stale.make_ticket()
    assert answer.value.status == 409
    expect(stale.page.get_by_role("alert")).to_be_visible()
    expect(stale.ticket_link).to_have_text(reference)
    expect(stale.ticket_button).to_have_count(0)
    assert console.scalar("SELECT count(*) FROM tickets") == tickets
    screenshot(max_.page, "18-mention-made-a-ticket-already")

    mention.lead_link.click()  # to the lead's card on the board
    board = LeadsPage(mia.page)
    expect(board.heading).to_have_text("销售线索")
    expect(board.column("新线索").locator(board.card(lead_id))).to_be_visible()


def test_a_marketer_tracks_a_product_and_finds_its_new_mentions(console: ConsoleService, staff,
                                                               mentions: Mentions) -> None:
    mia = staff("mia", "marketer")
    terms = WatchTermsPage(mia.page)
    terms.menu("监测词").click()
    expect(terms.heading).to_have_text("监测词")
    expect(terms.row("芝士奶盖")).to_have_count(0)
    terms.track("芝士奶盖", "产品")
    expect(terms.notice("已开始监测“芝士奶盖”。")).to_be_visible()
    expect(terms.row("芝士奶盖")).to_contain_text("产品")
    screenshot(mia.page, "14-watch-terms")

    # New mentions of it: one @ the brand on Weibo, one on Twitter that only a search finds.
    weibo, twitter = console.weibo_api, console.twitter_api
    weibo.mention_post("@品牌官方微博 芝士奶盖什么时候回归？等好久了", weibo.add_user("老顾客", followers=500))
    twitter.add_tweet("Finally tried the 芝士奶盖 in Shanghai, worth the queue", twitter.add_user("foodie"),
                      mentions_brand=False)
    console.poll("weibo")
    console.poll("twitter")
    stream = MentionsPage(mia.page)
    stream.menu("提及").click()
    on_weibo, on_twitter = stream.mention("什么时候回归"), stream.mention("worth the queue")
    badge = re.compile(r"^\s*#?芝士奶盖\s*$")  # the term's badge (not the text that holds it)
    for found in (on_weibo, on_twitter):
        expect(found.get_by_text(badge)).to_be_visible()
    expect(stream.mention("奶茶里有头发").get_by_text(badge)).to_have_count(0)
    stream.filter_by(watch_term="芝士奶盖 (产品)")
    expect(stream.mentions).to_have_count(2)
    expect(on_weibo).to_be_visible()
    expect(on_twitter).to_be_visible()

    terms.menu("监测词").click()
    terms.stop_tracking("芝士奶盖")
    expect(terms.notice("已停止监测“芝士奶盖”。")).to_be_visible()
    expect(terms.row("芝士奶盖")).to_have_count(0)
    assert console.scalar("SELECT active FROM watch_terms WHERE term = '芝士奶盖'") == 0


def test_a_marketer_works_a_lead_from_new_to_converted(console: ConsoleService, staff, mentions: Mentions) -> None:
    console.add_staff("max", "marketer")
    lead_id = lead_of(console, mentions.franchise["idstr"])
    assert lead_id is not None
    mia = staff("mia", "marketer")
    board = LeadsPage(mia.page)
    board.menu("销售线索").click()
    card = board.card(lead_id)
    expect(board.column("新线索").locator(card)).to_be_visible()
    expect(card.get_by_role("link", name="来自提及")).to_be_visible()

    board.save(lead_id, "已联系", "max")
    expect(board.notice("线索已更新。")).to_be_visible()
    expect(board.column("已联系").locator(card)).to_be_visible()
    expect(board.column("新线索").locator(card)).to_have_count(0)
    expect(card.get_by_label("负责人")).to_have_value("max")
    board.convert(lead_id)
    expect(board.notice("线索已转化。")).to_be_visible()

    mia.page.reload()
    expect(board.column("已转化").locator(card)).to_be_visible()
    expect(board.column("已联系").locator(card)).to_have_count(0)
    expect(card.get_by_label("状态")).to_have_value("converted")
    expect(card.get_by_label("负责人")).to_have_value("max")
    expect(board.convert_button(lead_id)).to_have_count(0)
    assert console.scalar("SELECT status || '/' || assignee FROM leads WHERE id = :i", i=lead_id) == "converted/max"
    screenshot(mia.page, "15-leads-board")


def test_an_agent_answers_a_mention_ticket_in_public_but_not_the_stream(console: ConsoleService, staff,
                                                                       mentions: Mentions) -> None:
    weibo = console.weibo_api
    agent = staff("olga", "agent")
    page = agent.page
    for path in ("/console/mentions", f"/console/mentions/{mention_id(console, mentions.complaint['idstr'])}",
                 "/console/watch-terms"):
        answer = page.goto(path)
        assert answer is not None and answer.status == 403, path

    reference = ticket_of(console, mentions.complaint["idstr"])
    assert reference is not None
    ticket = TicketPage(page, reference)
    ticket.open()
    shown = page.get_by_test_id("mention")
    expect(shown).to_contain_text("奶茶里有头发！太恶心了")
    expect(shown).to_contain_text("@美食博主")
    expect(shown).to_contain_text("公开")
    ticket.claim()
    words = "非常抱歉，已安排门店联系您处理退款"
    before = len(weibo.replies)
    ticket.send_reply(words)
    expect(ticket.delivery_of(words)).to_have_text("已送达", timeout=LIVE_REFRESH_MS)
    assert [(r["endpoint"], r["id"], r["comment"]) for r in weibo.replies[before:]] == \
        [("comments/create", mentions.complaint["idstr"], words)]  # a comment under the post, in public
    assert all(words not in str(sent) for sent in console.wechat_api.sent)
    screenshot(page, "16-ticket-from-a-mention")


def test_markup_in_a_mention_and_its_authors_name_stays_text(console: ConsoleService, staff,
                                                            mentions: Mentions) -> None:
    mia = staff("mia", "marketer")
    page = mia.page

    def nothing_ran() -> None:
        assert page.evaluate("typeof window.__xss") == "undefined"
        expect(page.get_by_role("img")).to_have_count(0)

    stream = MentionsPage(page)
    item = stream.mention(XSS)  # the markup, as its author typed it
    expect(item).to_have_count(1)
    expect(item).to_contain_text(f"@{XSS_AUTHOR}")
    nothing_ran()
    mention = stream.open_mention(XSS)
    expect(mention.text).to_contain_text(XSS)
    expect(page.get_by_text(f"@{XSS_AUTHOR}")).to_be_visible()
    nothing_ran()


def test_the_english_switch_on_the_mentions_pages(console: ConsoleService, staff, mentions: Mentions) -> None:
    mia = staff("mia", "marketer")
    stream = MentionsPage(mia.page)
    expect(stream.heading).to_have_text("提及")
    stream.switch_language()
    expect(stream.heading).to_have_text("Mentions")
    expect(mia.page.locator("html")).to_have_attribute("lang", "en")
    for menu in ("Mentions", "Leads", "Watch terms"):
        expect(stream.menu(menu)).to_be_visible()
    expect(mia.page.get_by_role("combobox", name="Sentiment", exact=True)).to_be_visible()
    expect(mia.page.get_by_role("button", name="Filter")).to_be_visible()
    expect(stream.listening_status).to_contain_text("Listening status")
    complaint = stream.mention("奶茶里有头发")
    expect(complaint).to_contain_text("Weibo")
    expect(complaint).to_contain_text("250,000 followers")
    screenshot(mia.page, "17-mentions-english")
    mention = stream.open_mention("路过你们新开的店")
    expect(mia.page.get_by_role("button", name="Post reply")).to_be_visible()
    expect(mia.page.get_by_label("Public reply")).to_be_visible()
    stream.switch_language()  # and back
    expect(mention.page.get_by_role("button", name="发布回复")).to_be_visible()
