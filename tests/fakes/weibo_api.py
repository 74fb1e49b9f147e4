"""A local fake of the Weibo open API v2 (``https://api.weibo.com/2/``), for the real adapter.

A Flask app served by werkzeug on 127.0.0.1:<random port>, in a thread. Only what the CRM uses:

* ``GET  /2/statuses/mentions.json``  posts that @ the brand (since_id, max_id, count, page)
* ``GET  /2/comments/mentions.json``  comments that @ the brand (same paging)
* ``GET  /2/statuses/show.json``      one post (id; isGetLongText=1 adds ``longText``)
* ``GET  /2/users/show.json``         one user (uid or screen_name), with followers_count
* ``POST /2/comments/create.json``    comment on a post (id, comment)
* ``POST /2/comments/reply.json``     answer a comment (cid, id, comment)

Answers have the documented JSON shapes: ids as JSON integers above 2**53 *and* as ``idstr``,
``created_at`` as "Tue May 31 17:46:55 +0800 2011", texts HTML-escaped as Weibo does, errors as
``{"error", "error_code", "request"}``. The access token ("Authorization: OAuth2 <token>" or
``access_token``) is checked on every call. Failures on demand: ``rate_limit_next``,
``fail_next``, ``timeout_next``, ``revoke_token``; deleted posts, missing users and long texts
through the seeding methods.
"""
from __future__ import annotations

import html
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Flask, Response, jsonify, request

from tests.fakes.flask_server import FakeFlaskServer

FIRST_ID = 2**53 + 1  # every id the fake makes is above 2**53, where a float would round it
CST = timezone(timedelta(hours=8))
DELETED_TEXT = "抱歉，此微博已被作者删除。查看帮助：http://t.cn/Rfd3rQV"
MAX_TEXT = 140  # Weibo cuts longer posts in listings and refuses longer comments
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def weibo_time(moment: datetime) -> str:
    """``moment`` in Weibo's created_at format, in Beijing time as Weibo writes it (English names
    whatever the process locale)."""
    local = moment.astimezone(CST)
    return f"{_DAYS[local.weekday()]} {_MONTHS[local.month - 1]} {local:%d %H:%M:%S} +0800 {local.year}"


@dataclass
class _Failure:
    kind: str  # "status" | "rate" | "timeout"
    path: str | None
    status: int = 500
    code: int | None = 0
    retry_after: int | None = None
    seconds: float = 0.0


