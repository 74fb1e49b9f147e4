"""a signed request that leaves the body out of its signature carries one payload only

WeChat's plain mode signs the timestamp and nonce, not the body. The message keeps the signed
request that carried it (``push_key``), unique: the same query string with another body inserts
nothing and is refused.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("push_key", sa.String(length=255), nullable=True))
    op.create_index("uq_messages_push_key", "messages", ["push_key"], unique=True,
                    sqlite_where=sa.text("push_key IS NOT NULL"), postgresql_where=sa.text("push_key IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("uq_messages_push_key", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("push_key")
