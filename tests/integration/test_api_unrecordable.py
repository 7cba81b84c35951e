"""A command whose values the log cannot store is a 422 through the API that echoes none of them."""

from __future__ import annotations

import pytest

from tests.integration.stacks import Stack

pytestmark = pytest.mark.integration


async def test_an_unrecordable_command_is_a_422_without_its_values_and_its_retry_answers_the_same(
    stack: Stack,
    poisoned_note: str,  # PostgreSQL refuses one note as data, as it would a bad character
) -> None:
    assert (await stack.post("/api/v1/episodes", stack.episode())).status_code == 201
    key = {"Idempotency-Key": f"discharge-{stack.e1}"}
    body = {"reason": "completed", "note": poisoned_note}

    refused = await stack.post(f"/api/v1/episodes/{stack.e1}/discharge", body, **key)
    again = await stack.post(f"/api/v1/episodes/{stack.e1}/discharge", body, **key)

    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == "the command's values cannot be recorded"
    assert poisoned_note not in refused.text
    assert again.status_code == 422 and again.json() == refused.json()
    assert "EpisodeClosed" not in [e.event_type for e in stack.store.read_stream(stack.e1)]
    held = await stack.post(f"/api/v1/episodes/{stack.e1}/hold", {"reason": "leave"})
    assert held.status_code == 200  # the episode goes on
