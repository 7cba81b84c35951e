"""Utilization review through the API and the episode workflow, on the real Temporal server and PostgreSQL: the
utilization reviewer requests, a payer approves, the care clock requests a concurrent review before the end and
flags a stay past it, an extension clears both; denials, mismatches and the report; roles; bad input refused with
nothing recorded."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from continuum.domain.codec import format_instant, parse_instant
from continuum.workflows.episode import workflow_id
from tests.integration.episodes import DAY, events_of, eventually
from tests.integration.stacks import Stack

pytestmark = pytest.mark.integration
HISTORY = Path(__file__).resolve().parents[1] / "histories" / "episode_authorizations.json"
REVIEWER = "utilization_reviewer"


def _request(level: str = "intensive_outpatient", units: int = 5, **changes: Any) -> dict[str, Any]:
    return {
        "payer": "payer-1",
        "level": level,
        "unit": "days",
        "requested_units": units,
        "requested_by": "ur-1",
        **changes,
    }


def _approval(start: datetime, days: int, **changes: Any) -> dict[str, Any]:
    return {
        "decision": "approved",
        "decided_by": "ur-1",
        "payer": "payer-1",
        "authorization_number": "PA-7781",
        "start": format_instant(start),
        "end": format_instant(start + DAY * days),
        "units": days,
        **changes,
    }


def _utilization_events(stack: Stack, episode: str) -> list[str]:
    return [
        e.event_type
        for e in stack.store.read_stream(episode)
        if e.event_type.startswith(("Authorization", "ConcurrentReview"))
    ]


async def _flags(stack: Stack, episode: str) -> set[str]:
    read = await stack.get(f"/api/v1/episodes/{episode}")
    return {f for f in read.json()["flags"] if f.split(":")[0] in _FAMILIES}


_FAMILIES = {"authorization_expired", "level_unauthorized", "authorized_level_mismatch", "concurrent_review_overdue"}


async def test_an_authorization_is_requested_approved_reviewed_before_its_end_and_extended(stack: Stack) -> None:
    opened = await stack.post("/api/v1/episodes", stack.episode())
    assert opened.status_code == 201, opened.text
    placed_at = parse_instant(opened.json()["state"]["placed_at"])  # the workflow's clock
    base = f"/api/v1/episodes/{stack.e1}"

    # Roles: only the utilization reviewer records; a lab, a partner or a clinician never; neither a lab nor a
    # partner reads them.
    for role in ("clinician", "lab", "partner", "director", "auditor"):
        assert (await stack.post(f"{base}/authorizations", _request(), role=role)).status_code == 403, role
        decided = await stack.post(f"{base}/authorizations/{stack.e1}.A1/decisions", _approval(placed_at, 5), role=role)
        assert decided.status_code == 403, role
        review = {"outcome": "continue_as_authorized", "reviewed_by": "ur-1"}
        assert (
            await stack.post(f"{base}/authorizations/{stack.e1}.A1/concurrent-reviews", review, role=role)
        ).status_code == 403
    assert (await stack.get(f"{base}/authorizations", role="clinician")).status_code == 403
    assert (await stack.get("/api/v1/feed", role=REVIEWER)).status_code == 403  # the event feed: not its own
    for role in ("lab", "partner", "admin"):
        assert (await stack.get(f"{base}/authorizations", role=role)).status_code == 403, role
        assert (await stack.get("/api/v1/utilization-review", role=role)).status_code == 403, role
    assert (await stack.get(base, role=REVIEWER)).status_code == 403  # the episode's clinical state: not its own

    # Bad input: a 422 problem naming the field, and nothing recorded.
    for body, field in [(_request(units=0), "requested_units"), (_request(payer="payer one"), "payer")]:
        refused = await stack.post(f"{base}/authorizations", body, role=REVIEWER)
        assert refused.status_code == 422 and refused.json()["detail"].startswith(field), refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
    unknown = await stack.post(f"{base}/authorizations/{stack.e1}.A1/decisions", _approval(placed_at, 5), role=REVIEWER)
    assert unknown.status_code == 422 and unknown.json()["detail"].startswith("authorization_id"), unknown.text
    assert _utilization_events(stack, stack.e1) == []

    # The request: 201, its id minted by the episode, and its Location; the answer holds no clinical content.
    requested = await stack.post(f"{base}/authorizations", _request(), role=REVIEWER, **{"Idempotency-Key": "ur-req-1"})
    assert requested.status_code == 201, requested.text
    auth = f"{stack.e1}.A1"
    assert (
        requested.headers["location"] == f"{base}/authorizations/{auth}"
        and requested.json()["authorization_id"] == auth
    )
    assert "ratings" not in requested.json()["state"] and "tests" not in requested.json()["state"]
    assert requested.json()["state"]["levels"]["standing"] == "unauthorized"
    again = await stack.post(f"{base}/authorizations", _request(), role=REVIEWER, **{"Idempotency-Key": "ur-req-1"})
    assert again.status_code == 201 and again.headers["location"] == requested.headers["location"]
    assert _utilization_events(stack, stack.e1) == ["AuthorizationRequested"]
    assert await _flags(stack, stack.e1) == {"level_unauthorized"}
    located = await stack.get(requested.headers["location"], role="auditor")
    assert located.status_code == 200 and located.json()["authorization"]["status"] == "requested"

    # An end before the start is refused; the approval clears the flag; the same approval again records nothing.
    backwards = _approval(placed_at, 5, end=format_instant(placed_at - DAY))
    refused = await stack.post(f"{base}/authorizations/{auth}/decisions", backwards, role=REVIEWER)
    assert refused.status_code == 422 and refused.json()["detail"].startswith("end:"), refused.text
    approved = await stack.post(f"{base}/authorizations/{auth}/decisions", _approval(placed_at, 5), role=REVIEWER)
    assert approved.status_code == 200, approved.text
    assert [e["type"] for e in approved.json()["events"]] == ["AuthorizationDecided", "FlagCleared"]
    repeat = await stack.post(f"{base}/authorizations/{auth}/decisions", _approval(placed_at, 5), role=REVIEWER)
    assert repeat.status_code == 200 and repeat.json()["events"] == []
    assert await _flags(stack, stack.e1) == set()
    read = (await stack.get(f"{base}/authorizations", role="director")).json()
    assert read["authorizations"][0]["authorization_number"] == "PA-7781"
    assert (read["levels"]["recommended"], read["levels"]["clinical"]) == ("intensive_outpatient",) * 2

    # Three days before the end the clock asks the reviewer for a concurrent review, due at the end.
    handle = stack.env.client.get_workflow_handle(workflow_id(stack.e1))
    await stack.env.fast_forward(handle, DAY * 2.5)
    await eventually(
        lambda: _awaited(_utilization_events(stack, stack.e1)),
        lambda types: "ConcurrentReviewRequested" in types,
        "the concurrent review requested",
    )
    [review] = events_of(stack.store, stack.e1, "ConcurrentReviewRequested")
    assert review.metadata.actor == "clock" and parse_instant(review.payload["due_at"]) == placed_at + DAY * 5

    # Past the end: the review is escalated, the stay runs beyond its authorization; the director's alerts say so.
    await stack.env.fast_forward(handle, DAY * 3)
    await eventually(
        lambda: _flags(stack, stack.e1),
        lambda flags: flags == {f"authorization_expired:{auth}", f"concurrent_review_overdue:{auth}"},
        "the stay flagged past its authorization",
    )
    alerts = (await stack.get("/api/v1/alerts")).json()
    for kind in ("stays_beyond_authorization", "overdue_concurrent_reviews"):
        [row] = [r for r in alerts[kind] if r["episode_id"] == stack.e1]
        assert row["authorization_id"] == auth and parse_instant(row["due_at"]) == placed_at + DAY * 5, kind
    overview = await stack.http.get("/dashboard", headers=(await stack.sign_in("director")).headers)
    assert overview.status_code == 200 and 'id="alerts-stays_beyond_authorization"' in overview.text
    assert stack.e1 in overview.text.split('id="alerts-stays_beyond_authorization"')[1].split("</div>")[0]

    # The payer extends it: both flags clear; the reviewer's concurrent review for the new end is recorded.
    extension = {"decision": "extended", "decided_by": "ur-1", "end": format_instant(placed_at + DAY * 12), "units": 7}
    extended = await stack.post(f"{base}/authorizations/{auth}/decisions", extension, role=REVIEWER)
    assert extended.status_code == 200, extended.text
    assert [e["type"] for e in extended.json()["events"]] == ["AuthorizationExtended", "FlagCleared", "FlagCleared"]
    assert await _flags(stack, stack.e1) == set()
    reviewed = await stack.post(
        f"{base}/authorizations/{auth}/concurrent-reviews",
        {"outcome": "continue_as_authorized", "reviewed_by": "ur-1", "note": "goals on track"},
        role=REVIEWER,
    )
    assert [e["type"] for e in reviewed.json()["events"]] == ["ConcurrentReviewRecorded"], reviewed.text
    assert _utilization_events(stack, stack.e1) == [
        "AuthorizationRequested",
        "AuthorizationDecided",
        "ConcurrentReviewRequested",
        "ConcurrentReviewEscalated",
        "AuthorizationExtended",
        "ConcurrentReviewRecorded",
    ]

    if os.environ.get("CONTINUUM_RECORD_HISTORIES") and not HISTORY.exists():  # earlier code's recording stays
        history = await handle.fetch_history()
        HISTORY.write_text(history.to_json())  # replayed by the test of recorded histories


async def _awaited(value: list[str]) -> list[str]:
    return value


async def test_denials_mismatches_and_stays_beyond_authorization_make_the_report(stack: Stack) -> None:
    now = datetime.now(UTC)  # the reads' clock (the workflow's may be ahead of it, never behind)
    for episode in (stack.e2, stack.e3):
        assert (await stack.post("/api/v1/episodes", stack.episode(episode))).status_code == 201

    # e2: approved for a period that has already ended: the stay is beyond its authorization at once.
    ended = await stack.post(f"/api/v1/episodes/{stack.e2}/authorizations", _request(units=3), role=REVIEWER)
    past = _approval(now - DAY * 4, 3)
    decided = await stack.post(
        f"/api/v1/episodes/{stack.e2}/authorizations/{stack.e2}.A1/decisions", past, role=REVIEWER
    )
    assert decided.status_code == 200, decided.text
    assert ended.status_code == 201 and f"authorization_expired:{stack.e2}.A1" in await _flags(stack, stack.e2)

    # e3: approved at IOP until three days from now, then placed in residential on clinical judgment, and the
    # residential request denied: the clinical level differs from the authorized one, for the payer's reason.
    base = f"/api/v1/episodes/{stack.e3}"
    await stack.post(f"{base}/authorizations", _request(units=4), role=REVIEWER)
    approval = _approval(now - timedelta(hours=1), 4, end=format_instant(now + DAY * 3))
    partial = await stack.post(f"{base}/authorizations/{stack.e3}.A1/decisions", approval, role=REVIEWER)
    assert partial.status_code == 422 and "partially_approved" in partial.json()["detail"]  # a shorter period
    approval["decision"] = "partially_approved"
    assert (
        await stack.post(f"{base}/authorizations/{stack.e3}.A1/decisions", approval, role=REVIEWER)
    ).status_code == 200
    override = {"level": "residential", "reason": "clinical_judgment", "clinician": "clin-1"}
    assert (await stack.post(f"{base}/placement-override", override)).status_code == 200  # never waits for a payer
    await stack.post(f"{base}/authorizations", _request("residential"), role=REVIEWER)
    denial = {"decision": "denied", "decided_by": "ur-1", "denial_reason": "level_not_covered"}
    assert (
        await stack.post(f"{base}/authorizations/{stack.e3}.A2/decisions", denial, role=REVIEWER)
    ).status_code == 200
    assert await _flags(stack, stack.e3) == {"authorized_level_mismatch"}
    extension = {"decision": "extended", "decided_by": "ur-1", "end": format_instant(now + DAY * 9), "units": 5}
    refused = await stack.post(f"{base}/authorizations/{stack.e3}.A2/decisions", extension, role=REVIEWER)
    assert refused.status_code == 422 and refused.json()["detail"].startswith("authorization_id: "), refused.text
    assert "denied" in refused.json()["detail"]

    levels = (await stack.get(f"{base}/authorizations", role=REVIEWER)).json()["levels"]
    assert (levels["recommended"], levels["clinical"], levels["authorized"]) == (
        "intensive_outpatient",
        "residential",
        "intensive_outpatient",
    )
    assert (levels["standing"], levels["reason"], levels["denial_reason"]) == (
        "mismatch",
        "payer_denial",
        "level_not_covered",
    )

    for role in (REVIEWER, "director", "auditor"):
        report = await stack.get("/api/v1/utilization-review", role=role, days=7)
        assert report.status_code == 200, (role, report.text)
    body = report.json()
    assert stack.e2 in [r["episode_id"] for r in body["beyond_authorization"]]
    assert stack.e3 in [r["episode_id"] for r in body["expiring"]]
    short = (await stack.get("/api/v1/utilization-review", role="director", days=1)).json()
    assert stack.e3 not in [r["episode_id"] for r in short["expiring"]]
    groups = {(g["comparison"], g["reason"], g["level"]): g["episodes"] for g in body["mismatches"]}
    assert stack.e3 in groups[("clinical_authorized", "payer_denial:level_not_covered", "residential")]
    assert stack.e3 in groups[("recommended_clinical", "clinical_judgment", "residential")]
    assert stack.e2 in groups[("clinical_authorized", "expired", "intensive_outpatient")]
    assert (await stack.get("/api/v1/utilization-review", role="director", days=0)).status_code == 422

    session = (await stack.sign_in("director")).headers
    page = await stack.http.get("/dashboard/utilization-review", headers=session)
    assert page.status_code == 200 and 'id="beyond-authorization"' in page.text and stack.e2 in page.text
    episode = await stack.http.get(f"/dashboard/episodes/{stack.e3}", headers=session)
    assert episode.status_code == 200 and 'id="care-levels"' in episode.text and "level_not_covered" in episode.text
