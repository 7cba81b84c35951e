"""Apply the Alembic migrations at start, as the database owner (not as the restricted app role)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from continuum.eventlog.db import describe_url
from continuum.eventlog.errors import StoreUnavailable

MIGRATIONS = Path(__file__).parent / "migrations"


def apply_migrations(url: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else "no answer"
        raise StoreUnavailable(f"cannot reach PostgreSQL at {describe_url(url)}: {reason}") from None
    finally:
        engine.dispose()


class SchemaBehind(StoreUnavailable):
    """The database's schema is not the one this release needs, and this process may not migrate it."""


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def check_at_head(engine: Engine) -> None:
    """Refuse, in one line, a schema other than this release's (a process that does not own the schema)."""
    wanted = head_revision()
    try:
        with engine.connect() as connection:
            current = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
    except ProgrammingError:
        current = None
    if current != wanted:
        raise SchemaBehind(
            f"the database schema is at {current or 'nothing'}, this release needs {wanted}:"
            " run `continuum migrate` as the schema's owner first"
        )
