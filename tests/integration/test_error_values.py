"""Issue 19, finding 6: a PostgreSQL error's row values (its DETAIL, SQLAlchemy's parameters) reach no log line,
on the first attempt or on a retry; the error is told by its SQLSTATE and constraint."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
import structlog
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from continuum.runtime.failures import exception_processor
from tests.integration.stacks import Stack

pytestmark = pytest.mark.integration

LAB_REFERENCE = "L-SECRET-4711"
# The first append that holds the lab reference fails as a foreign-key violation whose DETAIL shows the value (as
# PostgreSQL's own does; a unique violation is the store's own EventIdConflict, told without values); the sequence
# is not transactional, so the retry goes through.
COLLIDES_ONCE = """
CREATE SEQUENCE collide_once;
CREATE FUNCTION collide_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.payload->>'lab_reference' IS NOT NULL AND nextval('collide_once') = 1 THEN
    RAISE EXCEPTION 'insert violates foreign key constraint "results_lab_reference_fkey"'
      USING ERRCODE = '23503', CONSTRAINT = 'results_lab_reference_fkey',
            DETAIL = 'Key (lab_reference)=(' || (NEW.payload->>'lab_reference') || ') is not present in table "labs".';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER collide_once BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION collide_once();
GRANT USAGE ON SEQUENCE collide_once TO continuum_app;
"""


async def test_a_violation_naming_a_lab_reference_is_logged_by_sqlstate_and_constraint_on_every_attempt(
    stack: Stack, superuser_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    ordered = (await stack.post(f"/api/v1/episodes/{stack.e1}/tests", {"ordered_by": "clin-1"})).json()
    test_id = ordered["events"][0]["data"]["test_id"]
    with superuser_engine.begin() as conn:
        conn.execute(text(COLLIDES_ONCE))
    result = {
        "result": "negative",
        "method": "confirmed",
        "collected_at": datetime.now(UTC).isoformat(),
        "lab_reference": LAB_REFERENCE,
    }
    with caplog.at_level(logging.DEBUG), structlog.testing.capture_logs() as structured:
        recorded = await stack.post(f"/api/v1/episodes/{stack.e1}/tests/{test_id}/results", result, role="lab")
    plain = logging.Formatter("%(name)s %(message)s")  # the standard library's own rendering, traceback and all
    lines = [plain.format(record) for record in caplog.records]
    failed = [line for line in structured if line["event"] == "events.append_failed"]

    assert recorded.status_code == 200, recorded.text  # retried, then recorded
    assert failed and all(
        "SQLSTATE 23503 ForeignKeyViolation" in line["reason"] and "results_lab_reference_fkey" in line["reason"]
        for line in failed
    )
    assert any("Completing activity as failed" in line for line in lines)  # the worker's own line, told safely
    assert LAB_REFERENCE not in repr(structured) and all(LAB_REFERENCE not in line for line in lines)


def test_a_logged_database_error_shows_its_sqlstate_and_constraint_never_its_detail_or_parameters(
    superuser_engine: Engine,
) -> None:
    with superuser_engine.begin() as conn:
        conn.execute(text("CREATE TABLE lab_refs (lab_reference text CONSTRAINT lab_refs_unique UNIQUE)"))
        conn.execute(text("INSERT INTO lab_refs VALUES (:r)"), {"r": LAB_REFERENCE})
    with pytest.raises(IntegrityError) as raised, superuser_engine.begin() as conn:
        conn.execute(text("INSERT INTO lab_refs VALUES (:r)"), {"r": LAB_REFERENCE})
    assert LAB_REFERENCE in str(raised.value)  # as SQLAlchemy and psycopg tell it

    for as_json in (True, False):
        told = exception_processor(as_json)(None, "error", {"event": "x", "exc_info": raised.value})
        rendered = json.dumps(told)
        assert LAB_REFERENCE not in rendered and "/" not in json.dumps(told["exception"]).replace("\\/", "")
        assert "SQLSTATE 23505 UniqueViolation, constraint lab_refs_unique, table lab_refs" in rendered
