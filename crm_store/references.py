"""Human-readable references (tickets T20261123-0042, cards M20261123000042) on the brand's clock.
A leaf of the store: services and membership both number things with it."""
from __future__ import annotations

from datetime import timedelta, timezone

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from crm_store import models
from crm_store.models import utcnow
from crm_store.uow import UnitOfWork

# References and report days follow the brand's clock (China Standard Time, no DST).
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")


def _insert(uow: UnitOfWork, model: type):  # type: ignore[no-untyped-def]
    """An INSERT that knows ON CONFLICT, for the store's dialect (SQLite or PostgreSQL)."""
    dialect = postgresql if uow.connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


def next_reference(prefix: str, uow: UnitOfWork, digits: int = 4) -> str:
    """The next human-readable reference of the day, e.g. ``T20261123-0042``.

    One counter row per prefix and day, bumped with an upsert, so concurrent processes never
    hand out the same number (the row lock lasts until the transaction commits).
    """
    key = f"{prefix}{utcnow().astimezone(SHANGHAI):%Y%m%d}"
    statement = _insert(uow, models.ReferenceCounter).values(prefix_day=key, last=1)
    statement = statement.on_conflict_do_update(index_elements=["prefix_day"],
                                                set_={"last": models.ReferenceCounter.last + 1})
    uow.session.execute(statement)
    number = uow.session.scalar(select(models.ReferenceCounter.last).filter_by(prefix_day=key))
    return f"{key}-{number:0{digits}d}"