class FakeWeiboAPI(FakeFlaskServer):
    """Fake ``https://api.weibo.com/2/`` for one brand account, on 127.0.0.1:<random port>."""

    api_path = "/2/"

    def __init__(self, access_token: str = "2.00FakeWeiboToken0001", uid: str = "5100000001",
                 screen_name: str = "品牌官方微博", followers: int = 12345) -> None:
        self.access_token = access_token
        self.uid = uid
        self.users: dict[str, dict] = {}
        self.statuses: dict[int, dict] = {}  # every post, by id, as served (private keys start with _)
        self.comments: dict[int, dict] = {}
        self.replies: list[dict] = []  # what comments/create and comments/reply took, for assertions
        self.calls: list[tuple[str, str, dict[str, str]]] = []  # (method, path, params without the token)
        self.timeout_seconds = 1.0  # how long a scripted timeout holds its answer back
        self._status_mentions: list[int] = []
        self._comment_mentions: list[int] = []
        self._failures: deque[_Failure] = deque()
        self._revoked = False
        self._next_id = FIRST_ID
        self._clock = datetime(2024, 5, 31, 9, 46, 55, tzinfo=timezone.utc)
        self._lock = threading.Lock()
        super().__init__()
        self.brand = self.add_user(screen_name, followers=followers, verified=True, uid=uid)

    # ------------------------------------------------------------------ seeding
    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _tick(self, created_at: datetime | None) -> datetime:
        self._clock += timedelta(minutes=1)
        return created_at or self._clock

    def add_user(self, screen_name: str, followers: int = 100, verified: bool = False,
                 uid: str | None = None) -> dict:
        """A user as ``users/show`` and the ``user`` of posts serve it."""
        with self._lock:
            uid = uid or str(1_000_000_000 + len(self.users) + 1)
            user = {"id": int(uid), "idstr": uid, "screen_name": screen_name, "name": screen_name,
                    "province": "11", "city": "5", "location": "北京 朝阳区", "description": "",
                    "profile_image_url": f"http://tp1.sinaimg.cn/{uid}/50/0/1", "domain": "", "gender": "f",
                    "followers_count": followers, "friends_count": 80, "statuses_count": 300,
                    "favourites_count": 0, "created_at": "Fri Aug 28 00:00:00 +0800 2009", "following": False,
                    "verified": verified, "verified_type": 0 if verified else -1}
            self.users[uid] = user
            return user

    def post(self, text: str, user: dict | None = None, *, mention: bool = False,
             created_at: datetime | None = None, no_user: bool = False, reposts: int = 0, comments: int = 0,
             likes: int = 0, retweeted: dict | None = None) -> dict:
        """A post (by ``user``, the brand by default); ``mention=True`` lists it in statuses/mentions.
        A text over 140 characters is served cut, with ``isLongText``, as Weibo's listings do."""
        with self._lock:
            sid = self._new_id()
            status: dict[str, Any] = {
                "created_at": weibo_time(self._tick(created_at)), "id": sid, "idstr": str(sid), "mid": str(sid),
                "text": html.escape(text, quote=False), "source": '<a href="http://weibo.com" rel="nofollow">微博 weibo.com</a>',
                "favorited": False, "truncated": False, "in_reply_to_status_id": "", "in_reply_to_user_id": "",
                "in_reply_to_screen_name": "", "geo": None, "reposts_count": reposts, "comments_count": comments,
                "attitudes_count": likes, "isLongText": False, "annotations": [],
            }
            if len(text) > MAX_TEXT:
                status["text"] = html.escape(text[:MAX_TEXT - 3], quote=False) + f"... 全文： http://m.weibo.cn/{sid}"
                status["isLongText"] = True
                status["_long"] = html.escape(text, quote=False)
            if not no_user:
                status["user"] = user or self.brand
            if retweeted is not None:
                status["retweeted_status"] = retweeted
            self.statuses[sid] = status
            if mention:
                self._status_mentions.append(sid)
            return status

    def mention_post(self, text: str, user: dict | None = None, **options: Any) -> dict:
        """A post that @ the brand, by ``user`` (a new fan by default)."""
        return self.post(text, user or self.add_user("粉丝"), mention=True, **options)

    def mention_comment(self, text: str, user: dict | None = None, *, status: dict | None = None,
                        reply_to: dict | None = None, no_user: bool = False,
                        created_at: datetime | None = None) -> dict:
        """A comment that @ the brand, under ``status`` (a new brand post by default)."""
        author = None if no_user else (user or self.add_user("评论的粉丝"))
        status = status or self.post("品牌的新品发布")
        with self._lock:
            cid = self._new_id()
            comment: dict[str, Any] = {
                "created_at": weibo_time(self._tick(created_at)), "id": cid, "idstr": str(cid), "mid": str(cid),
                "text": html.escape(text, quote=False), "source": '<a href="http://weibo.com" rel="nofollow">微博 weibo.com</a>',
                "status": status,
            }
            if author is not None:
                comment["user"] = author
            if reply_to is not None:
                comment["reply_comment"] = reply_to
            self.comments[cid] = comment
            self._comment_mentions.append(cid)
            return comment

    def delete_status(self, status_id: int | str) -> None:
        """The author deletes a post: listings show Weibo's placeholder, statuses/show answers 20101."""
        with self._lock:
            self.statuses[int(status_id)]["_deleted"] = True

    # ------------------------------------------------------------------ failures on demand
    def rate_limit_next(self, n: int = 1, status: int = 403, code: int | None = 10023, path: str | None = None,
                        retry_after: int | None = None) -> None:
        """The next ``n`` calls (to ``path``, if given) are over Weibo's rate limit; ``code=None``
        answers as a gateway would, with a bare HTTP ``status`` and no Weibo error body."""
        with self._lock:
            self._failures.extend(_Failure("rate", path, status=status, code=code, retry_after=retry_after)
                                  for _ in range(n))

    def fail_next(self, n: int = 1, status: int = 500, path: str | None = None) -> None:
        """The next ``n`` calls (to ``path``, if given) fail with ``status`` and Weibo's 10001."""
        with self._lock:
            self._failures.extend(_Failure("status", path, status=status) for _ in range(n))

    def timeout_next(self, n: int = 1, seconds: float | None = None, path: str | None = None) -> None:
        """The next ``n`` calls (to ``path``, if given) are handled, then answered only after
        ``seconds`` (``timeout_seconds`` by default): longer than the client's read timeout."""
        with self._lock:
            self._failures.extend(_Failure("timeout", path, seconds=self.timeout_seconds if seconds is None
                                           else seconds) for _ in range(n))

    def revoke_token(self) -> None:
        """The user revokes the app: every later call answers 21332 invalid_access_token."""
        with self._lock:
            self._revoked = True

    def mention_calls(self, kind: str = "statuses") -> list[dict[str, str]]:
        """The params of every ``<kind>/mentions.json`` call, in order."""
        return [params for _, path, params in self.calls if path == f"/2/{kind}/mentions.json"]

    # ------------------------------------------------------------------ serving
    def _served(self, obj: dict) -> dict:
        if obj.get("_deleted"):
            return {"created_at": obj["created_at"], "id": obj["id"], "idstr": obj["idstr"], "mid": obj["mid"],
                    "text": DELETED_TEXT, "deleted": "1"}
        out = {k: v for k, v in obj.items() if not k.startswith("_")}
        for key in ("status", "retweeted_status", "reply_comment"):
            if isinstance(out.get(key), dict):
                out[key] = self._served(out[key])
        return out

    def make_app(self) -> Flask:
        app = Flask("fake_weibo_api")

        def error(status: int, code: int, message: str) -> Response:
            response = jsonify({"error": message, "error_code": code, "request": request.path})
            response.status_code = status
            return response

        @app.before_request
        def gate() -> Response | None:
            params = {**request.args.to_dict(), **request.form.to_dict()}
            token = params.pop("access_token", None)
            header = request.headers.get("Authorization", "")
            if header.startswith("OAuth2 "):
                token = header[len("OAuth2 "):]
            with self._lock:
                self.calls.append((request.method, request.path, params))
                failure = next((f for f in self._failures if f.path in (None, request.path)), None)
                if failure is not None:
                    self._failures.remove(failure)
                revoked = self._revoked
            if failure is not None and failure.kind == "timeout":
                if request.method == "POST":  # Weibo takes the comment, the answer is what gets lost
                    self._dispatch_post(params)
                time.sleep(failure.seconds)
                return error(504, 10001, "system error")
            if failure is not None and failure.kind == "status":
                return error(failure.status, 10001, "system error")
            if failure is not None and failure.kind == "rate":
                response = (Response("Too Many Requests", status=failure.status, mimetype="text/plain")
                            if failure.code is None
                            else error(failure.status, failure.code, "User requests out of rate limit!"))
                if failure.retry_after is not None:
                    response.headers["Retry-After"] = str(failure.retry_after)
                return response
            if not token:
                return error(403, 21301, "auth faild!")
            if revoked or token != self.access_token:
                return error(401, 21332, "invalid_access_token")
            return None

        @app.get("/2/statuses/mentions.json")
        def statuses_mentions() -> Response:
            return self._page(self._status_mentions, self.statuses, "statuses", default_count=20)

        @app.get("/2/comments/mentions.json")
        def comments_mentions() -> Response:
            return self._page(self._comment_mentions, self.comments, "comments", default_count=50)

        @app.get("/2/statuses/show.json")
        def statuses_show() -> Response:
            status = self.statuses.get(_int(request.args.get("id")))
            if status is None or status.get("_deleted"):
                return error(400, 20101, "Target weibo does not exist!")
            out = self._served(status)
            if request.args.get("isGetLongText") == "1" and "_long" in status:
                out["longText"] = {"longTextContent": status["_long"]}
            return jsonify(out)

        @app.get("/2/users/show.json")
        def users_show() -> Response:
            uid, name = request.args.get("uid"), request.args.get("screen_name")
            user = self.users.get(uid or "") or next(
                (u for u in self.users.values() if name and u["screen_name"] == name), None)
            if user is None:
                return error(400, 20003, "User does not exists!")
            return jsonify(user)

        @app.post("/2/comments/create.json")
        @app.post("/2/comments/reply.json")
        def comments_write() -> Response:
            params = request.form.to_dict()
            outcome = self._dispatch_post(params)
            if isinstance(outcome, tuple):
                return error(400, *outcome)
            return jsonify(outcome)

        return app

    def _dispatch_post(self, params: dict[str, str]) -> dict | tuple[int, str]:
        """Publish a comment (create or reply, by ``request.path``); the comment, or (code, error)."""
        reply = request.path.endswith("/reply.json")
        text = params.get("comment", "")
        if not text or not params.get("id") or (reply and not params.get("cid")):
            return 10016, "Miss required parameter (comment, id or cid), see doc for more info."
        if len(text) > MAX_TEXT:
            return 20012, "Text too long, please input text less than 140 characters!"
        with self._lock:
            status = self.statuses.get(_int(params["id"]))
            if status is None or status.get("_deleted"):
                return 20101, "Target weibo does not exist!"
            target = self.comments.get(_int(params.get("cid"))) if reply else None
            if reply and target is None:
                return 20201, "Target weibo comment does not exist!"
            cid = self._new_id()
            prefix = f"回复@{target['user']['screen_name']}:" if target is not None and "user" in target else ""
            comment: dict[str, Any] = {
                "created_at": weibo_time(self._tick(None)), "id": cid, "idstr": str(cid), "mid": str(cid),
                "text": html.escape(prefix + text, quote=False), "user": self.brand, "status": status,
            }
            if target is not None:
                comment["reply_comment"] = target
            self.replies.append({"endpoint": "comments/reply" if reply else "comments/create",
                                 "id": params["id"], "cid": params.get("cid"), "comment": text,
                                 "created_id": str(cid)})
            return self._served(comment)

    def _page(self, ids: list[int], table: dict[int, dict], key: str, default_count: int) -> Response:
        args = request.args
        since, max_id = _int(args.get("since_id")), _int(args.get("max_id"))
        count = min(max(_int(args.get("count")) or default_count, 1), 200)
        page = max(_int(args.get("page")) or 1, 1)
        with self._lock:
            matching = sorted((i for i in ids if i > since and (max_id == 0 or i <= max_id)), reverse=True)
            chosen = matching[(page - 1) * count: page * count]
            items = [self._served(table[i]) for i in chosen]
        rest = matching[page * count:]
        return jsonify({key: items, "hasvisible": False, "previous_cursor": 0,
                        "next_cursor": rest[0] if rest else 0, "total_number": len(matching)})


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
