"""The HTTP API against the real Temporal dev server (time skipping) and PostgreSQL, through ASGI."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from continuum.access import Role
from continuum.api.app import create_app
from continuum.api.services import Services
from continuum.episodes import EpisodeCommands
from continuum.eventlog.db import make_engine
from continuum.eventlog.store import PostgresEventStore
from continuum.workflows.episode import workflow_id
from tests.integration.episodes import DAY, eventually
from tests.integration.stacks import Stack, form_csrf, set_cookies

pytestmark = pytest.mark.integration


async def test_opening_an_episode_and_reading_it_back(stack: Stack) -> None:
    opened = await stack.post("/api/v1/episodes", stack.episode())
    assert opened.status_code == 201
    body = opened.json()
    assert [e["type"] for e in body["events"]] == [
        "EpisodeOpened",
        "AssessmentRecorded",
        "PlacementDecided",
        "StayStarted",
    ]
    assert body["state"]["level"] == "intensive_outpatient" and body["command_id"].endswith(tuple("0123456789abcdef"))
    placed = body["events"][2]["data"]  # says why, with the ratings it read: no policy file needed
    assert placed["decided_by"] == "baseline intensive_outpatient: no rule fired" and placed["ratings"] == [1] * 6

    listed = (await stack.get("/api/v1/episodes", level="intensive_outpatient", status="active")).json()
    one = (await stack.get(f"/api/v1/episodes/{stack.e1}")).json()
    census = (await stack.get("/api/v1/census")).json()
    none = (await stack.get("/api/v1/episodes", level="residential")).json()

    assert [e["episode_id"] for e in listed["items"]] == [f"{stack.e1}"] and listed["total"] == 1 and none["total"] == 0
    assert one["state"]["status"] == "active" and one["pending_review"] is None
    assert {k: census[k] for k in ("by_level_and_status", "total", "closed")} == {
        "by_level_and_status": [{"level": "intensive_outpatient", "status": "active", "episodes": 1}],
        "total": 1,
        "closed": 0,
    }
    [main] = census["by_facility"]  # without facilities: one, `main`, every level, no limit
    iop = next(level for level in main["levels"] if level["level"] == "intensive_outpatient")
    assert main["facility"] == "main" and iop["occupancy"] == 1 and iop["capacity"] is None and census["waitlist"] == []


async def test_every_episode_command_route_works_and_reads_show_it(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", {"episode_id": f"{stack.e2}", "client_id": "client-2"})
    steps = [
        (
            f"/api/v1/episodes/{stack.e2}/assessment",
            {"ratings": [0, 0, 0, 0, 0, 3], "assessed_by": "clin-1"},
            "StayStarted",
        ),
        (
            f"/api/v1/episodes/{stack.e2}/placement-override",
            {"level": "partial_hospitalization", "reason": "payer_denial", "clinician": "clin-2"},
            "FollowUpsScheduled",
        ),  # leaving residential
        (f"/api/v1/episodes/{stack.e2}/hold", {"reason": "leave"}, "EpisodePutOnHold"),
        (f"/api/v1/episodes/{stack.e2}/resume", None, "EpisodeResumed"),
        (f"/api/v1/episodes/{stack.e2}/tests", {"ordered_by": "clin-1"}, "TestOrdered"),
    ]
    for path, body, last in steps:
        response = await stack.post(path, body)
        assert response.status_code == (201 if last == "TestOrdered" else 200), response.text  # a test is created
        assert response.json()["events"][-1]["type"] == last
    test_id = response.json()["events"][-1]["data"]["test_id"]
    now = datetime.now(UTC).isoformat()
    more = [
        (
            f"/api/v1/episodes/{stack.e2}/tests/{test_id}/collection",
            {"collected_at": now, "observed": True, "temperature_in_range": True, "site": "site-1"},
            "lab",
        ),
        (
            f"/api/v1/episodes/{stack.e2}/tests/{test_id}/results",
            {"result": "negative", "method": "confirmed", "collected_at": now, "lab_reference": "L-1"},
            "lab",
        ),
    ]
    for path, body, role in more:
        response = await stack.post(path, body, role=role)
        assert response.status_code == 200, response.text
    second = (await stack.post(f"/api/v1/episodes/{stack.e2}/tests", {"ordered_by": "clin-1"})).json()["events"][0][
        "data"
    ]["test_id"]
    cancelled = await stack.post(
        f"/api/v1/episodes/{stack.e2}/tests/{second}/cancel", {"cancelled_by": "clin-1", "reason": "duplicate"}
    )
    medications = await stack.http.put(
        f"/api/v1/episodes/{stack.e2}/medications",
        json={"medications": ["Methadone"], "changed_by": "clin-1"},
        headers=stack.auth("clinician"),
    )
    handle = stack.env.client.get_workflow_handle(workflow_id(f"{stack.e2}"))
    await stack.env.fast_forward(handle, DAY * 14.5)
    state = await eventually(
        lambda: stack.episodes.state(f"{stack.e2}"), lambda s: s["pending_review"], "review requested"
    )
    review = state["pending_review"]["review_id"]
    outcome = await stack.post(
        f"/api/v1/episodes/{stack.e2}/reviews/{review}/outcome", {"outcome": "goals_met", "therapist": "ther-1"}
    )
    discharged = await stack.post(
        f"/api/v1/episodes/{stack.e2}/discharge", {"reason": "transferred", "note": "moved away"}
    )

    assert cancelled.status_code == 200 and medications.json()["state"]["medications"] == ["methadone"]
    assert outcome.status_code == 200 and outcome.json()["state"]["level"] == "intensive_outpatient"
    assert discharged.status_code == 200 and discharged.json()["events"][0]["data"]["teds"] == "transferred"
    one = (await stack.get(f"/api/v1/episodes/{stack.e2}")).json()
    assert one["state"]["status"] == "closed"
    census = (await stack.get("/api/v1/census")).json()  # the census is of open episodes; closed ones apart
    assert {k: census[k] for k in ("by_level_and_status", "total", "closed")} == {
        "by_level_and_status": [],
        "total": 0,
        "closed": 1,
    }
    assert all(t["reason"] == "scheduled" for t in one["open_tests"])  # results may still come for those


async def test_bad_inputs_are_answered_with_problems_that_name_the_field(stack: Stack) -> None:
    cases = [
        (
            {**stack.episode(), "assessment": {"ratings": [1, 9, 1, 1, 1, 1], "assessed_by": "clin-1"}},
            422,
            "assessment.ratings.1",
        ),
        ({**stack.episode(), "client_id": "Jane Doe"}, 422, "client_id"),
        ({**stack.episode(), "diagnosis": "x"}, 422, "diagnosis"),
        ({"client_id": "c-1"}, 422, "episode_id"),
    ]
    for body, status, field in cases:
        response = await stack.post("/api/v1/episodes", body)
        assert response.status_code == status and response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"].startswith(field), response.json()
    not_json = await stack.http.post(
        "/api/v1/episodes", content=b"{nope", headers={**stack.auth("clinician"), "content-type": "application/json"}
    )
    assert not_json.status_code == 422
    unknown = await stack.post("/api/v1/episodes/EP-404/hold", {"reason": "leave"})
    assert unknown.status_code == 404 and unknown.json()["detail"] == "no episode EP-404"
    bad_path = await stack.post("/api/v1/episodes/bad%20id/hold", {"reason": "leave"})
    assert bad_path.status_code == 422
    await stack.post("/api/v1/episodes", stack.episode())
    rejected = await stack.post(
        f"/api/v1/episodes/{stack.e1}/reviews/review-9/outcome", {"outcome": "goals_met", "therapist": "ther-1"}
    )
    assert rejected.status_code == 409 and "no review is pending" in rejected.json()["detail"]
    huge = await stack.http.post(
        "/api/v1/episodes",
        content=b"{" + b" " * 70_000 + b"}",
        headers={**stack.auth("clinician"), "content-type": "application/json"},
    )
    assert huge.status_code == 413 and huge.json()["title"] == "Request too large"
    recorded = [e.event_type for e in stack.store.read_stream(stack.e1)]
    assert not {"ReviewCompleted", "LevelChanged"} & set(recorded)  # the refused commands recorded nothing


async def test_a_retried_command_returns_the_first_response_and_records_once(stack: Stack) -> None:
    first = await stack.post("/api/v1/episodes", stack.episode(), **{"Idempotency-Key": f"open-{stack.e1}"})
    again = await stack.post("/api/v1/episodes", stack.episode(), **{"Idempotency-Key": f"open-{stack.e1}"})
    other = await stack.post(
        "/api/v1/episodes", {**stack.episode(), "client_id": "client-9"}, **{"Idempotency-Key": f"open-{stack.e1}"}
    )
    hold = await stack.post(f"/api/v1/episodes/{stack.e1}/resume", None, **{"Idempotency-Key": "resume-1"})
    hold_again = await stack.post(f"/api/v1/episodes/{stack.e1}/resume", None, **{"Idempotency-Key": "resume-1"})

    assert (first.status_code, again.status_code) == (201, 201) and again.json() == first.json()
    assert other.status_code == 422 and "different request" in other.json()["detail"]
    assert hold.status_code == hold_again.status_code == 409 and hold.json() == hold_again.json()
    recorded = [e.event_type for e in stack.store.read_stream(stack.e1)]
    assert recorded.count("EpisodeOpened") == 1 and "EpisodeResumed" not in recorded


async def _types(stack: Stack) -> list[str]:
    return [e.event_type for e in stack.store.read_stream(stack.e1)]


def routes(stack: Stack) -> list[tuple[str, str, Any, set[str]]]:
    e1 = stack.e1
    return [
        ("POST", "/api/v1/episodes", stack.episode(), {"clinician"}),
        ("POST", f"/api/v1/episodes/{e1}/hold", {"reason": "leave"}, {"clinician"}),
        ("POST", f"/api/v1/episodes/{e1}/tests", {"ordered_by": "clin-1"}, {"clinician"}),
        (
            "POST",
            f"/api/v1/episodes/{e1}/tests/{e1}.T1/results",
            {"result": "negative", "method": "confirmed", "collected_at": "2026-01-01T00:00:00Z", "lab_reference": "L"},
            {"clinician", "lab"},
        ),
        ("PUT", f"/api/v1/episodes/{e1}/medications", {"medications": [], "changed_by": "clin-1"}, {"clinician"}),
        ("GET", "/api/v1/episodes", None, {"director", "clinician"}),
        ("GET", f"/api/v1/episodes/{e1}", None, {"director", "clinician"}),
        ("GET", f"/api/v1/episodes/{e1}/events", None, {"director", "auditor"}),
        ("GET", f"/api/v1/episodes/{e1}/access-log", None, {"director", "auditor"}),
        ("GET", "/api/v1/census", None, {"director"}),
        ("GET", "/api/v1/alerts", None, {"director"}),
        ("GET", "/api/v1/audit/verify", None, {"director", "auditor"}),
        ("GET", "/api/v1/audit/anchor", None, {"director", "auditor"}),
        ("GET", "/api/v1/keys", None, {"admin"}),
        ("POST", "/api/v1/keys", {"name": "x-1", "role": "director"}, {"admin"}),
    ]


async def test_each_role_may_do_only_what_it_is_allowed_and_no_key_nothing(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    await stack.post(f"/api/v1/episodes/{stack.e1}/tests", {"ordered_by": "clin-1"})
    for method, path, body, allowed in routes(stack):
        anonymous = await stack.http.request(method, path, json=body)
        wrong_key = await stack.http.request(method, path, json=body, headers={"Authorization": "Bearer ck_nope"})
        assert anonymous.status_code == wrong_key.status_code == 401, path
        for role in Role:
            response = await stack.http.request(method, path, json=body, headers=stack.auth(role.value))
            if role.value in allowed:
                assert response.status_code not in (401, 403), (role, path, response.text)
            else:
                assert response.status_code == 403, (role, path, response.status_code)
                assert f"the {role.value} role may not do this" in response.json()["detail"]


async def test_a_lab_reports_only_on_tests_it_was_sent(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    test_id = (await stack.post(f"/api/v1/episodes/{stack.e1}/tests", {"ordered_by": "clin-1"})).json()["events"][0][
        "data"
    ]["test_id"]
    result = {
        "result": "negative",
        "method": "confirmed",
        "collected_at": datetime.now(UTC).isoformat(),
        "lab_reference": "L-1",
    }

    other_lab = await stack.post(f"/api/v1/episodes/{stack.e1}/tests/{test_id}/results", result, role="lab-2")
    unknown_test = await stack.post(f"/api/v1/episodes/{stack.e1}/tests/{stack.e1}.T7/results", result, role="lab")
    own_lab = await stack.post(f"/api/v1/episodes/{stack.e1}/tests/{test_id}/results", result, role="lab")

    assert other_lab.status_code == 403 and unknown_test.status_code == 403
    assert (
        own_lab.status_code == 200 and own_lab.json()["state"] == {} and own_lab.json()["events"] == []
    )  # no record back
    assert "TestResultRecorded" in [e.event_type for e in stack.store.read_stream(stack.e1)]


async def test_event_reads_are_paged_as_of_an_instant_and_themselves_recorded(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    drawn = await eventually(lambda: _types(stack), lambda t: "TestScheduleDrawn" in t, "schedule drawn")
    opened_at = stack.store.read_stream(stack.e1)[-1].recorded_at
    await stack.post(f"/api/v1/episodes/{stack.e1}/hold", {"reason": "hospitalised"})

    everything = (
        await stack.get(f"/api/v1/episodes/{stack.e1}/events", role="auditor", purpose="quality_review")
    ).json()
    page = (await stack.get(f"/api/v1/episodes/{stack.e1}/events", role="auditor", limit=2)).json()
    before_hold = (await stack.get(f"/api/v1/episodes/{stack.e1}/events", as_of=opened_at.isoformat())).json()
    naive = await stack.get(f"/api/v1/episodes/{stack.e1}/events", as_of="2026-01-01T00:00:00")
    log = (await stack.get(f"/api/v1/episodes/{stack.e1}/access-log", role="auditor")).json()
    verified = (await stack.get("/api/v1/audit/verify", role="auditor", episode=f"{stack.e1}")).json()
    anchor = (await stack.get("/api/v1/audit/anchor", role="auditor")).json()
    held = (
        await stack.get(
            "/api/v1/audit/verify", role="auditor", anchor_position=anchor["position"], anchor_hash=anchor["hash"]
        )
    ).json()
    not_held = (
        await stack.get(
            "/api/v1/audit/verify", role="auditor", anchor_position=anchor["position"], anchor_hash="0" * 64
        )
    ).json()
    half = await stack.get("/api/v1/audit/verify", role="auditor", anchor_position=anchor["position"])

    assert [e["type"] for e in everything["events"]][-1] == "EpisodePutOnHold" and everything["next_version"] is None
    assert len(page["events"]) == 2 and page["next_version"] == 3
    assert before_hold["state_as_of"]["status"] == "active" and len(before_hold["events"]) == len(drawn)
    assert naive.status_code == 422
    assert held["ok"] and held["anchors_checked"] == 1 and anchor["position"] >= len(drawn) + 1
    assert not not_held["ok"] and "rewritten" in not_held["first_broken"]["problem"]
    assert half.status_code == 422 and "give both" in half.json()["detail"]
    assert [(r["role"], r["purpose"]) for r in log["reads"]] == [
        ("auditor", "quality_review"),
        ("auditor", "operations"),
        ("director", "operations"),
    ]
    # A scheduled test may be ordered before the hold; nothing is recorded once on hold.
    assert verified["ok"] and verified["events_checked"] == len(everything["events"])


async def test_alerts_show_overdue_reviews_missing_results_positives_and_step_ups(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    test_id = (await stack.post(f"/api/v1/episodes/{stack.e1}/tests", {"ordered_by": "clin-1"})).json()["events"][0][
        "data"
    ]["test_id"]
    await stack.post("/api/v1/episodes", {**stack.episode(), "episode_id": f"{stack.e3}"})
    other = (await stack.post(f"/api/v1/episodes/{stack.e3}/tests", {"ordered_by": "clin-1"})).json()["events"][0][
        "data"
    ]["test_id"]
    now = datetime.now(UTC).isoformat()
    await stack.post(
        f"/api/v1/episodes/{stack.e3}/tests/{other}/results",
        {
            "result": "positive",
            "method": "confirmed",
            "collected_at": now,
            "lab_reference": "L-3",
            "substances": ["fentanyl"],
        },
    )
    await stack.env.fast_forward(stack.env.client.get_workflow_handle(workflow_id(f"{stack.e1}")), DAY * 3.5)
    await eventually(lambda: stack.episodes.state(f"{stack.e1}"), lambda s: s["flags"], "result flagged missing")

    alerts = (await stack.get("/api/v1/alerts", days=30)).json()
    flagged = (await stack.get("/api/v1/episodes", flag="result_missing")).json()
    exact = (await stack.get("/api/v1/episodes", flag=f"result_missing:{test_id}")).json()
    other_test = (await stack.get("/api/v1/episodes", flag="result_missing:T-404")).json()

    assert {"episode_id": f"{stack.e1}", "test_id": test_id} in [
        {"episode_id": a["episode_id"], "test_id": a["test_id"]} for a in alerts["missing_results"]
    ]
    assert all(a["due_at"] and a["client_id"] == "client-1" for a in alerts["missing_results"])
    assert all(a["facility"] == "main" for a in alerts["missing_results"] + alerts["positives"])
    assert alerts["positives"][0]["substances"] == ["fentanyl"]
    assert [p["test_id"] for p in alerts["positives"]] == [other]
    assert [(s["episode_id"], s["to_level"]) for s in alerts["step_ups"]] == [(f"{stack.e3}", "residential")]
    assert [e["episode_id"] for e in flagged["items"]] == [f"{stack.e1}"]
    assert [e["episode_id"] for e in exact["items"]] == [f"{stack.e1}"] and other_test["total"] == 0


async def test_keys_are_created_listed_and_revoked_by_an_admin(stack: Stack) -> None:
    created = await stack.post("/api/v1/keys", {"name": "lab-9", "role": "lab", "subject": "lab-9"}, role="admin")
    missing_subject = await stack.post("/api/v1/keys", {"name": "lab-8", "role": "lab"}, role="admin")
    secret, key_id = created.json()["secret"], created.json()["key_id"]
    works = await stack.http.get("/api/v1/census", headers={"Authorization": f"Bearer {secret}"})
    revoked = await stack.http.delete(f"/api/v1/keys/{key_id}", headers=stack.auth("admin"))
    after = await stack.http.get("/api/v1/census", headers={"Authorization": f"Bearer {secret}"})
    listed = (await stack.get("/api/v1/keys", role="admin")).json()["keys"]

    assert created.status_code == 201 and missing_subject.status_code == 422
    assert works.status_code == 403 and revoked.status_code == 204 and after.status_code == 401
    assert all("secret" not in k and "key_hash" not in k for k in listed)
    assert next(k for k in listed if k["key_id"] == key_id)["revoked_at"] is not None


async def test_unavailable_postgresql_is_a_503_with_retry_after(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    dead = PostgresEventStore(make_engine("postgresql+psycopg://continuum@127.0.0.1:9/none", role=None))
    services = Services.build(EpisodeCommands(skipping_env.client, "nowhere"), dead)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(services)), base_url="http://t") as http:
        response = await http.get("/api/v1/census", headers={"Authorization": "Bearer ck_anything"})
        health = await http.get("/healthz")

    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.json()["detail"] == "Temporal or PostgreSQL is unavailable; retry shortly"
    assert health.status_code == 503 and health.json() == {
        "status": "degraded",
        "temporal": "ok",
        "postgres": "unavailable",
    }


async def test_unavailable_temporal_is_a_503_and_nothing_is_recorded(store: PostgresEventStore) -> None:
    from temporalio.client import Client

    unreachable = await Client.connect("127.0.0.1:9", lazy=True)
    services = Services.build(EpisodeCommands(unreachable, "nowhere"), store)
    secret = services.keys.create("clinician-1", Role.CLINICIAN)[1]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(services)), base_url="http://t") as http:
        response = await http.post(
            "/api/v1/episodes",
            json={"episode_id": "EP-9", "client_id": "client-9"},
            headers={"Authorization": f"Bearer {secret}"},
        )
        health = await http.get("/healthz")

    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert health.status_code == 503 and health.json()["temporal"] == "unavailable"
    assert store.read_stream("EP-9") == []


def test_the_openapi_document_describes_every_route() -> None:
    from unittest.mock import sentinel

    spec = create_app(sentinel.services).openapi()  # type: ignore[arg-type]
    paths = set(spec["paths"])
    assert {
        "/api/v1/episodes",
        "/api/v1/episodes/{episode_id}/tests/{test_id}/results",
        "/api/v1/census",
        "/api/v1/alerts",
        "/api/v1/audit/verify",
        "/api/v1/audit/anchor",
        "/healthz",
    } <= paths
    assert spec["openapi"].startswith("3.")


async def test_consents_referrals_partners_and_the_accounting_of_disclosures(stack: Stack) -> None:
    services = stack.http._transport.app.state.services  # type: ignore[attr-defined]
    harbor = services.keys.create("harbor-1", Role.PARTNER, "harbor-house")[1]
    expires = "2030-01-01T00:00:00Z"
    await stack.post(
        "/api/v1/episodes", stack.episode(assessment={"ratings": [0, 0, 2, 0, 0, 3], "assessed_by": "clin-1"})
    )
    consent = await stack.post(
        f"/api/v1/episodes/{stack.e1}/consents",
        {
            "consent_id": "c-1",
            "recipient": "harbor-house",
            "purpose": "aftercare_referral",
            "expires_at": expires,
            "recorded_by": "clin-1",
        },
    )
    moved = await stack.post(
        f"/api/v1/episodes/{stack.e1}/placement-override",
        {"level": "aftercare", "reason": "clinical_judgment", "clinician": "clin-1"},
    )
    referrals = {r["resource_id"]: r for r in moved.json()["state"]["referrals"]}
    as_partner = {"Authorization": f"Bearer {harbor}"}
    own = (await stack.http.get("/api/v1/partner/referrals", headers=as_partner)).json()
    waiting = referrals["community-counselling"]["referral_id"]
    not_sent = await stack.http.post(
        f"/api/v1/episodes/{stack.e1}/referrals/{waiting}/status", json={"status": "accepted"}, headers=as_partner
    )
    other_partner = await stack.post(
        f"/api/v1/episodes/{stack.e1}/referrals/{referrals['harbor-house']['referral_id']}/status",
        {"status": "accepted"},
        role="partner",
    )
    accepted = await stack.http.post(
        f"/api/v1/episodes/{stack.e1}/referrals/{referrals['harbor-house']['referral_id']}/status",
        json={"status": "accepted"},
        headers=as_partner,
    )
    later = await stack.post(
        f"/api/v1/episodes/{stack.e1}/consents",
        {
            "consent_id": "c-2",
            "recipient": "community-counselling",
            "purpose": "aftercare_referral",
            "expires_at": expires,
            "recorded_by": "clin-1",
        },
    )
    revoked = await stack.post(f"/api/v1/episodes/{stack.e1}/consents/c-1/revocation", {"revoked_by": "clin-1"})
    accounting = (await stack.get(f"/api/v1/episodes/{stack.e1}/disclosures", role="auditor")).json()
    since_later = (
        await stack.get(
            f"/api/v1/episodes/{stack.e1}/disclosures", since=later.json()["events"][0]["data"]["occurred_at"]
        )
    ).json()
    no_follow_up = await stack.post(
        f"/api/v1/episodes/{stack.e1}/follow-ups/F-9/outcome", {"outcome": "using", "recorded_by": "o-1"}
    )
    partner_reads = await stack.http.get(f"/api/v1/episodes/{stack.e1}", headers=as_partner)

    assert consent.status_code == 201 and moved.status_code == 200  # a consent is created
    assert (
        referrals["harbor-house"]["status"] == "issued"
        and referrals["community-counselling"]["status"] == "awaiting_consent"
    )
    assert [r["resource_id"] for r in own["referrals"]] == ["harbor-house"]  # what waits for consent was never sent
    assert (not_sent.status_code, other_partner.status_code) == (403, 403)
    assert accepted.status_code == 200 and accepted.json()["state"] == {} and accepted.json()["events"] == []
    assert [e["type"] for e in later.json()["events"]] == ["ConsentRecorded", "ReferralIssued"]
    assert revoked.status_code == 200 and revoked.json()["state"]["consents"][0]["revoked_at"]
    assert [(d["recipient"], d["purpose"], d["disclosed"], d["consent_id"]) for d in accounting["disclosures"]] == [
        ("harbor-house", "aftercare_referral", ["episode_id", "referral_type"], "c-1"),
        ("community-counselling", "aftercare_referral", ["episode_id", "referral_type"], "c-2"),
    ]
    assert [d["recipient"] for d in since_later["disclosures"]] == ["community-counselling"]
    assert no_follow_up.status_code == 409 and "no follow-up" in no_follow_up.json()["detail"]
    assert partner_reads.status_code == 403
    log = (await stack.get(f"/api/v1/episodes/{stack.e1}/access-log", role="auditor")).json()
    assert ("auditor", "accounting_of_disclosures") in [(r["role"], r["purpose"]) for r in log["reads"]]


async def test_exports_validate_as_fhir_verify_offline_and_are_disclosures(stack: Stack) -> None:
    from fhir.resources.R4B.episodeofcare import EpisodeOfCare
    from fhir.resources.R4B.provenance import Provenance

    from continuum.eventlog.export import verify_ndjson
    from tests.fhir_bundles import linked_resources

    await stack.post("/api/v1/episodes", stack.episode())
    held = (await stack.post(f"/api/v1/episodes/{stack.e1}/hold", {"reason": "hospitalised"})).json()
    held_at = stack.store.read_stream(stack.e1)[-1].recorded_at
    await stack.post(f"/api/v1/episodes/{stack.e1}/resume")
    await stack.post(f"/api/v1/episodes/{stack.e1}/discharge", {"reason": "transferred"})

    ndjson = await stack.get(
        f"/api/v1/episodes/{stack.e1}/export", role="auditor", recipient="state-auditor", basis="audit_and_evaluation"
    )
    fhir = await stack.get(f"/api/v1/episodes/{stack.e1}/export", role="auditor", format="fhir", purpose="payer_audit")
    again = await stack.get(f"/api/v1/episodes/{stack.e1}/export", role="auditor", format="fhir", purpose="payer_audit")
    replayed = (
        await stack.get(f"/api/v1/episodes/{stack.e1}/events", role="auditor", as_of=held_at.isoformat())
    ).json()
    accounting = (await stack.get(f"/api/v1/episodes/{stack.e1}/disclosures", role="auditor")).json()
    lab = await stack.get(f"/api/v1/episodes/{stack.e1}/export", role="lab")

    lines = ndjson.text.splitlines()
    assert ndjson.headers["content-type"].startswith("application/x-ndjson") and verify_ndjson(lines).ok
    tampered = [line.replace('"hospitalised"', '"leave"') for line in lines]
    report = verify_ndjson(tampered)
    assert not report.ok and report.first_broken is not None and "EpisodePutOnHold" in report.first_broken.problem
    assert not verify_ndjson(lines[:2] + lines[3:]).ok  # a deleted line is a missing version

    resources = list(linked_resources(fhir.json()).values())  # each valid R4, every reference to an entry
    assert again.json() == fhir.json()  # the same log exports the same Bundle
    [episode] = [r for r in resources if r.__resource_type__ == "EpisodeOfCare"]
    provenances = [r for r in resources if r.__resource_type__ == "Provenance"]
    assert isinstance(episode, EpisodeOfCare) and all(isinstance(p, Provenance) for p in provenances)
    # The status history is the hold, the resumption and the discharge, each at the instant its event happened.
    when = {e.event_type: e.occurred_at for e in stack.store.read_stream(stack.e1)}
    opened, hold, resumed, closed = (
        when[kind] for kind in ("EpisodeOpened", "EpisodePutOnHold", "EpisodeResumed", "EpisodeClosed")
    )
    assert episode.status == "finished" and [
        (h.status, h.period.start, h.period.end) for h in episode.statusHistory
    ] == [
        ("active", opened, hold),
        ("onhold", hold, resumed),
        ("active", resumed, closed),
        ("finished", closed, None),
    ]
    assert (
        len(provenances) == len(lines)
        and provenances[-1].extension[0].valueString
        == fhir.json()["entry"][-1]["resource"]["extension"][0]["valueString"]
    )

    # the state replayed as of an instant is the state the workflow answered with at that instant
    assert replayed["state_as_of"] == held["state"]
    assert [(d["kind"], d["recipient"], d["purpose"]) for d in accounting["disclosures"]] == [
        ("export", "state-auditor", "audit"),
        ("export", "internal_audit", "payer_audit"),
        ("export", "internal_audit", "payer_audit"),
    ]
    assert lab.status_code == 403


async def test_the_dashboard_admits_directors_and_auditors_with_a_locked_down_cookie(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    anonymous = await stack.http.get("/dashboard")
    form = await stack.http.get("/dashboard/sign-in")
    nonce = {"Cookie": f"continuum_sign_in={set_cookies(form)['continuum_sign_in']}"}
    clinician = await stack.http.post(
        "/dashboard/sign-in",
        data={"api_key": stack.keys["clinician"], "csrf_token": form_csrf(form.text)},
        headers=nonce,
    )
    auditor = await stack.http.post(
        "/dashboard/sign-in", data={"api_key": stack.keys["auditor"], "csrf_token": form_csrf(form.text)}, headers=nonce
    )
    session = {"Cookie": f"continuum_session={set_cookies(auditor)['continuum_session']}"}
    page = await stack.http.get(f"/dashboard/episodes/{stack.e1}", headers=session)
    unknown = await stack.http.get("/dashboard/episodes/EP-nope", headers=session)
    lab_cookie = await stack.http.get("/dashboard", headers={"Cookie": f"continuum_session={stack.keys['lab']}"})
    asset = await stack.http.get("/dashboard/static/dashboard.js")
    verified = await stack.http.get(f"/dashboard/episodes/{stack.e1}?verify=1", headers=session)
    whole = await stack.http.get("/dashboard/verify", headers=session)
    head = (await stack.get("/api/v1/audit/anchor", role="auditor")).json()
    anchored = await stack.http.get(
        "/dashboard/verify", headers=session, params={"anchor_position": head["position"], "anchor_hash": head["hash"]}
    )
    not_anchored = await stack.http.get(
        "/dashboard/verify", headers=session, params={"anchor_position": head["position"], "anchor_hash": "1" * 64}
    )
    bad_anchor = await stack.http.get(
        "/dashboard/verify", headers=session, params={"anchor_position": "x", "anchor_hash": "1"}
    )
    log = (await stack.get(f"/api/v1/episodes/{stack.e1}/access-log", role="auditor")).json()
    before = await stack.http.get(
        f"/dashboard/episodes/{stack.e1}", headers=session, params={"as_of": "2020-01-01T00:00:00Z"}
    )

    assert before.status_code == 200 and "did not exist yet" in before.text  # not today's state
    assert "intensive_outpatient" not in before.text and "client-" not in before.text
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/dashboard/sign-in"
    assert clinician.status_code == 403 and "cannot open the dashboard" in clinician.text
    cookie = auditor.headers["set-cookie"].lower()
    assert auditor.status_code == 303 and all(
        flag in cookie for flag in ("httponly", "secure", "samesite=strict", "path=/dashboard")
    )
    assert page.status_code == 200 and stack.e1 in page.text and 'id="timeline"' in page.text
    assert (
        "decided by: baseline intensive_outpatient: no rule fired" in page.text
        and "ratings: 1, 1, 1, 1, 1, 1" in page.text
        and "D6 recovery environment: 1" in page.text  # the placement's row names each rating's dimension
    )
    assert unknown.status_code == 404 and "There is no episode EP-nope" in unknown.text
    assert lab_cookie.status_code == 303
    assert asset.status_code == 200 and "setInterval" in asset.text  # shipped in the package, no CDN
    assert "chain intact" in verified.text and "Verified: log" in whole.text and 'id="head-hash"' in whole.text
    assert "The anchor holds" in anchored.text
    assert not_anchored.status_code == 200 and "ALTERED" in not_anchored.text and "rewritten" in not_anchored.text
    assert (
        bad_anchor.status_code == 200 and 'id="anchor-error"' in bad_anchor.text and "Verified: log" in bad_anchor.text
    )
    assert ("auditor", "dashboard") in [(r["role"], r["purpose"]) for r in log["reads"]]


async def test_a_refusal_is_recorded_without_a_method_or_a_collection_time(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode(stack.e3))
    ordered = (await stack.post(f"/api/v1/episodes/{stack.e3}/tests", {"ordered_by": "clin-1"})).json()
    test_id = ordered["events"][0]["data"]["test_id"]
    incomplete = await stack.post(
        f"/api/v1/episodes/{stack.e3}/tests/{test_id}/results",
        {"result": "negative", "lab_reference": "L-1"},
        role="lab",
    )
    refused = await stack.post(
        f"/api/v1/episodes/{stack.e3}/tests/{test_id}/results",
        {"result": "refused", "lab_reference": "site-1"},
        role="lab",
    )

    assert incomplete.status_code == 422 and "method" in incomplete.text
    assert refused.status_code == 200, refused.text
    [recorded] = [e for e in stack.store.read_stream(stack.e3) if e.event_type == "TestResultRecorded"]
    assert recorded.payload["method"] is None and recorded.payload["collected_at"] is None
    assert recorded.payload["counts_as_positive"] is True  # a refusal counts, as the policy says


async def test_medications_are_read_by_the_catalogue_and_a_later_step_down_needs_the_director(stack: Stack) -> None:
    """Issue 14, findings 4 and 2: Suboxone shows buprenorphine, which is expected; a medication outside the
    catalogue is a 422; two days into IOP an override down is a 409, and the director's decision is accepted."""
    await stack.post("/api/v1/episodes", stack.episode())
    unknown = await stack.http.put(
        f"/api/v1/episodes/{stack.e1}/medications",
        json={"medications": ["suboxone-strips"], "changed_by": "clin-1"},
        headers=stack.auth("clinician"),
    )
    on_mat = await stack.http.put(
        f"/api/v1/episodes/{stack.e1}/medications",
        json={"medications": ["buprenorphine-naloxone"], "changed_by": "clin-1"},
        headers=stack.auth("clinician"),
    )
    ordered = await stack.post(f"/api/v1/episodes/{stack.e1}/tests", {"ordered_by": "clin-1"})
    test_id = ordered.json()["events"][-1]["data"]["test_id"]
    now = datetime.now(UTC).isoformat()
    result = {
        "result": "positive",
        "substances": ["buprenorphine", "norbuprenorphine"],
        "method": "confirmed",
        "collected_at": now,
        "lab_reference": "L-SUB-1",
    }
    expected = await stack.post(f"/api/v1/episodes/{stack.e1}/tests/{test_id}/results", result, role="lab")
    episode = (await stack.get(f"/api/v1/episodes/{stack.e1}")).json()["state"]
    await stack.env.fast_forward(stack.env.client.get_workflow_handle(workflow_id(stack.e1)), DAY * 2)
    down = {"level": "outpatient", "reason": "clinical_judgment", "clinician": "clin-1"}
    refused = await stack.post(f"/api/v1/episodes/{stack.e1}/placement-override", down)
    by_director = {**down, "reason": "payer_denial", "director": "dir-1"}
    decided = await stack.post(f"/api/v1/episodes/{stack.e1}/placement-override", by_director)

    assert unknown.status_code == 422 and "medication catalogue" in unknown.json()["detail"]
    assert "buprenorphine-naloxone" in unknown.json()["detail"] and on_mat.status_code == 200
    assert expected.status_code == 200, expected.text
    assert episode["level"] == "intensive_outpatient" and "buprenorphine_absent" not in episode["flags"]
    assert refused.status_code == 409 and "needs the completion review" in refused.json()["detail"]
    assert decided.status_code == 200, decided.text
    assert [e["type"] for e in decided.json()["events"]][:2] == ["LevelChangeDecided", "LevelChanged"]
    assert (
        decided.json()["events"][0]["data"]["director"] == "dir-1" and decided.json()["state"]["level"] == "outpatient"
    )


