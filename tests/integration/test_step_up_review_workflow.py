"""A step-up that a clinician reviews (policy `positive_result_action = "review"`), in the real workflow: the
review's due date is a timer on the episode's clock, an unanswered review is escalated to the director, and a
declined review keeps the client where they are. Temporal's time skipping moves the clock."""

from __future__ import annotations

import uuid

import pytest
from temporalio.testing import WorkflowEnvironment

from continuum.domain.commands import DecideStepUp, OpenEpisode, OrderTest, RecordAssessment, RecordTestResult
from continuum.domain.policy import default_policy_text, load_policy
from continuum.domain.testing import TestMethod, TestResult
from continuum.eventlog.store import PostgresEventStore
from continuum.workflows.episode import workflow_id
from tests.integration.episodes import DAY, episode_worker, events_of, eventually, meta, projected_row

pytestmark = pytest.mark.integration
MILD = (1, 1, 1, 1, 1, 1)  # intensive outpatient, which steps up to residential
REVIEW_POLICY = default_policy_text().replace(
    'positive_result_action = "automatic"', 'positive_result_action = "review"'
)
DUE_DAYS = load_policy(REVIEW_POLICY).drug_testing.step_up_review_due_days


async def test_an_unanswered_step_up_review_is_escalated_and_a_declined_one_keeps_the_level(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    assert 'positive_result_action = "review"' in REVIEW_POLICY
    episode = f"ep-step-up-review-{uuid.uuid4().hex[:6]}"
    async with episode_worker(skipping_env, store, policy_text=REVIEW_POLICY) as episodes:
        await episodes.open(meta(), OpenEpisode(episode, "client-s", assessment=RecordAssessment(MILD, "clin-1")))
        test_id = (await episodes.send(episode, meta(), OrderTest("clin-1"))).events[0].data["test_id"]
        [ordered] = [e for e in events_of(store, episode, "TestOrdered") if e.payload["test_id"] == test_id]
        collected = ordered.occurred_at  # collected as it was ordered
        positive = RecordTestResult(test_id, TestResult.POSITIVE, TestMethod.CONFIRMED, collected, "L-1", ("heroin",))
        recorded = await episodes.send(episode, meta(actor="svc:lab-1"), positive)
        assert [e.type for e in recorded.events][-1] == "StepUpPending"

        handle = skipping_env.client.get_workflow_handle(workflow_id(episode))
        await skipping_env.fast_forward(handle, DAY * (DUE_DAYS + 0.5))
        escalated = await eventually(
            lambda: episodes.state(episode),
            lambda s: s is not None and "step_up_review_overdue" in s["flags"],
            "the step-up review escalated",
        )
        declined = await episodes.send(episode, meta(), DecideStepUp(test_id, False, "clin-2", "managed at IOP"))
        state = await episodes.state(episode)

    assert escalated["level"] == "intensive_outpatient" and escalated["pending_step_up"]["test_id"] == test_id
    [flag] = [e for e in events_of(store, episode, "FlagRaised") if e.payload["flag"] == "step_up_review_overdue"]
    assert flag.metadata.actor == "clock"  # the episode's own timer, not a person
    assert [e.type for e in declined.events] == ["StepUpReviewDecided"]
    assert declined.events[0].data["confirmed"] is False
    assert state is not None and state["level"] == "intensive_outpatient" and state["pending_step_up"] is None
    assert "step_up_review_overdue" not in state["flags"]
    assert events_of(store, episode, "LevelChanged") == []
    assert projected_row(store, episode).level == "intensive_outpatient"
