"""Created resources through the real API (Temporal dev server and PostgreSQL): a command that creates one answers
201 with a `created` list and a `Location` that reads it, ids the workflow created in consequence are listed too,
and a replay under the same Idempotency-Key answers the same status, body and Location."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.stacks import Stack, confirmed_positive

pytestmark = pytest.mark.integration


def _presumptive_positive() -> dict[str, object]:
    return {
        "result": "positive",
        "method": "presumptive",
        "collected_at": datetime.now(UTC).isoformat(),
        "lab_reference": "P-1",
        "substances": ["cocaine"],
    }


async def test_ordering_a_test_answers_201_and_a_location_that_reads_the_test(stack: Stack) -> None:
    opened = await stack.post("/api/v1/episodes", stack.episode(), **{"Idempotency-Key": f"open-{stack.e1}"})
    ordered = await stack.post(
        f"/api/v1/episodes/{stack.e1}/tests", {"ordered_by": "clin-1"}, **{"Idempotency-Key": "t1"}
    )
    replayed = await stack.post(
        f"/api/v1/episodes/{stack.e1}/tests", {"ordered_by": "clin-1"}, **{"Idempotency-Key": "t1"}
    )
    [test] = [e["data"] for e in ordered.json()["events"] if e["type"] == "TestOrdered"]
    location = ordered.headers["Location"]

    read = await stack.get(location, role="clinician")
    by_lab = await stack.get(location, role="lab")
    by_other_lab = await stack.get(location, role="lab-2")
    by_partner = await stack.get(location, role="partner")
    unknown = await stack.get(f"/api/v1/episodes/{stack.e1}/tests/{stack.e1}.T99")

    assert opened.status_code == 201 and opened.headers["Location"] == f"/api/v1/episodes/{stack.e1}"
    assert opened.json()["created"][0] == {"kind": "episode", "id": stack.e1, "href": f"/api/v1/episodes/{stack.e1}"}
    assert ordered.status_code == 201 and location == f"/api/v1/episodes/{stack.e1}/tests/{test['test_id']}"
    assert ordered.json()["created"] == [{"kind": "test", "id": test["test_id"], "href": location}]
    assert (replayed.status_code, replayed.json(), replayed.headers["Location"]) == (201, ordered.json(), location)
    recorded = [e.payload.get("test_id") for e in stack.store.read_stream(stack.e1) if e.event_type == "TestOrdered"]
    assert recorded.count(test["test_id"]) == 1  # the replay recorded nothing
    assert read.status_code == 200 and read.json()["test"]["test_id"] == test["test_id"]
    assert read.json()["test"]["reason"] == test["reason"] and read.json()["test"]["presumptive"] is None
    assert by_lab.status_code == 200 and set(by_lab.json()["test"]) == {
        "test_id",
        "ordered_at",
        "result_due_at",
        "cancelled",
        "collected_at",
        "observed",
        "temperature_in_range",
    }  # the lab's form: never a reason, a level or a result
    assert by_other_lab.status_code == 403 and by_partner.status_code == 403 and unknown.status_code == 404


async def test_a_positive_results_step_up_is_listed_as_created_and_reads_but_never_to_a_lab(stack: Stack) -> None:
    for episode in (stack.e1, stack.e2):
        await stack.post("/api/v1/episodes", stack.episode(episode))
    tests = [
        (await stack.post(f"/api/v1/episodes/{episode}/tests", {"ordered_by": "clin-1"})).json()["created"][0]["id"]
        for episode in (stack.e1, stack.e2)
    ]

    reported = await stack.post(f"/api/v1/episodes/{stack.e1}/tests/{tests[0]}/results", _presumptive_positive())
    by_lab = await stack.post(
        f"/api/v1/episodes/{stack.e2}/tests/{tests[1]}/results", _presumptive_positive(), role="lab"
    )
    created = reported.json()["created"]
    read = [await stack.get(item["href"], role="clinician") for item in created]
    lab_brought = [e["type"] for e in (await stack.get(f"/api/v1/episodes/{stack.e2}/events")).json()["events"]]

    assert reported.status_code == 200 and "Location" not in reported.headers  # a result is no resource of its own
    assert {"kind": "step_up", "id": tests[0], "href": f"/api/v1/episodes/{stack.e1}/step-ups/{tests[0]}"} in created
    assert [r.status_code for r in read] == [200] * len(created)
    [step_up] = [r.json()["step_up"] for r, item in zip(read, created, strict=True) if item["kind"] == "step_up"]
    assert step_up["test_id"] == tests[0] and step_up["waiting_for"] == "confirmation"
    assert "StepUpPending" in lab_brought and by_lab.status_code == 200 and by_lab.json()["created"] == []


async def test_an_automatic_step_up_is_created_by_its_result_and_a_confirmation_creates_none(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    base = f"/api/v1/episodes/{stack.e1}"
    first = (await stack.post(f"{base}/tests", {"ordered_by": "clin-1"})).json()["created"][0]["id"]
    stepped = await stack.post(f"{base}/tests/{first}/results", confirmed_positive("fentanyl"))
    read = await stack.get(f"{base}/step-ups/{first}", role="clinician")

    assert "LevelChanged" in [e["type"] for e in stepped.json()["events"]]  # the policy's automatic step-up
    assert {"kind": "step_up", "id": first, "href": f"{base}/step-ups/{first}"} in stepped.json()["created"]
    assert read.status_code == 200 and read.json()["step_up"]["to_level"] == "residential"

    await stack.post("/api/v1/episodes", stack.episode(stack.e2))
    other = f"/api/v1/episodes/{stack.e2}"
    second = (await stack.post(f"{other}/tests", {"ordered_by": "clin-1"})).json()["created"][0]["id"]
    waited = await stack.post(f"{other}/tests/{second}/results", _presumptive_positive())
    confirmed = await stack.post(f"{other}/tests/{second}/results", confirmed_positive("cocaine"))

    assert [c["kind"] for c in waited.json()["created"]].count("step_up") == 1
    assert "LevelChanged" in [e["type"] for e in confirmed.json()["events"]]
    assert "step_up" not in [c["kind"] for c in confirmed.json()["created"]]  # created when it began to wait


async def test_a_consent_a_session_and_a_plan_answer_201_and_the_same_again_200(stack: Stack) -> None:
    residential = {"ratings": [0, 0, 1, 0, 0, 3], "assessed_by": "clin-1"}
    await stack.post("/api/v1/episodes", stack.episode(assessment=residential))
    base = f"/api/v1/episodes/{stack.e1}"
    consent = {
        "consent_id": "c-1",
        "recipient": "partner-1",
        "purpose": "aftercare_referral",
        "expires_at": (datetime.now(UTC) + timedelta(days=90)).isoformat(),
        "recorded_by": "clin-1",
    }
    session = {
        "session_id": "s-1",
        "kind": "group",
        "starts_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        "minutes": 60,
        "scheduled_by": "clin-1",
    }
    plan = {
        "problems": [{"dimension": 6, "description": "an unstable home"}],
        "goals": [{"goal_id": "g-1", "dimension": 6, "description": "a stable home"}],
        "signed_by": "clin-1",
        "client_signed": True,
    }
    answers = {}
    for name, path, body in (
        ("consent", "/consents", consent),
        ("session", "/sessions", session),
        ("plan", "/treatment-plan", plan),
    ):
        first = await stack.post(base + path, body)
        again = await stack.post(base + path, body)  # records nothing: nothing created
        answers[name] = (first, again, await stack.get(first.headers.get("Location", base), role="clinician"))

    for name, (first, again, read) in answers.items():
        assert first.status_code == 201, (name, first.text)
        assert first.headers["Location"] == first.json()["created"][0]["href"] and read.status_code == 200, name
        assert again.status_code == 200 and again.json()["created"] == [] and "Location" not in again.headers, name
    assert answers["consent"][2].json()["consent"]["consent_id"] == "c-1"
    assert answers["session"][2].json()["session"]["session_id"] == "s-1"
    assert answers["plan"][0].json()["created"][0] == {
        "kind": "treatment_plan",
        "id": stack.e1,
        "href": f"{base}/treatment-plan",
    }
