"""SQLAlchemy engines for the event store, with the session settings every connection needs."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from continuum.eventlog.errors import StoreUnavailable

# Appends queue on one row lock; a writer that cannot get it in time gives up and is retried.
LOCK_TIMEOUT = "5s"
IDLE_IN_TRANSACTION_TIMEOUT = "30s"


def describe_url(url: str) -> str:
    """The address of a database URL without its password, for messages a person reads."""
    parsed = make_url(url)
    host = parsed.query.get("host") or parsed.host or "localhost"
    port = parsed.port or parsed.query.get("port") or 5432
    return f"{host}:{port}/{parsed.database}"


def make_engine(url: str, *, role: str | None = None, pool_size: int = 10, max_overflow: int | None = None) -> Engine:
    """An engine whose connections run as `role` (INSERT and SELECT on the log; nothing else); `max_overflow`
    connections beyond `pool_size` (default as many) are closed when returned, so a pool sized to its
    callers' threads with no overflow never reconnects under load."""
    # No pre-ping: a dropped connection fails the call, and activities are retried by Temporal.
    # hide_parameters: an error's text never carries a row's values (runtime/failures.py tells errors safely too).
    overflow = pool_size if max_overflow is None else max_overflow
    engine = create_engine(url, pool_size=pool_size, max_overflow=overflow, pool_recycle=1800, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _session_settings(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
            cursor.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT}'")
            if role:
                cursor.execute(f'SET ROLE "{role}"')
        dbapi_connection.commit()

    return engine


def check_reachable(engine: Engine) -> None:
    """Raise StoreUnavailable with one readable line when PostgreSQL does not answer."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else "no answer"
        raise StoreUnavailable(
            f"cannot reach PostgreSQL at {describe_url(engine.url.render_as_string(hide_password=False))}: {reason}"
        ) from None
