"""Staff accounts, API tokens and the audit log: the service functions behind the console, the
API and the ``crmbot user`` / ``crmbot token`` commands. Like every service function, they take a
unit of work and never commit."""
from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from crm_store import models
from crm_store.models import ApiToken, AuditEntry, StaffUser, utcnow
from crm_store.uow import UnitOfWork

TOKEN_PREFIX = "crm_"  # makes a leaked token easy to recognise (secret scanners, logs)
# Checked against when a name is unknown, so a wrong name costs as much time as a wrong password.
_NO_SUCH_USER = generate_password_hash("no such user", method="scrypt")


def audit(actor: str, action: str, uow: UnitOfWork, target_type: str | None = None,
          target_id: Any = None, **detail: Any) -> None:
    """Record a staff action in the caller's transaction."""
    uow.session.add(AuditEntry(actor=actor, action=action, target_type=target_type,
                               target_id=None if target_id is None else str(target_id), detail=detail))


def create_user(name: str, role: str, password: str, uow: UnitOfWork, actor: str = "system") -> StaffUser:
    """A staff user with a scrypt-hashed password; ``ValueError`` for a bad role, name or password."""
    if role not in models.ROLES:
        raise ValueError(f"role must be one of {', '.join(models.ROLES)}")
    name = name.strip()
    if not name or len(name) > 64:
        raise ValueError("a user name is 1 to 64 characters")
    if len(password) < 10:
        raise ValueError("a password has at least 10 characters")
    if uow.session.scalar(select(StaffUser.id).filter_by(name=name)) is not None:
        raise ValueError(f"user {name!r} exists already")
    user = StaffUser(name=name, role=role, password_hash=generate_password_hash(password, method="scrypt"))
    uow.session.add(user)
    uow.flush()
    audit(actor, "user.create", uow, "staff_user", user.id, name=name, role=role)
    return user


def authenticate(name: str, password: str, uow: UnitOfWork) -> StaffUser | None:
    """The active user with this name and password, else None (in about the same time either way)."""
    user = uow.session.scalar(select(StaffUser).filter_by(name=name.strip()))
    if user is None:
        check_password_hash(_NO_SUCH_USER, password)
        return None
    return user if check_password_hash(user.password_hash, password) and user.active else None


def _token_hash(token: str) -> str:
    # A token is 256 random bits: a fast hash is enough, and lets the store find it by its index.
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(user_name: str, uow: UnitOfWork, actor: str = "system") -> str:
    """A new API token for ``user_name``; the only time it is seen in clear."""
    user = uow.session.scalar(select(StaffUser).filter_by(name=user_name.strip()))
    if user is None:
        raise LookupError(f"no user {user_name!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_hash=_token_hash(token))
    uow.session.add(row)
    uow.flush()
    audit(actor, "token.create", uow, "api_token", row.id, user=user.name)
    return token


def user_for_token(token: str, uow: UnitOfWork) -> StaffUser | None:
    """The active user a live token belongs to, else None."""
    row = uow.session.scalar(select(ApiToken).filter_by(token_hash=_token_hash(token), revoked_at=None))
    if row is None:
        return None
    user = uow.session.get(StaffUser, row.user_id)
    return user if user is not None and user.active else None


def revoke_token(token_id: int, uow: UnitOfWork, actor: str) -> None:
    row = uow.session.get(ApiToken, token_id)
    if row is None:
        raise LookupError(f"no API token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit(actor, "token.revoke", uow, "api_token", token_id)


def set_role(user_id: int, role: str, uow: UnitOfWork, actor: str) -> StaffUser:
    """Change a user's role; audited."""
    if role not in models.ROLES:
        raise ValueError(f"role must be one of {', '.join(models.ROLES)}")
    user = _user(user_id, uow)
    if user.role != role:
        audit(actor, "user.role", uow, "staff_user", user.id, name=user.name, role=role, previous=user.role)
        user.role = role
    return user


def set_active(user_id: int, active: bool, uow: UnitOfWork, actor: str) -> StaffUser:
    """Let a user sign in again, or stop them (their session and tokens stop working at once)."""
    user = _user(user_id, uow)
    if user.active != active:
        audit(actor, "user.activate" if active else "user.deactivate", uow, "staff_user", user.id, name=user.name)
        user.active = active
    return user


def _user(user_id: int, uow: UnitOfWork) -> StaffUser:
    user = uow.session.get(StaffUser, user_id)
    if user is None:
        raise LookupError(f"no user {user_id}")
    return user
