"""The attendance report through the API, on the real Temporal server and PostgreSQL: rows equal to the sessions
recorded, as JSON and CSV, for the roles that may read it, by the policy the episode was decided under."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text

from continuum.domain.codec import format_instant, parse_instant
from continuum.domain.policy import default_policy_text
from continuum.eventlog.attendance import AttendanceReads
from tests.fhir_bundles import linked_resources
from tests.integration.episodes import DAY
from tests.integration.stacks import RunningStack, Stack

pytestmark = pytest.mark.integration
REPORT = "/api/v1/attendance"


def _session(session_id: str, starts_at: datetime, minutes: int = 180) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "kind": "group",
        "starts_at": format_instant(starts_at),
        "minutes": minutes,
        "scheduled_by": "sched-1",
    }


async def _episode_with_sessions(stack: Stack, episode_id: str) -> datetime:
    """An IOP client's first care week: 180 min in person, 120 by telehealth, one miss excused, one not."""
    opened = await stack.post("/api/v1/episodes", stack.episode(episode_id))
    assert opened.status_code == 201, opened.text
    start = parse_instant(opened.json()["state"]["opened_at"])
    base = f"/api/v1/episodes/{episode_id}"
    outcomes = [
        ("S1", "attendance", {"minutes": 180, "modality": "in_person", "recorded_by": "clin-1"}),
        ("S2", "attendance", {"minutes": 120, "modality": "telehealth", "recorded_by": "clin-1"}),
        ("S3", "missed", {"excused": True, "reason": "illness", "recorded_by": "clin-1"}),
        ("S4", "missed", {"excused": False, "reason": "no_show", "recorded_by": "clin-1"}),
    ]
    for session_id, what, body in outcomes:
        scheduled = await stack.post(f"{base}/sessions", _session(session_id, start))
        assert scheduled.status_code == 201, scheduled.text
        recorded = await stack.post(f"{base}/sessions/{session_id}/{what}", body)
        assert recorded.status_code == 200, recorded.text
    return start


async def test_report_rows_equal_the_sessions_recorded_as_json_and_csv(stack: Stack) -> None:
    start = await _episode_with_sessions(stack, stack.e1)
    period = {"from": format_instant(start - DAY), "to": format_instant(start + DAY * 30)}

    answer = await stack.get(REPORT, **period)
    assert answer.status_code == 200, answer.text
    rows = [r for r in answer.json()["rows"] if r["episode_id"] == stack.e1]
    assert len(rows) == 1, rows  # one client-week: the sessions' week (the report starts at the first session)
    [row] = rows
    assert (row["care_week"], row["level"], row["client_id"]) == (1, "intensive_outpatient", "client-1")
    assert (row["in_person_minutes"], row["telehealth_minutes"]) == (180, 120)
    assert (row["minimum_hours"], row["short_by_hours"]) == (9, 4)
    assert (row["missed_excused"], row["missed_unexcused"], row["held"]) == (1, 1, False)

    for ask in ({"format": "csv"}, {}):
        headers = {"Accept": "text/csv"} if not ask else {}
        as_csv = await stack.http.get(REPORT, params={**period, **ask}, headers={**stack.auth("auditor"), **headers})
        assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv"), as_csv.text
        [parsed] = [r for r in csv.DictReader(io.StringIO(as_csv.text)) if r["episode_id"] == stack.e1]
        assert parsed["in_person_minutes"] == "180" and parsed["telehealth_minutes"] == "120"
        assert parsed["missed_unexcused"] == "1" and parsed["held"] == "false"
        assert parsed["week_starts_at"] == row["week_starts_at"]

    # A period that ends before the sessions' week has no row for it; a level filter keeps only its weeks.
    before = await stack.get(REPORT, **{"from": "2020-01-01", "to": "2020-01-31"})
    assert before.status_code == 200 and before.json()["rows"] == []
    residential = await stack.get(REPORT, **period, level="residential")
    assert [r for r in residential.json()["rows"] if r["episode_id"] == stack.e1] == []


async def test_only_directors_and_auditors_read_the_report(stack: Stack) -> None:
    period = {"from": "2026-01-01", "to": "2026-01-31"}
    for role, status in [("director", 200), ("auditor", 200), ("clinician", 403), ("lab", 403), ("partner", 403)]:
        answer = await stack.get(REPORT, role=role, **period)
        assert answer.status_code == status, (role, answer.text)
    anonymous = await stack.http.get(REPORT, params=period)
    assert anonymous.status_code == 401


