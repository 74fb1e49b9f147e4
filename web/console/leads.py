"""The marketers' leads board: the pipeline from captured contact to customer, one column per
status (new → contacted → qualified → converted or lost), with who works each lead."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from crm_store import listening, models, services
from web import queries
from web.console import staff_names, staff_required
from web.console.forms import ActionForm, LeadForm
from web.context import runtime_of

bp = Blueprint("console_leads", __name__, url_prefix="/console/leads")
SEES_LEADS = models.LEAD_ROLES
COLUMN = 100  # cards per column: the newest; a column says how many more there are


def _form() -> LeadForm:
    form = LeadForm()
    form.assignee.choices = [("", "—"), *((name, name) for name in staff_names(*SEES_LEADS))]
    return form


@bp.route("")
@staff_required(*SEES_LEADS)
def leads() -> str:
    """The board; ``?channel=`` shows the leads from one source channel."""
    channel = request.args.get("channel") or None
    columns: dict[str, list[models.Lead]] = {}
    totals: dict[str, int] = {}
    with runtime_of(current_app).uow() as uow:
        for status in models.LEAD_STATUSES:
            statement = select(models.Lead).filter_by(status=status)
            if channel:
                statement = statement.filter_by(source_channel=channel)
            columns[status] = list(uow.session.scalars(statement.order_by(models.Lead.updated_at.desc(),
                                                                          models.Lead.id.desc()).limit(COLUMN)))
            totals[status] = queries.count(uow, statement)
        mentions = listening.mentions_of(uow, lead_ids=[lead.id for column in columns.values() for lead in column])
    return render_template("console/leads.html", columns=columns, totals=totals, mentions=mentions,
                           channel=channel, form=_form(), action_form=ActionForm(), column_size=COLUMN)


@bp.route("/<int:lead_id>", methods=["POST"])
@staff_required(*SEES_LEADS)
def update(lead_id: int) -> Response:
    """Save a card: its status and who works it."""
    form = _form()
    if not form.validate_on_submit():
        abort(400)
    with runtime_of(current_app).uow() as uow:
        try:
            services.assign_lead(lead_id, form.assignee.data or None, current_user.name, uow)
            services.set_lead_status(lead_id, form.status.data, uow, actor=current_user.name)
        except LookupError:
            abort(404)
        except ValueError:
            abort(400)
        uow.commit()
    flash(_("Lead updated."), "ok")
    return redirect(url_for(".leads", **request.args) + f"#lead-{lead_id}")


@bp.route("/<int:lead_id>/convert", methods=["POST"])
@staff_required(*SEES_LEADS)
def convert(lead_id: int) -> Response:
    """One click for the happy end: the lead became a customer."""
    if not ActionForm().validate_on_submit():
        abort(400)
    with runtime_of(current_app).uow() as uow:
        try:
            services.set_lead_status(lead_id, "converted", uow, actor=current_user.name)
        except LookupError:
            abort(404)
        uow.commit()
    flash(_("Lead converted."), "ok")
    return redirect(url_for(".leads", **request.args) + f"#lead-{lead_id}")
