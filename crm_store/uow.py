"""Repositories and the unit of work: the only place that commits."""
from __future__ import annotations

import itertools
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from sqlalchemy import Connection, Dialect, Engine, Executable, literal_column, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from crm_store.models import QUEUED, ChannelIdentity, Conversation, Customer, Message


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

    def queued(self, limit: int = 100) -> list[Message]:
        """The outbox: messages waiting for the send job, oldest first."""
        # The literal matches the partial index's WHERE; a bound parameter would not use it.
        return list(self.session.scalars(select(Message).where(Message.delivery == literal_column(f"'{QUEUED}'"))
                                         .order_by(Message.id).limit(limit)))


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
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._end(commit=False)

    @property
    def connection(self) -> Connection:
        """The transaction's connection (opened, and the transaction begun, on first use)."""
        if self._connection is None:
            self._connection = self.engine.connect()
            self._connection.begin()  # at once: ``Prepared`` statements bypass autobegin
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

    def flush(self) -> None:
        if self._session is not None:
            self._session.flush()

    def _end(self, commit: bool) -> None:
        try:
            if commit:
                self.flush()
                if self._connection is not None:
                    if self._connection.dialect.driver == "psycopg":
                        _PostgresStatements.of(self._connection).commit(self._connection)
                    self._connection.commit()  # on PostgreSQL, now only SQLAlchemy's own bookkeeping
        finally:
            # close() leaves loaded rows readable (detached), unlike a rollback, which expires them.
            if self._session is not None:
                self._session.close()
            if self._connection is not None:
                self._connection.close()  # rolls back anything not committed
            self._session = self._connection = None

    def commit(self) -> None:
        """Commit; the unit of work may go on, in a new transaction."""
        self._end(commit=True)

    def rollback(self) -> None:
        self._end(commit=False)


_NAMED = re.compile(r"%\(([^)]+)\)s")  # a named parameter in psycopg's style
_STATEMENT_NAMES = itertools.count(1)


@dataclass(frozen=True)
class _Plan:
    sql: str
    params: tuple[tuple[str | None, Any, Callable[[Any], Any] | None], ...]  # in order: key or fixed value, to db
    columns: tuple[Callable[[Any], Any] | None, ...]  # from db, per result column
    libpq_name: bytes = b""  # PostgreSQL: the server-side prepared statement's name; ``sql`` uses $1, $2 ...


class Prepared:
    """A Core statement compiled once per dialect and run straight on the unit of work's DBAPI connection.

    For the webhook's hot path only. SQLAlchemy's ``Connection.execute`` spends 40 to 100 µs per
    statement on its execution context, events and result objects, several times what SQLite
    needs to run these statements. Here the SQL and the conversion of each parameter and result
    column are worked out once, from the same Core statement and its column types, so values are
    stored and read exactly as through SQLAlchemy. Not supported, because the hot path needs none:
    Python-side column defaults (the statement names every value it writes), expanding IN lists,
    and connection events. Database errors are raised as SQLAlchemy's own (``IntegrityError`` ...),
    so callers handle them one way.

    On SQLite a statement runs on a DBAPI cursor. On PostgreSQL it runs on psycopg's libpq
    connection (``_PostgresStatements``): a psycopg cursor spends 30 to 45 µs of Python per
    statement around a round trip that costs libpq 15 µs.
    """

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._plans: dict[str, _Plan] = {}

    def _plan(self, dialect: Dialect) -> _Plan:
        compiled = self.statement.compile(dialect=dialect)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("Prepared statements cannot expand IN lists or render literals per execution")
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        sql, libpq_name = str(compiled), b""
        if dialect.driver == "psycopg":  # "%(name)s" becomes libpq's "$1"; "%%" is a literal "%"
            names = _NAMED.findall(sql)
            numbers = itertools.count(1)
            sql = _NAMED.sub(lambda _: f"${next(numbers)}", sql).replace("%%", "%")
            libpq_name = f"crmbot_{next(_STATEMENT_NAMES)}".encode()
        elif compiled.positional:  # SQLite's "?"
            names = compiled.positiontup or []
        else:
            raise ValueError(f"Prepared statements support SQLite and psycopg, not {dialect.driver}")
        binds = [by_name[name] for name in names]
        params = tuple((bind.key if bind.required else None, bind.value,
                        bind.type.dialect_impl(dialect).bind_processor(dialect)) for bind in binds)
        columns = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None)
                        for column in getattr(self.statement, "exported_columns", ()))
        return _Plan(sql, params, columns, libpq_name)

    def rows(self, uow: UnitOfWork, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run in ``uow``'s transaction (pending ORM changes flushed first); the rows it returns."""
        uow.flush()
        connection = uow.connection
        dialect = connection.dialect
        plan = self._plans.get(dialect.name)
        if plan is None:
            plan = self._plans[dialect.name] = self._plan(dialect)
        values = []
        for key, fixed, convert in plan.params:
            value = params[key] if key is not None else fixed
            values.append(convert(value) if convert else value)
        with _raised_as_sqlalchemy(connection, plan.sql, values):
            if plan.libpq_name:
                rows = _PostgresStatements.of(connection).execute(plan, values)
            else:
                cursor = connection.connection.cursor()
                try:
                    cursor.execute(plan.sql, values)
                    rows = cursor.fetchall() if cursor.description else []
                finally:
                    cursor.close()
        if any(plan.columns):
            rows = [tuple(convert(value) if convert else value for convert, value in zip(plan.columns, row))
                    for row in rows]
        return rows

    def first(self, uow: UnitOfWork, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        rows = self.rows(uow, params)
        return rows[0] if rows else None

    def scalar(self, uow: UnitOfWork, params: Mapping[str, Any]) -> Any:
        row = self.first(uow, params)
        return row[0] if row else None


@contextmanager
def _raised_as_sqlalchemy(connection: Connection, sql: str, params: Any) -> Iterator[None]:
    """DBAPI errors raised as SQLAlchemy's own (``IntegrityError`` ...), so callers handle them one
    way; as SQLAlchemy's execute does, a lost connection is invalidated, so the pool drops it."""
    dialect = connection.dialect
    try:
        yield
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, connection.connection.dbapi_connection, None)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error, dialect=dialect,
                                  connection_invalidated=lost) from exc


