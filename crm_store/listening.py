"""Listening service functions: mentions stored once, their authors as customers, watch terms,
cursors, poll runs and follower snapshots.

Like ``services``, they take a unit of work and never commit. No platform is called from here:
the poller fetches first, then stores a page in a short transaction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import bindparam, case, delete, func, insert, select, update

from channels.base import SUBSCRIBE, UNSUBSCRIBE, Mention
from crm_store import models, staff
from crm_store.models import ChannelIdentity, Customer, utcnow
from crm_store.references import SHANGHAI, _insert, next_references
from crm_store.uow import UnitOfWork

_mentions, _identities, _customers = models.Mention.__table__, ChannelIdentity.__table__, Customer.__table__


@dataclass(frozen=True)
class MentionReading:
    """What the analysis made of a mention's text (filled by the caller, which may import nlp)."""

    lang: str | None = None
    sentiment: str | None = None  # pos | neu | neg
    sentiment_score: float | None = None
    intent: str | None = None
    intent_confidence: float | None = None
    keywords: Sequence[str] = ()
    watch_terms: Sequence[str] = ()


@dataclass(frozen=True)
class StoredMention:
    """A mention this call inserted (a mention stored before is not returned)."""

    id: int
    mention: Mention
    customer_id: int | None
    reading: MentionReading = field(default_factory=MentionReading)


def author_customer(channel: str, account: str, author_id: str, screen_name: str | None, uow: UnitOfWork) -> int:
    """The customer behind a platform author: found through their ``ChannelIdentity`` (channel,
    account, author id), or made with one on first sight. One person, one customer: a second
    mention by the same author finds the same customer, and a later merge moves the identity."""
    return author_customers(channel, account, {author_id: screen_name}, uow)[author_id]


def author_customers(channel: str, account: str, authors: dict[str, str | None], uow: UnitOfWork) -> dict[str, int]:
    """``author_customer`` for many authors (author id -> screen name) in one read; new authors
    get a customer and an identity each."""
    if not authors:
        return {}
    query = select(_identities.c.external_id, _identities.c.customer_id).where(
        _identities.c.channel == channel, _identities.c.account == account,
        _identities.c.external_id.in_(list(authors)))
    found: dict[str, int] = {external_id: customer_id for external_id, customer_id in uow.execute(query)}
    missing = [author_id for author_id in authors if author_id not in found]
    if not missing:
        return found
    now = utcnow()
    uow.flush()
    new_customers = list(uow.connection.execute(
        insert(_customers).returning(_customers.c.id, sort_by_parameter_order=True),
        [{"display_name": (authors[a] or None) and authors[a][:120], "created_at": now} for a in missing]).scalars())
    # Two pollers meeting the same new author: the identity's unique key keeps one; the other's
    # customer rows are removed again and the kept ones are used.
    made: dict[str, int] = {external_id: customer_id for external_id, customer_id in uow.connection.execute(
        _insert(uow, ChannelIdentity).on_conflict_do_nothing().returning(
            _identities.c.external_id, _identities.c.customer_id),
        [{"customer_id": customer_id, "channel": channel, "account": account, "external_id": author_id,
          "subscribed": False, "created_at": now} for author_id, customer_id in zip(missing, new_customers)])}
    lost = [customer_id for author_id, customer_id in zip(missing, new_customers) if author_id not in made]
    if lost:
        uow.execute(delete(_customers).where(_customers.c.id.in_(lost)))
        made.update({external_id: customer_id for external_id, customer_id in uow.execute(query.where(
            _identities.c.external_id.in_([a for a in missing if a not in made])))})
    found.update(made)
    return found


