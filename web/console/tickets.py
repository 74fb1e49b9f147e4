"""The escalation queue and the ticket workspace."""
from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from crm_store import models, services
from crm_store.models import Ticket, utcnow
from nlp.tokenize import written_language
from web import queries
from web.console import label, staff_names, staff_required, ticket_categories
from web.console.forms import ActionForm, AssignForm, NoteForm, ReplyForm, ResolveForm
from web.context import runtime_of
from web.extensions import console_language
from workers.jobs import resolve_and_ask, send_soon

bp = Blueprint("console_tickets", __name__, url_prefix="/console/tickets")
WORKS_TICKETS = models.TICKET_ROLES


def _filters() -> tuple[queries.QueueFilter, dict[str, str]]:
    """The queue's filters from the query string; unknown values are ignored, not errors."""
    args = {k: v for k, v in request.args.items() if v and k != "page"}
    view = args.get("view", "open")
    breached = {"yes": True, "no": False}.get(args.get("breached", ""))
    status = args.get("status") if args.get("status") in (models.OPEN, models.CLAIMED, models.RESOLVED,
                                                           models.CANCELLED) else None
    return queries.QueueFilter(
        status=status, statuses=() if status else queries.OPEN_STATES,
        priority=args.get("priority") if args.get("priority") in ("P1", "P2", "P3", "P4") else None,
        category=args.get("category"), channel=args.get("channel"),
        assignee=current_user.name if view == "mine" else None, unassigned=view == "unassigned",
        breached=breached), args


def _page_number() -> int:
    page = request.args.get("page", "1")
    return min(int(page), 100_000) if page.isdigit() and int(page) > 0 else 1


@bp.route("")
@staff_required(*WORKS_TICKETS)
def queue() -> str:
    """Open tickets by SLA due time, then priority; htmx refreshes the rows and the counts."""
    filters, args = _filters()
    page = _page_number()
    with runtime_of(current_app).uow() as uow:
        rows = queries.ticket_queue(uow, filters, page)
        counts = queries.queue_counts(uow, current_user.name)
    context = dict(tickets=rows[:queries.PAGE_SIZE], more=len(rows) > queries.PAGE_SIZE, page=page, args=args,
                   counts=counts, now=utcnow(), categories=ticket_categories(), claim_form=ActionForm())
    if request.headers.get("HX-Request"):  # the live refresh: the same view, just the fragment
        return render_template("console/_queue.html", **context)
    return render_template("console/queue.html", **context)


def _workspace(reference: str, status: int = 200, **forms: Any) -> tuple[str, int]:
    rt = runtime_of(current_app)
    with rt.uow() as uow:
        ticket = queries.ticket_by_reference(reference, uow)
        if ticket is None:
            abort(404)
        view = queries.ticket_view(ticket, uow)
        customer = queries.customer_view(ticket.customer_id, uow, rt.content.rules.levels)
    # Canned replies in the customer's language: that of the last thing they wrote.
    lang = next((found for m in reversed(view.messages) if m.direction == "in" and m.kind == "text"
                 and (found := written_language(m.text))), "zh")
    resolve_form = forms.get("resolve_form") or ResolveForm(category=ticket.category)
    resolve_form.category.choices = list(dict.fromkeys([ticket.category, *ticket_categories()]))
    assign_form = forms.get("assign_form") or AssignForm()
    assign_form.assignee.choices = staff_names(*WORKS_TICKETS)
    canned = [(reply.title(console_language()), reply.text(lang, ticket.reference)) for reply in rt.content.canned]
    return render_template(
        "console/ticket.html", view=view, ticket=ticket, customer=customer, now=utcnow(), canned=canned,
        reply_form=forms.get("reply_form") or ReplyForm(), note_form=forms.get("note_form") or NoteForm(),
        resolve_form=resolve_form, assign_form=assign_form, action_form=ActionForm(),
        may_reassign=current_user.role in models.REASSIGN_ROLES, resolve_open="resolve_form" in forms,
        held_by_other=ticket.status == models.CLAIMED and ticket.assignee != current_user.name,
        resolution_note=next((e.detail.get("note") for e in reversed(view.audit) if e.action == "resolve"), None)), status


@bp.route("/<reference>")
@staff_required(*WORKS_TICKETS)
def workspace(reference: str) -> tuple[str, int]:
    return _workspace(reference)


