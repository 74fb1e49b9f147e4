"""Twitter/X over the v2 API with tweepy's ``Client``: mentions, recent search, replies, followers.

Reads (mentions, search, users) use the app's bearer token; a reply tweet uses the OAuth 1.0a user
keys of the brand account. tweepy hardcodes ``https://api.twitter.com``, so when
``CRMBOT_TWITTER_API_BASE`` names another host a transport adapter mounted on the client's session
rewrites each request's URL to it (tests and staging point the real client at a local fake).

Nothing here sleeps out a rate limit: a 429 becomes ``RateLimited(reset_at)`` and the poller
decides when to come back. Ids stay strings from the JSON to the ``Mention``.
"""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping, Sequence

import requests
import tweepy
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError

from channels import base
from channels.base import AuthExpired, ChannelError, MalformedMessage, Mention, OutboundMessage, RateLimited
from config import ConfigError, Settings
from config.settings import PREFIX, TWITTER_PUBLIC_API

log = logging.getLogger(__name__)

NAME = "twitter"
REPLY = "reply"  # a tweet answering another one; the other kind here is ``base.POST``
EXPANSIONS = ["author_id"]
USER_FIELDS = ["public_metrics", "verified", "username"]
# note_tweet carries the whole text of a tweet longer than 280 characters; ``text`` is cut short.
TWEET_FIELDS = ["created_at", "public_metrics", "conversation_id", "in_reply_to_user_id",
                "referenced_tweets", "note_tweet"]
MAX_RESULTS = 100  # the most either endpoint returns per page
RATE_WINDOW = 15 * 60  # Twitter's rate-limit window, for a 429 that names no reset time
TWITTER_EPOCH_MS = 1288834974657  # snowflake ids carry their creation time since this instant

# v2 escapes exactly these three in ``text``; a full html.unescape would also turn a customer's
# literal "&copy" into a symbol.
_ENTITY = re.compile(r"&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}


@dataclass(frozen=True)
class TweetPage:
    """One page of mentions or search results.

    ``newest_id``/``oldest_id`` come from ``meta`` (the poller's cursor material);
    ``next_token`` is None on the last page. ``problems`` lists what the API reported as partly
    missing (a deleted tweet, a suspended author) and tweets that could not be read: the page is
    still usable, and the poll record should show them."""

    mentions: tuple[Mention, ...]
    newest_id: str | None
    oldest_id: str | None
    next_token: str | None
    result_count: int
    problems: tuple[str, ...] = ()


def unescape(text: str) -> str:
    """Tweet text as the author wrote it (v2 HTML-escapes ``&``, ``<`` and ``>``)."""
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], text)


def snowflake_time(tweet_id: str) -> datetime:
    """The creation time a tweet id carries (ids since 2010 are snowflakes)."""
    return datetime.fromtimestamp(((int(tweet_id) >> 22) + TWITTER_EPOCH_MS) / 1000, timezone.utc)


def _id(value: Any) -> str | None:
    """An id as a string; v2 sends strings, an int is taken exactly, anything else is not an id."""
    if isinstance(value, str) and value.isdigit():
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return None


def _count(metrics: Mapping[str, Any], *names: str) -> int:
    total = 0
    for name in names:
        value = metrics.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            total += value
    return total


def _created_at(value: Any, tweet_id: str) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None:
            return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    try:
        return snowflake_time(tweet_id)  # missing or malformed: the id knows when it was made
    except (OverflowError, OSError, ValueError):  # not a snowflake after all: when we read it
        return datetime.now(timezone.utc)


