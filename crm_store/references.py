"""Human-readable references (tickets T20261123-0042, cards M20261123000042) on the brand's clock.
A leaf of the store: services and membership both number things with it."""
from __future__ import annotations

from datetime import timedelta, timezone

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
    return next_references(prefix, 1, uow, digits)[0]


def next_references(prefix: str, count: int, uow: UnitOfWork, digits: int = 4) -> list[str]:
    """``count`` consecutive references of the day, reserved with one counter upsert (a page of
    mention tickets is numbered at once); the same guarantee as ``next_reference``."""
    if count < 1:
        return []
    key = f"{prefix}{utcnow().astimezone(SHANGHAI):%Y%m%d}"
    counter = models.ReferenceCounter.__table__
    statement = _insert(uow, models.ReferenceCounter).values(prefix_day=key, last=count)
    statement = statement.on_conflict_do_update(index_elements=["prefix_day"], set_={"last": counter.c.last + count})
    # RETURNING reads the bumped row in the same statement, under the same row lock.
    last = uow.execute(statement.returning(counter.c.last)).scalar_one()
    return [f"{key}-{number:0{digits}d}" for number in range(last - count + 1, last + 1)]
