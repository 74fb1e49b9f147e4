"""the analysis of each inbound text message; tickets' SLA state as the SLA job keeps it

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_analyses",
        sa.Column("message_id", sa.Integer(), sa.ForeignKey("messages.id"), primary_key=True),
        sa.Column("lang", sa.String(length=8), nullable=True),
        sa.Column("sentiment", sa.String(length=3), nullable=False),
        sa.Column("sentiment_score", sa.Float(), nullable=False),
        sa.Column("intent", sa.String(length=20), nullable=False),
        sa.Column("intent_confidence", sa.Float(), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("watch_terms", sa.JSON(), nullable=False),
        sa.Column("escalation", sa.String(length=20), nullable=True),
        sa.Column("analyzed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lag_ms", sa.Integer(), nullable=False),
    )
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("sla_state", sa.String(length=10), nullable=True))
        batch.add_column(sa.Column("sla_breached_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("sla_breached_at")
        batch.drop_column("sla_state")
    op.drop_table("message_analyses")
