"""Administration: staff users, their roles and API tokens, failed jobs; the audit log for
supervisors too."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from redis.exceptions import RedisError
from sqlalchemy import select
from werkzeug.wrappers import Response

from crm_store import models, staff
from web import queries
from web.console import staff_required
from web.console.forms import ActionForm, RoleForm, UserForm
from web.context import runtime_of
from workers import failed
from workers.jobs import QUEUES

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


JOBS_SHOWN = 200  # the newest failed jobs on the page; the API pages through all of them


@bp.route("/jobs")
@staff_required(models.ADMIN)
def jobs() -> tuple[str, int]:
    """Failed jobs per queue (realtime, analysis, polling, reports), newest first, each with a Retry
    button. The page says so when Redis cannot be read."""
    try:
        rows = failed.failed_jobs(runtime_of(current_app).redis, 0, JOBS_SHOWN)
    except RedisError:
        flash(_("Redis is unreachable: the job queues cannot be read now."), "error")
        return render_template("console/jobs.html", queues={}, action_form=ActionForm()), 503
    by_queue = {queue: [row for row in rows if row.queue == queue] for queue in QUEUES}
    return render_template("console/jobs.html", queues=by_queue, action_form=ActionForm()), 200


@bp.route("/jobs/<string(maxlength=64):job_id>/retry", methods=["POST"])
@staff_required(models.ADMIN)
def retry_job(job_id: str) -> Response:
    """Queue a failed job again (every job is idempotent); audited."""
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        job = failed.retry(runtime_of(current_app).redis, job_id)
    except LookupError:
        abort(404)
    except RedisError:
        flash(_("Redis is unreachable: the job was not queued. Try again later."), "error")
        return redirect(url_for(".jobs"))
    # Audited once Redis has taken it: no transaction is open across the call to Redis.
    with runtime_of(current_app).uow() as uow:
        staff.audit(current_user.name, "job.retry", uow, "job", job_id, function=job.function, queue=job.queue)
        uow.commit()
    flash(_("Job %(function)s queued again on %(queue)s.", function=job.function, queue=job.queue), "ok")
    return redirect(url_for(".jobs"))
