"""Weibo (新浪微博) open API v2 (JSON): mentions of the brand's account, public replies, followers.

No maintained Python SDK exists, so this is a thin adapter over ``requests``:

* ``statuses/mentions`` and ``comments/mentions`` -> ``channels.base.Mention`` (posts and comments
  that @ the brand), paged newest first with ``since_id``/``max_id``;
* ``comments/create`` (comment on a post) and ``comments/reply`` (answer a comment) for public
  replies, through ``WeiboSender.send(OutboundMessage)``;
* ``statuses/show`` (one post, with its long text) and ``users/show`` (``followers_count``).

Ids are strings throughout: Weibo ids pass 2**53, where a JavaScript-style float would round them,
so ``idstr`` is preferred and an integer ``id`` is only ever turned into text. Idempotent GETs are
retried on connection errors and 5xx; a POST is never retried once it may have reached Weibo (a
read timeout or a 5xx raises ``SendOutcomeUnknown``). Weibo's ``{"error", "error_code",
"request"}`` answers map to ``channels.base``'s errors: ``AuthExpired`` (the token, which comes
from ``CRMBOT_WEIBO_ACCESS_TOKEN``), ``RateLimited``, ``SendFailed`` or ``WeiboAPIError``.
"""
from __future__ import annotations

import email.utils
import html
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Mapping

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.retry import Retry

from channels.base import (COMMENT, POST, AuthExpired, ChannelError, MalformedMessage, Mention, OutboundMessage,
                           RateLimited, SendFailed, SendOutcomeUnknown)
from config import Settings

log = logging.getLogger(__name__)

NAME = "weibo"
TOKEN_SETTING = "CRMBOT_WEIBO_ACCESS_TOKEN"
# Weibo's error codes (open.weibo.com/wiki/Error_code) that change what we do.
AUTH_CODES = frozenset({
    21301,  # auth failed
    21314, 21315, 21316, 21317,  # token used / expired / invalid / rejected
    21319,  # the user revoked the app's authorization
    21327,  # expired_token
    21332,  # invalid_access_token
})
RATE_CODES = frozenset({
    10022,  # IP requests out of rate limit
    10023,  # user requests out of rate limit
    10024,  # user requests for one endpoint out of rate limit
})
# Weibo's page that shows one post; works with the numeric id (weibo.com wants a base62 mid).
STATUS_URL = "https://m.weibo.cn/status/{}"
MAX_COUNT = 200  # the most one mentions page may hold
_ENDPOINTS = {POST: ("statuses/mentions.json", "statuses"), COMMENT: ("comments/mentions.json", "comments")}


class WeiboAPIError(ChannelError):
    """Weibo refused a read or answered something unreadable; ``code`` is Weibo's error_code,
    ``status`` the HTTP status (None when no answer came)."""

    def __init__(self, message: str, code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


# ---------------------------------------------------------------------------------- parsing
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                       "Nov", "Dec"), start=1)}
# "Tue May 31 17:46:55 +0800 2011": parsed by hand, as strptime's %a/%b follow the process locale.
_CREATED_AT = re.compile(r"[A-Za-z]{3} ([A-Za-z]{3}) (\d{1,2}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2}) (\d{4})")
_DIGITS = re.compile(r"[0-9]{1,30}")


def parse_created_at(value: Any) -> datetime:
    """Weibo's ``created_at`` ("Tue May 31 17:46:55 +0800 2011") as an aware UTC datetime."""
    match = _CREATED_AT.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or match.group(1) not in _MONTHS:
        raise MalformedMessage(f"created_at is not in Weibo's format: {value!r}")
    month, day, hh, mm, ss, sign, oh, om, year = match.groups()
    offset = timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == "+" else -1)
    try:
        local = datetime(int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss),
                         tzinfo=timezone(offset))
    except ValueError:
        raise MalformedMessage(f"created_at is not a real time: {value!r}") from None
    return local.astimezone(timezone.utc)


def _optional_id(value: Any) -> str | None:
    """An id as exact text, or None when absent; a float is refused, its digits may already be wrong."""
    if isinstance(value, bool) or value is None or value == "":
        return None
    if isinstance(value, int):
        return str(value) if value > 0 else None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return value if value.strip("0") else None
    raise MalformedMessage(f"not an exact id: {value!r}")


