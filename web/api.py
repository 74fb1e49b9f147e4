"""The JSON API under ``/api/v1/`` (DESIGN.md, HTTP contract).

flask-smorest declares each schema once: it validates the request, shapes the response and
writes the OpenAPI document (``/api/v1/openapi.json``). Every call carries
``Authorization: Bearer <token>`` (``crmbot token create``); each route names the roles that may
call it. The views call the same store service functions as the console and the jobs.
"""
from __future__ import annotations

from datetime import timedelta
from functools import wraps
from types import SimpleNamespace
from typing import Any, Callable
from zoneinfo import ZoneInfo

import marshmallow as ma
from flask import Flask, current_app, g, request, url_for
from flask_smorest import Api, Blueprint, abort
from redis.exceptions import RedisError
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from config.logs import mask_phones
from crm_store import kpis as kpis_store
from crm_store import listening, membership, models, services, staff
from crm_store.models import Message, Ticket, utcnow
from web import queries
from web.context import runtime_of
from web.queries import PAGE_SIZE
from workers.failed import FailedJob, failed_jobs, retry
from workers.jobs import resolve_and_ask, send_soon
from workers.listening import AlreadyLinked, lead_from_mention, ticket_from_mention

TICKET_ROLES = models.TICKET_ROLES
AUDIT_ROLES = (models.SUPERVISOR, models.ADMIN)

blp = Blueprint("api", __name__, url_prefix="/api/v1", description="The escalation queue, customers, leads and listening")


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


class TicketListItemSchema(TicketSchema):
    mention_id = ma.fields.Integer(allow_none=True)  # made from this Weibo or Twitter mention


class TicketPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(TicketListItemSchema))
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
    mention_id = ma.fields.Integer(allow_none=True)  # made from this mention: replies go under it, in public
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


def _with(row: Any, **extra: Any) -> SimpleNamespace:
    """A stored row's columns, read while its session is open, and what the answer adds to them."""
    return SimpleNamespace(**{column.key: getattr(row, column.key) for column in row.__table__.columns}, **extra)


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
        mentions = listening.mentions_of(uow, ticket_ids=[t.id for t in rows])
        items = [_with(t, breached=t.breached, mention_id=mentions.get(t.id)) for t in rows]
    return _page(items, page, "api.list_tickets")


@blp.route("/tickets/<reference>")
@roles(*TICKET_ROLES)
@blp.response(200, TicketDetailSchema)
def get_ticket(reference: str) -> SimpleNamespace:
    """A ticket with its customer's messages on every channel, the customer's rating, internal
    notes and the audit trail."""
    with runtime_of(current_app).uow() as uow:
        view = queries.ticket_view(_ticket_or_404(reference, uow), uow)
    ticket = view.ticket
    return _with(ticket, breached=ticket.breached, channel=view.channel, messages=view.messages, notes=view.notes,
                 audit=view.audit, reply_window_closes_at=view.window_closes_at,
                 mention_id=view.mention.id if view.mention else None)


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
LEAD_ROLES = models.LEAD_ROLES


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
    assignee = ma.fields.String(allow_none=True)
    same_phone_as_id = ma.fields.Integer(allow_none=True)
    mention_id = ma.fields.Integer(allow_none=True)  # the Weibo or Twitter mention it was made from
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()
    converted_at = ma.fields.DateTime(allow_none=True)


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


