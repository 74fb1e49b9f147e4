"""listening: mentions, watch terms, cursors, poll runs, follower snapshots

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mentions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author_id", sa.String(length=64), nullable=True),
        sa.Column("author_screen_name", sa.String(length=120), nullable=True),
        sa.Column("author_followers", sa.Integer(), nullable=True),
        sa.Column("author_verified", sa.Boolean(), nullable=False),
        sa.Column("reposts", sa.Integer(), nullable=False),
        sa.Column("comments", sa.Integer(), nullable=False),
        sa.Column("likes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=True),
        sa.Column("sentiment", sa.String(length=3), nullable=True),
        sa.Column("sentiment_score", sa.Float(), nullable=True),
        sa.Column("intent", sa.String(length=20), nullable=True),
        sa.Column("intent_confidence", sa.Float(), nullable=True),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("watch_terms", sa.JSON(), nullable=False),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id"), nullable=True),
        sa.Column("reply_ref", sa.String(length=140), nullable=True),
        sa.Column("in_reply_to", sa.String(length=64), nullable=True),
        sa.Column("url", sa.String(length=255), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("lead_id", sa.Integer(), sa.ForeignKey("leads.id"), nullable=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id"), nullable=True),
        sa.UniqueConstraint("channel", "account", "external_id", name="uq_mentions_channel_account_external"),
    )
    op.create_index("ix_mentions_channel_created_at", "mentions", ["channel", "created_at"])
    op.create_index("ix_mentions_customer_id", "mentions", ["customer_id"])
    op.create_index("ix_mentions_lead_id", "mentions", ["lead_id"])
    op.create_index("ix_mentions_ticket_id", "mentions", ["ticket_id"])
    op.create_table(
        "watch_terms",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("term", sa.String(length=64), nullable=False, unique=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "listening_cursors",
        sa.Column("channel", sa.String(length=20), primary_key=True),
        sa.Column("account", sa.String(length=64), primary_key=True),
        sa.Column("source", sa.String(length=80), primary_key=True),
        sa.Column("since_id", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "poll_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=80), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("fetched", sa.Integer(), nullable=False),
        sa.Column("new", sa.Integer(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("rate_limited_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cursor_before", sa.String(length=64), nullable=True),
        sa.Column("cursor_after", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
    )
    op.create_index("ix_poll_runs_source", "poll_runs", ["channel", "account", "source", "id"])
    op.create_table(
        "follower_snapshots",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("followers", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("channel", "account", "day", name="uq_follower_snapshots_day"),
    )


def downgrade() -> None:
    op.drop_table("follower_snapshots")
    op.drop_index("ix_poll_runs_source", table_name="poll_runs")
    op.drop_table("poll_runs")
    op.drop_table("listening_cursors")
    op.drop_table("watch_terms")
    for name in ("ix_mentions_ticket_id", "ix_mentions_lead_id", "ix_mentions_customer_id",
                 "ix_mentions_channel_created_at"):
        op.drop_index(name, table_name="mentions")
    op.drop_table("mentions")
