"""KPI rollups of tickets per brand day, channel, account and agent; tickets.updated_at, which
tells the rollups which days changed

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    # No ticket rollup exists yet, so any time will do; the opening time is the earliest true one.
    op.execute("UPDATE tickets SET updated_at = created_at")
    with op.batch_alter_table("tickets") as batch:
        batch.alter_column("updated_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index("ix_tickets_updated_at", "tickets", ["updated_at"])
    op.create_table(
        "kpi_ticket_days",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=False),
        sa.Column("counted", sa.Integer(), nullable=False),
        sa.Column("resolved", sa.Integer(), nullable=False),
        sa.Column("breaches", sa.Integer(), nullable=False),
        sa.Column("response_times", sa.JSON(), nullable=False),
        sa.Column("csat_asked", sa.Integer(), nullable=False),
        sa.Column("csat_answered", sa.Integer(), nullable=False),
        sa.Column("csat_satisfied", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("day", "channel", "account", "agent", name="uq_kpi_ticket_days_day"),
    )


def downgrade() -> None:
    op.drop_table("kpi_ticket_days")
    op.drop_index("ix_tickets_updated_at", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("updated_at")
