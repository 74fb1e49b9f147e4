"""Alembic environment: the URL comes from the caller (``crm_store.migrate.upgrade``)."""
from alembic import context
from sqlalchemy import create_engine

from crm_store.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
engine = config.attributes.get("engine") or create_engine(url)
with engine.begin() as connection:
    # render_as_batch lets ALTERs work on SQLite, which cannot alter most things in place.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
