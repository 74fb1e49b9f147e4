"""a message refers to its conversation and that conversation's customer in one key

Messages had two foreign keys, to the conversation and to the customer, checked apart: a
message could name a customer other than its conversation's. One composite key to
conversations (id, customer_id) now checks both and their agreement, and ON UPDATE CASCADE
moves a conversation's messages with it when customers merge. The customer is reached through
the conversation, so messages lose their own customer index. The dedupe key's unique index
holds only the rows that have one (inbound messages). Each message written (two per webhook
push) thus maintains two indexes and checks one key fewer.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# SQLite's constraints have no names; batch mode names them by this convention when it reflects
# them. PostgreSQL's carry the names it gave them.
NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
          "uq": "uq_%(table_name)s_%(column_0_name)s"}


def _names() -> tuple[str, str, str]:
    """The old keys of messages: conversation, customer, dedupe key."""
    if op.get_bind().dialect.name == "postgresql":
        return "messages_conversation_id_fkey", "messages_customer_id_fkey", "messages_dedupe_key_key"
    return "fk_messages_conversation_id_conversations", "fk_messages_customer_id_customers", "uq_messages_dedupe_key"


def upgrade() -> None:
    # Mend any message whose customer is not its conversation's, so the new key holds for all rows.
    op.execute("UPDATE messages SET customer_id = (SELECT c.customer_id FROM conversations c "
               "WHERE c.id = messages.conversation_id) WHERE customer_id <> (SELECT c.customer_id "
               "FROM conversations c WHERE c.id = messages.conversation_id)")
    with op.batch_alter_table('conversations') as batch:
        batch.create_unique_constraint('uq_conversations_id_customer_id', ['id', 'customer_id'])
    conversation_key, customer_key, dedupe_key = _names()
    with op.batch_alter_table('messages', naming_convention=NAMING) as batch:
        batch.drop_constraint(conversation_key, type_='foreignkey')
        batch.drop_constraint(customer_key, type_='foreignkey')
        batch.drop_index('ix_messages_customer_id')
        batch.drop_constraint(dedupe_key, type_='unique')
        batch.create_index('uq_messages_dedupe_key', ['dedupe_key'], unique=True,
                           sqlite_where=sa.text("dedupe_key IS NOT NULL"),
                           postgresql_where=sa.text("dedupe_key IS NOT NULL"))
        batch.create_foreign_key('fk_messages_conversation_customer', 'conversations',
                                 ['conversation_id', 'customer_id'], ['id', 'customer_id'], onupdate='CASCADE')


def downgrade() -> None:
    conversation_key, customer_key, dedupe_key = _names()
    with op.batch_alter_table('messages') as batch:
        batch.drop_constraint('fk_messages_conversation_customer', type_='foreignkey')
        batch.drop_index('uq_messages_dedupe_key')
        batch.create_unique_constraint(dedupe_key, ['dedupe_key'])
        batch.create_index('ix_messages_customer_id', ['customer_id'])
        batch.create_foreign_key(customer_key, 'customers', ['customer_id'], ['id'])
        batch.create_foreign_key(conversation_key, 'conversations', ['conversation_id'], ['id'])
    with op.batch_alter_table('conversations') as batch:
        batch.drop_constraint('uq_conversations_id_customer_id', type_='unique')
