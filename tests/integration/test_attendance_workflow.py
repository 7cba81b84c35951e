"""Treatment services through the API and the episode workflow, on the real Temporal server and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from continuum.domain.codec import format_instant, parse_instant
from continuum.workflows.episode import workflow_id
from tests.integration.episodes import DAY, events_of, eventually
from tests.integration.stacks import Stack

pytestmark = pytest.mark.integration


def _session(session_id: str, starts_at: datetime, minutes: int = 180, kind: str = "group") -> dict[str, Any]:
    return {
        "session_id": session_id,
        "kind": kind,
        "starts_at": format_instant(starts_at),
        "minutes": minutes,
        "scheduled_by": "sched-1",
    }


async def test_sessions_and_the_weekly_dose_through_the_api_and_the_workflow(stack: Stack) -> None:
    opened = await stack.post("/api/v1/episodes", stack.episode())
    assert opened.status_code == 201, opened.text
    start = parse_instant(opened.json()["state"]["opened_at"])
    base = f"/api/v1/episodes/{stack.e1}"
    assert (await stack.get(f"{base}/attendance")).json()["attendance"]["weeks"] == []

    first = await stack.post(f"{base}/sessions", _session("S1", start))
    again = await stack.post(f"{base}/sessions", _session("S1", start))
    second = await stack.post(f"{base}/sessions", _session("S2", start, 120, "individual"))
    assert [e["type"] for e in first.json()["events"]] == ["SessionScheduled"]
    assert again.status_code == 200 and again.json()["events"] == []  # idempotent by session id
    assert second.status_code == 201, second.text

    # Invalid values: a 422 naming the field, and nothing recorded.
    for path, body, field in [
        (f"{base}/sessions", _session("S3", start, kind="yoga"), "kind"),
        (f"{base}/sessions", _session("S3", start - DAY), "starts_at"),
        (f"{base}/sessions/S1/attendance", {"minutes": 181, "modality": "in_person", "recorded_by": "c1"}, "minutes"),
        (f"{base}/sessions/S1/attendance", {"minutes": 60, "modality": "by_pigeon", "recorded_by": "c1"}, "modality"),
    ]:
        refused = await stack.post(path, body)
        assert refused.status_code == 422 and field in refused.text, (field, refused.text)
    unknown = await stack.post(
        f"{base}/sessions/S9/attendance", {"minutes": 60, "modality": "in_person", "recorded_by": "c1"}
    )
    assert unknown.status_code == 409 and "S9 was not scheduled" in unknown.json()["detail"]

    attended = await stack.post(
        f"{base}/sessions/S1/attendance", {"minutes": 180, "modality": "in_person", "recorded_by": "clin-1"}
    )
    telehealth = await stack.post(
        f"{base}/sessions/S2/attendance", {"minutes": 120, "modality": "telehealth", "recorded_by": "clin-1"}
    )
    assert attended.status_code == 200 and telehealth.status_code == 200, telehealth.text
    assert attended.json()["events"][0]["type"] == "SessionAttended"

    # Roles: a lab or a partner never sees or sends sessions; an auditor reads.
    assert (await stack.get(f"{base}/attendance", role="lab")).status_code == 403
    assert (await stack.get(f"{base}/attendance", role="partner")).status_code == 403
    assert (await stack.post(f"{base}/sessions", _session("S4", start), role="partner")).status_code == 403
    assert (await stack.get(f"{base}/attendance", role="auditor")).status_code == 200

    # The care week ends: 5 h of the 9 h IOP minimum, flagged with what it fell short by.
    await stack.env.fast_forward(stack.env.client.get_workflow_handle(workflow_id(stack.e1)), DAY * 7.5)
    flag = "below_minimum_hours:week-1"
    read = await eventually(
        lambda: stack.get(base), lambda r: flag in r.json()["flags"], "the week below the minimum flagged"
    )
    week = read.json()["attendance"]["weeks"][0]
    assert (week["hours"], week["telehealth_hours"], week["minimum_hours"], week["short_by_hours"]) == (5, 2, 9, 4)
    [closed] = events_of(stack.store, stack.e1, "CareWeekClosed")
    assert closed.payload["attended_minutes"] == 300 and closed.payload["telehealth_minutes"] == 120
    [raised] = [e for e in events_of(stack.store, stack.e1, "FlagRaised") if e.payload["flag"] == flag]
    assert "4.0 h short" in raised.payload["reason"]

    # A closed episode records no more sessions (409), and closing stayed the clinician's decision.
    assert read.json()["state"]["status"] == "active"
    await stack.post(f"{base}/discharge", {"reason": "transferred"})
    late = await stack.post(f"{base}/sessions", _session("S5", start + DAY * 8))
    assert late.status_code == 409 and "closed" in late.json()["detail"]


async def test_two_unexcused_misses_open_a_re_engagement_review(stack: Stack) -> None:
    opened = await stack.post("/api/v1/episodes", stack.episode(stack.e2))
    start = parse_instant(opened.json()["state"]["opened_at"])
    base = f"/api/v1/episodes/{stack.e2}"
    for number in (1, 2):
        await stack.post(f"{base}/sessions", _session(f"S{number}", start))
        missed = await stack.post(
            f"{base}/sessions/S{number}/missed", {"excused": False, "reason": "no_show", "recorded_by": "clin-1"}
        )
        assert missed.status_code == 200, missed.text
    assert [e["type"] for e in missed.json()["events"]] == [
        "SessionMissed",
        "FlagRaised",
        "ReEngagementReviewRequested",
    ]
    assert "re_engagement_review" in missed.json()["state"]["flags"]
    reviewed = await stack.post(f"{base}/re-engagement-review", {"clinician": "clin-1", "note": "called; back Monday"})
    assert reviewed.status_code == 200 and "re_engagement_review" not in reviewed.json()["state"]["flags"]
    assert reviewed.json()["state"]["status"] == "active"
    twice = await stack.post(f"{base}/re-engagement-review", {"clinician": "clin-1"})
    assert twice.status_code == 409
