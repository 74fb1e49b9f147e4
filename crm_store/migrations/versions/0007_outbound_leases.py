"""outbound sends are claimed with a lease and wait out their backoff in the store

A send is claimed (``sending``, ``lease_expires_at``) and committed before the platform is
called, and its outcome recorded in a new transaction: no transaction is held across the call.
A retry waits until ``next_attempt_at``. The partial index finds claims whose lease ran out
(their outcome is unknown).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_messages_sending", "messages", ["id"], sqlite_where=sa.text("delivery = 'sending'"),
                    postgresql_where=sa.text("delivery = 'sending'"))


def downgrade() -> None:
    op.drop_index("ix_messages_sending", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("next_attempt_at")
