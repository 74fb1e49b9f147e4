"""A local fake of the Twitter/X API v2, for the real tweepy ``Client`` behind ``channels.twitter``.

Only the endpoints the service needs are served:

* ``GET  /2/users/:id/mentions``    (user mention timeline, ``since_id`` + ``pagination_token``)
* ``GET  /2/tweets/search/recent``  (recent search, ``since_id`` + ``next_token``)
* ``POST /2/tweets``                (create a tweet, OAuth 1.0a user context)
* ``GET  /2/users/:id``             (user lookup, ``public_metrics``)

Answers use the documented JSON shapes (``data``, ``includes.users``, ``errors``, ``meta`` with
``result_count``/``newest_id``/``oldest_id``/``next_token``), return only the fields asked for in
``tweet.fields``/``user.fields``, and the problem documents of v2 errors. Reads need the bearer
token; a POST needs an ``Authorization: OAuth ...`` header with the consumer key (the signature is
not checked). Tests script 429s, failures, revoked credentials and slow answers.
"""
from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from flask import Flask, Response, jsonify, request

from tests.fakes.flask_server import FakeFlaskServer

TWITTER_EPOCH_MS = 1288834974657
BRAND_USER_ID = "1500000000000000001"  # above 2**53, as real ids are
NOT_FOUND = "https://api.twitter.com/2/problems/resource-not-found"


def snowflake(when: datetime, sequence: int = 0) -> str:
    """A tweet id as Twitter makes them: milliseconds since its epoch, shifted, plus a sequence."""
    ms = int(when.timestamp() * 1000) - TWITTER_EPOCH_MS
    return str((ms << 22) + sequence)


@dataclass
class FakeUser:
    id: str
    username: str
    name: str
    followers: int = 0
    verified: bool = False

    def to_json(self, fields: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "username": self.username}
        if "public_metrics" in fields:
            out["public_metrics"] = {"followers_count": self.followers, "following_count": 12,
                                     "tweet_count": 345, "listed_count": 6}
        if "verified" in fields:
            out["verified"] = self.verified
        if "created_at" in fields:
            out["created_at"] = "2012-03-04T05:06:07.000Z"
        return out


@dataclass
class FakeTweet:
    id: str
    text: str  # as the author wrote it; served HTML-escaped like v2
    author_id: str
    created_at: datetime
    mentions_brand: bool = True
    in_reply_to: str | None = None
    metrics: dict[str, int] = field(default_factory=lambda: {
        "retweet_count": 0, "reply_count": 0, "like_count": 0, "quote_count": 0})

    def to_json(self, fields: set[str]) -> dict[str, Any]:
        text = self.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        out: dict[str, Any] = {"id": self.id, "edit_history_tweet_ids": [self.id]}
        if len(self.text) > 280:  # a long tweet: text is cut, the whole of it is in note_tweet
            out["text"] = text[:279] + "…"
            if "note_tweet" in fields:
                out["note_tweet"] = {"text": text}
        else:
            out["text"] = text
        if "author_id" in fields:
            out["author_id"] = self.author_id
        if "created_at" in fields:
            out["created_at"] = self.created_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
                f"{self.created_at.microsecond // 1000:03d}Z"
        if "public_metrics" in fields:
            out["public_metrics"] = dict(self.metrics, bookmark_count=0, impression_count=0)
        if "conversation_id" in fields:
            out["conversation_id"] = self.in_reply_to or self.id
        if "in_reply_to_user_id" in fields and self.in_reply_to:
            out["in_reply_to_user_id"] = BRAND_USER_ID
        if "referenced_tweets" in fields and self.in_reply_to:
            out["referenced_tweets"] = [{"type": "replied_to", "id": self.in_reply_to}]
        return out


