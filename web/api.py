"""The JSON API under ``/api/v1/`` (DESIGN.md, HTTP contract).

flask-smorest declares each schema once: it validates the request, shapes the response and
writes the OpenAPI document (``/api/v1/openapi.json``). Every call carries
``Authorization: Bearer <token>`` (``crmbot token create``); each route names the roles that may
call it. The views call the same store service functions as the console and the jobs.
"""
from __future__ import annotations

from functools import wraps
from types import SimpleNamespace
from typing import Any, Callable

import marshmallow as ma
from flask import Flask, current_app, g, request, url_for
from flask_smorest import Api, Blueprint, abort
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from config.logs import mask_phones
from crm_store import membership, models, services, staff
from crm_store.models import Message, Ticket, utcnow
from web import queries
from web.context import runtime_of
from web.queries import PAGE_SIZE
from workers.jobs import resolve_and_ask, send_soon

TICKET_ROLES = models.TICKET_ROLES
AUDIT_ROLES = (models.SUPERVISOR, models.ADMIN)

blp = Blueprint("api", __name__, url_prefix="/api/v1", description="The escalation queue, customers and leads")


def error_response(error: HTTPException) -> tuple[dict[str, Any], int]:
    """Every API error in one shape: ``{"error": {"code", "message"}}``."""
    message = (getattr(error, "data", None) or {}).get("message") or error.description or error.name
    errors = (getattr(error, "data", None) or {}).get("messages")
    if errors:  # a request that failed validation: say which fields
        message = "; ".join(f"{field}: {', '.join(map(str, problems)) if isinstance(problems, list) else problems}"
                            for where in errors.values() for field, problems in where.items())
    return {"error": {"code": error.name.lower().replace(" ", "_"), "message": message}}, error.code or 500


class ServiceApi(Api):  # type: ignore[misc]
    """flask-smorest, with the API's error shape."""

    def handle_http_exception(self, error: HTTPException):  # type: ignore[no-untyped-def]
        return error_response(error)


def init_api(app: Flask) -> None:
    app.config.update(API_TITLE="crmbot", API_VERSION="v1", OPENAPI_VERSION="3.0.3",
                      OPENAPI_URL_PREFIX="/api/v1", OPENAPI_JSON_PATH="openapi.json")
    api = ServiceApi(app, spec_kwargs={"components": {"securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer"}}}, "security": [{"bearer": []}]})
    api.register_blueprint(blp)


