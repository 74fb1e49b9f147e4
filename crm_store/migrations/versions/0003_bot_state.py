"""bot state in the store

The bot's per-conversation state (the active flow, the count of misses) moves from Redis to the
customer's channel identity: it then commits or rolls back with the message that changed it, and
the webhook reads it with the identity row it locks instead of in a round trip of its own.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('channel_identities') as batch:
        batch.add_column(sa.Column('state', sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(sa.Column('state_expires_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('channel_identities') as batch:
        batch.drop_column('state_expires_at')
        batch.drop_column('state')
