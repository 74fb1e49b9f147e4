"""Repositories and the unit of work: the only place that commits."""
from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

from sqlalchemy import Connection, Engine, Executable, Result, select
from sqlalchemy.orm import Session

from crm_store.models import ChannelIdentity, Conversation, Customer, Message

log = logging.getLogger(__name__)


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


class UnitOfWork:
    """``with uow: ...; uow.commit()`` - anything not committed is rolled back on exit.

    One connection and one transaction per unit of work. Hot paths run Core statements on
    ``connection``; the ORM session (and the repositories on it) is made only when something asks
    for it, joined to the same transaction, so a message that needs no ORM pays nothing for it.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __enter__(self) -> UnitOfWork:
        self._connection: Connection | None = None
        self._session: Session | None = None
        self._after_commit: list[Callable[[], None]] = []
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._end(commit=False)

    @property
    def connection(self) -> Connection:
        """The transaction's connection (opened, and the transaction begun, on first use)."""
        if self._connection is None:
            self._connection = self.engine.connect()
            self._connection.begin()
        return self._connection

    @property
    def session(self) -> Session:
        if self._session is None:
            # Joined to the connection's transaction; only this unit of work commits it.
            self._session = Session(bind=self.connection, expire_on_commit=False,
                                    join_transaction_mode="rollback_only")
        return self._session

    @property
    def customers(self) -> CustomerRepository:
        return CustomerRepository(self.session)

    @property
    def identities(self) -> IdentityRepository:
        return IdentityRepository(self.session)

    @property
    def conversations(self) -> ConversationRepository:
        return ConversationRepository(self.session)

    @property
    def messages(self) -> MessageRepository:
        return MessageRepository(self.session)

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the transaction has committed and the connection is back in the
        pool: for calls to outside services (an SMS gateway), which must not hold a transaction
        open. Dropped if the transaction rolls back. A failing action is logged, not raised: what
        it followed has landed."""
        self._after_commit.append(action)

    def execute(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Result[Any]:
        """Run a Core statement in the transaction, after any pending ORM changes are flushed."""
        self.flush()
        return self.connection.execute(statement, params or {})

    def flush(self) -> None:
        if self._session is not None:
            self._session.flush()

    def _end(self, commit: bool) -> None:
        actions, self._after_commit, committed = self._after_commit, [], False
        try:
            if commit:
                self.flush()
                if self._connection is not None:
                    self._connection.commit()
                committed = True
        finally:
            # close() leaves loaded rows readable (detached), unlike a rollback, which expires them.
            if self._session is not None:
                self._session.close()
            if self._connection is not None:
                self._connection.close()  # rolls back anything not committed
            self._session = self._connection = None
        for action in actions if committed else ():
            try:
                action()
            except Exception:  # noqa: BLE001 - see after_commit
                log.exception("after commit: %r failed", action)

    def commit(self) -> None:
        """Commit; the unit of work may go on, in a new transaction."""
        self._end(commit=True)

    def rollback(self) -> None:
        self._end(commit=False)
