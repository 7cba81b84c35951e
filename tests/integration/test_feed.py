"""Issue 20, item 2: the event feed, as a long-poll page and as Server-Sent Events, filtered by role."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import text

from continuum.access import Role
from tests.integration.episodes import free_port, projected_state
from tests.integration.stacks import Stack

pytestmark = pytest.mark.integration

CONSENT = {
    "consent_id": "c-1",
    "recipient": "harbor-house",
    "purpose": "aftercare_referral",
    "expires_at": "2030-01-01T00:00:00Z",
    "recorded_by": "clin-1",
}
ORDERED_BY = "clin-long-poll"
MODERATE = {"ratings": [0, 0, 2, 0, 0, 3], "assessed_by": "clin-1"}


async def _page(stack: Stack, role: str = "director", **params: Any) -> dict[str, Any]:
    response = await stack.get("/api/v1/feed", role=role, **params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()  # type: ignore[no-any-return]


async def _all(stack: Stack, role: str = "director", limit: int = 3) -> list[dict[str, Any]]:
    """Every event the role sees, walked page by page with `next_after`."""
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = await _page(stack, role, after=after, limit=limit)
        if not page["events"]:
            return events
        events += page["events"]
        after = page["next_after"]


async def _order_test(stack: Stack, episode: str, ordered_by: str = "clin-1") -> str:
    answer = await stack.post(f"/api/v1/episodes/{episode}/tests", {"ordered_by": ordered_by})
    assert answer.status_code == 201, answer.text
    return str(next(e for e in answer.json()["events"] if e["type"] == "TestOrdered")["data"]["test_id"])


def _positions(events: list[dict[str, Any]]) -> list[int]:
    return [e["position"] for e in events]


async def test_pages_deliver_the_log_in_position_order_as_cloudevents_and_resume_without_loss(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    await stack.post("/api/v1/episodes", stack.episode(stack.e2))
    await _order_test(stack, stack.e1)
    with stack.store.engine.connect() as conn:
        log = stack.store.read_page(conn, after_position=0, limit=1000)

    one_page = (await _page(stack, limit=500))["events"]
    walked = await _all(stack, limit=3)
    middle = one_page[len(one_page) // 2]["position"]
    resumed = (await _page(stack, after=middle, limit=500))["events"]

    assert len(log) >= 6
    assert one_page[: len(log)] == walked[: len(log)]  # pages of 3 walk the same events: none lost, none twice
    assert _positions(one_page[: len(log)]) == [e.position for e in log]
    assert _positions(walked) == sorted(set(_positions(walked)))
    expected = [e for e in one_page if e["position"] > middle]
    assert expected and resumed[: len(expected)] == expected  # (the log may have grown since: never fewer)
    first, stored = one_page[0], log[0]
    assert first == {
        "specversion": "1.0",
        "id": str(stored.event_id),
        "source": "continuum",
        "type": f"org.continuum.{stored.event_type}",
        "subject": stored.stream_id,
        "time": first["time"],
        "datacontenttype": "application/json",
        "position": stored.position,
        "data": stored.payload,
    }
    assert datetime.fromisoformat(first["time"].replace("Z", "+00:00")) == stored.occurred_at
    assert {e["subject"] for e in one_page} == {stack.e1, stack.e2}


async def test_a_long_poll_answers_when_an_event_is_recorded(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    head = (await _page(stack, limit=500))["next_after"]

    waiting = asyncio.create_task(_poll_until_ordered(stack, head))
    await asyncio.sleep(0)  # the poll is under way (it answers the same whether or not it began first)
    test_id = await _order_test(stack, stack.e1, ORDERED_BY)
    answers = await waiting

    events = [e for answer in answers for e in answer["events"]]
    assert all(answer["events"] for answer in answers)  # each poll answered with events, none at its timeout
    assert _positions(events) == sorted(set(_positions(events))) and events[0]["position"] > head
    assert any(e["type"] == "org.continuum.TestOrdered" and e["data"]["test_id"] == test_id for e in events)
    assert answers[-1]["next_after"] == events[-1]["position"]


def _ours(event: dict[str, Any]) -> bool:
    """The order this test makes (the episode's random schedule orders tests of its own meanwhile)."""
    return event["type"] == "org.continuum.TestOrdered" and event["data"].get("ordered_by") == ORDERED_BY


async def _poll_until_ordered(stack: Stack, after: int) -> list[dict[str, Any]]:
    """Long polls from `after`, each resuming where the last answered, until one brings this test's order."""
    answers: list[dict[str, Any]] = []
    while not any(_ours(e) for a in answers for e in a["events"]):
        answers.append(await _page(stack, after=after, wait=25))
        after = answers[-1]["next_after"]
    return answers


async def test_a_long_poll_that_sees_nothing_answers_empty_at_its_timeout(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    await _order_test(stack, stack.e1)

    nothing = await _page(stack, "lab-2", wait=1)  # lab-2 was sent no test: nothing of this log is its own

    assert nothing["events"] == [] and nothing["next_after"] >= 1


async def test_a_lab_sees_only_its_own_tests_orders_cancellations_and_collections(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    stack.episodes.lab_id = "lab-2"  # the next episode's tests go to another lab
    await stack.post("/api/v1/episodes", stack.episode(stack.e2))
    own, cancelled = await _order_test(stack, stack.e1), await _order_test(stack, stack.e1)
    others = await _order_test(stack, stack.e2)
    collection = {"collected_at": datetime.now(UTC).isoformat(), "observed": True, "temperature_in_range": True}
    assert (
        await stack.post(
            f"/api/v1/episodes/{stack.e1}/tests/{own}/collection", {**collection, "site": "north"}, role="lab"
        )
    ).status_code == 200
    await stack.post(
        f"/api/v1/episodes/{stack.e1}/tests/{cancelled}/cancel", {"cancelled_by": "clin-1", "reason": "duplicate"}
    )
    result = {
        "result": "positive",
        "method": "confirmed",
        "substances": ["cocaine"],
        "collected_at": collection["collected_at"],
        "lab_reference": "L-1",
    }
    reported = await stack.post(f"/api/v1/episodes/{stack.e1}/tests/{own}/results", result, role="lab")
    medications = await stack.http.put(
        f"/api/v1/episodes/{stack.e1}/medications",
        json={"medications": ["buprenorphine"], "changed_by": "clin-1"},
        headers=stack.auth("clinician"),
    )

    lab_1 = await _all(stack, "lab")
    lab_2 = await _all(stack, "lab-2")
    everything = json.dumps(lab_1 + lab_2)

    assert reported.status_code == 200 and medications.status_code == 200
    e1_tests = {t["test_id"] for t in projected_state(stack.store, stack.e1)["tests"]}
    e2_tests = {t["test_id"] for t in projected_state(stack.store, stack.e2)["tests"]}
    assert [(e["type"], e["data"]["test_id"]) for e in lab_1 if e["data"]["test_id"] in (own, cancelled)] == [
        ("org.continuum.TestOrdered", own),
        ("org.continuum.TestOrdered", cancelled),
        ("org.continuum.SpecimenCollected", own),
        ("org.continuum.TestCancelled", cancelled),
    ]  # the episode's random schedule may order tests of its own meanwhile: lab-1's too
    assert {e["data"]["test_id"] for e in lab_1} <= e1_tests and {e["data"]["test_id"] for e in lab_2} <= e2_tests
    assert ("org.continuum.TestOrdered", others) in [(e["type"], e["data"]["test_id"]) for e in lab_2]
    assert {e["subject"] for e in lab_1} == {stack.e1} and {e["subject"] for e in lab_2} == {stack.e2}
    collected = next(e for e in lab_1 if e["type"] == "org.continuum.SpecimenCollected")
    assert set(collected["data"]) == {"episode_id", "test_id", "collected_at", "observed", "temperature_in_range"}
    for word in ("ratings", "medications", "buprenorphine", "cocaine", "positive", "duplicate", "note", "clin-1"):
        assert word not in everything
    assert _positions(lab_1) == sorted(_positions(lab_1))


async def referred_to_harbor_house(stack: Stack) -> tuple[dict[str, str], httpx.Response]:
    """The first episode moved to aftercare under a consent to harbor-house (the key "harbor" its partner's),
    and harbor-house's acceptance: the referrals by resource, and the acceptance's answer."""
    services = stack.http._transport.app.state.services  # type: ignore[attr-defined]
    stack.keys["harbor"] = services.keys.create("harbor-1", Role.PARTNER, "harbor-house")[1]
    await stack.post("/api/v1/episodes", stack.episode(assessment=MODERATE))
    await stack.post(f"/api/v1/episodes/{stack.e1}/consents", CONSENT)
    moved = await stack.post(
        f"/api/v1/episodes/{stack.e1}/placement-override",
        {"level": "aftercare", "reason": "clinical_judgment", "clinician": "clin-1"},
    )
    referrals = {r["resource_id"]: r["referral_id"] for r in moved.json()["state"]["referrals"]}
    accepted = await stack.post(
        f"/api/v1/episodes/{stack.e1}/referrals/{referrals['harbor-house']}/status", {"status": "accepted"}, "harbor"
    )
    return referrals, accepted


async def test_a_partner_sees_only_the_referrals_disclosed_to_it_as_disclosed(stack: Stack) -> None:
    referrals, accepted = await referred_to_harbor_house(stack)

    seen = await _all(stack, "harbor")
    other_partner = await _all(stack, "partner")  # partner-1: nothing was disclosed to it
    await stack.post(f"/api/v1/episodes/{stack.e1}/consents/c-1/revocation", {"revoked_by": "clin-1"})
    after_revocation = await _all(stack, "harbor")

    assert accepted.status_code == 200
    assert [(e["type"], e["data"]["referral_id"]) for e in seen] == [
        ("org.continuum.ReferralIssued", referrals["harbor-house"]),
        ("org.continuum.ReferralStatusChanged", referrals["harbor-house"]),
    ]
    issued = seen[0]["data"]
    assert set(issued) == {"episode_id", "referral_id", "resource_id", "answer_due_at", "disclosed"}
    assert issued["resource_id"] == "harbor-house" and issued["disclosed"]
    assert seen[1]["data"] == {"episode_id": stack.e1, "referral_id": referrals["harbor-house"], "status": "accepted"}
    assert "ratings" not in json.dumps(seen) and "community-counselling" not in json.dumps(seen)
    assert other_partner == [] and after_revocation == []


async def test_feed_reads_are_in_the_access_log_and_refusals_and_bad_input_are_problems(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    for _ in range(2):  # a poller: one view
        assert (await _page(stack, limit=500))["events"]
    no_key = await stack.http.get("/api/v1/feed")
    admin = await stack.get("/api/v1/feed", role="admin")
    bad = {
        "query.after": await stack.get("/api/v1/feed", after=-1),
        "query.limit": await stack.get("/api/v1/feed", limit=0),
        "query.wait": await stack.get("/api/v1/feed", wait=26),
        "header.last-event-id": await stack.http.get(
            "/api/v1/feed", headers={**stack.auth("director"), "Last-Event-ID": "x"}
        ),
    }
    with stack.store.engine.connect() as conn:
        reads = conn.execute(
            text(
                "SELECT what, episode_ids, row_count FROM record_access a JOIN api_keys k USING (key_id)"
                " WHERE k.name = 'director-1'"
            )
        ).all()

    assert [(r.what, r.episode_ids) for r in reads] == [("feed", [stack.e1])] and reads[0].row_count > 0
    assert no_key.status_code == 401 and admin.status_code == 403
    assert no_key.headers["content-type"] == admin.headers["content-type"] == "application/problem+json"
    for name, answer in bad.items():
        assert answer.status_code == 422, name
        assert answer.headers["content-type"] == "application/problem+json"
        assert name in json.dumps(answer.json()), (name, answer.json())


@asynccontextmanager
async def _served(stack: Stack) -> AsyncIterator[str]:
    """The stack's app on a real HTTP server (a stream needs one: the ASGI transport waits for the whole body)."""
    port = free_port()
    app = stack.http._transport.app  # type: ignore[attr-defined]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def _stream(
    url: str, headers: dict[str, str], count: int, after: int = 0, until: Callable[[dict[str, Any]], bool] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The first `count` events of a stream (or those up to the first that `until` accepts): (SSE id, CloudEvent)."""
    got: list[tuple[str, dict[str, Any]]] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        sse = {**headers, "Accept": "text/event-stream"}
        async with http.stream("GET", "/api/v1/feed", params={"after": after, "limit": 2}, headers=sse) as answer:
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
            event_id = ""
            async for line in answer.aiter_lines():
                if line.startswith("id:"):
                    event_id = line.removeprefix("id:").strip()
                elif line.startswith("data:"):
                    got.append((event_id, json.loads(line.removeprefix("data:").strip())))
                    if len(got) == count if until is None else until(got[-1][1]):
                        return got
    raise AssertionError(f"the stream ended after {len(got)} events")


async def test_server_sent_events_deliver_in_order_resume_with_last_event_id_and_follow_the_log(
    stack: Stack,
) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    page = (await _page(stack, limit=500))["events"]
    async with _served(stack) as url:
        streamed = await _stream(url, stack.auth("director"), len(page))
        cut = streamed[2][0]
        resumed = await _stream(url, {**stack.auth("director"), "Last-Event-ID": cut}, len(page) - 3)
        following = asyncio.create_task(_stream(url, stack.auth("director"), 0, page[-1]["position"], _ours))
        await asyncio.sleep(0)
        test_id = await _order_test(stack, stack.e1, ORDERED_BY)
        live = await following

    assert [event for _, event in streamed] == page
    assert [int(i) for i, _ in streamed] == _positions(page)
    assert [event for _, event in resumed] == page[3:]  # after the third: nothing lost, nothing twice
    assert [int(i) for i, _ in live] == sorted(int(i) for i, _ in live) and int(live[0][0]) > page[-1]["position"]
    assert live[-1][1]["data"]["test_id"] == test_id
