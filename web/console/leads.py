"""The marketers' leads page: the pipeline from captured contact to customer."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from crm_store import models, services
from web.console import staff_required
from web.console.forms import LeadStatusForm
from web.context import runtime_of
from web.queries import PAGE_SIZE

bp = Blueprint("console_leads", __name__, url_prefix="/console/leads")
SEES_LEADS = (models.MARKETER, models.SUPERVISOR, models.ADMIN)


@bp.route("")
@staff_required(*SEES_LEADS)
def leads() -> str:
    status = request.args.get("status")
    statement = select(models.Lead)
    if status in models.LEAD_STATUSES:
        statement = statement.filter_by(status=status)
    with runtime_of(current_app).uow() as uow:
        rows = list(uow.session.scalars(statement.order_by(models.Lead.id.desc()).limit(PAGE_SIZE)))
    return render_template("console/leads.html", leads=rows, status=status, form=LeadStatusForm())


@bp.route("/<int:lead_id>/status", methods=["POST"])
@staff_required(*SEES_LEADS)
def set_status(lead_id: int) -> Response:
    form = LeadStatusForm()
    if not form.validate_on_submit():
        abort(400)
    with runtime_of(current_app).uow() as uow:
        try:
            services.set_lead_status(lead_id, form.status.data, uow, actor=current_user.name)
        except LookupError:
            abort(404)
        uow.commit()
    flash(_("Lead updated."), "ok")
    return redirect(url_for(".leads"))
