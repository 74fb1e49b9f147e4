"""The staff console under ``/console/``: server-rendered pages, one blueprint per area (STYLE.md).

Every view names the roles that may open it (``staff_required``); forms carry a CSRF token
(Flask-WTF); customer text is escaped by Jinja's autoescape and never marked safe; phone
numbers are masked for roles that do not need them. The views call the same store service
functions and ``web.queries`` reads as the JSON API.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import wraps
from typing import Any, Callable

from flask import Flask, abort, current_app, redirect, render_template, request, url_for
from flask_babel import format_datetime, lazy_gettext as _l
from flask_login import UserMixin, current_user
from sqlalchemy import select

from config.logs import mask_phones
from crm_store import models
from web.context import runtime_of
from web.extensions import console_language, login_manager



class StaffMember(UserMixin):
    """The signed-in staff user, as Flask-Login keeps it for one request."""

    def __init__(self, user: models.StaffUser) -> None:
        self.id, self.name, self.role = user.id, user.name, user.role

    def may(self, *roles: str) -> bool:
        return self.role in roles


@login_manager.user_loader
def _load(user_id: str) -> StaffMember | None:
    # Read on every request, so a deactivated user or a changed role takes effect at once.
    if not user_id.isdigit():
        return None
    with runtime_of(current_app).uow() as uow:
        user = uow.session.get(models.StaffUser, int(user_id))
        return StaffMember(user) if user is not None and user.active else None


def staff_required(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The view needs a signed-in staff member (else the login page) whose role is one of ``roles``
    (else 403)."""
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)
        return guarded
    return decorate


def home_for(role: str) -> str:
    """Where a role starts: the queue for those who work tickets, the mentions for marketers."""
    return url_for("console_listening.mentions") if role == models.MARKETER else url_for("console_tickets.queue")


def phone(value: str | None) -> str:
    """A phone number (or a text holding one) as the signed-in role may see it."""
    if not value:
        return ""
    return value if current_user.is_authenticated and current_user.role in models.FULL_PHONE_ROLES else mask_phones(value)


BRAND_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")


def local_time(moment: datetime | None, pattern: str = "MM-dd HH:mm") -> str:
    """A stored UTC time on the brand's clock."""
    if moment is None:
        return ""
    return format_datetime(models.as_utc(moment).astimezone(BRAND_TZ).replace(tzinfo=None), pattern)