class FakeTwitterAPI(FakeFlaskServer):
    """Fake ``https://api.twitter.com/`` served on 127.0.0.1:<random port> (Flask under werkzeug)."""

    def __init__(self, bearer_token: str = "test-bearer-token", consumer_key: str = "test-consumer-key",
                 user_id: str = BRAND_USER_ID, brand_followers: int = 4321) -> None:
        self.bearer_token = bearer_token
        self.consumer_key = consumer_key
        self.user_id = user_id
        self.users: dict[str, FakeUser] = {user_id: FakeUser(user_id, "brand", "The Brand", brand_followers, True)}
        self.tweets: dict[str, FakeTweet] = {}
        self.deleted: set[str] = set()
        self.posted: list[dict[str, Any]] = []  # every tweet created: text, in_reply_to_tweet_id, authorization, json
        self.calls: list[tuple[str, str, dict[str, str]]] = []  # (method, path, query) of every request
        self.post_delay = 0.0  # seconds POST /2/tweets takes to answer, after it created the tweet
        self.rate_limit = 450  # per endpoint and window, as sent in x-rate-limit-limit
        self._failures: deque[int] = deque()
        self._rate_limited: deque[int] = deque()  # reset epochs of scripted 429s
        self._remaining: dict[str, int] = {}
        self._bearer_revoked = False
        self._user_keys_revoked = False
        self._sequence = 0
        self._lock = threading.Lock()
        super().__init__()

    # ------------------------------------------------------------------ seeding
    def add_user(self, username: str, followers: int = 0, verified: bool = False, name: str | None = None,
                 user_id: str | None = None) -> str:
        """A user who can author tweets; their id (a string above 2**53)."""
        with self._lock:
            self._sequence += 1
            user_id = user_id or str(2**60 + self._sequence)
            self.users[user_id] = FakeUser(user_id, username, name or username.title(), followers, verified)
        return user_id

    def add_tweet(self, text: str, author_id: str, created_at: datetime | None = None,
                  mentions_brand: bool = True, in_reply_to: str | None = None, **metrics: int) -> str:
        """Seed a tweet (by default one mentioning the brand); its snowflake id. ``metrics``:
        retweet_count, reply_count, like_count, quote_count."""
        with self._lock:
            self._sequence += 1
            when = created_at or datetime.now(timezone.utc)
            tweet_id = snowflake(when, self._sequence)
            tweet = FakeTweet(tweet_id, text, author_id, when, mentions_brand, in_reply_to)
            tweet.metrics.update(metrics)
            self.tweets[tweet_id] = tweet
        return tweet_id

    def delete_tweet(self, tweet_id: str) -> None:
        """The author deleted it: timelines no longer show it, replies to it are refused."""
        with self._lock:
            self.tweets.pop(tweet_id, None)
            self.deleted.add(tweet_id)

    def delete_user(self, user_id: str) -> None:
        """A suspended or deleted account: its tweets stay listed, ``includes.users`` lacks it."""
        with self._lock:
            self.users.pop(user_id, None)

    # ------------------------------------------------------------------ scripting
    def fail_next(self, times: int = 1, status: int = 500) -> None:
        """The next ``times`` requests (any endpoint) answer ``status`` with a v2 problem document."""
        with self._lock:
            self._failures.extend([status] * times)

    def rate_limit_next(self, times: int = 1, reset_in: int = 900) -> int:
        """The next ``times`` authorized requests answer 429; the reset epoch they announce."""
        reset = int(time.time()) + reset_in
        with self._lock:
            self._rate_limited.extend([reset] * times)
        return reset

    def revoke_bearer_token(self) -> None:
        """Reads answer 401 from now on (the app's bearer token was regenerated)."""
        with self._lock:
            self._bearer_revoked = True

    def revoke_user_keys(self) -> None:
        """POST /2/tweets answers 401 from now on (the user revoked the app)."""
        with self._lock:
            self._user_keys_revoked = True

    # ------------------------------------------------------------------ the API
    def make_app(self) -> Flask:
        app = Flask("fake_twitter_api")
        app.json.ensure_ascii = False  # type: ignore[attr-defined]  # UTF-8 on the wire, as the real API

        @app.before_request
        def gate() -> Response | None:
            with self._lock:
                self.calls.append((request.method, request.path, request.args.to_dict()))
                if self._failures:
                    status = self._failures.popleft()
                    return _problem(status, "Internal Server Error" if status >= 500 else "Error",
                                    "Scripted failure of the fake")
            if request.method == "POST":
                denied = self._check_oauth1()
            else:
                denied = self._check_bearer()
            if denied is not None:
                return denied
            with self._lock:
                if self._rate_limited:
                    reset = self._rate_limited.popleft()
                    answer = _problem(429, "Too Many Requests", "Too Many Requests")
                    answer.headers.update({"x-rate-limit-limit": str(self.rate_limit),
                                           "x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)})
                    return answer
            return None

        @app.after_request
        def rate_headers(response: Response) -> Response:
            if response.status_code < 400:
                with self._lock:
                    key = request.method + " " + re.sub(r"/\d+", "/:id", request.path)
                    remaining = self._remaining[key] = max(self._remaining.get(key, self.rate_limit) - 1, 0)
                response.headers.update({"x-rate-limit-limit": str(self.rate_limit),
                                         "x-rate-limit-remaining": str(remaining),
                                         "x-rate-limit-reset": str(int(time.time()) + 900)})
            return response

        @app.get("/2/users/<user_id>/mentions")
        def mentions(user_id: str) -> Response:
            with self._lock:
                if user_id not in self.users:
                    return _problem(400, "Invalid Request", f"The `id` query parameter value [{user_id}] is not valid")
                tweets = [t for t in self.tweets.values() if t.mentions_brand and user_id == self.user_id]
            return self._timeline(tweets, "pagination_token", low=5)

        @app.get("/2/tweets/search/recent")
        def search() -> Response:
            query = request.args.get("query", "")
            if not query.strip():
                return _problem(400, "Invalid Request", "The `query` query parameter can not be empty")
            terms = [t.strip().strip('"').lower() for t in re.split(r"\s+OR\s+", query)
                     if t.strip() and not t.strip().startswith("-") and ":" not in t]
            with self._lock:
                tweets = [t for t in self.tweets.values() if any(term in t.text.lower() for term in terms)]
            return self._timeline(tweets, "next_token", low=10)

        @app.get("/2/users/<user_id>")
        def user(user_id: str) -> Response:
            fields = _fields("user.fields")
            with self._lock:
                found = self.users.get(user_id)
            if found is None:  # v2 answers 200 with an errors array for a missing user
                return jsonify({"errors": [{"value": user_id, "detail": f"Could not find user with id: [{user_id}].",
                                            "title": "Not Found Error", "resource_type": "user",
                                            "parameter": "id", "resource_id": user_id, "type": NOT_FOUND}]})
            return jsonify({"data": found.to_json(fields)})

        @app.post("/2/tweets")
        def create_tweet() -> Response | tuple[Response, int]:
            body = request.get_json(silent=True)
            if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"].strip():
                return _problem(400, "Invalid Request", "One or more parameters to your request was invalid.")
            reply = body.get("reply") if isinstance(body.get("reply"), dict) else {}
            in_reply_to = reply.get("in_reply_to_tweet_id")
            with self._lock:
                if in_reply_to is not None and in_reply_to in self.deleted:
                    return _problem(403, "Forbidden", "You attempted to reply to a Tweet that is deleted or not "
                                                      "visible to you.")
                if any(p["text"] == body["text"] and p["in_reply_to_tweet_id"] == in_reply_to for p in self.posted):
                    return _problem(403, "Forbidden", "You are not allowed to create a Tweet with duplicate content.")
                self._sequence += 1
                tweet_id = snowflake(datetime.now(timezone.utc), self._sequence)
                self.posted.append({"id": tweet_id, "text": body["text"], "in_reply_to_tweet_id": in_reply_to,
                                    "authorization": request.headers.get("Authorization", ""), "json": body})
                delay = self.post_delay
            time.sleep(delay)  # created, but slow to say so: the client may give up first
            return jsonify({"data": {"id": tweet_id, "text": body["text"], "edit_history_tweet_ids": [tweet_id]}}), 201

        return app

    def _check_bearer(self) -> Response | None:
        header = request.headers.get("Authorization", "")
        with self._lock:
            valid = header == f"Bearer {self.bearer_token}" and not self._bearer_revoked
        return None if valid else _problem(401, "Unauthorized", "Unauthorized")

    def _check_oauth1(self) -> Response | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return _problem(403, "Unsupported Authentication",
                            "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  "
                            "Supported authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].")
        params = dict(re.findall(r'(\w+)="([^"]*)"', header)) if header.startswith("OAuth ") else {}
        with self._lock:
            valid = (unquote(params.get("oauth_consumer_key", "")) == self.consumer_key
                     and "oauth_signature" in params and not self._user_keys_revoked)
        return None if valid else _problem(401, "Unauthorized", "Unauthorized")

    def _timeline(self, tweets: list[FakeTweet], token_name: str, low: int) -> Response:
        args = request.args
        try:
            max_results = int(args.get("max_results", "10"))
        except ValueError:
            max_results = -1
        if not low <= max_results <= 100:
            return _problem(400, "Invalid Request",
                            f"The `max_results` query parameter value [{args.get('max_results')}] is not between "
                            f"{low} and 100")
        since = int(args["since_id"]) if args.get("since_id", "").isdigit() else 0
        selected = sorted((t for t in tweets if int(t.id) > since), key=lambda t: int(t.id), reverse=True)
        token = args.get(token_name)
        if token:  # opaque to the client: here, the id the previous page stopped above
            match = re.fullmatch(r"7140dibdnow9c7btw4([0-9]+)", token)
            if match is None:
                return _problem(400, "Invalid Request", f"The `{token_name}` query parameter value [{token}] "
                                                        "is not valid")
            selected = [t for t in selected if int(t.id) < int(match.group(1))]
        page, more = selected[:max_results], len(selected) > max_results
        if not page:
            return jsonify({"meta": {"result_count": 0}})
        tweet_fields, user_fields, expand_authors = _fields("tweet.fields"), _fields("user.fields"), \
            "author_id" in _fields("expansions")
        if expand_authors:  # the expansion's key comes with each tweet
            tweet_fields.add("author_id")
        out: dict[str, Any] = {"data": [t.to_json(tweet_fields) for t in page]}
        if expand_authors:
            with self._lock:
                authors = list(dict.fromkeys(t.author_id for t in page))
                found = [self.users[a].to_json(user_fields) for a in authors if a in self.users]
                missing = [a for a in authors if a not in self.users]
            if found:
                out["includes"] = {"users": found}
            if missing:
                out["errors"] = [{"value": a, "detail": f"Could not find user with author_id: [{a}].",
                                  "title": "Not Found Error", "resource_type": "user", "parameter": "author_id",
                                  "resource_id": a, "type": NOT_FOUND} for a in missing]
        meta: dict[str, Any] = {"result_count": len(page), "newest_id": page[0].id, "oldest_id": page[-1].id}
        if more:
            meta["next_token"] = f"7140dibdnow9c7btw4{page[-1].id}"
        out["meta"] = meta
        return jsonify(out)


def _fields(name: str) -> set[str]:
    return {f for f in request.args.get(name, "").split(",") if f}


def _problem(status: int, title: str, detail: str) -> Response:
    """A v2 error: a problem document (RFC 7807) with the status."""
    answer = jsonify({"title": title, "detail": detail, "type": "about:blank", "status": status})
    answer.status_code = status
    return answer