def store_mentions(mentions: Iterable[Mention], uow: UnitOfWork,
                   readings: dict[str, MentionReading] | None = None) -> list[StoredMention]:
    """Insert each mention not stored yet (by channel, account and external id, ON CONFLICT DO
    NOTHING), with its author's customer and its ``readings[external_id]``; returns the new
    ones, in the order given. Storing a page again stores nothing twice."""
    readings = readings or {}
    now = utcnow()
    unique: dict[tuple[str, str, str], Mention] = {}
    for mention in mentions:
        unique.setdefault((mention.channel, mention.account, mention.external_id), mention)
    customers: dict[tuple[str, str, str], int] = {}
    for channel, account in {(m.channel, m.account) for m in unique.values()}:
        authors = {m.author_id: m.author_screen_name for m in unique.values()
                   if m.author_id and (m.channel, m.account) == (channel, account)}
        for author_id, customer_id in author_customers(channel, account, authors, uow).items():
            customers[(channel, account, author_id)] = customer_id
    rows: list[dict[str, Any]] = []
    for mention in unique.values():
        reading = readings.get(mention.external_id, MentionReading())
        rows.append({
            "channel": mention.channel, "account": mention.account, "external_id": mention.external_id,
            "kind": mention.kind, "text": mention.text, "author_id": mention.author_id,
            "author_screen_name": (mention.author_screen_name or None) and mention.author_screen_name[:120],
            "author_followers": mention.author_followers, "author_verified": mention.author_verified,
            "reposts": mention.reposts, "comments": mention.comments, "likes": mention.likes,
            "created_at": mention.created_at, "fetched_at": now, "lang": reading.lang,
            "sentiment": reading.sentiment, "sentiment_score": reading.sentiment_score, "intent": reading.intent,
            "intent_confidence": reading.intent_confidence, "keywords": list(reading.keywords),
            "watch_terms": list(reading.watch_terms),
            "customer_id": customers.get((mention.channel, mention.account, mention.author_id or "")),
            "reply_ref": mention.reply_ref, "in_reply_to": mention.in_reply_to,
            "url": (mention.url or None) and mention.url[:255], "deleted": mention.deleted,
            "truncated": mention.truncated, "raw": mention.raw,
        })
    inserted: dict[tuple[str, str, str], int] = {}
    if rows:
        # One statement for the page: executemany with RETURNING (SQLAlchemy's "insertmanyvalues"
        # batches it into multi-row INSERTs), which returns only the rows the conflict let in.
        statement = (_insert(uow, models.Mention).on_conflict_do_nothing()
                     .returning(_mentions.c.id, _mentions.c.channel, _mentions.c.account, _mentions.c.external_id))
        uow.flush()
        for new_id, channel, account, external_id in uow.connection.execute(statement, rows):
            inserted[(channel, account, external_id)] = new_id
    return [StoredMention(inserted[key], mention, customers.get((key[0], key[1], mention.author_id or "")),
                          readings.get(mention.external_id, MentionReading()))
            for key, mention in unique.items() if key in inserted]


def known_ids(channel: str, account: str, external_ids: Sequence[str], uow: UnitOfWork) -> set[str]:
    """Which of these mentions are stored already (so a re-fetched page is not analysed again)."""
    if not external_ids:
        return set()
    return set(uow.execute(select(_mentions.c.external_id).where(
        _mentions.c.channel == channel, _mentions.c.account == account,
        _mentions.c.external_id.in_(list(external_ids)))).scalars())


def mention_lead(customer_id: int, uow: UnitOfWork, *, name: str, interest: str, source_channel: str,
                 keyword: str | None = None, campaign: str | None = None) -> tuple[models.Lead, bool]:
    """A lead from a public post: no phone yet (marketers reach the author on the platform). The
    author's open lead from the same channel gains the interest instead of a second lead; returns
    the lead and whether it is new. Not ``services.capture_lead``: that dedupes by phone, and an
    empty phone would tie every social lead together."""
    [(lead_id, new)] = mention_leads([{"customer_id": customer_id, "name": name, "interest": interest,
                                       "source_channel": source_channel, "keyword": keyword,
                                       "campaign": campaign}], uow)
    # populate_existing: the lead may be in the session already, and was just written past it.
    return uow.session.get(models.Lead, lead_id, populate_existing=True), new


