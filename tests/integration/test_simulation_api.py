"""Policy simulation on the real servers: episodes recorded through the API and the worker (time skipping), then
simulated through `POST /api/v1/simulations`. The current policy reproduces the record event for event; a
lower placement threshold shows the placement it changes; nothing is written to the log."""

from __future__ import annotations

from typing import Any

import pytest

from continuum.domain.codec import parse_instant
from continuum.domain.commands import RecordTestResult
from continuum.domain.policy import default_policy_text
from continuum.domain.testing import TestMethod, TestResult
from continuum.simulations import run_simulation
from continuum.workflows.episode import CommandMeta, workflow_id
from tests.integration.episodes import DAY, eventually
from tests.integration.stacks import Stack

pytestmark = pytest.mark.integration

UNSTABLE = 'name = "unstable_recovery_environment"\ndimension = 6\nat_least = 3'


def _awaiting(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in state["tests"] if not t["cancelled"] and t["presumptive"] is None and t["confirmed"] is None]


async def _result(stack: Stack, episode: str, test: dict[str, Any], result: str, *substances: str) -> None:
    """The lab's result, sent as the API sends it (the API refuses a collection time ahead of the wall clock,
    and the time-skipping server's clock is days ahead of it)."""
    test_id = test["test_id"]
    command = RecordTestResult(
        test_id, TestResult(result), TestMethod.CONFIRMED, parse_instant(test["ordered_at"]), f"L-{test_id}", substances
    )
    await stack.episodes.send(episode, CommandMeta(f"result-{test_id}", "lab-1"), command)


async def _record_three_episodes(stack: Stack) -> None:
    e1, e2, e3 = stack.e1, stack.e2, stack.e3
    assessed = {"assessed_by": "clin-1"}
    for episode, ratings in ((e1, [1] * 6), (e2, [1, 1, 1, 1, 1, 2]), (e3, [0, 0, 0, 0, 0, 3])):
        opened = await stack.post(
            "/api/v1/episodes", stack.episode(episode, assessment={"ratings": ratings, **assessed})
        )
        assert opened.status_code == 201, opened.text
    ordered = await stack.post(f"/api/v1/episodes/{e3}/tests", {"ordered_by": "clin-1"})
    assert ordered.status_code == 201, ordered.text
    await stack.post(f"/api/v1/episodes/{e3}/hold", {"reason": "leave"})
    await stack.post(f"/api/v1/episodes/{e3}/resume")
    for episode in (e1, e2, e3):  # each episode's clock moves on its own (per-workflow time skipping)
        await stack.env.fast_forward(stack.env.client.get_workflow_handle(workflow_id(episode)), DAY * 9)
    first = await eventually(lambda: stack.episodes.state(e1), lambda s: len(s["tests"]) >= 2, "scheduled tests")
    for test in _awaiting(first):
        await _result(stack, e1, test, "negative")
    second = await eventually(lambda: stack.episodes.state(e2), lambda s: bool(_awaiting(s)), "a test at IOP")
    await _result(stack, e2, _awaiting(second)[0], "positive", "cocaine")  # a step-up to residential
    third = await stack.episodes.state(e3)
    for test in _awaiting(third):
        await _result(stack, e3, test, "negative")
    await stack.env.fast_forward(stack.env.client.get_workflow_handle(workflow_id(e1)), DAY * 22)
    review = await eventually(lambda: stack.episodes.state(e1), lambda s: s["pending_review"], "review requested")
    outcome = {"outcome": "goals_met", "therapist": "ther-1"}
    answered = await stack.post(
        f"/api/v1/episodes/{e1}/reviews/{review['pending_review']['review_id']}/outcome", outcome
    )
    assert answered.status_code == 200, answered.text
    closed = await stack.post(f"/api/v1/episodes/{e2}/discharge", {"reason": "against_medical_advice"})
    assert closed.status_code == 200, closed.text


