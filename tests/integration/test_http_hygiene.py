"""HTTP hygiene: pseudonymous client ids, Idempotency-Keys kept only as digests, authentication before the
body is read, and `Allow` on every 405."""

from __future__ import annotations

import logging

import pytest
import structlog
from sqlalchemy import text

from continuum.eventlog.db import make_engine
from tests.integration.stacks import Stack

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "client_id",
    ["123-45-6789", "123456789", "jane.doe@example.org", "+1 555 123 4567", "(555) 123-4567", "555-123-4567"],
)
async def test_a_client_id_that_identifies_a_person_is_refused_naming_the_field(stack: Stack, client_id: str) -> None:
    refused = await stack.post("/api/v1/episodes", stack.episode(client_id=client_id))

    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"].startswith("client_id: a client id is a pseudonym, and this looks like")
    assert stack.store.read_stream(stack.e1) == []


async def test_a_free_text_idempotency_key_reaches_neither_the_log_the_table_nor_the_log_lines(
    stack: Stack, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret_key = f"jane-doe-heroin-relapse-{stack.e1}"
    header = {"Idempotency-Key": secret_key}

    with structlog.testing.capture_logs() as structured, caplog.at_level(logging.DEBUG):
        first = await stack.post("/api/v1/episodes", stack.episode(), **header)
        again = await stack.post("/api/v1/episodes", stack.episode(), **header)
        other = await stack.post("/api/v1/episodes", stack.episode(client_id="client-2"), **header)

    assert first.status_code == 201 and again.json() == first.json()  # same key, same answer
    assert other.status_code == 422  # the key reused for another request, as before
    assert secret_key not in first.json()["command_id"]
    events = stack.store.read_stream(stack.e1)
    assert events and not any(secret_key in repr(event) for event in events)
    engine = make_engine(database_url, role=None)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM api_idempotency")).all()
    finally:
        engine.dispose()
    assert rows and not any(secret_key in repr(row) for row in rows)
    assert structured and not any(secret_key in repr(line) for line in structured)
    assert not any(
        secret_key in record.getMessage() or secret_key in repr(record.__dict__) for record in caplog.records
    )


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{not json", {"content-type": "application/json"}),  # malformed
        (b"", {"content-type": "application/json"}),  # missing
        (b'{"episode_id": 1}', {"content-type": "application/json"}),  # invalid
        (b"{not json", {"content-type": "application/json", "Authorization": "Bearer ck_not_a_key"}),
    ],
)
async def test_a_request_without_a_valid_key_gets_401_whatever_its_body(
    stack: Stack, body: bytes, headers: dict[str, str]
) -> None:
    for path in ("/api/v1/episodes", f"/api/v1/episodes/{stack.e1}/hold", "/api/v1/keys"):
        refused = await stack.http.post(path, content=body, headers=headers)

        assert refused.status_code == 401, (path, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"] == "Bearer" and refused.json()["title"] == "Not authenticated"


async def test_a_valid_key_with_a_malformed_body_still_gets_422(stack: Stack) -> None:
    invalid = await stack.http.post(
        "/api/v1/episodes",
        content=b"{not json",
        headers={**stack.auth("clinician"), "content-type": "application/json"},
    )
    assert invalid.status_code == 422 and invalid.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/v1/episodes", "GET, POST"),  # two routes on one path: both methods
        ("GET", "/api/v1/episodes/EP-1/hold", "POST"),
        ("PATCH", "/api/v1/keys/k_1", "DELETE"),
        ("PUT", "/api/v1/episodes/EP-1/medications", None),  # allowed: not a 405
        ("PUT", "/healthz", "GET"),
        ("POST", "/dashboard/verify", "GET"),
        ("POST", "/dashboard/static/dashboard.css", "GET, HEAD"),
    ],
)
async def test_every_405_names_the_methods_the_path_allows(
    stack: Stack, method: str, path: str, allow: str | None
) -> None:
    answer = await stack.http.request(method, path, headers=stack.auth("director"))

    if allow is None:
        assert answer.status_code != 405
    else:
        assert answer.status_code == 405 and answer.headers["allow"] == allow
        assert answer.headers["content-type"] == "application/problem+json"


async def test_one_access_line_per_request_names_the_route_template_never_the_query_or_the_secret(
    stack: Stack,
) -> None:
    """Issue 19, finding 6: a director's search (a name and a birth date) reaches no log line."""
    with structlog.testing.capture_logs() as structured:
        answered = await stack.get("/api/v1/episodes", q="jane-doe-1980-04-02", level="residential")
        unknown = await stack.get(f"/api/v1/episodes/{stack.e1}-nope")
    lines = [line for line in structured if line["event"] == "api.request"]

    assert answered.status_code == 200 and unknown.status_code == 404
    assert [(line["method"], line["route"], line["status"]) for line in lines] == [
        ("GET", "/api/v1/episodes", 200),
        ("GET", "/api/v1/episodes/{episode_id}", 404),
    ]
    assert all(line["key_id"] and line["key_id"].startswith("k_") and line["duration_ms"] >= 0 for line in lines)
    text = repr(structured)
    assert "jane-doe" not in text and f"{stack.e1}-nope" not in text and stack.keys["director"] not in text