@pytest.mark.parametrize(
    ("period", "field"),
    [
        ({"from": "2026-13-01", "to": "2026-12-31"}, "from"),
        ({"from": "2026-01-01", "to": "next tuesday"}, "to"),
        ({"from": "2026-01-01T00:00:00", "to": "2026-01-31"}, "from"),  # no time zone
        ({"from": "2026-02-01", "to": "2026-01-01"}, "to"),  # before from
        ({"from": "2024-01-01", "to": "2026-01-01"}, "to"),  # over a year
        ({"to": "2026-01-01"}, "from"),  # missing
        ({"from": "2026-01-01", "to": "2026-01-31", "format": "xml"}, "format"),
    ],
)
async def test_a_bad_period_is_a_422_naming_the_field(stack: Stack, period: dict[str, str], field: str) -> None:
    answer = await stack.get(REPORT, **period)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["detail"].startswith(f"query.{field}:"), answer.json()


async def test_weeks_are_judged_by_the_policy_the_episode_was_decided_under(
    stack: Stack, app_engine: Engine, superuser_engine: Engine
) -> None:
    start = await _episode_with_sessions(stack, stack.e2)
    period = (start - DAY, start + DAY * 30)
    # The program has since raised its IOP minimum to 12 h: episodes decided under 9 h keep 9 h.
    # The API process that opened the episode kept its policy's text (bootstrap.build_app does, at start).
    AttendanceReads(app_engine, default_policy_text(), None, DAY).record_policy(default_policy_text())
    raised = default_policy_text().replace("minimum = 9,", "minimum = 12,")
    assert raised != default_policy_text()
    reads = AttendanceReads(app_engine, raised, None, DAY)
    [row] = [r for r in reads.report(*period, now=start + DAY).rows if r.episode_id == stack.e2]
    episode_version = reads.policy_of(stack.e2)
    assert episode_version.on_record and episode_version.version != reads.configured.version
    assert (row.minimum_hours, row.short_by_hours, row.policy_version) == (9, 4, episode_version.version)
    shown = (await stack.get(f"/api/v1/episodes/{stack.e2}/attendance")).json()["attendance"]
    assert shown["policy_version"] == episode_version.version and shown["policy_on_record"] is True

    # Without that version's text on record the configured policy stands in, and the read says so.
    with superuser_engine.begin() as conn:
        conn.execute(text("DELETE FROM policies"))
    stand_in = AttendanceReads(app_engine, raised, None, DAY)
    [row] = [r for r in stand_in.report(*period, now=start + DAY).rows if r.episode_id == stack.e2]
    assert (row.minimum_hours, row.short_by_hours) == (12, 7)
    assert stand_in.policy_of(stack.e2).on_record is False


async def test_the_fhir_export_holds_an_encounter_per_session_attended(stack: Stack) -> None:
    from fhir.resources.R4B.encounter import Encounter

    start = await _episode_with_sessions(stack, stack.e3)
    fhir = await stack.get(f"/api/v1/episodes/{stack.e3}/export", role="auditor", format="fhir", purpose="payer_audit")
    assert fhir.status_code == 200, fhir.text
    resources = linked_resources(fhir.json())  # valid FHIR, Encounters included, every reference resolving
    encounters = [r for r in resources.values() if isinstance(r, Encounter)]
    [stay] = [e for e in encounters if e.identifier[0].system == "urn:continuum:stay"]
    found = [e for e in encounters if e.identifier[0].system == "urn:continuum:session"]
    # The two sessions attended, never the misses: in person as ambulatory, telehealth as virtual.
    assert sorted((e.identifier[0].value, e.class_fhir.code, e.length.value) for e in found) == [
        ("S1", "AMB", 180),
        ("S2", "VR", 120),
    ]
    [in_person] = [e for e in found if e.identifier[0].value == "S1"]
    [episode] = [url for url, r in resources.items() if r.__resource_type__ == "EpisodeOfCare"]
    assert in_person.status == "finished" and in_person.episodeOfCare[0].reference == episode
    assert in_person.period.start == start and in_person.serviceType.coding[0].code == "intensive_outpatient"
    assert {e.partOf.reference for e in found} == {f"urn:uuid:{stay.id}"}  # both in the one stay, at IOP