async def test_the_current_policy_reproduces_the_record_and_a_proposed_threshold_shows_its_change(stack: Stack) -> None:
    await _record_three_episodes(stack)
    head = stack.store.head_position()

    current = await stack.post("/api/v1/simulations", {"policy": default_policy_text()}, role="director")
    assert current.status_code == 200, current.text
    cohort = current.json()["cohort"]
    assert (cohort["episodes"], cohort["episodes_unchanged"], cohort["placements_changed"]) == (3, 3, 0)
    assert (cohort["results_dropped"], cohort["tests_without_result"], cohort["draws_new"]) == (0, 0, 0)
    assert cohort["inputs_refused"] == {} and cohort["step_ups_added"] == cohort["step_ups_removed"] == 0
    assert cohort["step_ups"] == {"recorded": 1, "simulated": 1} and cohort["tests_ordered"]["recorded"] >= 4
    measures = current.json()["measures"]  # the outcome measures side by side: the same under the same policy
    assert [g["group"] for g in measures["groups"]][0] == "all" and len(measures["groups"]) > 1
    pairs = [pair for group in measures["groups"] for pair in group["measures"].values()]
    assert pairs and all(pair["recorded"] == pair["simulated"] for pair in pairs)
    assert any(pair["recorded"] is not None for pair in pairs)
    run = run_simulation(stack.store, default_policy_text(), day=DAY)  # event for event, not just the counts
    assert sorted(run.recorded) == sorted([stack.e1, stack.e2, stack.e3])
    for episode, events in run.recorded.items():
        assert run.simulated[episode].events == tuple(events), episode
    shared = run_simulation(stack.store, default_policy_text(), day=DAY, workers=2)  # two processes, a share each
    assert shared.comparisons == run.comparisons and shared.log_position == run.log_position

    proposed = default_policy_text().replace(UNSTABLE, UNSTABLE.replace("at_least = 3", "at_least = 2"))
    changed = await stack.post("/api/v1/simulations", {"policy": proposed, "episodes": True}, role="director")
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["cohort"]["placements_changed"] == 1
    by_group = {g["group"]: g["measures"] for g in body["measures"]["groups"]}
    residential = by_group.get("level=residential", {})  # the moved client's stay shows on the simulated side only
    assert any(pair["recorded"] != pair["simulated"] for pair in residential.values()), residential
    assert body["cohort"]["placement_changes"] == {"intensive_outpatient -> residential": 1}
    [moved] = [e for e in body["episodes"] if e["placement"]["recorded"] != e["placement"]["simulated"]]
    assert moved["episode_id"] == stack.e2 and moved["placement"]["simulated"] == "residential"
    assert body["policy_version"] != current.json()["policy_version"]
    assert stack.store.head_position() == head  # nothing was written to the log


async def test_bad_simulations_are_refused_naming_the_policy_key_or_the_field(stack: Stack) -> None:
    text = default_policy_text()
    bad_policy = text.replace("residential = 30", "residential = -1", 1)
    answers = {
        "policy": await stack.post("/api/v1/simulations", {"policy": bad_policy}, role="director"),
        "not toml": await stack.post("/api/v1/simulations", {"policy": "[oops"}, role="director"),
        "from": await stack.post("/api/v1/simulations", {"policy": text, "from": "2026-13-01"}, role="director"),
        "to": await stack.post(
            "/api/v1/simulations", {"policy": text, "from": "2026-02-01", "to": "2026-01-01"}, role="director"
        ),
        "missing": await stack.post("/api/v1/simulations", {"from": "2026-01-01"}, role="director"),
    }
    for name, answer in answers.items():
        assert answer.status_code == 422, (name, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert "stay_minimum_days.residential" in answers["policy"].json()["detail"]
    assert answers["policy"].json()["errors"][0]["field"] == "policy"
    assert answers["not toml"].json()["detail"].startswith("policy: the policy is not valid TOML")
    assert answers["from"].json()["errors"][0]["field"] == "from"
    assert answers["to"].json()["errors"][0]["field"] == "to"
    assert answers["missing"].json()["errors"][0]["field"] == "policy"
    for role in ("clinician", "auditor", "lab", "partner"):
        refused = await stack.post("/api/v1/simulations", {"policy": text}, role=role)
        assert refused.status_code == 403, role
    assert (await stack.http.post("/api/v1/simulations", json={"policy": text})).status_code == 401