def parse_tweet(tweet: Mapping[str, Any], users: Mapping[str, Mapping[str, Any]], account: str) -> Mention:
    """One v2 tweet object (with its author from ``includes.users`` when present) as a ``Mention``.

    Raises ``MalformedMessage`` when it has no usable id."""
    if not isinstance(tweet, Mapping):
        raise MalformedMessage("a tweet is not an object")
    tweet_id = _id(tweet.get("id"))
    if tweet_id is None:
        raise MalformedMessage(f"tweet without a usable id: {tweet.get('id')!r}")
    note = tweet.get("note_tweet")
    text = note.get("text") if isinstance(note, Mapping) and isinstance(note.get("text"), str) else None
    # A long tweet whose note_tweet came without its text: all we have is the cut-short ``text``.
    truncated = note is not None and text is None
    if text is None:
        text = tweet.get("text") if isinstance(tweet.get("text"), str) else ""
    author_id = _id(tweet.get("author_id"))
    author = users.get(author_id) if author_id else None
    author = author if isinstance(author, Mapping) else {}
    author_metrics = author.get("public_metrics") if isinstance(author.get("public_metrics"), Mapping) else {}
    followers = author_metrics.get("followers_count")
    screen_name = author.get("username") if isinstance(author.get("username"), str) else None
    metrics = tweet.get("public_metrics") if isinstance(tweet.get("public_metrics"), Mapping) else {}
    referenced: dict[str, str] = {}
    references = tweet.get("referenced_tweets")
    for reference in references if isinstance(references, list) else []:
        if isinstance(reference, Mapping) and isinstance(reference.get("type"), str) and _id(reference.get("id")):
            referenced[reference["type"]] = _id(reference.get("id")) or ""
    replied_to = referenced.get("replied_to")
    return Mention(
        channel=NAME, account=account, external_id=tweet_id,
        kind=REPLY if replied_to else base.POST,
        text=unescape(text),
        author_id=author_id, author_screen_name=screen_name,
        author_followers=followers if isinstance(followers, int) and not isinstance(followers, bool) else None,
        author_verified=author.get("verified") is True,
        # A quote tweet is Twitter's repost with a comment (Weibo counts both as 转发).
        reposts=_count(metrics, "retweet_count", "quote_count"),
        comments=_count(metrics, "reply_count"),
        likes=_count(metrics, "like_count"),
        created_at=_created_at(tweet.get("created_at"), tweet_id),
        # The tweet answered, else the one quoted or retweeted (the post a repost quotes).
        in_reply_to=replied_to or referenced.get("quoted") or referenced.get("retweeted"),
        url=f"https://x.com/{screen_name or 'i/web'}/status/{tweet_id}",
        reply_ref=tweet_id,  # a reply names the tweet it answers, nothing else
        truncated=truncated,
        raw=json.dumps(tweet, ensure_ascii=False, sort_keys=True),
    )


def parse_page(payload: Mapping[str, Any], account: str) -> TweetPage:
    """A v2 timeline or search answer (``data``, ``includes.users``, ``errors``, ``meta``) as a page.

    A tweet that cannot be read, a deleted tweet and an author missing from ``includes`` are
    noted in ``problems``; the other tweets of the page are kept."""
    if not isinstance(payload, Mapping):
        raise MalformedMessage("the answer is not a JSON object")
    includes = payload.get("includes") if isinstance(payload.get("includes"), Mapping) else {}
    users = {}
    for user in includes.get("users") or []:
        user_id = _id(user.get("id")) if isinstance(user, Mapping) else None
        if user_id:
            users[user_id] = user
    problems: list[str] = []
    for error in payload.get("errors") or []:
        if isinstance(error, Mapping):
            problems.append(str(error.get("detail") or error.get("title") or error))
    mentions: list[Mention] = []
    data = payload.get("data")
    for tweet in data if isinstance(data, list) else []:
        try:
            mention = parse_tweet(tweet, users, account)
        except MalformedMessage as exc:
            problems.append(str(exc))
            continue
        if mention.author_id and mention.author_id not in users:
            problems.append(f"tweet {mention.external_id}: author {mention.author_id} not in includes.users")
        mentions.append(mention)
    meta = payload.get("meta") if isinstance(payload.get("meta"), Mapping) else {}
    ids = [int(m.external_id) for m in mentions]
    newest = _id(meta.get("newest_id")) or (str(max(ids)) if ids else None)
    oldest = _id(meta.get("oldest_id")) or (str(min(ids)) if ids else None)
    token = meta.get("next_token")
    count = meta.get("result_count")
    return TweetPage(
        mentions=tuple(mentions), newest_id=newest, oldest_id=oldest,
        next_token=token if isinstance(token, str) and token else None,
        result_count=count if isinstance(count, int) and not isinstance(count, bool) else len(mentions),
        problems=tuple(problems),
    )


