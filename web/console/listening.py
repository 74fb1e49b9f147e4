"""The marketers' listening pages: the mention stream, one mention (reply in public, make it a
ticket or a lead), the watch terms, and the record of the polls."""
from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from crm_store import listening, models, services
from web import queries
from web.console import staff_required
from web.console.forms import ActionForm, PublicReplyForm, WatchTermForm
from web.context import runtime_of
from workers.jobs import send_soon
from workers.listening import AlreadyLinked, lead_from_mention, ticket_from_mention

bp = Blueprint("console_listening", __name__, url_prefix="/console")
LISTENS = models.LEAD_ROLES
CHANNELS = ("weibo", "twitter")


def _filters() -> tuple[queries.MentionFilter, dict[str, str]]:
    """The stream's filters from the query string; unknown values are ignored, not errors."""
    args = {k: v for k, v in request.args.items() if v and k != "page"}
    followers = args.get("min_followers", "")
    return queries.MentionFilter(
        channel=args.get("channel") if args.get("channel") in CHANNELS else None,
        sentiment=args.get("sentiment") if args.get("sentiment") in ("pos", "neu", "neg") else None,
        watch_term=args.get("watch_term"),
        min_followers=min(int(followers), 10**12) if followers.isdigit() else None,
        linked=args.get("linked") if args.get("linked") in queries.MENTION_LINKS else None), args


@bp.route("/mentions")
@staff_required(*LISTENS)
def mentions() -> str:
    """Mentions newest first, filtered; the state of each source's last poll above them."""
    filters, args = _filters()
    page = request.args.get("page", "1")
    page_number = min(int(page), 100_000) if page.isdigit() and int(page) > 0 else 1
    with runtime_of(current_app).uow() as uow:
        rows = queries.mention_stream(uow, filters, page_number)
        terms = listening.watch_terms(uow)
        status = queries.listening_status(uow)
    return render_template("console/mentions.html", mentions=rows[:queries.PAGE_SIZE], page=page_number,
                           more=len(rows) > queries.PAGE_SIZE, args=args, terms=terms, status=status,
                           channels=CHANNELS)


def _mention_page(mention_id: int, status: int = 200, form: PublicReplyForm | None = None) -> tuple[str, int]:
    with runtime_of(current_app).uow() as uow:
        view = queries.mention_view(mention_id, uow)
        if view is None:
            abort(404)
    return render_template("console/mention.html", view=view, mention=view.mention, reply_form=form or PublicReplyForm(),
                           action_form=ActionForm()), status


@bp.route("/mentions/<int:mention_id>")
@staff_required(*LISTENS)
def mention(mention_id: int) -> tuple[str, int]:
    return _mention_page(mention_id)


@bp.route("/mentions/<int:mention_id>/replies")
@staff_required(*LISTENS)
def replies(mention_id: int) -> str:
    """The replies fragment, polled by htmx so delivery states show live."""
    with runtime_of(current_app).uow() as uow:
        view = queries.mention_view(mention_id, uow)
        if view is None:
            abort(404)
    return render_template("console/_replies.html", view=view)


def _act(mention_id: int, action: Callable[[Any], Any], done: str, refused_because: str,
         after: Callable[[Any], None] | None = None, form: PublicReplyForm | None = None) -> Any:
    """Run a mention action and commit, then back to the mention; a refusal shows the mention
    with the reason: 409 when it was done already (another marketer was quicker), 400 with
    ``refused_because`` when it cannot be done."""
    with runtime_of(current_app).uow() as uow:
        try:
            result = action(uow)
            uow.commit()
            refused = None
        except LookupError:
            abort(404)
        except AlreadyLinked as exc:
            refused = (_("This mention is in the escalation queue already.") if exc.what == "ticket"
                       else _("This mention is a lead already.")), 409
        except ValueError:
            refused = refused_because, 400
    if refused is not None:
        flash(refused[0], "error")
        return _mention_page(mention_id, refused[1], form)
    if after is not None:
        after(result)
    flash(done, "ok")
    return redirect(url_for(".mention", mention_id=mention_id))


def _the_mention(mention_id: int, uow: Any) -> models.Mention:
    found = uow.session.get(models.Mention, mention_id)
    if found is None:
        raise LookupError(mention_id)
    return found


@bp.route("/mentions/<int:mention_id>/reply", methods=["POST"])
@staff_required(*LISTENS)
def reply(mention_id: int) -> Any:
    form = PublicReplyForm()
    if not form.validate_on_submit():
        flash(_("Please correct the form."), "error")
        return _mention_page(mention_id, 400, form)
    rt = runtime_of(current_app)
    return _act(mention_id, lambda uow: services.reply_to_mention(
        _the_mention(mention_id, uow), current_user.name, form.text.data, uow),
        _("Public reply queued."), _("This mention was deleted, or names no post to reply under."),
        after=lambda message_id: send_soon(rt, message_id), form=form)


@bp.route("/mentions/<int:mention_id>/ticket", methods=["POST"])
@staff_required(*LISTENS)
def make_ticket(mention_id: int) -> Any:
    if not ActionForm().validate_on_submit():
        abort(400)
    rules = runtime_of(current_app).content.rules
    return _act(mention_id, lambda uow: ticket_from_mention(mention_id, current_user.name, uow, rules),
                _("The mention is in the escalation queue."), _("This mention has no author or no text to follow up."))


@bp.route("/mentions/<int:mention_id>/lead", methods=["POST"])
@staff_required(*LISTENS)
def make_lead(mention_id: int) -> Any:
    if not ActionForm().validate_on_submit():
        abort(400)
    return _act(mention_id, lambda uow: lead_from_mention(mention_id, current_user.name, uow),
                _("The author is a lead now."), _("This mention has no author to follow up."))


@bp.route("/watch-terms", methods=["GET", "POST"])
@staff_required(*LISTENS)
def watch_terms() -> Any:
    """The terms every mention is matched against; add one, or stop tracking one."""
    form = WatchTermForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            with runtime_of(current_app).uow() as uow:
                try:
                    listening.add_watch_term(form.term.data, form.kind.data, uow, actor=current_user.name)
                    uow.commit()
                    flash(_("Now tracking “%(term)s”.", term=" ".join(form.term.data.split()).lower()), "ok")
                    return redirect(url_for(".watch_terms"))
                except ValueError as exc:
                    flash(str(exc), "error")
        else:
            flash(_("Please correct the form."), "error")
        status = 400
    with runtime_of(current_app).uow() as uow:
        terms = listening.watch_terms(uow)
    return render_template("console/watch_terms.html", terms=terms, form=form, action_form=ActionForm()), status


@bp.route("/watch-terms/<int:term_id>/remove", methods=["POST"])
@staff_required(*LISTENS)
def remove_watch_term(term_id: int) -> Response:
    if not ActionForm().validate_on_submit():
        abort(400)
    with runtime_of(current_app).uow() as uow:
        try:
            row = listening.deactivate_watch_term(term_id, uow, actor=current_user.name)
        except LookupError:
            abort(404)
        term = row.term
        uow.commit()
    flash(_("Stopped tracking “%(term)s”.", term=term), "ok")
    return redirect(url_for(".watch_terms"))