def mention_leads(wanted: Sequence[dict[str, Any]], uow: UnitOfWork) -> list[tuple[int, bool]]:
    """``mention_lead`` for a page: each of ``wanted`` holds its arguments (customer_id, name,
    interest, source_channel, keyword, campaign); returns (lead id, new) for each, in order.
    One read finds the authors' open leads, then one statement inserts the new leads and one
    updates the others; two mentions by one author on a page make one lead with both interests."""
    if not wanted:
        return []
    leads, now = models.Lead.__table__, utcnow()
    found = uow.execute(select(leads.c.id, leads.c.customer_id, leads.c.source_channel, leads.c.interest).where(
        leads.c.customer_id.in_({w["customer_id"] for w in wanted}), leads.c.phone == "",
        leads.c.source_channel.in_({w["source_channel"] for w in wanted}),
        leads.c.status.notin_(("converted", "lost"))).order_by(leads.c.id))
    # (customer, channel) -> the lead its mentions go to: the oldest open one, else one made here.
    open_leads: dict[tuple[int, str], dict[str, Any]] = {}
    for lead_id, customer_id, channel, interest in found:
        open_leads.setdefault((customer_id, channel), {"id": lead_id, "interest": interest, "touched": False})
    chosen: list[tuple[dict[str, Any], bool]] = []
    for want in wanted:
        key = (want["customer_id"], want["source_channel"])
        lead = open_leads.get(key)
        if lead is None:
            open_leads[key] = {"id": None, "interest": want["interest"], "first": want}
            chosen.append((open_leads[key], True))
            continue
        if want["interest"] not in lead["interest"]:
            lead["interest"] = f"{lead['interest']}\n{want['interest']}"
        lead["touched"] = "first" not in lead  # a lead found open is written back; a new one is not yet
        chosen.append((lead, False))
    made = [lead for lead in open_leads.values() if "first" in lead]
    if made:
        rows = []
        for lead in made:
            first, keyword, campaign = lead["first"], lead["first"].get("keyword"), lead["first"].get("campaign")
            rows.append({"customer_id": first["customer_id"], "name": first["name"][:120], "phone": "",
                         "interest": lead["interest"], "source_channel": first["source_channel"],
                         "keyword": (keyword or None) and keyword[:64], "campaign": (campaign or None) and campaign[:64],
                         "created_at": now, "updated_at": now})
        uow.flush()
        ids = uow.connection.execute(insert(leads).returning(leads.c.id, sort_by_parameter_order=True), rows)
        for lead, lead_id in zip(made, ids.scalars()):
            lead["id"] = lead_id
    gained = [{"b_id": lead["id"], "b_interest": lead["interest"]} for lead in open_leads.values()
              if lead.get("touched")]
    if gained:
        uow.connection.execute(update(leads).where(leads.c.id == bindparam("b_id")).values(
            interest=bindparam("b_interest"), updated_at=now), gained)
    return [(lead["id"], new) for lead, new in chosen]


def link_mention(mention_id: int, uow: UnitOfWork, *, lead_id: int | None = None,
                 ticket_id: int | None = None) -> None:
    """Record the lead or ticket a mention became (read back with ``mention_of``)."""
    link_mentions(uow, leads={mention_id: lead_id} if lead_id is not None else None,
                  tickets={mention_id: ticket_id} if ticket_id is not None else None)


def link_mentions(uow: UnitOfWork, *, leads: dict[int, int] | None = None,
                  tickets: dict[int, int] | None = None) -> None:
    """``link_mention`` for many mentions (mention id -> lead id, mention id -> ticket id): one
    statement for each kind of link."""
    for column, links in (("lead_id", leads), ("ticket_id", tickets)):
        if links:
            uow.flush()
            uow.connection.execute(update(_mentions).where(_mentions.c.id == bindparam("b_mention"))
                                   .values({column: bindparam("b_target")}),
                                   [{"b_mention": mention, "b_target": target} for mention, target in links.items()])


def mention_tickets(tickets: Sequence[dict[str, Any]], uow: UnitOfWork) -> list[int]:
    """``services.open_ticket`` for a page of mentions (source ``mention``, no conversation):
    each of ``tickets`` holds a ticket's customer_id, category, priority, first_response_due,
    resolution_due and description. The page's references are reserved with one counter update
    and its tickets inserted in one statement; returns their ids, in order."""
    if not tickets:
        return []
    table = models.Ticket.__table__
    rows = [{**ticket, "reference": reference, "source": "mention"}
            for ticket, reference in zip(tickets, next_references("T", len(tickets), uow))]
    uow.flush()
    return list(uow.connection.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True),
                                       rows).scalars())