class LeadUpdateSchema(ma.Schema):
    status = ma.fields.String(validate=ma.validate.OneOf(models.LEAD_STATUSES))
    assignee = ma.fields.String(allow_none=True, validate=ma.validate.Length(min=1, max=64))

    @ma.validates_schema
    def _something(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ma.ValidationError("give a status, an assignee, or both", "status")


def _leads_out(leads: list[models.Lead], uow: Any) -> list[SimpleNamespace]:
    """Leads as the API shows them, each with the mention it was made from."""
    mentions = listening.mentions_of(uow, lead_ids=[lead.id for lead in leads])
    return [_with(lead, mention_id=mentions.get(lead.id)) for lead in leads]


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
        return _page(_leads_out(rows, uow), page, "api.list_leads")


@blp.route("/leads/<int:lead_id>", methods=["PATCH"])
@roles(*LEAD_ROLES)
@blp.arguments(LeadUpdateSchema)
@blp.response(200, LeadSchema)
def update_lead(body: dict[str, Any], lead_id: int) -> SimpleNamespace:
    """Move a lead along its pipeline (``status``: new, contacted, qualified, converted, lost)
    and/or give it to a staff user who works leads (``assignee``; null: to nobody)."""
    with runtime_of(current_app).uow() as uow:
        try:
            if "assignee" in body:
                services.assign_lead(lead_id, body["assignee"], g.staff_name, uow)
            if "status" in body:
                services.set_lead_status(lead_id, body["status"], uow, actor=g.staff_name)
        except LookupError as exc:
            abort(404, message=str(exc))
        except ValueError as exc:
            abort(400, message=str(exc))
        uow.commit()
        return _leads_out([uow.session.get(models.Lead, lead_id)], uow)[0]


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


# --- KPIs ----------------------------------------------------------------------------------

def _kpi_row_schema(name: str, kpis: tuple[str, ...], extra: tuple[str, ...]) -> type[ma.Schema]:
    """A row of KPIs: its channel, account, agent and day, each KPI by its DESIGN.md name, and a
    rate's numerator and denominator beside it."""
    fields: dict[str, ma.fields.Field] = {
        "channel": ma.fields.String(), "account": ma.fields.String(), "agent": ma.fields.String(allow_none=True),
        "day": ma.fields.String(allow_none=True)}
    for kpi in kpis:
        fields[kpi] = ma.fields.Float(allow_none=True)
        if kpi in kpis_store.RATES:
            fields[f"{kpi}_numerator"] = ma.fields.Float()
            fields[f"{kpi}_denominator"] = ma.fields.Float()
    fields.update({name_: ma.fields.Integer() for name_ in extra})
    return ma.Schema.from_dict(fields, name=name)


ServiceRowSchema = _kpi_row_schema("ServiceKpiRow", kpis_store.SERVICE,
                                   ("response_time_tickets", "bot_latency_replies", *kpis_store.SERVICE_EXTRA))
FanRowSchema = _kpi_row_schema("FanKpiRow", kpis_store.FANS, ())


class KpiQuerySchema(ma.Schema):
    from_ = ma.fields.Date(data_key="from", load_default=None)
    to = ma.fields.Date(load_default=None)
    channel = ma.fields.String(validate=ma.validate.Length(max=20))
    account = ma.fields.String(validate=ma.validate.Length(max=64))
    agent = ma.fields.String(validate=ma.validate.Length(max=64))
    by = ma.fields.String(load_default="period", validate=ma.validate.OneOf(("period", "day")))


class ServiceKpisSchema(ma.Schema):
    from_ = ma.fields.String(data_key="from")
    to = ma.fields.String()
    timezone = ma.fields.String()
    items = ma.fields.List(ma.fields.Nested(ServiceRowSchema))
    next = ma.fields.String(allow_none=True)


class FanKpisSchema(ServiceKpisSchema):
    items = ma.fields.List(ma.fields.Nested(FanRowSchema))


def _kpi_period(query: dict[str, Any]) -> kpis_store.Period:
    """``from`` .. ``to`` (brand days, both included); the last 7 days by default; at most a year."""
    zone = runtime_of(current_app).settings.timezone
    today = utcnow().astimezone(ZoneInfo(zone)).date()
    end = query.get("to") or today
    start = query.get("from_") or end - timedelta(days=6)
    if start > end:
        abort(400, message="from must be on or before to")
    if (end - start).days > 366:
        abort(400, message="a period is at most 366 days")
    try:
        return kpis_store.Period(start, end, zone)
    except ValueError as exc:
        abort(400, message=str(exc))


def _kpi_document(period: kpis_store.Period, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"from_": period.start.isoformat(), "to": period.end.isoformat(), "timezone": period.zone,
            "items": items, "next": None}


@blp.route("/kpis/service")
@roles(models.SUPERVISOR, models.ADMIN)
@blp.arguments(KpiQuerySchema, location="query")
@blp.response(200, ServiceKpisSchema)
def service_kpis(query: dict[str, Any]) -> dict[str, Any]:
    """The service KPIs (DESIGN.md, "KPI definitions") per channel and account, and per agent for
    those that have one (``agent`` not null), over ``from`` .. ``to`` (brand days); ``by=day``
    adds a row per day (``day`` not null). Each rate has its numerator and denominator beside it."""
    period = _kpi_period(query)
    rt = runtime_of(current_app)
    with rt.uow() as uow:
        rows = kpis_store.service_kpis(uow, period, kpis_store.first_response_minutes(rt.content.rules),
                                       channel=query.get("channel"), account=query.get("account"),
                                       agent=query.get("agent"), by_day=query["by"] == "day")
        uow.commit()  # the day rollups it brought up to date
    return _kpi_document(period, rows)


@blp.route("/kpis/fans")
@roles(*LEAD_ROLES)
@blp.arguments(KpiQuerySchema, location="query")
@blp.response(200, FanKpisSchema)
def fan_kpis(query: dict[str, Any]) -> dict[str, Any]:
    """The fan KPIs (followers, net growth, reach, engagement, reposts + comments, conversion,
    net sentiment) per channel and account over ``from`` .. ``to``; ``by=day`` adds a row per day."""
    period = _kpi_period(query)
    with runtime_of(current_app).uow() as uow:
        rows = kpis_store.fan_kpis(uow, period, channel=query.get("channel"), account=query.get("account"),
                                   by_day=query["by"] == "day")
    return _kpi_document(period, rows)


# --- listening: mentions, watch terms, polls --------------------------------------------------

class MentionSchema(ma.Schema):
    id = ma.fields.Integer(attribute="mention.id")
    channel = ma.fields.String(attribute="mention.channel")
    account = ma.fields.String(attribute="mention.account")
    external_id = ma.fields.String(attribute="mention.external_id")  # the platform's id, exact
    kind = ma.fields.String(attribute="mention.kind")
    url = ma.fields.String(attribute="mention.url", allow_none=True)
    text = ma.fields.String(attribute="mention.text")
    author_id = ma.fields.String(attribute="mention.author_id", allow_none=True)
    author_screen_name = ma.fields.String(attribute="mention.author_screen_name", allow_none=True)
    author_followers = ma.fields.Integer(attribute="mention.author_followers", allow_none=True)
    author_verified = ma.fields.Boolean(attribute="mention.author_verified")
    reposts = ma.fields.Integer(attribute="mention.reposts")
    comments = ma.fields.Integer(attribute="mention.comments")
    likes = ma.fields.Integer(attribute="mention.likes")
    created_at = ma.fields.DateTime(attribute="mention.created_at")
    fetched_at = ma.fields.DateTime(attribute="mention.fetched_at")
    lang = ma.fields.String(attribute="mention.lang", allow_none=True)
    sentiment = ma.fields.String(attribute="mention.sentiment", allow_none=True)
    sentiment_score = ma.fields.Float(attribute="mention.sentiment_score", allow_none=True)
    intent = ma.fields.String(attribute="mention.intent", allow_none=True)
    intent_confidence = ma.fields.Float(attribute="mention.intent_confidence", allow_none=True)
    keywords = ma.fields.List(ma.fields.String(), attribute="mention.keywords")
    watch_terms = ma.fields.List(ma.fields.String(), attribute="mention.watch_terms")
    customer_id = ma.fields.Integer(attribute="mention.customer_id", allow_none=True)
    in_reply_to = ma.fields.String(attribute="mention.in_reply_to", allow_none=True)
    deleted = ma.fields.Boolean(attribute="mention.deleted")
    truncated = ma.fields.Boolean(attribute="mention.truncated")
    lead_id = ma.fields.Integer(attribute="mention.lead_id", allow_none=True)
    ticket_reference = ma.fields.String(allow_none=True)


class MentionDetailSchema(MentionSchema):
    replies = ma.fields.List(ma.fields.Nested(MessageSchema))


class MentionPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(MentionSchema))
    next = ma.fields.String(allow_none=True)


