"""a lead links to another customer's open lead with the same phone instead of merging into it

Capturing a lead with a phone that another customer's open lead already has used to append to
that lead: two people (or one person on two records) became one lead, with no trace. The new
lead is now kept for its own customer and points at the other with ``same_phone_as_id``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("same_phone_as_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_leads_same_phone_as_id_leads", "leads", ["same_phone_as_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.drop_constraint("fk_leads_same_phone_as_id_leads", type_="foreignkey")
        batch.drop_column("same_phone_as_id")