async def test_a_consent_revoked_after_the_episode_closed_stops_the_partners_reads(stack: Stack) -> None:
    services = stack.http._transport.app.state.services  # type: ignore[attr-defined]
    harbor = services.keys.create("harbor-2", Role.PARTNER, "harbor-house")[1]
    as_partner = {"Authorization": f"Bearer {harbor}"}
    await stack.post(
        "/api/v1/episodes", stack.episode(assessment={"ratings": [0, 0, 2, 0, 0, 3], "assessed_by": "clin-1"})
    )
    consent = {
        "consent_id": "c-1",
        "recipient": "harbor-house",
        "purpose": "aftercare_referral",
        "expires_at": "2030-01-01T00:00:00Z",
        "recorded_by": "clin-1",
    }
    await stack.post(f"/api/v1/episodes/{stack.e1}/consents", consent)
    await stack.post(
        f"/api/v1/episodes/{stack.e1}/placement-override",
        {"level": "aftercare", "reason": "clinical_judgment", "clinician": "clin-1"},
    )
    before = (await stack.http.get("/api/v1/partner/referrals", headers=as_partner)).json()
    closed = await stack.post(f"/api/v1/episodes/{stack.e1}/discharge", {"reason": "transferred"})
    handle = stack.episodes.client.get_workflow_handle(workflow_id(stack.e1))
    closing_run = (await handle.describe()).run_id
    await handle.result()  # the run that closed the episode has completed

    revoked = await stack.post(f"/api/v1/episodes/{stack.e1}/consents/c-1/revocation", {"revoked_by": "clin-1"})
    again = await stack.post(f"/api/v1/episodes/{stack.e1}/consents/c-1/revocation", {"revoked_by": "clin-1"})
    held = await stack.post(f"/api/v1/episodes/{stack.e1}/hold", {"reason": "hospitalised"})
    after = (await stack.http.get("/api/v1/partner/referrals", headers=as_partner)).json()
    verified = (await stack.get("/api/v1/audit/verify", role="auditor", episode=stack.e1)).json()
    await handle.result()
    described = await handle.describe()

    assert closed.status_code == 200 and [r["resource_id"] for r in before["referrals"]] == ["harbor-house"]
    assert revoked.status_code == 200, revoked.text
    assert [e["type"] for e in revoked.json()["events"]] == ["ConsentRevoked"]
    assert again.status_code == 200 and again.json()["events"] == []  # already revoked: the same answer
    assert held.status_code == 409 and "closed" in held.json()["detail"]
    assert after["referrals"] == []
    events = stack.store.read_stream(stack.e1)
    assert [e.event_type for e in events[-2:]] == ["EpisodeClosed", "ConsentRevoked"]
    assert verified["ok"] and verified["events_checked"] == len(events)
    assert described.run_id != closing_run and described.status is not None and described.status.name == "COMPLETED"
    row = (await stack.get(f"/api/v1/episodes/{stack.e1}")).json()
    assert row["state"]["status"] == "closed" and row["state"]["consents"][0]["revoked_at"]