def duration(delta: timedelta | None) -> str:
    """``3小时20分`` / ``3h 20m``: a remaining time, rounded down to minutes."""
    if delta is None:
        return ""
    minutes = int(delta.total_seconds() // 60)
    return str(_l("%(h)dh %(m)dm", h=minutes // 60, m=minutes % 60))


# What the console shows for the store's codes (ticket states, delivery states, categories).
LABELS: dict[str, Any] = {
    "open": _l("open"), "claimed": _l("claimed"), "resolved": _l("resolved"), "cancelled": _l("cancelled"),
    "passive": _l("answered"), "queued": _l("queued"), "sending": _l("sending"), "sent": _l("sent"),
    "failed": _l("failed"), "unreachable": _l("unreachable (48-hour window closed)"),
    "quota_exceeded": _l("quota exceeded"), "unknown": _l("delivery unknown"),
    "complaint": _l("complaint"), "handoff": _l("hand-off"), "mention": _l("mention"),
    "food_safety": _l("food safety"), "legal_threat": _l("legal threat"), "foreign_object": _l("foreign object"),
    "wrong_order": _l("wrong order"), "quality": _l("quality"), "delivery": _l("delivery"), "refund": _l("refund"),
    "price": _l("price"), "service": _l("staff attitude"), "app": _l("app"), "other": _l("other"),
    "pos": _l("positive"), "neu": _l("neutral"), "neg": _l("negative"),
    "agent": _l("agent"), "supervisor": _l("supervisor"), "marketer": _l("marketer"), "admin": _l("admin"),
    "none": _l("none"), "minor": _l("minor"), "major": _l("major"), "critical": _l("critical"),
    "new": _l("new"), "contacted": _l("contacted"), "qualified": _l("qualified"), "converted": _l("converted"),
    "lost": _l("lost"),
    "claim": _l("claim"), "reply": _l("reply"), "resolve": _l("resolve"), "assign": _l("assign"),
    "transfer": _l("transfer"), "note": _l("note"), "login": _l("sign-in"), "login.failed": _l("failed sign-in"),
    "logout": _l("sign-out"), "merge": _l("merge"), "unmerge": _l("undo merge"), "lead.status": _l("lead status"),
    "user.create": _l("new user"), "user.role": _l("role change"), "user.activate": _l("user activated"),
    "user.deactivate": _l("user deactivated"), "token.create": _l("new API token"),
    "token.revoke": _l("API token revoked"), "ticket": _l("ticket"), "customer": _l("customer"),
    "staff_user": _l("staff user"), "api_token": _l("API token"), "wechat": _l("WeChat"), "webchat": _l("web chat"), "weibo": _l("Weibo"),
    "twitter": _l("Twitter"),
    "brand": _l("brand"), "product": _l("product"), "competitor": _l("competitor"), "campaign": _l("campaign"),
    "post": _l("post"), "comment": _l("comment"), "ok": _l("ok"), "partial": _l("partly read"),
    "rate_limited": _l("rate limited"), "auth_expired": _l("token expired"), "statuses": _l("posts mentioning us"),
    "comments": _l("comments mentioning us"), "mentions": _l("mentions"), "followers": _l("follower count"),
    "lead.assign": _l("lead assigned"), "mention.reply": _l("public reply"), "mention.ticket": _l("mention to ticket"),
    "mention.lead": _l("mention to lead"), "watch_term.add": _l("watch term added"),
    "watch_term.remove": _l("watch term removed"), "lead": _l("lead"),
    "watch_term": _l("watch term"),
    "job": _l("job"), "job.retry": _l("job retried"),
    # intents
    "praise": _l("praise"), "faq": _l("question"), "chitchat": _l("chitchat"), "human": _l("asks for a person"),
    "member_bind": _l("card binding"), "member_level": _l("member level"), "points_balance": _l("points"),
}


# Error pages: a title and what to do, in the reader's language.
ERRORS: dict[int, tuple[Any, Any]] = {
    400: (_l("Bad request"), _l("The form was out of date or incomplete. Reload the page and try again.")),
    403: (_l("Not allowed"), _l("Your role may not open this page or do this.")),
    404: (_l("Not found"), _l("There is no such page or record.")),
    405: (_l("Not allowed"), _l("This address does not take that kind of request.")),
    413: (_l("Too large"), _l("What was sent is too large.")),
    429: (_l("Too many attempts"), _l("Too many attempts. Wait a while and try again.")),
    500: (_l("Something went wrong"), _l("The request failed; it has been logged.")),
    503: (_l("Unavailable"), _l("The store is unavailable; try again in a moment.")),
}


def error_page(code: int, fallback_title: str, fallback_message: str) -> tuple[str, int]:
    """The console's page for an HTTP error."""
    title, message = ERRORS.get(code, (fallback_title, fallback_message))
    return render_template("console/error.html", code=code, title=title, message=message), code


def label(code: str | None) -> str:
    return "" if code is None else str(LABELS.get(code, code))


def ticket_categories() -> list[str]:
    """The categories an agent may file a ticket under: the brand's complaint categories."""
    rules = runtime_of(current_app).content.rules
    return [name for name, _ in rules.complaint_categories] + ["other", "handoff"]


def staff_names(*roles: str) -> list[str]:
    with runtime_of(current_app).uow() as uow:
        return list(uow.session.scalars(select(models.StaffUser.name).where(
            models.StaffUser.role.in_(roles), models.StaffUser.active.is_(True)).order_by(models.StaffUser.name)))


def init_console(app: Flask) -> None:
    from web.console import admin, auth, customers, leads, listening, tickets
    from web.console.dashboards import bp as dashboards_bp

    login_manager.login_view = "console.login"
    login_manager.login_message = _l("Please sign in.")
    login_manager.session_protection = "strong"
    for blueprint in (auth.bp, tickets.bp, customers.bp, leads.bp, listening.bp, admin.bp, dashboards_bp):
        app.register_blueprint(blueprint)
    app.jinja_env.filters.update(phone=phone, local_time=local_time, label=label, duration=duration)
    app.context_processor(lambda: {"lang": console_language()})

    @app.route("/")
    def root():  # type: ignore[no-untyped-def]
        return redirect(url_for("console.home"))

    @app.after_request
    def page_headers(response):  # type: ignore[no-untyped-def]
        if request.path.startswith("/console"):
            # The console is never framed (clickjacking) and pages with customer data are not cached.
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Cache-Control", "no-store")
            response.headers.setdefault("Content-Security-Policy",
                                        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
        return response