class MentionQuerySchema(ma.Schema):
    channel = ma.fields.String(validate=ma.validate.Length(max=20))
    sentiment = ma.fields.String(validate=ma.validate.OneOf(("pos", "neu", "neg")))
    watch_term = ma.fields.String(validate=ma.validate.Length(min=1, max=64))
    min_followers = ma.fields.Integer(validate=ma.validate.Range(min=0))
    linked = ma.fields.String(validate=ma.validate.OneOf(queries.MENTION_LINKS))
    intent = ma.fields.String(validate=ma.validate.Length(max=20))
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=100_000))


def _mention_or_404(mention_id: int, uow: Any) -> queries.MentionView:
    view = queries.mention_view(mention_id, uow)
    if view is None:
        abort(404, message=f"no mention {mention_id}")
    return view


@blp.route("/mentions")
@roles(*LEAD_ROLES)
@blp.arguments(MentionQuerySchema, location="query")
@blp.response(200, MentionPageSchema)
def list_mentions(query: dict[str, Any]) -> dict[str, Any]:
    """Weibo and Twitter mentions of the brand, newest first, each with what the analysis made of
    it (sentiment, intent, keywords, watch terms) and the ticket or lead it became."""
    page = query.pop("page")
    with runtime_of(current_app).uow() as uow:
        rows = queries.mention_stream(uow, queries.MentionFilter(**query), page)
    return _page(rows, page, "api.list_mentions")