def roles(*allowed: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The view needs a valid bearer token (401) of a user in one of ``allowed`` (403)."""
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            user = None
            if scheme.lower() == "bearer" and token:
                with runtime_of(current_app).uow() as uow:
                    user = staff.user_for_token(token.strip(), uow)
                    if user is not None:
                        g.staff_name, g.staff_role = user.name, user.role
            if user is None:
                abort(401, message="a valid API token is required (Authorization: Bearer ...)")
            if g.staff_role not in allowed:
                abort(403, message=f"the {g.staff_role} role may not do this")
            return view(*args, **kwargs)
        return guarded
    return decorate


class TicketSchema(ma.Schema):
    reference = ma.fields.String()
    status = ma.fields.String()
    priority = ma.fields.String()
    category = ma.fields.String()
    source = ma.fields.String()
    assignee = ma.fields.String(allow_none=True)
    order_no = ma.fields.String(allow_none=True)
    description = ma.fields.String()
    created_at = ma.fields.DateTime()
    first_response_due = ma.fields.DateTime()
    resolution_due = ma.fields.DateTime()
    first_response_at = ma.fields.DateTime(allow_none=True)
    resolved_at = ma.fields.DateTime(allow_none=True)
    breached = ma.fields.Method("_breached")
    complaint_level = ma.fields.String(allow_none=True)
    compensation = ma.fields.String(allow_none=True)
    csat_score = ma.fields.Integer(allow_none=True)
    csat_comment = ma.fields.String(allow_none=True)

    def _breached(self, ticket: Ticket) -> bool:
        return ticket.breached(utcnow())


class TicketPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(TicketSchema))
    next = ma.fields.String(allow_none=True)


class MessageSchema(ma.Schema):
    id = ma.fields.Integer()
    direction = ma.fields.String()
    kind = ma.fields.String()
    text = ma.fields.String()
    author = ma.fields.String()
    delivery = ma.fields.String(allow_none=True)
    delivery_error = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()


class AuditSchema(ma.Schema):
    actor = ma.fields.String()
    target_type = ma.fields.String(allow_none=True)
    target_id = ma.fields.String(allow_none=True)
    action = ma.fields.String()
    detail = ma.fields.Dict()
    at = ma.fields.DateTime()


class NoteSchema(ma.Schema):
    id = ma.fields.Integer()
    author = ma.fields.String()
    text = ma.fields.String()
    created_at = ma.fields.DateTime()


class TicketDetailSchema(TicketSchema):
    channel = ma.fields.String(allow_none=True)
    reply_window_closes_at = ma.fields.DateTime(allow_none=True)
    messages = ma.fields.List(ma.fields.Nested(MessageSchema))
    notes = ma.fields.List(ma.fields.Nested(NoteSchema))
    audit = ma.fields.List(ma.fields.Nested(AuditSchema))


class TicketQuerySchema(ma.Schema):
    status = ma.fields.String(validate=ma.validate.OneOf((models.OPEN, models.CLAIMED, models.RESOLVED,
                                                          models.CANCELLED)))
    priority = ma.fields.String(validate=ma.validate.OneOf(("P1", "P2", "P3", "P4")))
    assignee = ma.fields.String()
    unassigned = ma.fields.Boolean()
    category = ma.fields.String()
    channel = ma.fields.String()
    breached = ma.fields.Boolean()
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=100_000))


class ReplySchema(ma.Schema):
    text = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=2000))


class QueuedSchema(ma.Schema):
    message_id = ma.fields.Integer()
    delivery = ma.fields.String()


COMPLAINT_LEVELS = ("none", "minor", "major", "critical")


class ResolveSchema(ma.Schema):
    complaint_level = ma.fields.String(validate=ma.validate.OneOf(COMPLAINT_LEVELS), allow_none=True)
    compensation = ma.fields.String(validate=ma.validate.Length(max=200), allow_none=True)
    compensation_points = ma.fields.Integer(load_default=0, validate=ma.validate.Range(min=0, max=100_000))
    category = ma.fields.String(validate=ma.validate.Length(min=1, max=32), allow_none=True)
    note = ma.fields.String(validate=ma.validate.Length(max=2000), allow_none=True)


class AssignSchema(ma.Schema):
    assignee = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))


class NoteInSchema(ma.Schema):
    text = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=2000))


def _ticket_or_404(reference: str, uow: Any) -> Ticket:
    ticket = queries.ticket_by_reference(reference, uow)
    if ticket is None:
        abort(404, message=f"no ticket {reference}")
    return ticket


@blp.route("/tickets")
@roles(*TICKET_ROLES)
@blp.arguments(TicketQuerySchema, location="query")
@blp.response(200, TicketPageSchema)
def list_tickets(query: dict[str, Any]) -> dict[str, Any]:
    """Tickets sorted by due time (the first response's until it is made, then the resolution's),
    then priority."""
    page = query.pop("page")
    with runtime_of(current_app).uow() as uow:
        rows = queries.ticket_queue(uow, queries.QueueFilter(**query), page)
    return _page(rows, page, "api.list_tickets")


@blp.route("/tickets/<reference>")
@roles(*TICKET_ROLES)
@blp.response(200, TicketDetailSchema)
def get_ticket(reference: str) -> SimpleNamespace:
    """A ticket with its customer's messages on every channel, the customer's rating, internal
    notes and the audit trail."""
    with runtime_of(current_app).uow() as uow:
        view = queries.ticket_view(_ticket_or_404(reference, uow), uow)
    ticket = view.ticket
    return SimpleNamespace(**{column.key: getattr(ticket, column.key) for column in Ticket.__table__.columns},
                           breached=ticket.breached, channel=view.channel, messages=view.messages,
                           notes=view.notes, audit=view.audit, reply_window_closes_at=view.window_closes_at)


def _conflict_or_404(action: Callable[[Any, Ticket], Any], reference: str) -> Any:
    """Run ``action(uow, ticket)`` and commit; a closed or held ticket is a 409, a request the
    store refuses (no card to credit, no such agent) a 400."""
    with runtime_of(current_app).uow() as uow:
        ticket = _ticket_or_404(reference, uow)
        try:
            result = action(uow, ticket)
        except services.TicketConflict as exc:
            abort(409, message=str(exc))
        except (ValueError, LookupError) as exc:
            abort(400, message=str(exc))
        uow.commit()
    return result


@blp.route("/tickets/<reference>/claim", methods=["POST"])
@roles(*TICKET_ROLES)
@blp.response(200, TicketSchema)
def claim(reference: str) -> Ticket:
    """Take the ticket (409 when another agent holds it)."""
    return _conflict_or_404(lambda uow, ticket: services.claim_ticket(ticket.id, g.staff_name, uow), reference)


@blp.route("/tickets/<reference>/reply", methods=["POST"])
@roles(*TICKET_ROLES)
@blp.arguments(ReplySchema)
@blp.response(202, QueuedSchema)
def reply(body: dict[str, Any], reference: str) -> dict[str, Any]:
    """Queue a reply to the customer's channel; its delivery state shows on the message."""
    message_id = _conflict_or_404(
        lambda uow, ticket: services.reply_to_ticket(ticket.id, g.staff_name, body["text"], uow), reference)
    send_soon(runtime_of(current_app), message_id)
    return {"message_id": message_id, "delivery": models.QUEUED}


@blp.route("/tickets/<reference>/resolve", methods=["POST"])
@roles(*TICKET_ROLES)
@blp.arguments(ResolveSchema)
@blp.response(200, TicketSchema)
def resolve(body: dict[str, Any], reference: str) -> Ticket:
    """Resolve the ticket; the customer is then asked for a 1-5 rating."""
    rt = runtime_of(current_app)

    return _conflict_or_404(lambda uow, ticket: resolve_and_ask(rt, ticket, g.staff_name, body, uow), reference)


@blp.route("/tickets/<reference>/assign", methods=["POST"])
@roles(*TICKET_ROLES)
@blp.arguments(AssignSchema)
@blp.response(200, TicketSchema)
def assign(body: dict[str, Any], reference: str) -> Ticket:
    """Give the ticket to another agent: its holder transfers it; a supervisor reassigns any."""
    return _conflict_or_404(lambda uow, ticket: services.assign_ticket(
        ticket.id, body["assignee"], g.staff_name, uow, reassign=g.staff_role in models.REASSIGN_ROLES), reference)


@blp.route("/tickets/<reference>/notes", methods=["POST"])
@roles(*TICKET_ROLES)
@blp.arguments(NoteInSchema)
@blp.response(201, NoteSchema)
def add_note(body: dict[str, Any], reference: str) -> models.TicketNote:
    """An internal note on the ticket (never sent to the customer)."""
    return _conflict_or_404(lambda uow, ticket: services.add_note(ticket.id, g.staff_name, body["text"], uow),
                            reference)


# --- customers, conversations, members, leads ------------------------------------------------

CUSTOMER_ROLES = (models.AGENT, models.SUPERVISOR, models.ADMIN)
LEAD_ROLES = (models.MARKETER, models.SUPERVISOR, models.ADMIN)


def _phone(phone: str | None) -> str | None:
    """The phone number as the caller's role may see it."""
    return phone if phone is None or g.staff_role in models.FULL_PHONE_ROLES else mask_phones(phone)


class IdentitySchema(ma.Schema):
    channel = ma.fields.String()
    account = ma.fields.String()
    external_id = ma.fields.String()
    subscribed = ma.fields.Boolean()


class MemberSchema(ma.Schema):
    id = ma.fields.Integer()
    card_no = ma.fields.String()
    level = ma.fields.String()
    balance = ma.fields.Integer()


class LeadSchema(ma.Schema):
    id = ma.fields.Integer()
    customer_id = ma.fields.Integer()
    name = ma.fields.String()
    phone = ma.fields.Function(lambda lead: _phone(lead.phone))
    interest = ma.fields.String()
    source_channel = ma.fields.String()
    keyword = ma.fields.String(allow_none=True)
    campaign = ma.fields.String(allow_none=True)
    status = ma.fields.String()
    same_phone_as_id = ma.fields.Integer(allow_none=True)
    created_at = ma.fields.DateTime()


class CustomerSchema(ma.Schema):
    id = ma.fields.Integer()
    display_name = ma.fields.String(allow_none=True)
    phone = ma.fields.Function(lambda customer: _phone(customer.phone))
    created_at = ma.fields.DateTime()


class CustomerPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(CustomerSchema))
    next = ma.fields.String(allow_none=True)


