"""Apply the Alembic migrations at start, as the database owner (not as the restricted app role)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

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