@blp.route("/mentions/<int:mention_id>")
@roles(*LEAD_ROLES)
@blp.response(200, MentionDetailSchema)
def get_mention(mention_id: int) -> queries.MentionView:
    """One mention, with the public replies sent under it and their delivery state."""
    with runtime_of(current_app).uow() as uow:
        return _mention_or_404(mention_id, uow)


@blp.route("/mentions/<int:mention_id>/reply", methods=["POST"])
@roles(*LEAD_ROLES)
@blp.arguments(ReplySchema)
@blp.response(202, QueuedSchema)
def reply_to_mention(body: dict[str, Any], mention_id: int) -> dict[str, Any]:
    """Queue a public reply under the mention (a Weibo comment reply, a reply tweet); its delivery
    state shows on the mention's replies."""
    rt = runtime_of(current_app)
    with rt.uow() as uow:
        mention = _mention_or_404(mention_id, uow).mention
        try:
            message_id = services.reply_to_mention(mention, g.staff_name, body["text"], uow)
        except (ValueError, LookupError) as exc:
            abort(400, message=str(exc))
        uow.commit()
    send_soon(rt, message_id)
    return {"message_id": message_id, "delivery": models.QUEUED}


def _from_mention(make: Callable[[Any], Any], mention_id: int) -> Any:
    with runtime_of(current_app).uow() as uow:
        try:
            made = make(uow)
        except LookupError as exc:
            abort(404, message=str(exc))
        except AlreadyLinked as exc:
            abort(409, message=str(exc))
        except ValueError as exc:
            abort(400, message=str(exc))
        uow.commit()
        return made


@blp.route("/mentions/<int:mention_id>/ticket", methods=["POST"])
@roles(*LEAD_ROLES)
@blp.response(201, TicketSchema)
def mention_ticket(mention_id: int) -> Ticket:
    """Put the mention in the escalation queue as a ticket (409 when it is one already, 400 when
    it has no author or no text)."""
    rules = runtime_of(current_app).content.rules
    return _from_mention(lambda uow: ticket_from_mention(mention_id, g.staff_name, uow, rules), mention_id)


@blp.route("/mentions/<int:mention_id>/lead", methods=["POST"])
@roles(*LEAD_ROLES)
@blp.response(201, LeadSchema)
def mention_lead(mention_id: int) -> models.Lead:
    """Make the mention's author a lead (409 when the mention is one already)."""
    return _from_mention(lambda uow: lead_from_mention(mention_id, g.staff_name, uow), mention_id)


class WatchTermSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    term = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    kind = ma.fields.String(required=True, validate=ma.validate.OneOf(models.WATCH_TERM_KINDS))
    active = ma.fields.Boolean(dump_only=True)


class WatchTermListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(WatchTermSchema))
    next = ma.fields.String(allow_none=True)


@blp.route("/watch-terms")
@roles(*LEAD_ROLES)
@blp.response(200, WatchTermListSchema)
def list_watch_terms() -> dict[str, Any]:
    """The terms every mention is matched against (and Twitter is searched for), A to Z."""
    with runtime_of(current_app).uow() as uow:
        return {"items": listening.watch_terms(uow), "next": None}


@blp.route("/watch-terms", methods=["POST"])
@roles(*LEAD_ROLES)
@blp.arguments(WatchTermSchema)
@blp.response(201, WatchTermSchema)
def add_watch_term(body: dict[str, Any]) -> models.WatchTerm:
    """Track a brand, product, competitor or campaign term from the next poll on (a removed one
    comes back). Terms are kept in lower case with single spaces."""
    with runtime_of(current_app).uow() as uow:
        try:
            term = listening.add_watch_term(body["term"], body["kind"], uow, actor=g.staff_name)
        except ValueError as exc:
            abort(400, message=str(exc))
        uow.commit()
        return term


