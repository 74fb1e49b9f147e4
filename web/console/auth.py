"""Signing in and out, the language switch, and where each role starts."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from crm_store import models, staff
from web.console import StaffMember, home_for, staff_required
from web.console.forms import ActionForm, LoginForm
from web.context import runtime_of
from web.extensions import LANGUAGES, limiter

bp = Blueprint("console", __name__, url_prefix="/console")


def _login_failed(response: Response) -> bool:
    # Only failed attempts count against the limits: a successful login redirects.
    return response.status_code != 302


def _attempted_name() -> str:
    return "login:" + (request.form.get("name") or "").strip().lower()[:64]


@bp.route("/login", methods=["GET", "POST"])
# Brute force is slowed per address, then locked per account for a while whatever the address.
@limiter.limit("10 per minute", methods=["POST"], deduct_when=_login_failed)
@limiter.limit("5 per minute;20 per hour", key_func=_attempted_name, methods=["POST"], deduct_when=_login_failed)
def login() -> Response | str | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(home_for(current_user.role))
    form = LoginForm()
    if form.validate_on_submit():
        with runtime_of(current_app).uow() as uow:
            user = staff.authenticate(form.name.data, form.password.data, uow)
            staff.audit(form.name.data.strip()[:64], "login" if user else "login.failed", uow,
                        "staff_user", user.id if user else None, address=request.remote_addr)
            uow.commit()
            member = StaffMember(user) if user else None
        if member is not None:
            lang = session.get("lang")
            session.clear()  # nothing from before the login carries over (fixation), but the language
            if lang:
                session["lang"] = lang
            login_user(member)
            return redirect(_safe_next() or home_for(member.role))
        flash(_("Wrong user name or password."), "error")
        return render_template("console/login.html", form=form), 401
    return render_template("console/login.html", form=form)


def _safe_next() -> str | None:
    """A ``next`` page inside the console only (no open redirect)."""
    target = request.args.get("next", "")
    return target if target.startswith("/console/") and not target.startswith("//") else None


@bp.route("/logout", methods=["POST"])
@staff_required(*models.ROLES)
def logout() -> Response:
    if ActionForm().validate_on_submit():
        with runtime_of(current_app).uow() as uow:
            staff.audit(current_user.name, "logout", uow, "staff_user", current_user.id)
            uow.commit()
        logout_user()
        session.clear()
    return redirect(url_for("console.login"))


@bp.route("/")
@staff_required(*models.ROLES)
def home() -> Response:
    return redirect(home_for(current_user.role))


@bp.route("/language", methods=["POST"])
def language() -> Response:
    """Switch the console between Chinese and English (kept in the session)."""
    chosen = request.form.get("lang")
    if chosen in LANGUAGES:
        session["lang"] = chosen
    back = urlsplit(request.referrer or "")  # back to the same page, never off the site
    return redirect(back.path + (f"?{back.query}" if back.query else "") if back.path.startswith("/console/")
                    else url_for("console.login"))