class _PostgresStatements:
    """The ``Prepared`` statements of one psycopg connection, run through its libpq connection.

    psycopg's own adapters turn parameters into text and rows into Python values, as its
    cursors do. The transaction is begun here when the connection is idle, and psycopg (hence
    SQLAlchemy) rolls it back as usual, since both follow libpq's transaction status; the unit
    of work commits it here. A plain ``BEGIN`` is what psycopg sends too: the store's engine sets
    no isolation level. Each statement is prepared on the server once per connection, under its
    plan's name.
    """

    def __init__(self, connection: Any) -> None:
        from psycopg import errors, pq  # here: a SQLite-only process never loads psycopg
        from psycopg.adapt import PyFormat, Transformer

        self.connection = connection
        self.pgconn = connection.pgconn
        self.adapt = Transformer(connection)
        self.prepared: set[bytes] = set()
        self._text, self._idle, self._error_from = PyFormat.TEXT, pq.TransactionStatus.IDLE, errors.error_from_result
        self._ok = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
        self._connection_ok, self._lost = pq.ConnStatus.OK, errors.OperationalError

    @classmethod
    def of(cls, connection: Connection) -> _PostgresStatements:
        """Those of ``connection``'s DBAPI connection, kept in the pool's ``info`` for it
        (SQLAlchemy clears that when the DBAPI connection is closed or replaced)."""
        info = connection.connection.info
        statements = info.get(cls)
        if statements is None:
            statements = info[cls] = cls(connection.connection.dbapi_connection)
        return statements

    def commit(self, connection: Connection) -> None:
        """Commit the open transaction of ``connection`` (this one's), if any. Through libpq, as the
        statements run: psycopg's own commit spends about 25 µs more of Python on the round trip."""
        if self.pgconn.transaction_status != self._idle:
            with _raised_as_sqlalchemy(connection, "COMMIT", ()):
                self._check(self.pgconn.exec_(b"COMMIT"))

    def _check(self, result: Any) -> Any:
        if result.status not in self._ok:
            if self.pgconn.status != self._connection_ok:  # raised as psycopg's cursors raise it
                raise self._lost(self.pgconn.get_error_message())
            raise self._error_from(result, encoding=self.connection.info.encoding)
        return result

    def execute(self, plan: _Plan, values: list[Any]) -> list[tuple[Any, ...]]:
        pgconn = self.pgconn
        if pgconn.transaction_status == self._idle:
            self._check(pgconn.exec_(b"BEGIN"))
        if plan.libpq_name not in self.prepared:
            self._check(pgconn.prepare(plan.libpq_name, plan.sql.encode()))
            self.prepared.add(plan.libpq_name)
        result = self._check(pgconn.exec_prepared(plan.libpq_name, self.adapt.dump_sequence(
            values, [self._text] * len(values))))
        self.adapt.set_pgresult(result)
        return self.adapt.load_rows(0, result.ntuples, tuple)