def object_id(obj: Mapping[str, Any]) -> str:
    """A post's, comment's or user's id as text: ``idstr`` first, then the integer ``id``."""
    for key in ("idstr", "id"):
        found = _optional_id(obj.get(key))
        if found is not None:
            return found
    raise MalformedMessage("no id")


def _nested_id(obj: Any) -> str | None:
    return object_id(obj) if isinstance(obj, Mapping) and (obj.get("idstr") or obj.get("id")) else None


def _count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return max(value, 0)
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return 0


def _followers(user: Mapping[str, Any]) -> int | None:
    value = user.get("followers_count")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return None  # absent, or shown rounded ("1.2万") where only a number would do


def _text(value: Any) -> str:
    # Weibo escapes <, > and & in texts; the CRM keeps what the author typed (emoji included).
    return html.unescape(value) if isinstance(value, str) else ""


def _author(obj: Mapping[str, Any]) -> dict[str, Any]:
    user = obj.get("user")
    if not isinstance(user, Mapping):  # a deleted, banned or hidden account
        return {}
    try:
        author_id = object_id(user)
    except MalformedMessage:
        return {}
    name = user.get("screen_name") or user.get("name")
    return {"author_id": author_id, "author_screen_name": name if isinstance(name, str) else None,
            "author_followers": _followers(user), "author_verified": user.get("verified") is True}


