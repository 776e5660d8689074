"""The database: typed SQLAlchemy models, engines for SQLite and PostgreSQL, and
Alembic migrations applied when a command opens an older database."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.sql import Executable

from .dberrors import DEFAULT_BUSY_TIMEOUT, repair_sidecars, translate_errors
from .errors import CitesmailError
from .folding import contact_keys

# The newest migration; tests check that it is Alembic's head.
HEAD = "0009"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def utcnow() -> datetime:
    return datetime.now(UTC)


def database_key(url: str) -> str:
    """A short name for a database (server, name, options), for file names."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]


def is_postgresql(where: Session | Engine) -> bool:
    """The one dialect test: SQLite unless PostgreSQL."""
    bind = where.get_bind() if isinstance(where, Session) else where
    return bind.dialect.name == "postgresql"


def column_length(model: type[Base], column: str) -> int:
    """The length of a text column: PostgreSQL refuses longer text where SQLite keeps it."""
    kind = model.__table__.c[column].type
    assert isinstance(kind, String) and kind.length is not None
    return kind.length


def changed(session: Session, statement: Executable) -> int:
    """Run an UPDATE or DELETE and say how many rows it changed."""
    result = session.execute(statement)
    assert isinstance(result, CursorResult)
    return result.rowcount or 0


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC everywhere; always read back as an aware UTC datetime."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    # lower-cased local part @ ASCII (IDNA) domain: one contact per address, whatever case
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    domain: Mapped[str] = mapped_column(String(255), index=True)
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    organization: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str | None] = mapped_column(String(255))
    territory: Mapped[str | None] = mapped_column(String(255))
    lang: Mapped[str | None] = mapped_column(String(16))  # few values: an index would not help
    attributes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # Folded copies (folding.py) that segments and search compare; the indexes are on
    # these, which also narrow an exact `==` down. Text: folding may lengthen a value.
    role_key: Mapped[str | None] = mapped_column(Text, index=True)
    territory_key: Mapped[str | None] = mapped_column(Text, index=True)
    organization_key: Mapped[str | None] = mapped_column(Text, index=True)
    attributes_key: Mapped[dict[str, str] | None] = mapped_column(JSON)
    search_key: Mapped[str | None] = mapped_column(Text)  # names, address, organisation
    status: Mapped[str] = mapped_column(String(16), default="active")  # ~all active: no index
    # Agreed to have their own clicks and opens measured ([tracking] individual); the
    # consent events say when and how. Nobody else's message names them in a link.
    measurement_consent: Mapped[bool] = mapped_column(default=False)
    # Consent (where, when, which text) is in consent_events, one row per event.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@event.listens_for(Contact, "before_insert")
@event.listens_for(Contact, "before_update")
def _fold_keys(_mapper: Any, _connection: Any, contact: Contact) -> None:
    """Contacts written through the ORM keep their folded columns right; the bulk paths
    (imports) compute them with the same function."""
    values = {name: getattr(contact, name) for name in (
        "email", "first_name", "last_name", "organization", "role", "territory", "attributes")}
    for name, value in contact_keys(values).items():
        setattr(contact, name, value)