async def test_the_dashboard_shows_the_attendance_strip_and_who_is_below_the_minimum(stack: Stack) -> None:
    await _episode_with_sessions(stack, stack.e1)
    await stack.post("/api/v1/episodes", stack.episode(stack.e2))  # no sessions: no strip, never listed
    session = (await stack.sign_in("director")).headers
    page = await stack.http.get(f"/dashboard/episodes/{stack.e1}", headers=session)
    assert page.status_code == 200, page.text
    assert 'id="attendance-strip"' in page.text and "2 of 4 sessions attended" in page.text
    assert "<script>" not in page.text  # the page's only script is the static file (CSP)
    # Week 1 in progress: 5.0 h so far (2.0 by telehealth) of the 9 h minimum, 2 missed.
    weeks = page.text[page.text.index('id="attendance-weeks"') :]
    assert '<td class="num">5.0</td><td class="num">2.0</td><td class="num">9.0</td>' in weeks
    plain = await stack.http.get(f"/dashboard/episodes/{stack.e2}", headers=session)
    assert plain.status_code == 200 and 'id="attendance-strip"' not in plain.text

    overview = await stack.http.get("/dashboard", headers=session)
    below = overview.text[overview.text.index('id="below-minimum"') :]
    assert f"/dashboard/episodes/{stack.e1}" in below and stack.e2 not in below
    assert '<td class="num">4.0</td>' in below  # short by 4 h so far


async def test_the_report_comes_in_pages_of_episodes_that_together_hold_every_row(
    stack: Stack, app_engine: Engine
) -> None:
    starts = [await _episode_with_sessions(stack, episode) for episode in (stack.e1, stack.e2)]
    period = (min(starts) - DAY, max(starts) + DAY * 30)
    reads = AttendanceReads(app_engine, default_policy_text(), None, DAY)
    first = reads.report(*period, now=max(starts) + DAY, episodes=1)
    second = reads.report(*period, now=max(starts) + DAY, after=first.next_after or "", episodes=1)
    last = reads.report(*period, now=max(starts) + DAY, after=second.next_after or "", episodes=1)
    assert [r.episode_id for r in first.rows + second.rows] == sorted([stack.e1, stack.e2])
    assert first.next_after == sorted([stack.e1, stack.e2])[0] and last.rows == [] and last.next_after is None
    answer = (await stack.get(REPORT, **{"from": format_instant(period[0]), "to": format_instant(period[1])})).json()
    assert answer["next_after"] is None and {r["episode_id"] for r in answer["rows"]} == {stack.e1, stack.e2}
    bad = await stack.get(REPORT, **{"from": "2026-01-01", "to": "2026-01-31", "after": "not an id!"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("query.after:")


def test_the_cli_reports_what_the_api_recorded(running_stack: RunningStack) -> None:
    import httpx

    episode = f"EP-{uuid.uuid4().hex[:6]}"
    clinician = {"Authorization": f"Bearer {running_stack.keys['clinician']}"}
    base = f"{running_stack.url}/api/v1/episodes"
    body = {"episode_id": episode, "client_id": "client-9", "assessment": {"ratings": [1] * 6, "assessed_by": "c1"}}
    opened = httpx.post(base, headers=clinician, json=body, timeout=30)
    assert opened.status_code == 201, opened.text
    start = parse_instant(opened.json()["state"]["opened_at"])
    for session_id, modality in (("S1", "in_person"), ("S2", "telehealth")):
        scheduled = httpx.post(
            f"{base}/{episode}/sessions", headers=clinician, json=_session(session_id, start), timeout=30
        )
        assert scheduled.status_code == 201, scheduled.text
        attended = {"minutes": 150, "modality": modality, "recorded_by": "c1"}
        answer = httpx.post(
            f"{base}/{episode}/sessions/{session_id}/attendance", headers=clinician, json=attended, timeout=30
        )
        assert answer.status_code == 200, answer.text

    day = start.date().isoformat()
    as_csv = running_stack.cli("attendance", "report", "--from", day, "--to", day, "--csv")
    as_json = running_stack.cli("attendance", "report", "--from", day, "--to", day, "--json")
    bad = running_stack.cli("attendance", "report", "--from", "2026-02-30", "--to", day)
    backwards = running_stack.cli("attendance", "report", "--from", day, "--to", "2020-01-01")

    assert as_csv.returncode == 0, as_csv.stderr
    [row] = [r for r in csv.DictReader(io.StringIO(as_csv.stdout)) if r["episode_id"] == episode]
    assert (row["in_person_minutes"], row["telehealth_minutes"], row["minimum_hours"]) == ("150", "150", "9.0")
    [found] = [r for r in json.loads(as_json.stdout)["rows"] if r["episode_id"] == episode]
    assert found["short_by_hours"] == 4.0 and found["care_week"] == 1
    assert bad.returncode == 2 and bad.stderr.strip().startswith("continuum: --from: '2026-02-30' is not a date")
    assert backwards.returncode == 2 and "--to:" in backwards.stderr and "Traceback" not in backwards.stderr
