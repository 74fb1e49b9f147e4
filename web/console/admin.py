"""Administration: staff users, their roles and API tokens; the audit log for supervisors too."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from crm_store import models, staff
from web import queries
from web.console import staff_required
from web.console.forms import ActionForm, RoleForm, UserForm
from web.context import runtime_of

bp = Blueprint("console_admin", __name__, url_prefix="/console/admin")
READS_AUDIT = (models.SUPERVISOR, models.ADMIN)


def _users_page(form: UserForm | None = None, new_token: str | None = None, status: int = 200) -> tuple[str, int]:
    with runtime_of(current_app).uow() as uow:
        users = list(uow.session.scalars(select(models.StaffUser).order_by(models.StaffUser.name)))
        tokens = list(uow.session.execute(
            select(models.ApiToken.id, models.StaffUser.name, models.ApiToken.created_at, models.ApiToken.revoked_at)
            .join(models.StaffUser, models.StaffUser.id == models.ApiToken.user_id).order_by(models.ApiToken.id.desc())))
    return render_template("console/users.html", users=users, tokens=tokens, form=form or UserForm(),
                           role_form=RoleForm(), action_form=ActionForm(), new_token=new_token), status


@bp.route("/users")
@staff_required(models.ADMIN)
def users() -> tuple[str, int]:
    return _users_page()


@bp.route("/users", methods=["POST"])
@staff_required(models.ADMIN)
def create_user() -> Response | tuple[str, int]:
    form = UserForm()
    if not form.validate_on_submit():
        flash(_("Please correct the form."), "error")
        return _users_page(form, status=400)
    refused = None
    with runtime_of(current_app).uow() as uow:
        try:
            staff.create_user(form.name.data, form.role.data, form.password.data, uow, actor=current_user.name)
            uow.commit()
        except ValueError:  # the form checked the rest: the name is taken
            refused = _("User %(name)s exists already.", name=form.name.data.strip())
    if refused is not None:  # shown after the transaction is over
        flash(refused, "error")
        return _users_page(form, status=400)
    flash(_("User created."), "ok")
    return redirect(url_for(".users"))


@bp.route("/users/<int:user_id>/role", methods=["POST"])
@staff_required(models.ADMIN)
def set_role(user_id: int) -> Response:
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400)
    with runtime_of(current_app).uow() as uow:
        try:
            staff.set_role(user_id, form.role.data, uow, current_user.name)
        except LookupError:
            abort(404)
        uow.commit()
    flash(_("Role changed."), "ok")
    return redirect(url_for(".users"))


@bp.route("/users/<int:user_id>/<any(activate, deactivate):change>", methods=["POST"])
@staff_required(models.ADMIN)
def set_active(user_id: int, change: str) -> Response:
    if not ActionForm().validate_on_submit():
        abort(400)
    if user_id == current_user.id:
        flash(_("You cannot deactivate yourself."), "error")
        return redirect(url_for(".users"))
    with runtime_of(current_app).uow() as uow:
        try:
            staff.set_active(user_id, change == "activate", uow, current_user.name)
        except LookupError:
            abort(404)
        uow.commit()
    return redirect(url_for(".users"))


@bp.route("/users/<int:user_id>/tokens", methods=["POST"])
@staff_required(models.ADMIN)
def create_token(user_id: int) -> Response | tuple[str, int]:
    """A new API token for the user, shown once on the page that answers this post."""
    if not ActionForm().validate_on_submit():
        abort(400)
    with runtime_of(current_app).uow() as uow:
        user = uow.session.get(models.StaffUser, user_id)
        if user is None:
            abort(404)
        token = staff.create_token(user.name, uow, actor=current_user.name)
        uow.commit()
    return _users_page(new_token=token)


@bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@staff_required(models.ADMIN)
def revoke_token(token_id: int) -> Response:
    if not ActionForm().validate_on_submit():
        abort(400)
    with runtime_of(current_app).uow() as uow:
        try:
            staff.revoke_token(token_id, uow, current_user.name)
        except LookupError:
            abort(404)
        uow.commit()
    flash(_("Token revoked."), "ok")
    return redirect(url_for(".users"))


@bp.route("/audit")
@staff_required(*READS_AUDIT)
def audit() -> str:
    """Who did what, newest first."""
    page = request.args.get("page", "1")
    page = min(int(page), 100_000) if page.isdigit() and int(page) > 0 else 1
    actor = request.args.get("actor", "").strip()[:64] or None
    with runtime_of(current_app).uow() as uow:
        rows = queries.audit_trail(uow, actor=actor, page=page)
    return render_template("console/audit.html", entries=rows[:queries.PAGE_SIZE],
                           more=len(rows) > queries.PAGE_SIZE, page=page, actor=actor or "")
