"""An Idempotency-Key under concurrency: one of N requests runs; the others get its response or a 422."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from sqlalchemy import text

from continuum.access import Claimed, IdempotencyStore, InProgress, StoredResponse, UsedForAnotherRequest
from tests.integration.stacks import Stack

pytestmark = pytest.mark.integration
CONCURRENT = 50


async def test_fifty_identical_requests_under_one_key_run_once_and_get_one_answer(stack: Stack) -> None:
    key = {"Idempotency-Key": f"open-{stack.e1}"}

    answers = await asyncio.gather(*(stack.post("/api/v1/episodes", stack.episode(), **key) for _ in range(CONCURRENT)))

    assert {a.status_code for a in answers} == {201}
    assert all(a.json() == answers[0].json() for a in answers)
    recorded = [e.event_type for e in stack.store.read_stream(stack.e1)]
    assert recorded.count("EpisodeOpened") == 1 and recorded.count("AssessmentRecorded") == 1


async def test_fifty_different_requests_under_one_key_run_once_and_no_answer_contradicts_its_request(
    stack: Stack,
) -> None:
    key = {"Idempotency-Key": f"open-{stack.e1}"}
    bodies = [stack.episode(client_id=f"client-{n}") for n in range(CONCURRENT)]

    answers = await asyncio.gather(*(stack.post("/api/v1/episodes", body, **key) for body in bodies))

    accepted = [(body, a) for body, a in zip(bodies, answers, strict=True) if a.status_code < 400]
    refused = [a for a in answers if a.status_code >= 400]
    assert len(accepted) == 1 and accepted[0][1].status_code == 201
    assert accepted[0][1].json()["state"]["client_id"] == accepted[0][0]["client_id"]
    assert {a.status_code for a in refused} == {422}
    assert all(a.json()["detail"] == "this Idempotency-Key was used for a different request" for a in refused)
    opened = [e for e in stack.store.read_stream(stack.e1) if e.event_type == "EpisodeOpened"]
    assert len(opened) == 1 and opened[0].payload["client_id"] == accepted[0][0]["client_id"]


async def test_the_key_itself_never_reaches_temporal_only_its_digest(stack: Stack) -> None:
    secret_key = f"jane-doe-relapse-{stack.e1}"

    opened = await stack.post("/api/v1/episodes", stack.episode(), **{"Idempotency-Key": secret_key})

    assert opened.status_code == 201
    command_id = opened.json()["command_id"]
    assert command_id.endswith(":" + hashlib.sha256(secret_key.encode()).hexdigest()[:32])
    history = await stack.env.client.get_workflow_handle(f"episode-{stack.e1}").fetch_history()
    assert secret_key not in history.to_json()
    recorded = stack.store.read_stream(stack.e1)
    assert recorded and not any(secret_key in repr(event) for event in recorded)


async def test_a_released_claim_runs_again_only_for_the_same_request_and_a_dead_claim_expires(stack: Stack) -> None:
    store = IdempotencyStore(stack.store.engine)
    first = store.claim("k_1", "key-1", b"request-a")
    assert isinstance(first, Claimed)
    assert isinstance(store.claim("k_1", "key-1", b"request-a"), InProgress)
    assert isinstance(store.claim("k_1", "key-1", b"request-b"), UsedForAnotherRequest)

    store.release("k_1", "key-1", first.claim)  # the command failed with a 5xx: no answer to keep
    assert isinstance(store.claim("k_1", "key-1", b"request-b"), UsedForAnotherRequest)
    again = store.claim("k_1", "key-1", b"request-a")
    assert isinstance(again, Claimed)

    with stack.store.engine.begin() as conn:  # the request holding it died three minutes ago
        conn.execute(text("UPDATE api_idempotency SET claimed_at = claimed_at - interval '3 minutes'"))
    taken_over = store.claim("k_1", "key-1", b"request-a")
    assert isinstance(taken_over, Claimed)
    store.complete("k_1", "key-1", again.claim, 200, {"late": True})  # the dead request's claim no longer counts
    store.complete("k_1", "key-1", taken_over.claim, 201, {"episode_id": "EP-1"})
    assert store.claim("k_1", "key-1", b"request-a") == StoredResponse(201, {"episode_id": "EP-1"})
