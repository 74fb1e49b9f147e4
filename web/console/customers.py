"""Customer search, the 360° page, and merging or unmerging records by hand."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from crm_store import membership, models
from web import queries
from web.console import staff_required
from web.console.forms import ActionForm, MergeForm
from web.context import runtime_of

bp = Blueprint("console_customers", __name__, url_prefix="/console/customers")
SEES_CUSTOMERS = models.TICKET_ROLES


@bp.route("")
@staff_required(*SEES_CUSTOMERS)
def search() -> str:
    """By name, phone, openid or membership card number."""
    q = request.args.get("q", "").strip()[:64]
    found = []
    if q:
        with runtime_of(current_app).uow() as uow:
            found = queries.find_customers(q, uow)
    return render_template("console/customers.html", q=q, customers=found[:queries.PAGE_SIZE],
                           more=len(found) > queries.PAGE_SIZE)


def _profile(customer_id: int, status: int = 200, merge_form: MergeForm | None = None) -> tuple[str, int]:
    rt = runtime_of(current_app)
    with rt.uow() as uow:
        view = queries.customer_view(customer_id, uow, rt.content.rules.levels)
    if view is None:
        abort(404)
    return render_template("console/customer.html", view=view, merge_form=merge_form or MergeForm(),
                           action_form=ActionForm()), status


@bp.route("/<int:customer_id>")
@staff_required(*SEES_CUSTOMERS)
def profile(customer_id: int) -> tuple[str, int]:
    return _profile(customer_id)


@bp.route("/<int:customer_id>/merge", methods=["POST"])
@staff_required(*SEES_CUSTOMERS)
def merge(customer_id: int) -> Response | tuple[str, int]:
    """This record is the same person as customer ``into``: move everything there (undoable)."""
    form = MergeForm()
    if not form.validate_on_submit():
        flash(_("Please correct the form."), "error")
        return _profile(customer_id, 400, form)
    refused = None
    with runtime_of(current_app).uow() as uow:
        try:
            membership.merge_customers(customer_id, form.into.data, form.reason.data.strip(), uow,
                                       actor=current_user.name)
            uow.commit()
        except LookupError:
            refused = _("There is no customer no. %(id)s.", id=form.into.data)
        except ValueError:
            refused = _("A customer cannot be merged into itself.")
    if refused is not None:  # shown after the transaction is over
        flash(refused, "error")
        return _profile(customer_id, 400, form)
    flash(_("Merged. The merge can be undone from this page."), "ok")
    return redirect(url_for(".profile", customer_id=form.into.data))


@bp.route("/merges/<int:merge_id>/undo", methods=["POST"])
@staff_required(*SEES_CUSTOMERS)
def unmerge(merge_id: int) -> Response:
    if not ActionForm().validate_on_submit():
        abort(400)
    with runtime_of(current_app).uow() as uow:
        try:
            undone = membership.unmerge(merge_id, uow, actor=current_user.name)
        except LookupError:
            abort(404)
        except ValueError:
            flash(_("This merge was undone already."), "error")
            return redirect(url_for(".search"))
        back = undone.into_customer_id
        uow.commit()
    flash(_("Merge undone."), "ok")
    return redirect(url_for(".profile", customer_id=back))