def _raw(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _is_deleted(obj: Mapping[str, Any]) -> bool:
    return str(obj.get("deleted", "")) == "1"


def parse_status(obj: Any, account: str) -> Mention:
    """One post of ``statuses/mentions`` (or ``statuses/show``) as a ``Mention``.

    A post its author deleted comes back as ``deleted="1"`` with a placeholder text and no user:
    it is flagged (``deleted=True``, empty text, no reply_ref), not dropped, so its id still
    moves the cursor. A long post cut short by the listing is flagged ``truncated`` unless the
    answer carries its ``longText`` (``statuses/show`` with ``isGetLongText=1`` does)."""
    if not isinstance(obj, Mapping):
        raise MalformedMessage("a status is not a JSON object")
    external_id = object_id(obj)
    created_at = parse_created_at(obj.get("created_at"))
    if _is_deleted(obj):
        return Mention(channel=NAME, account=account, external_id=external_id, kind=POST, text="",
                       created_at=created_at, deleted=True, raw=_raw(obj))
    long_text = obj.get("longText")
    full = long_text.get("longTextContent") if isinstance(long_text, Mapping) else None
    full = full if isinstance(full, str) and full else None
    truncated = full is None and (obj.get("isLongText") is True or obj.get("truncated") is True)
    retweeted = obj.get("retweeted_status")
    in_reply_to = _nested_id(retweeted) or _optional_id(obj.get("in_reply_to_status_id"))
    return Mention(
        channel=NAME, account=account, external_id=external_id, kind=POST, text=_text(full or obj.get("text")),
        created_at=created_at, **_author(obj),
        reposts=_count(obj.get("reposts_count")), comments=_count(obj.get("comments_count")),
        likes=_count(obj.get("attitudes_count")), in_reply_to=in_reply_to,
        url=STATUS_URL.format(external_id), reply_ref=external_id, truncated=truncated, raw=_raw(obj),
    )


def parse_comment(obj: Any, account: str) -> Mention:
    """One comment of ``comments/mentions`` as a ``Mention``; ``in_reply_to`` is the post it is
    under. Its ``reply_ref`` is ``"<post id>/<comment id>"`` (both are needed to answer it), or
    None when the post is unknown or deleted: Weibo refuses comments there."""
    if not isinstance(obj, Mapping):
        raise MalformedMessage("a comment is not a JSON object")
    external_id = object_id(obj)
    created_at = parse_created_at(obj.get("created_at"))
    status = obj.get("status")
    status_id = _nested_id(status)
    answerable = status_id is not None and not _is_deleted(status)
    return Mention(
        channel=NAME, account=account, external_id=external_id, kind=COMMENT, text=_text(obj.get("text")),
        created_at=created_at, **_author(obj),
        likes=_count(obj.get("like_counts", obj.get("like_count"))), in_reply_to=status_id,
        url=STATUS_URL.format(status_id) if status_id else None,
        reply_ref=f"{status_id}/{external_id}" if answerable else None, raw=_raw(obj),
    )


@dataclass(frozen=True)
class MentionPage:
    """One answer of a mentions endpoint, newest first. ``rejected`` holds one line per item that
    could not be read (it is not in ``mentions``); ``ids`` holds every id the page showed, read
    or not, so paging and cursors see them all."""

    kind: str
    mentions: tuple[Mention, ...]
    rejected: tuple[str, ...]
    ids: tuple[str, ...]
    total_number: int | None

    @property
    def newest_id(self) -> str | None:
        return max(self.ids, key=int) if self.ids else None

    @property
    def oldest_id(self) -> str | None:
        return min(self.ids, key=int) if self.ids else None


def parse_mentions(body: Any, kind: str, account: str) -> MentionPage:
    """A ``statuses/mentions`` (kind POST) or ``comments/mentions`` (kind COMMENT) answer."""
    key = _ENDPOINTS[kind][1]
    items = body.get(key) if isinstance(body, Mapping) else None
    if not isinstance(items, list):
        raise MalformedMessage(f"a mentions answer without a {key!r} list")
    parse = parse_status if kind == POST else parse_comment
    mentions: list[Mention] = []
    rejected: list[str] = []
    ids: list[str] = []
    for item in items:
        try:
            ids.append(object_id(item) if isinstance(item, Mapping) else "")
        except MalformedMessage:
            ids.append("")
        try:
            mentions.append(parse(item, account))
        except MalformedMessage as exc:
            rejected.append(f"{kind} {ids[-1] or '(no id)'}: {exc}")
    total = body.get("total_number")
    return MentionPage(kind=kind, mentions=tuple(mentions), rejected=tuple(rejected),
                       ids=tuple(i for i in ids if i),
                       total_number=total if isinstance(total, int) and not isinstance(total, bool) else None)


# ---------------------------------------------------------------------------------- the client
class WeiboClient:
    """The open API for one brand account (``account`` = its uid), with one access token.

    ``connect_timeout``/``read_timeout`` bound every request; GETs are retried ``retries`` times
    on connection errors, read timeouts and 500/502/503/504, with ``backoff`` seconds of
    exponential backoff. ``clock`` (epoch seconds) dates rate-limit resets."""

    def __init__(self, access_token: str | None, api_base: str, account: str = "", *,
                 connect_timeout: float = 5.0, read_timeout: float = 20.0, retries: int = 3,
                 backoff: float = 0.5, clock: Callable[[], float] = time.time) -> None:
        if not access_token:
            raise AuthExpired(f"no Weibo access token: set {TOKEN_SETTING}")
        self.api_base = api_base if api_base.endswith("/") else api_base + "/"
        self.account = account
        self.timeout = (connect_timeout, read_timeout)
        self.clock = clock
        retry = Retry(
            total=retries, connect=retries, read=retries, status=retries, other=0,
            allowed_methods=frozenset({"GET"}),  # read and status retries; connect retries cover all
            status_forcelist=(500, 502, 503, 504), backoff_factor=backoff,
            raise_on_status=False,  # the last 5xx answer is mapped below like any other
            respect_retry_after_header=False,  # a long Retry-After must not stall a worker inside urllib3
        )
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # The token goes in a header (Weibo's "Authorization: OAuth2 <token>"), not in URLs that get logged.
        self.session.headers["Authorization"] = f"OAuth2 {access_token}"

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> "WeiboClient":
        return cls(settings.weibo_access_token, settings.weibo_api_base, settings.weibo_uid or "", **options)

    def close(self) -> None:
        self.session.close()

    # ------------------------------------------------------------------ reads
    def mentions(self, kind: str, since_id: str | None = None, max_id: str | None = None,
                 count: int = 50, page: int = 1) -> MentionPage:
        """One page of posts (``POST``) or comments (``COMMENT``) that mention the account, newest
        first: ids above ``since_id`` and at most ``max_id``."""
        if kind not in _ENDPOINTS:
            raise ValueError(f"kind must be {POST!r} or {COMMENT!r}, got {kind!r}")
        params: dict[str, Any] = {"count": max(1, min(count, MAX_COUNT)), "page": page}
        if since_id is not None:
            params["since_id"] = _checked_id(since_id)
        if max_id is not None:
            params["max_id"] = _checked_id(max_id)
        body = self._get(_ENDPOINTS[kind][0], params)
        try:
            return parse_mentions(body, kind, self.account)
        except MalformedMessage as exc:
            raise WeiboAPIError(f"unreadable answer from {_ENDPOINTS[kind][0]}: {exc}") from None

    def mention_pages(self, kind: str, since_id: str | None = None, count: int = 50) -> Iterator[MentionPage]:
        """Every mention newer than ``since_id``, one page per request, newest first, until an
        empty page. Each request after the first asks for ids at most one below the oldest seen
        (``max_id``), so mentions arriving meanwhile neither shift the pages nor repeat.

        The newest id comes first: a caller may move its cursor only once the last page is in,
        or a failure halfway would skip the pages not yet read."""
        max_id: str | None = None
        previous: int | None = None
        while True:
            page = self.mentions(kind, since_id=since_id, max_id=max_id, count=count)
            yield page
            if page.oldest_id is None:
                return
            oldest = int(page.oldest_id)
            if previous is not None and oldest >= previous:
                # A page that does not go below the last one would be asked for again and again.
                raise WeiboAPIError(f"{_ENDPOINTS[kind][0]} ignored max_id={max_id}: paging would not end")
            previous = oldest
            max_id = str(oldest - 1)

    def status(self, status_id: str) -> Mention:
        """One post (``statuses/show``) with its long text."""
        body = self._get("statuses/show.json", {"id": _checked_id(status_id), "isGetLongText": 1})
        try:
            return parse_status(body, self.account)
        except MalformedMessage as exc:
            raise WeiboAPIError(f"unreadable answer from statuses/show: {exc}") from None

    def followers_count(self, uid: str | None = None) -> int:
        """``users/show``'s followers_count of ``uid`` (by default the brand's own account)."""
        uid = uid or self.account
        if not uid:
            raise WeiboAPIError("no uid: set CRMBOT_WEIBO_UID")
        body = self._get("users/show.json", {"uid": _checked_id(uid)})
        followers = _followers(body) if isinstance(body, Mapping) else None
        if followers is None:
            raise WeiboAPIError(f"users/show for {uid} has no followers_count")
        return followers

    # ------------------------------------------------------------------ writes
    def comment_on(self, status_id: str, text: str) -> str:
        """Comment on a post (``comments/create``); the new comment's id."""
        body = self._post("comments/create.json", {"id": _checked_id(status_id), "comment": text})
        return _created_id(body, "comments/create")

    def reply_to_comment(self, status_id: str, comment_id: str, text: str) -> str:
        """Answer a comment under a post (``comments/reply``); the new comment's id."""
        body = self._post("comments/reply.json",
                          {"cid": _checked_id(comment_id), "id": _checked_id(status_id), "comment": text})
        return _created_id(body, "comments/reply")

    # ------------------------------------------------------------------ transport
    def _get(self, path: str, params: Mapping[str, Any]) -> Any:
        try:
            response = self.session.get(self.api_base + path, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise WeiboAPIError(f"no answer from the Weibo API on {path} ({exc.__class__.__name__})") from None
        self._raise_for_error(response, path)
        body = _json(response)
        if body is None:
            raise WeiboAPIError(f"Weibo answered {path} with something other than JSON", status=response.status_code)
        return body

    def _post(self, path: str, data: Mapping[str, Any]) -> Any:
        try:
            response = self.session.post(self.api_base + path, data=data, timeout=self.timeout)
        except requests.RequestException as exc:
            if _never_connected(exc):
                raise SendFailed(f"Weibo API unreachable on {path} ({exc.__class__.__name__})") from None
            raise SendOutcomeUnknown(f"no answer from the Weibo API on {path} ({exc.__class__.__name__}): "
                                     "the comment may have been published") from None
        if response.status_code >= 500 and not _is_auth_or_rate(response):
            # A gateway's 5xx may hide a comment Weibo took.
            raise SendOutcomeUnknown(f"Weibo answered HTTP {response.status_code} on {path}: "
                                     "the comment may have been published")
        self._raise_for_error(response, path, sending=True)
        body = _json(response)
        if body is None:
            raise SendOutcomeUnknown(f"Weibo answered {path} with something other than JSON: "
                                     "the comment may have been published")
        return body

    def _raise_for_error(self, response: requests.Response, path: str, sending: bool = False) -> None:
        body = _json(response)
        code, error = _error_of(body)
        status = response.status_code
        if code in AUTH_CODES:
            raise AuthExpired(f"Weibo refused the access token ({code} {error}): set a new {TOKEN_SETTING}", code)
        if code in RATE_CODES or status == 429:
            reset_at = self._reset_at(response)
            raise RateLimited(f"Weibo rate limit on {path} ({code or status} {error}), "
                              f"wait until {datetime.fromtimestamp(reset_at, timezone.utc):%H:%M:%S} UTC", reset_at)
        if code is None and status < 400:
            return
        message = f"Weibo refused {path}: {code or f'HTTP {status}'} {error}".rstrip()
        if sending:
            raise SendFailed(message, code)
        raise WeiboAPIError(message, code, status)

    def _reset_at(self, response: requests.Response) -> float:
        """When to try again: the answer's Retry-After if it has one, else the next full hour.
        Weibo counts requests per hour and does not say when the count resets."""
        now = self.clock()
        retry_after = response.headers.get("Retry-After", "").strip()
        if retry_after.isdigit():
            return now + int(retry_after)
        if retry_after:
            try:
                return email.utils.parsedate_to_datetime(retry_after).timestamp()
            except (TypeError, ValueError):
                pass
        return float((int(now) // 3600 + 1) * 3600)


def _checked_id(value: str) -> str:
    if not isinstance(value, str) or not _DIGITS.fullmatch(value):
        raise ValueError(f"a Weibo id is a string of digits, got {value!r}")
    return value


def _json(response: requests.Response) -> Any:
    # The stdlib parser keeps integers exact at any size; nothing here goes through a float.
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def _error_of(body: Any) -> tuple[int | None, str]:
    if not isinstance(body, Mapping) or "error_code" not in body:
        return None, ""
    raw_code, error = body.get("error_code"), body.get("error")
    try:
        code = int(raw_code)
    except (TypeError, ValueError):
        code = -1  # an error without a readable code is still an error
    return code, error if isinstance(error, str) else ""


def _is_auth_or_rate(response: requests.Response) -> bool:
    code, _ = _error_of(_json(response))
    return code in AUTH_CODES or code in RATE_CODES


def _created_id(body: Any, path: str) -> str:
    try:
        return object_id(body) if isinstance(body, Mapping) else object_id({})
    except MalformedMessage:
        raise SendOutcomeUnknown(f"Weibo answered {path} without the new comment's id: "
                                 "the comment may have been published") from None


def _never_connected(exc: requests.RequestException) -> bool:
    """Whether the request failed before a connection was made, so Weibo cannot have it."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(reason, (ConnectTimeoutError, NewConnectionError))


# ---------------------------------------------------------------------------------- sending
class WeiboSender:
    """The outbox's sender for Weibo: a public comment answering a mention.

    ``message.reply_to`` is the mention's ``reply_ref``: ``"<post id>"`` comments on a post
    (``comments/create``), ``"<post id>/<comment id>"`` answers a comment (``comments/reply``).
    Weibo takes no idempotency key, so ``message.idempotency_key`` is only logged. Every failure
    is a ``SendFailed`` kind, as the outbox expects: an expired token or a rate limit is a plain
    ``SendFailed`` (its message says which), worth retrying later."""

    def __init__(self, client: WeiboClient) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> "WeiboSender":
        return cls(WeiboClient.from_settings(settings, **options))

    def send(self, message: OutboundMessage) -> None:
        post_id, comment_id = _reply_target(message.reply_to)
        try:
            if comment_id is None:
                new_id = self.client.comment_on(post_id, message.text)
            else:
                new_id = self.client.reply_to_comment(post_id, comment_id, message.text)
        except AuthExpired as exc:
            raise SendFailed(str(exc), exc.code) from None
        except RateLimited as exc:
            raise SendFailed(str(exc)) from None
        log.info("weibo comment %s published for %s", new_id, message.idempotency_key)


def _reply_target(reply_to: str | None) -> tuple[str, str | None]:
    post_id, slash, comment_id = (reply_to or "").partition("/")
    if not _DIGITS.fullmatch(post_id) or (slash and not _DIGITS.fullmatch(comment_id)):
        raise SendFailed(f"a Weibo reply needs the post or comment it answers (reply_to), got {reply_to!r}")
    return post_id, comment_id or None