class MailingList(Base):
    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(2000), default="")
    # Offered on sign-up forms and the preference page; private lists are filled by hand.
    public: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (Index("ix_memberships_contact", "contact_id", "list_id"),)

    list_id: Mapped[int] = mapped_column(
        ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConsentText(Base):
    """A consent text exactly as it was shown or given, stored once (it names nobody)."""

    __tablename__ = "consent_texts"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the UTF-8
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConsentEvent(Base):
    """One step of a contact's consent (states.ConsentKind): given, confirmed, withdrawn
    for a list or for everything; erased with the contact."""

    __tablename__ = "consent_events"
    __table_args__ = (Index("ix_consent_events_contact", "contact_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    # None: about every list (a global unsubscribe, a bounce). A removed list leaves
    # list_id NULL; list_name still says which it was.
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="SET NULL"))
    list_name: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))
    # file:line of an import, the form and its origin, "command", a message's id
    source: Mapped[str] = mapped_column(String(500), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    consent_text_hash: Mapped[str | None] = mapped_column(ForeignKey("consent_texts.hash"))
    # The campaign whose message led to the event (its unsubscribe link or preference
    # page, a complaint or bounce about it): reports count these per campaign.
    campaign: Mapped[str | None] = mapped_column(String(100), index=True)


class OutgoingMail(Base):
    """A message to one contact that is not a campaign's (a sign-up's confirmation),
    queued by `serve` or a command and sent by serve's sender thread or the worker: a
    row is marked sent only once the transport accepted the message."""

    __tablename__ = "outgoing_mail"
    __table_args__ = (Index("ix_outgoing_mail_due", "state", "next_attempt_at"),
                      Index("ix_outgoing_mail_contact", "contact_id", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # states.OutgoingKind
    # The list ids the link joins when confirmed (the token carries them too).
    lists: Mapped[list[int]] = mapped_column(JSON, default=list)
    lang: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="queued")  # states.OutgoingState
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Segment(Base):
    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Suppression(Base):
    """Erased addresses, kept only as a SHA-256 of their key so imports skip them."""

    __tablename__ = "suppressions"

    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Send(Base):
    """A campaign's send: the rendered campaign as it was when the send started."""

    __tablename__ = "sends"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign: Mapped[str] = mapped_column(String(100), unique=True)
    segment: Mapped[str | None] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    slots: Mapped[list[list[str]]] = mapped_column(JSON)
    source_hash: Mapped[str] = mapped_column(String(64))
    # scheduled -> running -> done; or missed (its time passed beyond the grace)
    state: Mapped[str] = mapped_column(String(16), default="running")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The run that last drained this send: its journal is trusted only for that run.
    run_id: Mapped[str | None] = mapped_column(String(32))
    # The event campaign's invitation (iCalendar text), attached to every message.
    calendar: Mapped[str | None] = mapped_column(Text)
    # How its messages were measured ([tracking] clicks and opens), fixed by its first
    # run so that every message of a send is measured alike; None: sent before citesmail
    # measured anything.
    clicks: Mapped[str | None] = mapped_column(String(16))
    opens: Mapped[str | None] = mapped_column(String(16))


class TrackedLink(Base):
    """A link of a sent campaign that clicks are counted for: `number` is its place in
    the message (the click token names the campaign and the number, not the address)."""

    __tablename__ = "tracked_links"

    campaign: Mapped[str] = mapped_column(String(100), primary_key=True)
    number: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(Text)


class ClickCount(Base):
    """Clicks on one link in one hour (UTC), kept for good: they name nobody. Likely
    automated clicks (link scanners) are counted apart."""

    __tablename__ = "click_counts"

    campaign: Mapped[str] = mapped_column(String(100), primary_key=True)
    number: Mapped[int] = mapped_column(primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    clicks: Mapped[int] = mapped_column(default=0)
    automated: Mapped[int] = mapped_column(default=0)


class ClickEvent(Base):
    """One click of a contact who agreed to measurement ([tracking] clicks =
    "individual"); deleted after [tracking] retention."""

    __tablename__ = "click_events"
    __table_args__ = (Index("ix_click_events_campaign", "campaign", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    campaign: Mapped[str] = mapped_column(String(100))
    number: Mapped[int] = mapped_column()
    automated: Mapped[bool] = mapped_column(default=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class OpenEvent(Base):
    """One open (the pixel) of a contact who agreed to measurement ([tracking] opens =
    "individual"); deleted after [tracking] retention."""

    __tablename__ = "open_events"
    __table_args__ = (Index("ix_open_events_campaign", "campaign", "contact_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    campaign: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class WebViewCount(Base):
    """Visits of a campaign's web version in one hour (UTC); they name nobody."""

    __tablename__ = "web_view_counts"

    campaign: Mapped[str] = mapped_column(String(100), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    views: Mapped[int] = mapped_column(default=0)


class Delivery(Base):
    """One recipient of a send: the send log's row, the source of truth."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("send_id", "contact_id"),
        Index("ix_deliveries_due", "send_id", "state", "next_attempt_at"),
        Index("ix_deliveries_queue", "send_id", "state", "id"),
        Index("ix_deliveries_contact", "contact_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    send_id: Mapped[int] = mapped_column(ForeignKey("sends.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"))
    # The recipient as snapshotted when the send started (erasure blanks these).
    email: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str] = mapped_column(String(255), default="")
    last_name: Mapped[str] = mapped_column(String(255), default="")
    organization: Mapped[str] = mapped_column(String(255), default="")
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_code: Mapped[int | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(1000))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    run_id: Mapped[str | None] = mapped_column(String(32))  # the run that claimed it last


SQLITE_CONNECTIONS = 40  # anyio's default worker threads, which run serve's requests


def _sqlite_engine(url: str, busy_timeout: timedelta) -> Engine:
    # Connections are kept for as many threads as `serve` runs requests in (40): beyond
    # the default 5, each request opened and closed one, and ran its PRAGMAs, which cost
    # more than the request. They are opened only when needed; a command uses one or two.
    engine = create_engine(url, connect_args={"timeout": busy_timeout.total_seconds()},
                           pool_size=SQLITE_CONNECTIONS, max_overflow=10)
    busy_ms = int(busy_timeout.total_seconds() * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions (so DDL is transactional).
        connection.isolation_level = None
        cursor = connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA cache_size = -65536")  # 64 MB: big imports touch many pages
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writer takes the write lock at BEGIN, so it waits (busy_timeout) for another
        # writer instead of failing when its read transaction cannot be upgraded.
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def make_engine(url: str, busy_timeout: timedelta = DEFAULT_BUSY_TIMEOUT) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url, busy_timeout)
    return create_engine(url, pool_pre_ping=True)


class Database:
    """An engine and its sessions, on a schema at HEAD."""

    def __init__(self, engine: Engine, busy_timeout: timedelta = DEFAULT_BUSY_TIMEOUT) -> None:
        self.engine = engine
        self.busy_timeout = busy_timeout
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self.read_sessions = sessionmaker(
            engine.execution_options(sqlite_begin="DEFERRED"), expire_on_commit=False)

    @property
    def is_postgresql(self) -> bool:
        return is_postgresql(self.engine)

    @contextmanager
    def session(self, *, rollback: bool = False, write: bool = True) -> Iterator[Session]:
        """One transaction: committed at the end (or rolled back when asked, for dry
        runs), and rolled back on any error. Readers (write=False) never block writers."""
        with translate_errors(self.engine, self.busy_timeout):
            session = (self.sessions if write else self.read_sessions)()
            try:
                yield session
                if rollback:
                    session.rollback()
                else:
                    session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    def close(self) -> None:
        self.engine.dispose()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` in one transaction per run."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def open_database(url: str, *, migrate: bool = True,
                  busy_timeout: timedelta = DEFAULT_BUSY_TIMEOUT) -> Database:
    """Connect, and bring an older schema up to date (a new database is created)."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_sidecars(path)
    engine = make_engine(url, busy_timeout)
    with translate_errors(engine, busy_timeout):
        # A read: it must not wait for a writer (serve starting during an import).
        revision = current_revision(engine.execution_options(sqlite_begin="DEFERRED"))
        if revision != HEAD:
            if revision is not None and revision > HEAD:
                raise CitesmailError(
                    f"the database is at schema {revision}, newer than this citesmail "
                    f"({HEAD})", "upgrade citesmail")
            if migrate:
                upgrade(engine)
    return Database(engine, busy_timeout)