def mention_of(uow: UnitOfWork, *, lead_id: int | None = None, ticket_id: int | None = None) -> models.Mention | None:
    """The mention a lead or a ticket was made from, if any: the other way of the link."""
    column = models.Mention.lead_id if lead_id is not None else models.Mention.ticket_id
    wanted = lead_id if lead_id is not None else ticket_id
    return uow.session.scalar(select(models.Mention).where(column == wanted).order_by(models.Mention.id).limit(1))


def mentions_of(uow: UnitOfWork, *, lead_ids: Sequence[int] = (), ticket_ids: Sequence[int] = ()) -> dict[int, int]:
    """The mention each of these leads (or tickets) was made from: lead or ticket id -> mention id."""
    column = models.Mention.lead_id if lead_ids else models.Mention.ticket_id
    wanted = list(lead_ids or ticket_ids)
    if not wanted:
        return {}
    found: dict[int, int] = {}
    for key, mention_id in uow.session.execute(select(column, models.Mention.id).where(column.in_(wanted))
                                               .order_by(models.Mention.id)):
        found.setdefault(key, mention_id)
    return found


# ------------------------------------------------------------------------------ cursors and runs
def cursor(channel: str, account: str, source: str, uow: UnitOfWork) -> str | None:
    """The since_id to poll ``source`` from (None: never read to the end yet)."""
    return uow.execute(select(models.ListeningCursor.since_id).filter_by(
        channel=channel, account=account, source=source)).scalar()


def advance_cursor(channel: str, account: str, source: str, since_id: str, uow: UnitOfWork) -> str:
    """Move the cursor to ``since_id``, never back (ids compare as numbers, not as text); returns
    where it is now. Called only for a poll that read every page to the end."""
    if not since_id.isdigit():
        raise ValueError(f"a cursor is a platform id (digits), got {since_id!r}")
    current = cursor(channel, account, source, uow)
    if current is not None and int(current) >= int(since_id):
        return current
    table = models.ListeningCursor.__table__
    statement = _insert(uow, models.ListeningCursor).values(channel=channel, account=account, source=source,
                                                           since_id=since_id, updated_at=utcnow())
    uow.execute(statement.on_conflict_do_update(index_elements=[table.c.channel, table.c.account, table.c.source],
                                                set_={"since_id": since_id, "updated_at": utcnow()}))
    return since_id


def record_poll_run(uow: UnitOfWork, *, channel: str, account: str, source: str, started_at: datetime,
                    outcome: str, pages: int = 0, fetched: int = 0, new: int = 0, errors: Sequence[str] = (),
                    rate_limited_until: datetime | None = None, cursor_before: str | None = None,
                    cursor_after: str | None = None) -> models.PollRun:
    """Keep the record of one poll of one source."""
    if outcome not in models.POLL_OUTCOMES:
        raise ValueError(f"a poll outcome is one of {', '.join(models.POLL_OUTCOMES)}, got {outcome!r}")
    run = models.PollRun(channel=channel, account=account, source=source, started_at=started_at,
                         finished_at=utcnow(), pages=pages, fetched=fetched, new=new,
                         errors=[e[:500] for e in errors][:50], rate_limited_until=rate_limited_until,
                         cursor_before=cursor_before, cursor_after=cursor_after, outcome=outcome)
    uow.session.add(run)
    uow.flush()
    return run


def last_poll_run(channel: str, account: str, source: str, uow: UnitOfWork) -> models.PollRun | None:
    return uow.session.scalar(select(models.PollRun).filter_by(channel=channel, account=account, source=source)
                              .order_by(models.PollRun.id.desc()).limit(1))


