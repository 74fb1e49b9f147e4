"""The console's forms (Flask-WTF): each carries its CSRF token and validates its fields."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms.fields.choices import SelectChoice
from wtforms import IntegerField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from crm_store import models
from web.console import LABELS


class LoginForm(FlaskForm):
    name = StringField(_l("User name"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])


class ActionForm(FlaskForm):
    """A button that changes something (claim, undo, revoke, sign out): only the CSRF token."""


class ReplyForm(FlaskForm):
    text = TextAreaField(_l("Reply to the customer"), validators=[DataRequired(), Length(max=2000)])


class NoteForm(FlaskForm):
    text = TextAreaField(_l("Internal note"), validators=[DataRequired(), Length(max=2000)])


class AssignForm(FlaskForm):
    assignee = SelectField(_l("Assign to"), validators=[DataRequired()], choices=[])


class ResolveForm(FlaskForm):
    complaint_level = SelectField(_l("Complaint level"), choices=[
        SelectChoice(level, LABELS[level]) for level in ("none", "minor", "major", "critical")])
    category = SelectField(_l("Category"), choices=[])
    compensation = StringField(_l("Coupon or other compensation"), validators=[Optional(), Length(max=200)])
    compensation_points = IntegerField(_l("Points to credit"), default=0,
                                       validators=[Optional(), NumberRange(min=0, max=100_000)])
    note = TextAreaField(_l("Resolution note"), validators=[Optional(), Length(max=2000)])


class MergeForm(FlaskForm):
    into = IntegerField(_l("Merge into customer no."), validators=[InputRequired(), NumberRange(min=1)])
    reason = StringField(_l("Why they are one person"), validators=[DataRequired(), Length(max=200)])


class UserForm(FlaskForm):
    name = StringField(_l("User name"), validators=[DataRequired(), Length(max=64)])
    role = SelectField(_l("Role"), choices=[SelectChoice(role, LABELS[role]) for role in models.ROLES])
    password = PasswordField(_l("Password (at least 10 characters)"), validators=[DataRequired(), Length(min=10, max=200)])


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"), choices=[SelectChoice(role, LABELS[role]) for role in models.ROLES])


class LeadForm(FlaskForm):
    """A lead card's form: its status, and who works it ("" = nobody)."""

    status = SelectField(_l("Status"), choices=[SelectChoice(s, LABELS[s]) for s in models.LEAD_STATUSES])
    assignee = SelectField(_l("Assigned to"), choices=[], validate_choice=True)


class PublicReplyForm(FlaskForm):
    text = TextAreaField(_l("Public reply"), validators=[DataRequired(), Length(max=2000)])


class WatchTermForm(FlaskForm):
    term = StringField(_l("Term"), validators=[DataRequired(), Length(max=64)])
    kind = SelectField(_l("Kind"), choices=[SelectChoice(kind, LABELS[kind]) for kind in models.WATCH_TERM_KINDS])
