"""Listening: poll Weibo and Twitter for mentions of the brand, store each once, understand it,
and turn purchase intent into leads and complaints into tickets (``config/listening.yaml``).

One poll reads every source of one account: Weibo's ``statuses`` and ``comments`` mentions,
Twitter's ``mentions`` and a recent ``search:<term>`` per active watch term, then the account's
followers once a day. For each source:

* pages are fetched newest first from the source's cursor (``since_id``); each page is analysed
  and then stored in its own short transaction (no transaction is open while a platform answers),
  so a failure part way keeps the pages already read, and storing a page again stores nothing
  twice (mentions are unique by channel, account and external id);
* the cursor moves to the newest id seen only when the run read every page to the end without
  an error. A run that stopped part way leaves it, so the next run reads the same range again
  and nothing between the old cursor and the failure is ever skipped;
* ``RateLimited`` stops the source (outcome ``rate_limited``, ``rate_limited_until`` kept, and a
  scheduled poll leaves the source alone until then); ``AuthExpired`` is outcome ``auth_expired``
  with the platform's message; anything else ``partial`` (some pages stored) or ``failed``.
  Every run leaves a ``PollRun``; nothing raises out of a poll.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from bot import policy
from bot.understanding import models_reading
from channels import twitter, weibo
from channels.base import COMMENT, POST, AuthExpired, Mention, RateLimited
from config import ConfigError, Settings
from config.content import BotRules
from config.listening import ListeningRules, load_listening
from crm_store import listening, models, services, staff
from crm_store.models import Lead, Ticket, as_utc, utcnow
from crm_store.references import SHANGHAI
from crm_store.uow import UnitOfWork
from nlp import analysis
from nlp.keywords import watch_terms as match_watch_terms
from nlp.sentiment import Sentiment
from nlp.text import find_terms

log = logging.getLogger(__name__)

CHANNELS = (weibo.NAME, twitter.NAME)
FOLLOWERS = "followers"
KEYWORDS = 5  # keywords kept per mention
MAX_RATE_WAITS = 3  # rate limits waited out in one poll of one source, at most
SEARCH_WINDOW = 7 * 24 * 3600 - 600  # Twitter recent search: the last seven days (less a margin)


@dataclass(frozen=True)
class Page:
    """One page of any source, as the poller needs it."""

    mentions: tuple[Mention, ...]
    newest_id: str | None  # the newest id the page showed (read or not): cursor material
    problems: tuple[str, ...] = ()  # items that could not be read, authors missing ...


@dataclass
class SourceRun:
    """What one poll of one source did (also kept as a ``PollRun``)."""

    source: str
    outcome: str = "ok"
    pages: int = 0
    fetched: int = 0
    new: int = 0
    leads: int = 0
    tickets: int = 0
    errors: list[str] = field(default_factory=list)
    cursor_before: str | None = None
    cursor_after: str | None = None
    rate_limited_until: datetime | None = None
    skipped: bool = False  # a scheduled poll inside a rate-limit wait: nothing was asked

    def line(self) -> str:
        """One line for a terminal."""
        if self.skipped:
            return f"{self.source}: skipped, rate limited until {self.rate_limited_until:%Y-%m-%d %H:%M:%S} UTC"
        text = (f"{self.source}: {self.outcome}, fetched {self.fetched}, new {self.new}, leads {self.leads}, "
                f"tickets {self.tickets}, errors {len(self.errors)}, cursor {self.cursor_before or '-'} -> "
                f"{self.cursor_after or '-'}")
        if self.rate_limited_until is not None:
            text += f", rate limited until {self.rate_limited_until:%Y-%m-%d %H:%M:%S} UTC"
        return text + "".join(f"\n  {error}" for error in self.errors)


@dataclass(frozen=True)
class Decision:
    """What the rules make of one new mention."""

    ticket: tuple[str, str] | None = None  # (category, priority)
    lead_keyword: str | None = None
    lead: bool = False
    campaign: str | None = None


# ---------------------------------------------------------------------------------- the rules
def read_mention(mention: Mention, terms: Sequence[str], bot_rules: BotRules
                 ) -> tuple[listening.MentionReading, Sentiment]:
    """The analysis of a mention's text: sentiment, the intent weighed with the brand's words,
    keywords, and the watch terms it names."""
    if mention.deleted or not mention.text.strip():
        return listening.MentionReading(), analysis.NEUTRAL
    result, intent, confidence = models_reading(mention.text, bot_rules, keywords=KEYWORDS)
    reading = listening.MentionReading(
        lang=result.lang, sentiment=result.sentiment.label, sentiment_score=result.sentiment.score, intent=intent,
        intent_confidence=round(confidence, 3), keywords=result.keywords,
        watch_terms=tuple(match_watch_terms(mention.text, terms)) if terms else ())
    return reading, result.sentiment


def decide(mention: Mention, reading: listening.MentionReading, mood: Sentiment, bot_rules: BotRules,
           rules: ListeningRules, kinds: Mapping[str, str] | None = None) -> Decision:
    """Complaint -> a ticket (category and priority from bot.yaml, raised for an influential
    author or strongly negative text); else purchase intent -> a lead. A mention with no text or
    no author becomes neither (there is nobody to answer)."""
    text = mention.text
    if mention.deleted or not text.strip() or not mention.author_id or reading.intent is None:
        return Decision()
    confidence = reading.intent_confidence or 0.0
    category = policy.category(text, bot_rules)
    score = reading.sentiment_score if reading.sentiment_score is not None else 0.5
    complaint = (reading.intent in rules.complaint_intents and confidence >= rules.complaint_min_confidence) or (
        reading.sentiment == "neg" and score <= rules.complaint_negative_score and category != "other") or \
        bool(find_terms(text, rules.complaint_words))
    if complaint:
        return Decision(ticket=(category, ticket_priority(text, category, mention.author_followers, score, mood,
                                                          bot_rules, rules)))
    words = find_terms(text, rules.lead_words)
    if words or (reading.intent in rules.lead_intents and confidence >= rules.lead_min_confidence):
        keyword, campaign = lead_source(reading.watch_terms, kinds or {}, words, reading.keywords)
        return Decision(lead=True, lead_keyword=keyword, campaign=campaign)
    return Decision()


def lead_source(matched: Sequence[str], kinds: Mapping[str, str], words: Sequence[str] = (),
                keywords: Sequence[str] = ()) -> tuple[str | None, str | None]:
    """A social lead's keyword and campaign: the product, competitor or campaign term it matched
    (what the marketer tracks it by: nearly every mention names the brand), else the lead word
    found, else the brand term, else its first keyword; the campaign term it matched, if any."""
    specific = next((t for t in matched if kinds.get(t, "brand") != "brand"), None)
    keyword = specific or next(iter(words), None) or next(iter(matched), None) or next(iter(keywords), None)
    return keyword, next((t for t in matched if kinds.get(t) == "campaign"), None)


def ticket_priority(text: str, category: str, followers: int | None, score: float, mood: Sentiment,
                    bot_rules: BotRules, rules: ListeningRules) -> str:
    """A mention's ticket priority: the bot's rule for the text (P1 for food safety or legal
    threats), one step up for an influential author and one for strongly negative text."""
    rank = int(policy.priority(text, category, mood, None, bot_rules)[1])
    if (followers or 0) >= rules.influential_followers:
        rank -= 1
    if score <= rules.strong_negative_score and not mood.strong:  # angry words raised it already
        rank -= 1
    return f"P{max(rank, 1)}"


# ---------------------------------------------------------------------------------- sources
def _weibo_pages(client: weibo.WeiboClient, kind: str, count: int) -> Callable[[str | None], Iterator[Page]]:
    def pages(since_id: str | None) -> Iterator[Page]:
        for page in client.mention_pages(kind, since_id=since_id, count=count):
            yield Page(page.mentions, page.newest_id, page.rejected)
    return pages


def _tweet_pages(fetch: Callable[[str | None], Iterable[twitter.TweetPage]]) -> Callable[[str | None], Iterator[Page]]:
    def pages(since_id: str | None) -> Iterator[Page]:
        for page in fetch(since_id):
            yield Page(page.mentions, page.newest_id, page.problems)
    return pages


def search_query(term: str) -> str:
    """A watch term as a recent-search query: the exact phrase."""
    return '"' + term.replace('"', " ").strip() + '"'


def _newest(*ids: str | None) -> str | None:
    present = [i for i in ids if i]
    return max(present, key=int) if present else None


class Listener:
    """Polls one account of one channel into the store. ``client`` is the channel's client
    (``WeiboClient`` or ``TwitterClient``); ``uow`` makes a unit of work per transaction."""

    def __init__(self, channel: str, account: str, client: Any, uow: Callable[[], UnitOfWork],
                 bot_rules: BotRules, rules: ListeningRules, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if channel not in CHANNELS:
            raise ValueError(f"listening covers {', '.join(CHANNELS)}, not {channel!r}")
        self.channel, self.account, self.client = channel, account, client
        self.uow, self.bot_rules, self.rules, self.clock, self.sleep = uow, bot_rules, rules, clock, sleep

    def sources(self, terms: Sequence[str]) -> list[tuple[str, Callable[[str | None], Iterator[Page]]]]:
        size = self.rules.page_size
        if self.channel == weibo.NAME:
            return [("statuses", _weibo_pages(self.client, POST, size)),
                    ("comments", _weibo_pages(self.client, COMMENT, size))]
        found = [("mentions", _tweet_pages(lambda since: self.client.mentions(since, size)))]
        for term in terms[: self.rules.max_search_terms]:
            found.append((f"search:{term}"[:80], _tweet_pages(
                lambda since, term=term: self.client.search(search_query(term), self._recent(since), max(size, 10)))))
        return found

    def _recent(self, since_id: str | None) -> str | None:
        """A search cursor Twitter still takes: recent search refuses a since_id older than its
        seven days, so an older one (a term not searched for a week) searches the whole window."""
        if since_id is None:
            return None
        try:
            made = twitter.snowflake_time(since_id).timestamp()
        except (OverflowError, OSError, ValueError):
            return None
        return since_id if made > self.clock() - SEARCH_WINDOW else None

    def poll(self, force: bool = False, max_wait: float = 0.0) -> list[SourceRun]:
        """One poll of every source, then the day's follower count if it is not taken yet.
        ``force`` polls a source even inside its rate-limit wait (an operator's ``crmbot poll``);
        a rate limit that resets within ``max_wait`` seconds is waited out and the source read
        again from its cursor (a scheduled poll waits for nothing: the next one comes soon)."""
        with self.uow() as uow:
            rows = listening.watch_terms(uow)
            terms = [row.term for row in rows]
            kinds = {row.term: row.kind for row in rows}
        runs = [self.poll_source(name, pages, terms, kinds, force, max_wait)
                for name, pages in self.sources(terms)]
        followers = self.snapshot_followers()
        return runs + ([followers] if followers is not None else [])

    def _waiting_until(self, source: str) -> datetime | None:
        with self.uow() as uow:
            last = listening.last_poll_run(self.channel, self.account, source, uow)
        until = as_utc(last.rate_limited_until) if last is not None and last.rate_limited_until else None
        return until if until is not None and until.timestamp() > self.clock() else None

    def poll_source(self, source: str, pages: Callable[[str | None], Iterator[Page]], terms: Sequence[str] = (),
                    kinds: Mapping[str, str] | None = None, force: bool = False, max_wait: float = 0.0) -> SourceRun:
        run = SourceRun(source)
        waiting = None if force else self._waiting_until(source)
        if waiting is not None:
            run.skipped, run.outcome, run.rate_limited_until = True, "rate_limited", waiting
            return run
        started = utcnow()
        newest: str | None = None
        waits = 0
        while True:
            try:
                if waits == 0:
                    with self.uow() as uow:
                        run.cursor_before = listening.cursor(self.channel, self.account, source, uow)
                for page in pages(run.cursor_before):
                    run.pages += 1
                    run.fetched += len(page.mentions)
                    run.errors.extend(page.problems)
                    newest = _newest(newest, page.newest_id)
                    self._store_page(page, terms, kinds or {}, run)
            except RateLimited as exc:
                wait = max(exc.reset_at - self.clock(), 0.0)
                if waits < MAX_RATE_WAITS and wait <= max_wait:
                    # Read again from the cursor: the pages stored already are found stored.
                    waits += 1
                    run.errors.append(f"{exc}; waited {wait:.0f} s and read again")
                    self.sleep(wait)
                    continue
                run.outcome = "rate_limited"
                run.rate_limited_until = datetime.fromtimestamp(exc.reset_at, timezone.utc)
                run.errors.append(str(exc))
            except AuthExpired as exc:
                run.outcome = "auth_expired"
                run.errors.append(str(exc))
            except Exception as exc:  # noqa: BLE001 - a poll records what went wrong and never kills the worker
                log.exception("%s %s: poll of %s failed", self.channel, self.account, source)
                run.outcome = "partial" if run.pages else "failed"
                run.errors.append(f"{exc.__class__.__name__}: {exc}")
            break
        run.cursor_after = run.cursor_before
        try:
            with self.uow() as uow:
                if run.outcome == "ok" and newest is not None:
                    run.cursor_after = listening.advance_cursor(self.channel, self.account, source, newest, uow)
                listening.record_poll_run(
                    uow, channel=self.channel, account=self.account, source=source, started_at=started,
                    outcome=run.outcome, pages=run.pages, fetched=run.fetched, new=run.new, errors=run.errors,
                    rate_limited_until=run.rate_limited_until, cursor_before=run.cursor_before,
                    cursor_after=run.cursor_after)
                uow.commit()
        except Exception as exc:  # noqa: BLE001 - the store is down: the next poll reads the range again
            log.exception("%s %s: could not record the poll of %s", self.channel, self.account, source)
            run.outcome, run.cursor_after = "failed", run.cursor_before
            run.errors.append(f"recording the run: {exc.__class__.__name__}: {exc}")
        return run

    def _store_page(self, page: Page, terms: Sequence[str], kinds: Mapping[str, str], run: SourceRun) -> None:
        """Analyse the page's mentions not stored yet, then store them and apply the rules in one
        short transaction: a mention lands with its lead or ticket, or not at all."""
        if not page.mentions:
            return
        with self.uow() as uow:
            known = listening.known_ids(self.channel, self.account, [m.external_id for m in page.mentions], uow)
        fresh = [m for m in page.mentions if m.external_id not in known]
        readings: dict[str, listening.MentionReading] = {}
        moods: dict[str, Sentiment] = {}
        for mention in fresh:
            readings[mention.external_id], moods[mention.external_id] = read_mention(mention, terms, self.bot_rules)
        with self.uow() as uow:
            stored = listening.store_mentions(fresh, uow, readings)
            self._apply_rules(stored, moods, kinds, uow, run)
            uow.commit()
        run.new += len(stored)

    def _apply_rules(self, stored: Sequence[listening.StoredMention], moods: dict[str, Sentiment],
                     kinds: Mapping[str, str], uow: UnitOfWork, run: SourceRun) -> None:
        """The rules for a page's new mentions, decided one by one and written for the whole page
        at once (a round trip per mention was most of a page's time on PostgreSQL): the tickets
        numbered and inserted together, the leads found or made together, then every link."""
        tickets: dict[int, dict[str, Any]] = {}  # mention id -> its ticket, as mention_tickets takes it
        leads: dict[int, dict[str, Any]] = {}  # mention id -> its lead, as mention_leads takes it
        for row in stored:
            if row.customer_id is None:
                continue
            mention = row.mention
            decision = decide(mention, row.reading, moods[mention.external_id], self.bot_rules, self.rules, kinds)
            who = mention.author_screen_name or mention.author_id or ""
            if decision.ticket is not None:
                category, priority = decision.ticket
                first_due, resolution_due = policy.due_times(priority, utcnow(), self.bot_rules)
                tickets[row.id] = {
                    "customer_id": row.customer_id, "category": category, "priority": priority,
                    "first_response_due": first_due, "resolution_due": resolution_due,
                    "description": f"{self.channel} @{who}: {mention.text}" + (f"\n{mention.url}" if mention.url else "")}
            elif decision.lead:
                leads[row.id] = {"customer_id": row.customer_id, "name": who, "interest": mention.text[:1000],
                                 "source_channel": self.channel, "keyword": decision.lead_keyword,
                                 "campaign": decision.campaign}
        ticket_ids = listening.mention_tickets(list(tickets.values()), uow)
        lead_ids = [lead_id for lead_id, _ in listening.mention_leads(list(leads.values()), uow)]
        listening.link_mentions(uow, tickets=dict(zip(tickets, ticket_ids)), leads=dict(zip(leads, lead_ids)))
        run.tickets += len(tickets)
        run.leads += len(leads)

    def snapshot_followers(self) -> SourceRun | None:
        """The account's followers, once per brand day; None when today's is taken already."""
        day = utcnow().astimezone(SHANGHAI).date()
        with self.uow() as uow:
            if listening.has_followers(self.channel, self.account, day, uow):
                return None
        run, started = SourceRun(FOLLOWERS), utcnow()
        try:
            count = (self.client.followers_count() if self.channel == weibo.NAME else self.client.followers())
            with self.uow() as uow:
                listening.record_followers(self.channel, self.account, day, count, uow)
                uow.commit()
            run.fetched = 1
        except RateLimited as exc:
            run.outcome, run.rate_limited_until = "rate_limited", datetime.fromtimestamp(exc.reset_at, timezone.utc)
            run.errors.append(str(exc))
        except AuthExpired as exc:
            run.outcome = "auth_expired"
            run.errors.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - see poll_source
            log.exception("%s %s: follower count failed", self.channel, self.account)
            run.outcome = "failed"
            run.errors.append(f"{exc.__class__.__name__}: {exc}")
        try:
            with self.uow() as uow:
                listening.record_poll_run(uow, channel=self.channel, account=self.account, source=FOLLOWERS,
                                          started_at=started, outcome=run.outcome, fetched=run.fetched,
                                          errors=run.errors, rate_limited_until=run.rate_limited_until)
                uow.commit()
        except Exception:  # noqa: BLE001
            log.exception("%s %s: could not record the follower count run", self.channel, self.account)
        return run


# ---------------------------------------------------------------------------------- wiring
def account_of(channel: str, settings: Settings) -> str:
    """The brand's account on ``channel`` as configured (Weibo uid, Twitter user id)."""
    account = settings.weibo_uid if channel == weibo.NAME else settings.twitter_user_id
    if not account:
        setting = "CRMBOT_WEIBO_UID" if channel == weibo.NAME else "CRMBOT_TWITTER_USER_ID"
        raise ConfigError(f"{setting} is required to poll {channel}")
    return account


def configured_channels(settings: Settings) -> list[str]:
    """The channels whose credentials are set, so the scheduler polls only those."""
    found = []
    if settings.weibo_access_token and settings.weibo_uid:
        found.append(weibo.NAME)
    if settings.twitter_bearer_token and settings.twitter_user_id:
        found.append(twitter.NAME)
    return found


def client_for(channel: str, settings: Settings) -> Any:
    """The channel's client from the settings; ``AuthExpired``/``ConfigError`` when not set up."""
    if channel == weibo.NAME:
        return weibo.WeiboClient.from_settings(settings)
    if channel == twitter.NAME:
        return twitter.TwitterClient.from_settings(settings)
    raise ValueError(f"listening covers {', '.join(CHANNELS)}, not {channel!r}")


@lru_cache(maxsize=1)
def rules() -> ListeningRules:
    return load_listening()


def listener_for(channel: str, settings: Settings, uow: Callable[[], UnitOfWork], bot_rules: BotRules,
                 client: Any = None) -> Listener:
    return Listener(channel, account_of(channel, settings), client or client_for(channel, settings), uow,
                    bot_rules, rules())


def poll_channel(channel: str) -> list[dict[str, Any]]:
    """rq job (every ``polling.interval_seconds``, see ``crmbot scheduler``): one poll of the
    configured account. Two polls of one account never overlap (a Redis lock); a source inside
    its rate-limit wait is skipped. Never raises for a platform's failure: the runs record it."""
    from workers.jobs import runtime

    rt = runtime()
    rt.after_fork()
    lock = rt.redis.lock(f"crmbot:poll:{channel}", timeout=rules().interval_for(channel) * 5, blocking=False)
    if not lock.acquire(blocking=False):
        log.info("%s: a poll is still running, this one is skipped", channel)
        return []
    try:
        try:
            listener = listener_for(channel, rt.settings, rt.uow, rt.content.rules)
        except (AuthExpired, ConfigError) as exc:
            log.error("%s: cannot poll: %s", channel, exc)
            return [{"source": "*", "outcome": "auth_expired" if isinstance(exc, AuthExpired) else "failed",
                     "errors": [str(exc)]}]
        analysis.load(rt.content.rules.brand_words)
        runs = listener.poll()
        for run in runs:  # the console shows the poll record; the log tells whoever watches the workers
            if run.outcome in ("auth_expired", "failed", "partial"):
                log.error("%s %s: %s", channel, run.source, run.line())
        return [{"source": r.source, "outcome": r.outcome, "fetched": r.fetched, "new": r.new,
                 "errors": r.errors, "cursor": r.cursor_after, "skipped": r.skipped} for r in runs]
    finally:
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - it expired meanwhile: nothing to release
            pass


# ---------------------------------------------------------------------------------- by hand
class AlreadyLinked(ValueError):
    """The mention is a ticket (``what == "ticket"``) or a lead already."""

    def __init__(self, mention_id: int, what: str) -> None:
        super().__init__(f"mention {mention_id} is a {what} already")
        self.what = what


def ticket_from_mention(mention_id: int, actor: str, uow: UnitOfWork, bot_rules: BotRules) -> Ticket:
    """Staff turn a mention into a ticket in the escalation queue, as the rules would have (category
    and priority from its text, its author and its sentiment), linked both ways; audited.
    ``AlreadyLinked`` when it has a ticket already, ``ValueError`` when it has no author to
    answer; ``LookupError`` when there is no such mention."""
    mention = _mention(mention_id, uow)
    if mention.ticket_id is not None:
        raise AlreadyLinked(mention_id, "ticket")
    if mention.customer_id is None or not mention.text.strip():
        raise ValueError(f"mention {mention_id} has no author or no text to make a ticket of")
    mood = analysis.sentiment(mention.text)
    category = policy.category(mention.text, bot_rules)
    priority = ticket_priority(mention.text, category, mention.author_followers, mood.score, mood, bot_rules,
                               rules())
    first_due, resolution_due = policy.due_times(priority, utcnow(), bot_rules)
    who = mention.author_screen_name or mention.author_id or ""
    ticket = services.open_ticket(
        mention.customer_id, None, uow, source="mention", category=category, priority=priority,
        first_response_due=first_due, resolution_due=resolution_due,
        description=f"{mention.channel} @{who}: {mention.text}" + (f"\n{mention.url}" if mention.url else ""))
    listening.link_mention(mention.id, uow, ticket_id=ticket.id)
    staff.audit(actor, "mention.ticket", uow, "mention", mention.id, ticket=ticket.reference)
    return ticket


def lead_from_mention(mention_id: int, actor: str, uow: UnitOfWork) -> Lead:
    """Staff turn a mention into a lead (or add it to its author's open lead from that channel),
    with the watch term or keyword it matched, linked both ways; audited. ``AlreadyLinked`` when
    it is a lead already, ``ValueError`` when it has no author."""
    mention = _mention(mention_id, uow)
    if mention.lead_id is not None:
        raise AlreadyLinked(mention_id, "lead")
    if mention.customer_id is None:
        raise ValueError(f"mention {mention_id} has no author to make a lead of")
    kinds = {row.term: row.kind for row in listening.watch_terms(uow, active_only=False)}
    keyword, campaign = lead_source(mention.watch_terms or [], kinds, find_terms(mention.text, rules().lead_words),
                                    mention.keywords or [])
    lead, _ = listening.mention_lead(
        mention.customer_id, uow, name=mention.author_screen_name or mention.author_id or "",
        interest=mention.text[:1000], source_channel=mention.channel, keyword=keyword, campaign=campaign)
    listening.link_mention(mention.id, uow, lead_id=lead.id)
    staff.audit(actor, "mention.lead", uow, "mention", mention.id, lead=lead.id)
    return lead


def _mention(mention_id: int, uow: UnitOfWork) -> models.Mention:
    mention = uow.session.get(models.Mention, mention_id, with_for_update=True)
    if mention is None:
        raise LookupError(f"mention {mention_id} does not exist")
    return mention


def snapshot_wechat_followers() -> dict[str, int]:
    """rq job (hourly, see ``crmbot scheduler``): today's follower count of every WeChat Official
    Account, from the subscribe and unsubscribe events stored (the day's last reading wins)."""
    from workers.jobs import runtime

    rt = runtime()
    rt.after_fork()
    day = utcnow().astimezone(SHANGHAI).date()
    with rt.uow() as uow:
        counts = listening.wechat_followers(day, uow)
        for account, followers in counts.items():
            listening.record_followers("wechat", account, day, followers, uow)
        uow.commit()
    return counts