# ------------------------------------------------------------------------------ watch terms
def add_watch_term(term: str, kind: str, uow: UnitOfWork, actor: str = "system") -> models.WatchTerm:
    """Track ``term`` (brand | product | competitor | campaign); a deactivated one comes back.
    Audited."""
    clean = " ".join(term.split()).lower()
    if not clean or len(clean) > 64:
        raise ValueError("a watch term is 1 to 64 characters")
    if kind not in models.WATCH_TERM_KINDS:
        raise ValueError(f"a watch term's kind is one of {', '.join(models.WATCH_TERM_KINDS)}")
    row = uow.session.scalar(select(models.WatchTerm).filter_by(term=clean))
    if row is None:
        row = models.WatchTerm(term=clean, kind=kind, active=True)
        uow.session.add(row)
    else:
        row.kind, row.active = kind, True
    uow.flush()
    staff.audit(actor, "watch_term.add", uow, "watch_term", row.id, term=clean, kind=kind)
    return row


def watch_terms(uow: UnitOfWork, active_only: bool = True) -> list[models.WatchTerm]:
    query = select(models.WatchTerm).order_by(models.WatchTerm.term)
    if active_only:
        query = query.filter_by(active=True)
    return list(uow.session.scalars(query))


def deactivate_watch_term(term_id: int, uow: UnitOfWork, actor: str = "system") -> models.WatchTerm:
    """Stop tracking a term; mentions that matched it keep the match. Audited."""
    row = uow.session.get(models.WatchTerm, term_id)
    if row is None:
        raise LookupError(f"watch term {term_id} does not exist")
    if row.active:
        row.active = False
        staff.audit(actor, "watch_term.remove", uow, "watch_term", row.id, term=row.term)
    return row


# ------------------------------------------------------------------------------ followers
def record_followers(channel: str, account: str, day: date, followers: int, uow: UnitOfWork) -> None:
    """The account's followers on ``day`` (one row per day: a later reading replaces it)."""
    table = models.FollowerSnapshot.__table__
    statement = _insert(uow, models.FollowerSnapshot).values(channel=channel, account=account, day=day,
                                                            followers=followers, taken_at=utcnow())
    uow.execute(statement.on_conflict_do_update(index_elements=[table.c.channel, table.c.account, table.c.day],
                                                set_={"followers": followers, "taken_at": utcnow()}))


def has_followers(channel: str, account: str, day: date, uow: UnitOfWork) -> bool:
    return uow.execute(select(models.FollowerSnapshot.id).filter_by(
        channel=channel, account=account, day=day)).first() is not None


def wechat_followers(day: date, uow: UnitOfWork) -> dict[str, int]:
    """Followers of each WeChat Official Account at the end of the brand's ``day`` (so far, for
    today), from the subscribe and unsubscribe events WeChat pushed: the account's last snapshot
    before ``day`` plus the day's subscribes less its unsubscribes. An account with no earlier
    snapshot starts from the identities whose last event was a subscribe. (Followers from before
    the service was connected are not in the events: they count from their next subscribe.)"""
    identities, messages = ChannelIdentity.__table__, models.Message.__table__
    conversations = models.Conversation.__table__
    start = datetime.combine(day, time.min, SHANGHAI).astimezone(timezone.utc)
    change = func.sum(case((messages.c.kind == SUBSCRIBE, 1), else_=-1))
    net = dict(uow.execute(
        select(conversations.c.account, change).select_from(messages.join(
            conversations, conversations.c.id == messages.c.conversation_id))
        .where(conversations.c.channel == "wechat", messages.c.kind.in_((SUBSCRIBE, UNSUBSCRIBE)),
               messages.c.created_at >= start, messages.c.created_at < start + timedelta(days=1))
        .group_by(conversations.c.account)).all())
    snapshots = models.FollowerSnapshot.__table__
    latest = select(snapshots.c.account, func.max(snapshots.c.day).label("day")).where(
        snapshots.c.channel == "wechat", snapshots.c.day < day).group_by(snapshots.c.account).subquery()
    before = dict(uow.execute(select(snapshots.c.account, snapshots.c.followers).join(
        latest, (latest.c.account == snapshots.c.account) & (latest.c.day == snapshots.c.day))
        .where(snapshots.c.channel == "wechat")).all())
    subscribed = dict(uow.execute(
        select(identities.c.account, func.count()).where(identities.c.channel == "wechat",
                                                         identities.c.subscribed.is_(True))
        .group_by(identities.c.account)).all())
    return {account: before[account] + net.get(account, 0) if account in before else subscribed.get(account, 0)
            for account in {*net, *before, *subscribed}}
