"""Repositories and the unit of work: the only place that commits."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, sessionmaker

from crm_store.models import ChannelIdentity, Conversation, Customer, Message


class Repository:
    """Add and get rows of one model within the unit of work's session."""

    model: Any = None

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: Any) -> Any:
        self.session.add(row)
        return row

    def get(self, row_id: int) -> Any:
        return self.session.get(self.model, row_id)


class CustomerRepository(Repository):
    model = Customer


class IdentityRepository(Repository):
    model = ChannelIdentity

    def find(self, channel: str, account: str, external_id: str) -> ChannelIdentity | None:
        return self.session.scalar(select(ChannelIdentity).filter_by(
            channel=channel, account=account, external_id=external_id))


class ConversationRepository(Repository):
    model = Conversation

    def open_for(self, identity_id: int) -> Conversation | None:
        return self.session.scalar(select(Conversation).filter_by(identity_id=identity_id, status="open")
                                   .order_by(Conversation.id.desc()).limit(1))


class MessageRepository(Repository):
    model = Message

    def by_dedupe_key(self, dedupe_key: str) -> Message | None:
        return self.session.scalar(select(Message).filter_by(dedupe_key=dedupe_key))

    def reply_to(self, message_id: int) -> Message | None:
        return self.session.scalar(select(Message).filter_by(reply_to_id=message_id).order_by(Message.id).limit(1))

    def in_conversation(self, conversation_id: int) -> list[Message]:
        return list(self.session.scalars(select(Message).filter_by(conversation_id=conversation_id)
                                         .order_by(Message.id)))

    def with_delivery(self, delivery: str, limit: int = 100) -> list[Message]:
        return list(self.session.scalars(select(Message).filter_by(delivery=delivery).order_by(Message.id)
                                         .limit(limit)))


class UnitOfWork:
    """``with uow: ...; uow.commit()`` - anything not committed is rolled back on exit."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    def __enter__(self) -> UnitOfWork:
        self.session = self.session_factory()
        self._connection: Connection | None = None
        self.customers = CustomerRepository(self.session)
        self.identities = IdentityRepository(self.session)
        self.conversations = ConversationRepository(self.session)
        self.messages = MessageRepository(self.session)
        return self

    def __exit__(self, *exc_info: object) -> None:
        # close() rolls back what was not committed; unlike rollback() it leaves loaded rows readable.
        self.session.close()

    @property
    def connection(self) -> Connection:
        """The transaction's connection, for Core statements on hot paths (no ORM bookkeeping)."""
        if self._connection is None:
            self._connection = self.session.connection()
        return self._connection

    def flush(self) -> None:
        self.session.flush()

    def commit(self) -> None:
        self.session.commit()
        self._connection = None  # the next statement starts a new transaction

    def rollback(self) -> None:
        self.session.rollback()
        self._connection = None
