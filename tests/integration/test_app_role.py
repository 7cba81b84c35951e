"""The application can log in as a role that owns nothing (issue 19, finding 2): with CONTINUUM_MIGRATE=never
the store opens as `continuum_app` itself, checks the schema is at this release's revision, and has no
right that `RESET ROLE` could give back to disable the log's triggers."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from continuum.bootstrap import build_store
from continuum.eventlog.migrate import SchemaBehind, head_revision
from continuum.eventlog.verify import verify_log
from continuum.runtime.settings import Settings

pytestmark = pytest.mark.integration
APP = Settings(database_role=None, migrate_at_start=False)  # logs in as the app role; never migrates


@pytest.fixture
def app_url(database_url: str) -> Iterator[str]:
    """The test database's URL for a login as `continuum_app` (a role cluster-wide: LOGIN is given back)."""
    admin = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("ALTER ROLE continuum_app LOGIN")
    yield database_url.replace("postgres@", "continuum_app@", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("ALTER ROLE continuum_app NOLOGIN")


def test_the_app_role_opens_the_store_and_cannot_take_the_owners_rights_back(app_url: str) -> None:
    store = build_store(app_url, APP)
    try:
        assert verify_log(store.engine).ok
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() == "continuum_app"
            conn.execute(text("RESET ROLE"))
            with pytest.raises(DBAPIError, match="must be owner|permission denied"):
                conn.execute(text("ALTER TABLE events DISABLE TRIGGER USER"))
            conn.rollback()
            with pytest.raises(DBAPIError, match="permission denied"):
                conn.execute(text("DELETE FROM events"))
    finally:
        store.engine.dispose()


def test_a_schema_behind_this_release_is_refused_in_one_line(database_url: str, app_url: str) -> None:
    owner = create_engine(database_url)
    with owner.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0007'"))
    owner.dispose()
    with pytest.raises(SchemaBehind) as refused:
        build_store(app_url, APP)
    assert str(refused.value) == (
        f"the database schema is at 0007, this release needs {head_revision()}:"
        " run `continuum migrate` as the schema's owner first"
    )