class RewriteBaseAdapter(HTTPAdapter):
    """A transport adapter that sends requests for ``https://api.twitter.com/`` to another base URL.

    Mounted on the tweepy client's session for that prefix. The rewrite happens at send time,
    after requests has applied the auth, so OAuth 1.0a signs the public URL the real API expects."""

    def __init__(self, api_base: str, public_base: str = TWITTER_PUBLIC_API, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.public_base = public_base
        self.api_base = api_base if api_base.endswith("/") else api_base + "/"

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        if url.startswith(self.public_base):
            request.url = self.api_base + url[len(self.public_base):]
        return super().send(request, *args, **kwargs)


class _TimeoutSession(requests.Session):
    """tweepy passes no timeout; a poll must not hang on a silent connection."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def _never_connected(exc: requests.RequestException) -> bool:
    """Whether the request failed before a connection was made, so Twitter cannot have it."""
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    # urllib3's NewConnectionError (refused, unresolvable) is a ConnectTimeoutError too.
    return isinstance(exc, requests.ConnectTimeout) or isinstance(reason, ConnectTimeoutError)


def _detail(exc: tweepy.HTTPException) -> str:
    return "; ".join(str(m) for m in exc.api_messages) or str(exc).replace("\n", " ")


class TwitterClient:
    """The brand account's side of the v2 API: its mentions, recent search, replies, followers.

    Reads retry a 5xx or a connection failure ``retries`` times (after ``backoff`` seconds) and
    then raise ``ChannelError``; a 429 raises ``RateLimited`` at once, a 401 ``AuthExpired``
    naming the setting to renew."""

    def __init__(self, bearer_token: str, user_id: str, *, consumer_key: str | None = None,
                 consumer_secret: str | None = None, access_token: str | None = None,
                 access_token_secret: str | None = None, api_base: str = TWITTER_PUBLIC_API,
                 timeout: float = 10.0, retries: int = 2, backoff: Sequence[float] = (1.0, 4.0),
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time) -> None:
        self.user_id = user_id
        self.retries = retries
        self.backoff = tuple(backoff) or (0.0,)
        self.sleep = sleep
        self.clock = clock
        self._can_post = all((consumer_key, consumer_secret, access_token, access_token_secret))
        # return_type=dict: the answer exactly as sent, parsed by parse_page (tested on v2 JSON).
        self.api = tweepy.Client(bearer_token=bearer_token, consumer_key=consumer_key,
                                 consumer_secret=consumer_secret, access_token=access_token,
                                 access_token_secret=access_token_secret, return_type=dict,
                                 wait_on_rate_limit=False)
        self.api.session = _TimeoutSession(timeout)
        if api_base.rstrip("/") != TWITTER_PUBLIC_API.rstrip("/"):
            self.api.session.mount(TWITTER_PUBLIC_API, RewriteBaseAdapter(api_base))

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> "TwitterClient":
        """The client for the configured account; ``ConfigError`` names a missing read setting."""
        for name in ("twitter_bearer_token", "twitter_user_id"):
            if not getattr(settings, name):
                raise ConfigError(f"{PREFIX}{name.upper()} is required for Twitter")
        return cls(settings.twitter_bearer_token or "", settings.twitter_user_id or "",
                   consumer_key=settings.twitter_consumer_key, consumer_secret=settings.twitter_consumer_secret,
                   access_token=settings.twitter_access_token,
                   access_token_secret=settings.twitter_access_token_secret,
                   api_base=settings.twitter_api_base, **kwargs)

    # ------------------------------------------------------------------ reads
    def mentions_page(self, since_id: str | None = None, pagination_token: str | None = None,
                      max_results: int = MAX_RESULTS) -> TweetPage:
        """One page of tweets mentioning the account, newest first, only those after ``since_id``."""
        payload = self._get(f"mentions of {self.user_id}", lambda: self.api.get_users_mentions(
            self.user_id, since_id=since_id, pagination_token=pagination_token, max_results=max_results,
            expansions=EXPANSIONS, user_fields=USER_FIELDS, tweet_fields=TWEET_FIELDS))
        return parse_page(payload, self.user_id)

    def mentions(self, since_id: str | None = None, max_results: int = MAX_RESULTS) -> Iterator[TweetPage]:
        """Every page of mentions after ``since_id``, following ``meta.next_token``. A failure part way
        raises from the generator: the cursor should move only once the last page is in."""
        token: str | None = None
        while True:
            page = self.mentions_page(since_id, token, max_results)
            yield page
            if page.next_token is None:
                return
            token = page.next_token

    def search_page(self, query: str, since_id: str | None = None, next_token: str | None = None,
                    max_results: int = MAX_RESULTS) -> TweetPage:
        """One page of the last seven days' tweets matching ``query`` (a watch term)."""
        payload = self._get(f"search {query!r}", lambda: self.api.search_recent_tweets(
            query, since_id=since_id, next_token=next_token, max_results=max_results,
            expansions=EXPANSIONS, user_fields=USER_FIELDS, tweet_fields=TWEET_FIELDS))
        return parse_page(payload, self.user_id)

    def search(self, query: str, since_id: str | None = None, max_results: int = MAX_RESULTS) -> Iterator[TweetPage]:
        """Every page of recent search results for ``query`` after ``since_id``."""
        token: str | None = None
        while True:
            page = self.search_page(query, since_id, token, max_results)
            yield page
            if page.next_token is None:
                return
            token = page.next_token

    def followers(self, user_id: str | None = None) -> int:
        """``public_metrics.followers_count`` of a user (the brand account by default)."""
        user_id = user_id or self.user_id
        payload = self._get(f"user {user_id}", lambda: self.api.get_user(id=user_id, user_fields=["public_metrics"]))
        data = payload.get("data") if isinstance(payload, Mapping) else None
        metrics = data.get("public_metrics") if isinstance(data, Mapping) else None
        count = metrics.get("followers_count") if isinstance(metrics, Mapping) else None
        if not isinstance(count, int) or isinstance(count, bool):
            errors = payload.get("errors") if isinstance(payload, Mapping) else None
            raise ChannelError(f"twitter user {user_id} has no followers count: {errors or payload!r}")
        return count

    def _get(self, what: str, call: Callable[[], Any]) -> Any:
        for attempt in range(self.retries + 1):
            try:
                return call()
            except tweepy.TooManyRequests as exc:
                reset_at = float(exc.reset_time) if exc.reset_time is not None else self.clock() + RATE_WINDOW
                raise RateLimited(f"twitter rate limit on {what}: wait until "
                                  f"{datetime.fromtimestamp(reset_at, timezone.utc).isoformat()}", reset_at) from None
            except tweepy.Unauthorized:
                raise AuthExpired(f"twitter refused {PREFIX}TWITTER_BEARER_TOKEN (401) on {what}: it was "
                                  "revoked or regenerated; set the app's current bearer token", 401) from None
            except requests.JSONDecodeError:
                raise MalformedMessage(f"twitter answered {what} with something that is not JSON") from None
            except (tweepy.TwitterServerError, requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                failure = (f"HTTP {exc.response.status_code}" if isinstance(exc, tweepy.HTTPException)
                           else exc.__class__.__name__)
                if attempt == self.retries:
                    raise ChannelError(f"twitter {what} failed {attempt + 1} times, last: {failure}") from None
                delay = self.backoff[min(attempt, len(self.backoff) - 1)]
                log.warning("twitter %s: %s, try %d again in %.1fs", what, failure, attempt + 2, delay)
                self.sleep(delay)
            except tweepy.Forbidden as exc:
                raise ChannelError(f"twitter refused {what} (403: {_detail(exc)}); the app's API tier "
                                   "may not include this endpoint") from None
            except tweepy.HTTPException as exc:
                raise ChannelError(f"twitter refused {what} (HTTP {exc.response.status_code}: "
                                   f"{_detail(exc)})") from None
        raise AssertionError("unreachable")  # the loop returns or raises

    # ------------------------------------------------------------------ writes
    def reply(self, text: str, in_reply_to: str) -> str:
        """Post ``text`` as the brand account's reply to tweet ``in_reply_to``; the new tweet's id.

        Never retried here: a 5xx or a lost answer may hide a tweet that was created, so it is
        ``SendOutcomeUnknown``. A 401 is ``AuthExpired``, a 429 ``RateLimited``, a 403 (replies
        restricted, tweet deleted, duplicate text) ``RecipientUnreachable``."""
        if not self._can_post:
            raise base.SendFailed(f"twitter replies need {PREFIX}TWITTER_CONSUMER_KEY, _CONSUMER_SECRET, "
                                  "_ACCESS_TOKEN and _ACCESS_TOKEN_SECRET")
        try:
            payload = self.api.create_tweet(text=text, in_reply_to_tweet_id=in_reply_to)
        except tweepy.TooManyRequests as exc:
            reset_at = float(exc.reset_time) if exc.reset_time is not None else self.clock() + RATE_WINDOW
            raise RateLimited("twitter rate limit on tweets: wait until "
                              f"{datetime.fromtimestamp(reset_at, timezone.utc).isoformat()}", reset_at) from None
        except tweepy.Unauthorized:
            raise AuthExpired(f"twitter refused the OAuth 1.0a user keys (401): renew {PREFIX}TWITTER_ACCESS_TOKEN "
                              f"and {PREFIX}TWITTER_ACCESS_TOKEN_SECRET (or the consumer key and secret)", 401) from None
        except tweepy.Forbidden as exc:
            raise base.RecipientUnreachable(f"twitter refused the reply to {in_reply_to}: {_detail(exc)}", 403) from None
        except tweepy.TwitterServerError as exc:
            raise base.SendOutcomeUnknown(f"twitter answered HTTP {exc.response.status_code}: the reply may "
                                          "have been posted") from None
        except tweepy.HTTPException as exc:
            status = exc.response.status_code
            raise base.SendFailed(f"twitter refused the reply: {status} {_detail(exc)}", status) from None
        except requests.JSONDecodeError:
            raise base.SendOutcomeUnknown("twitter's answer to the reply is not JSON: it may have been posted") from None
        except requests.RequestException as exc:
            if _never_connected(exc):
                raise base.SendFailed(f"twitter API unreachable: {exc.__class__.__name__}") from None
            raise base.SendOutcomeUnknown(f"no answer from the twitter API ({exc.__class__.__name__}): "
                                          "the reply may have been posted") from None
        data = payload.get("data") if isinstance(payload, Mapping) else None
        tweet_id = _id(data.get("id")) if isinstance(data, Mapping) else None
        if tweet_id is None:
            raise base.SendOutcomeUnknown(f"twitter's answer to the reply names no tweet: {payload!r}")
        return tweet_id


class TwitterSender:
    """The outbound side: a public reply tweet for one ``OutboundMessage`` (like ``WeChatSender``).

    The tweet replied to is ``message.reply_to`` (a ``Mention.reply_ref``: the tweet's id); a
    message without one would be a direct message, which this channel does not send. Raises only
    ``SendFailed`` kinds, as the send job expects: an expired key is a ``SendFailed`` (code 401)
    naming the setting, a 429 ``QuotaExceeded``."""

    def __init__(self, client: TwitterClient) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> "TwitterSender":
        for name in ("twitter_consumer_key", "twitter_consumer_secret", "twitter_access_token",
                     "twitter_access_token_secret"):
            if not getattr(settings, name):
                raise ConfigError(f"{PREFIX}{name.upper()} is required to reply on Twitter")
        return cls(TwitterClient.from_settings(settings, **kwargs))

    def send(self, message: OutboundMessage) -> str:
        """Post the reply; the new tweet's id. Twitter takes no idempotency key, so it is only
        logged: the outbox's lease keeps a reply from being posted twice."""
        in_reply_to = message.reply_to
        if in_reply_to is None or _id(in_reply_to) is None:
            raise base.SendFailed(f"twitter message {message.idempotency_key}: reply_to {in_reply_to!r} is not "
                                  "a tweet id (only public replies are sent on Twitter)")
        try:
            tweet_id = self.client.reply(message.text, in_reply_to)
        except AuthExpired as exc:
            raise base.SendFailed(str(exc), 401) from None
        except RateLimited as exc:
            raise base.QuotaExceeded(str(exc), 429) from None
        log.info("twitter reply %s posted as tweet %s", message.idempotency_key, tweet_id)
        return tweet_id