@blp.route("/watch-terms/<int:term_id>", methods=["DELETE"])
@roles(*LEAD_ROLES)
@blp.response(204)
def remove_watch_term(term_id: int) -> None:
    """Stop tracking a term; the mentions that matched it keep the match."""
    with runtime_of(current_app).uow() as uow:
        try:
            listening.deactivate_watch_term(term_id, uow, actor=g.staff_name)
        except LookupError as exc:
            abort(404, message=str(exc))
        uow.commit()


class PollRunSchema(ma.Schema):
    id = ma.fields.Integer()
    channel = ma.fields.String()
    account = ma.fields.String()
    source = ma.fields.String()
    outcome = ma.fields.String()
    started_at = ma.fields.DateTime()
    finished_at = ma.fields.DateTime()
    pages = ma.fields.Integer()
    fetched = ma.fields.Integer()
    new = ma.fields.Integer()
    errors = ma.fields.List(ma.fields.String())
    rate_limited_until = ma.fields.DateTime(allow_none=True)
    cursor_before = ma.fields.String(allow_none=True)
    cursor_after = ma.fields.String(allow_none=True)


class PollRunPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(PollRunSchema))
    next = ma.fields.String(allow_none=True)


class PollRunQuerySchema(ma.Schema):
    channel = ma.fields.String(validate=ma.validate.Length(max=20))
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=100_000))


@blp.route("/poll-runs")
@roles(*LEAD_ROLES)
@blp.arguments(PollRunQuerySchema, location="query")
@blp.response(200, PollRunPageSchema)
def list_poll_runs(query: dict[str, Any]) -> dict[str, Any]:
    """The record of every poll of every source, newest first: what it fetched, what was new,
    its errors and rate-limit waits, and the cursor before and after."""
    with runtime_of(current_app).uow() as uow:
        rows = queries.poll_runs(uow, query.get("channel"), query["page"])
    return _page(rows, query["page"], "api.list_poll_runs")


# --- jobs: failed rq jobs, for admins -----------------------------------------------------------

class FailedJobSchema(ma.Schema):
    id = ma.fields.String()
    function = ma.fields.String()
    args = ma.fields.List(ma.fields.Raw())
    queue = ma.fields.String()
    failed_at = ma.fields.DateTime(allow_none=True)
    error = ma.fields.String()  # the exception's last line


class FailedJobPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(FailedJobSchema))
    next = ma.fields.String(allow_none=True)


class FailedJobQuerySchema(ma.Schema):
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=100_000))


@blp.route("/jobs/failed")
@roles(models.ADMIN)
@blp.arguments(FailedJobQuerySchema, location="query")
@blp.response(200, FailedJobPageSchema)
def list_failed_jobs(query: dict[str, Any]) -> dict[str, Any]:
    """Jobs that failed for good (no retries left, a timeout, a worker that died), queue by queue
    (realtime, analysis, polling, reports), newest first. 503 while Redis is unreachable."""
    page = query["page"]
    try:
        rows = failed_jobs(runtime_of(current_app).redis, (page - 1) * PAGE_SIZE, PAGE_SIZE + 1)
    except RedisError:
        abort(503, message="Redis is unreachable: the job queues cannot be read now")
    return _page(rows, page, "api.list_failed_jobs")


@blp.route("/jobs/<string(maxlength=64):job_id>/retry", methods=["POST"])
@roles(models.ADMIN)
@blp.response(200, FailedJobSchema)
def retry_failed_job(job_id: str) -> FailedJob:
    """Queue a failed job again on its own queue (jobs are idempotent, so this is safe); audited.
    404 when no failed job has this id (it is queued, running, done or expired)."""
    try:
        job = retry(runtime_of(current_app).redis, job_id)
    except LookupError as exc:
        abort(404, message=str(exc))
    except RedisError:
        abort(503, message="Redis is unreachable: the job cannot be queued now")
    # Audited once Redis has taken it: no transaction is open across the call to Redis.
    with runtime_of(current_app).uow() as uow:
        staff.audit(g.staff_name, "job.retry", uow, "job", job_id, function=job.function, queue=job.queue)
        uow.commit()
    return job