class MoodSchema(ma.Schema):
    message_id = ma.fields.Integer()
    at = ma.fields.DateTime()
    label = ma.fields.String()
    score = ma.fields.Float()


class MergeSchema(ma.Schema):
    id = ma.fields.Integer()
    from_customer_id = ma.fields.Integer()
    into_customer_id = ma.fields.Integer()
    reason = ma.fields.String()
    created_at = ma.fields.DateTime()
    reverted_at = ma.fields.DateTime(allow_none=True)


class CustomerDetailSchema(CustomerSchema):
    identities = ma.fields.List(ma.fields.Nested(IdentitySchema))
    member = ma.fields.Nested(MemberSchema, allow_none=True)
    tickets = ma.fields.List(ma.fields.Nested(TicketSchema))
    leads = ma.fields.List(ma.fields.Nested(LeadSchema))
    recent_messages = ma.fields.List(ma.fields.Nested(MessageSchema))
    sentiment = ma.fields.List(ma.fields.Nested(MoodSchema))
    merges = ma.fields.List(ma.fields.Nested(MergeSchema))


class MergeInSchema(ma.Schema):
    into = ma.fields.Integer(required=True)
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))


class CustomerQuerySchema(ma.Schema):
    q = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))


class PointsEntrySchema(ma.Schema):
    kind = ma.fields.String()
    points = ma.fields.Integer()
    reason = ma.fields.String()
    created_at = ma.fields.DateTime()