async def test_an_export_outside_the_program_needs_a_consent_or_a_basis_and_records_it(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    consent = {
        "consent_id": "c-7",
        "recipient": "oak-street",
        "purpose": "continuing_care",
        "expires_at": "2030-01-01T00:00:00Z",
        "recorded_by": "clin-1",
    }
    await stack.post(f"/api/v1/episodes/{stack.e1}/consents", consent)
    export = f"/api/v1/episodes/{stack.e1}/export"

    no_basis = await stack.get(export, recipient="oak-street", purpose="research")
    under_consent = await stack.get(export, recipient="oak-street", purpose="continuing_care")
    await stack.post(f"/api/v1/episodes/{stack.e1}/consents/c-7/revocation", {"revoked_by": "clin-1"})
    revoked = await stack.get(export, recipient="oak-street", purpose="continuing_care", consent_id="c-7")
    half_emergency = await stack.get(
        export, recipient="st-mary-ed", purpose="treatment", basis="medical_emergency", emergency_clinician="dr-lee"
    )
    emergency = await stack.get(
        export,
        recipient="st-mary-ed",
        purpose="treatment",
        basis="medical_emergency",
        emergency_clinician="dr-lee",
        emergency_facility="St Mary ED",
        emergency_nature="unresponsive, suspected overdose",
    )
    unknown_basis = await stack.get(export, recipient="oak-street", basis="because")
    staff = await stack.get(export, recipient="oak-street", basis="program_staff")
    internal = await stack.get(export)
    accounting = (await stack.get(f"/api/v1/episodes/{stack.e1}/disclosures", role="auditor")).json()

    assert no_basis.status_code == 422 and no_basis.headers["content-type"].startswith("application/problem+json")
    assert no_basis.json()["detail"].startswith("basis: an export to oak-street (outside the program)")
    assert under_consent.status_code == 200
    assert revoked.status_code == 422 and revoked.json()["detail"].startswith("consent_id: consent c-7 was revoked")
    assert half_emergency.status_code == 422 and half_emergency.json()["detail"].startswith("emergency_facility:")
    assert emergency.status_code == 200
    assert unknown_basis.status_code == 422 and unknown_basis.json()["detail"].startswith("query.basis:")
    assert staff.status_code == 422 and staff.json()["detail"].startswith("basis: oak-street is outside the program")
    assert internal.status_code == 200
    assert [
        (d["recipient"], d["basis"], d["consent_id"], d["asserted_by"], d["emergency"])
        for d in accounting["disclosures"]
    ] == [
        ("oak-street", "consent", "c-7", "director:director-1", None),
        (
            "st-mary-ed",
            "medical_emergency",
            None,
            "director:director-1",
            {"clinician": "dr-lee", "facility": "St Mary ED", "nature": "unresponsive, suspected overdose"},
        ),
        ("internal_audit", "program_staff", None, "director:director-1", None),
    ]