@bp.route("/<reference>/messages")
@staff_required(*WORKS_TICKETS)
def messages(reference: str) -> str:
    """The conversation fragment, polled by htmx so delivery states and new messages show live."""
    with runtime_of(current_app).uow() as uow:
        ticket = queries.ticket_by_reference(reference, uow)
        if ticket is None:
            abort(404)
        view = queries.ticket_view(ticket, uow)
    return render_template("console/_messages.html", view=view, now=utcnow())


def _act(reference: str, action: Callable[[Any, Ticket], Any], done: str,
         after: Callable[[Any], None] | None = None, **forms: Any) -> Any:
    """Run a ticket action and commit (then ``after(result)``), and go back to the workspace. A
    conflict (held by another agent, closed) shows the workspace with the reason and 409; a
    request the store refuses (no card to credit points to), with 400."""
    with runtime_of(current_app).uow() as uow:
        ticket = queries.ticket_by_reference(reference, uow)
        if ticket is None:
            abort(404)
        try:
            result = action(uow, ticket)
            uow.commit()
            refused = None
        except services.TicketConflict as exc:
            refused = conflict_message(exc), 409
        except services.NoMembershipCard:
            refused = _("The customer has no membership card to credit points to."), 400
        except (ValueError, LookupError) as exc:
            refused = str(exc), 400
    if refused is not None:  # shown once the transaction (and its row lock) is over
        flash(refused[0], "error")
        return _workspace(reference, refused[1], **forms)
    if after is not None:
        after(result)
    flash(done, "ok")
    return redirect(url_for(".workspace", reference=reference))


def conflict_message(exc: services.TicketConflict) -> str:
    """Why the ticket refused, in the reader's language."""
    if exc.holder:
        return _("Ticket %(reference)s is held by %(holder)s.", reference=exc.reference, holder=exc.holder)
    return _("Ticket %(reference)s is %(status)s already.", reference=exc.reference, status=label(exc.status))


def _invalid(reference: str, **forms: Any) -> tuple[str, int]:
    flash(_("Please correct the form."), "error")
    return _workspace(reference, 400, **forms)


@bp.route("/<reference>/claim", methods=["POST"])
@staff_required(*WORKS_TICKETS)
def claim(reference: str) -> Any:
    if not ActionForm().validate_on_submit():
        abort(400)
    return _act(reference, lambda uow, ticket: services.claim_ticket(ticket.id, current_user.name, uow),
                _("You hold this ticket now."))


@bp.route("/<reference>/reply", methods=["POST"])
@staff_required(*WORKS_TICKETS)
def reply(reference: str) -> Any:
    form = ReplyForm()
    if not form.validate_on_submit():
        return _invalid(reference, reply_form=form)
    rt = runtime_of(current_app)
    return _act(reference, lambda uow, ticket: services.reply_to_ticket(
        ticket.id, current_user.name, form.text.data, uow), _("Reply queued to the customer."),
        after=lambda message_id: send_soon(rt, message_id), reply_form=form)


@bp.route("/<reference>/note", methods=["POST"])
@staff_required(*WORKS_TICKETS)
def note(reference: str) -> Any:
    form = NoteForm()
    if not form.validate_on_submit():
        return _invalid(reference, note_form=form)
    return _act(reference, lambda uow, ticket: services.add_note(ticket.id, current_user.name, form.text.data, uow),
                _("Note added."), note_form=form)


@bp.route("/<reference>/assign", methods=["POST"])
@staff_required(*WORKS_TICKETS)
def assign(reference: str) -> Any:
    form = AssignForm()
    form.assignee.choices = staff_names(*WORKS_TICKETS)
    if not form.validate_on_submit():
        return _invalid(reference, assign_form=form)
    return _act(reference, lambda uow, ticket: services.assign_ticket(
        ticket.id, form.assignee.data, current_user.name, uow, reassign=current_user.role in models.REASSIGN_ROLES),
        _("Ticket assigned."), assign_form=form)


@bp.route("/<reference>/resolve", methods=["POST"])
@staff_required(*WORKS_TICKETS)
def resolve(reference: str) -> Any:
    form = ResolveForm()
    form.category.choices = ticket_categories()
    if not form.validate_on_submit():
        return _invalid(reference, resolve_form=form)
    rt = runtime_of(current_app)
    fields = dict(complaint_level=form.complaint_level.data, category=form.category.data,
                  compensation=(form.compensation.data or "").strip() or None,
                  compensation_points=form.compensation_points.data or 0, note=form.note.data or None)
    return _act(reference, lambda uow, ticket: resolve_and_ask(rt, ticket, current_user.name, fields, uow),
                _("Resolved. The customer is asked for a rating."), resolve_form=form)