class PointsSchema(ma.Schema):
    member_id = ma.fields.Integer()
    card_no = ma.fields.String()
    balance = ma.fields.Integer()
    level = ma.fields.String()
    history = ma.fields.List(ma.fields.Nested(PointsEntrySchema))


class LeadPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(LeadSchema))
    next = ma.fields.String(allow_none=True)


class LeadQuerySchema(ma.Schema):
    status = ma.fields.String(validate=ma.validate.OneOf(models.LEAD_STATUSES))
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=100_000))


class LeadStatusSchema(ma.Schema):
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(models.LEAD_STATUSES))


def _page(rows: list[Any], page: int, endpoint: str) -> dict[str, Any]:
    """``{"items", "next"}`` from up to ``PAGE_SIZE + 1`` rows of page ``page``."""
    args = {k: v for k, v in request.args.items() if k != "page"}
    more = len(rows) > PAGE_SIZE
    return {"items": rows[:PAGE_SIZE],
            "next": url_for(endpoint, page=page + 1, _external=True, **args) if more else None}


@blp.route("/customers")
@roles(*CUSTOMER_ROLES)
@blp.arguments(CustomerQuerySchema, location="query")
@blp.response(200, CustomerPageSchema)
def find_customers(query: dict[str, Any]) -> dict[str, Any]:
    """Customers by name, phone, channel id (openid) or membership card number."""
    with runtime_of(current_app).uow() as uow:
        rows = queries.find_customers(query["q"], uow)
    return _page(rows, 1, "api.find_customers")


@blp.route("/customers/<int:customer_id>")
@roles(*CUSTOMER_ROLES)
@blp.response(200, CustomerDetailSchema)
def get_customer(customer_id: int) -> SimpleNamespace:
    """The 360° view: identities on every channel, membership, tickets, leads, recent messages
    and their sentiment, merges."""
    rt = runtime_of(current_app)
    with rt.uow() as uow:
        view = queries.customer_view(customer_id, uow, rt.content.rules.levels)
        if view is None:
            abort(404, message=f"no customer {customer_id}")
        return SimpleNamespace(id=view.customer.id, display_name=view.customer.display_name,
                               phone=view.customer.phone, created_at=view.customer.created_at,
                               **{name: getattr(view, name) for name in (
                                   "member", "identities", "tickets", "leads", "recent_messages", "sentiment",
                                   "merges")})


