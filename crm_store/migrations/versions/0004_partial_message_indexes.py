"""partial message indexes

The outbox index holds only queued messages and the reply index only replies, so the inbound
message and its passive reply (most rows written) skip both.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        batch.drop_index('ix_messages_delivery')
        batch.drop_index('ix_messages_reply_to_id')
        batch.create_index('ix_messages_queued', ['id'], sqlite_where=sa.text("delivery = 'queued'"),
                           postgresql_where=sa.text("delivery = 'queued'"))
        batch.create_index('ix_messages_reply_to_id', ['reply_to_id'], sqlite_where=sa.text("reply_to_id IS NOT NULL"),
                           postgresql_where=sa.text("reply_to_id IS NOT NULL"))


def downgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        batch.drop_index('ix_messages_reply_to_id')
        batch.drop_index('ix_messages_queued')
        batch.create_index('ix_messages_reply_to_id', ['reply_to_id'])
        batch.create_index('ix_messages_delivery', ['delivery'])