@blp.route("/customers/<int:customer_id>/merge", methods=["POST"])
@roles(*CUSTOMER_ROLES)
@blp.arguments(MergeInSchema)
@blp.response(201, MergeSchema)
def merge_customer(body: dict[str, Any], customer_id: int) -> models.CustomerMerge:
    """Merge this customer into another (``into``): one person found on two records. Audited;
    undone with ``POST /merges/{id}/undo``."""
    with runtime_of(current_app).uow() as uow:
        try:
            merge = membership.merge_customers(customer_id, body["into"], body["reason"], uow, actor=g.staff_name)
        except LookupError as exc:
            abort(404, message=str(exc))
        except ValueError as exc:
            abort(400, message=str(exc))
        uow.commit()
        return merge


@blp.route("/merges/<int:merge_id>/undo", methods=["POST"])
@roles(*CUSTOMER_ROLES)
@blp.response(200, MergeSchema)
def undo_merge(merge_id: int) -> models.CustomerMerge:
    """Undo a merge: what it moved goes back to the first customer (409 if undone already)."""
    with runtime_of(current_app).uow() as uow:
        try:
            merge = membership.unmerge(merge_id, uow, actor=g.staff_name)
        except LookupError as exc:
            abort(404, message=str(exc))
        except ValueError as exc:
            abort(409, message=str(exc))
        uow.commit()
        return merge


@blp.route("/conversations/<int:conversation_id>/messages")
@roles(*CUSTOMER_ROLES)
@blp.response(200, MessageSchema(many=True))
def conversation_messages(conversation_id: int) -> list[Message]:
    """A conversation's messages, oldest first, with the delivery state of each one sent."""
    with runtime_of(current_app).uow() as uow:
        if uow.session.get(models.Conversation, conversation_id) is None:
            abort(404, message=f"no conversation {conversation_id}")
        return queries.conversation_messages(conversation_id, uow)


@blp.route("/members/<int:member_id>/points")
@roles(*CUSTOMER_ROLES)
@blp.response(200, PointsSchema)
def member_points(member_id: int) -> dict[str, Any]:
    """A member's balance, level and the last 50 entries of the points ledger."""
    rt = runtime_of(current_app)
    with rt.uow() as uow:
        member = uow.session.get(models.Member, member_id)
        if member is None:
            abort(404, message=f"no member {member_id}")
        return {"member_id": member.id, "card_no": member.card_no, "balance": membership.balance(member_id, uow),
                "level": membership.level(member_id, rt.content.rules.levels, uow).name,
                "history": membership.history(member_id, uow, 50)}


@blp.route("/leads")
@roles(*LEAD_ROLES)
@blp.arguments(LeadQuerySchema, location="query")
@blp.response(200, LeadPageSchema)
def list_leads(query: dict[str, Any]) -> dict[str, Any]:
    """Leads, newest first."""
    statement = select(models.Lead)
    if "status" in query:
        statement = statement.filter_by(status=query["status"])
    page = query["page"]
    with runtime_of(current_app).uow() as uow:
        rows = list(uow.session.scalars(statement.order_by(models.Lead.id.desc())
                                        .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)))
    return _page(rows, page, "api.list_leads")


@blp.route("/leads/<int:lead_id>", methods=["PATCH"])
@roles(*LEAD_ROLES)
@blp.arguments(LeadStatusSchema)
@blp.response(200, LeadSchema)
def update_lead(body: dict[str, Any], lead_id: int) -> models.Lead:
    """Move a lead along its pipeline (new, contacted, qualified, converted, lost)."""
    with runtime_of(current_app).uow() as uow:
        try:
            lead = services.set_lead_status(lead_id, body["status"], uow, actor=g.staff_name)
        except LookupError as exc:
            abort(404, message=str(exc))
        uow.commit()
        return lead


class AuditQuerySchema(ma.Schema):
    actor = ma.fields.String()
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=100_000))


class AuditPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AuditSchema))
    next = ma.fields.String(allow_none=True)


@blp.route("/audit")
@roles(*AUDIT_ROLES)
@blp.arguments(AuditQuerySchema, location="query")
@blp.response(200, AuditPageSchema)
def audit_log(query: dict[str, Any]) -> dict[str, Any]:
    """The staff audit log, newest first: who did what to which record, and when."""
    with runtime_of(current_app).uow() as uow:
        rows = queries.audit_trail(uow, actor=query.get("actor"), page=query["page"])
    return _page(rows, query["page"], "api.audit_log")
