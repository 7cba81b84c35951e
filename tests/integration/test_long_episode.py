"""A long episode stays cheap: four months of intensive outpatient care with tests twice a week, on the real
Temporal dev server and PostgreSQL, with a care day compressed to a fraction of a second.

Not on the time-skipping server: across continue-as-new its experimental per-workflow skipping sometimes left
the new run without its first workflow task, or a started timer unfired past its instant (the histories showed
it: `WorkflowExecutionStarted` and nothing after, or `TimerStarted` and fast-forwards with no `TimerFired`).

The bench plays the lab (a negative result for every test ordered) and the therapist (every review extends
the stay). The episode must continue as new on its own bound, so no run's history passes
its bound by more than the commands in flight; carry a small input across; keep only recent
tests in the workflow's working state while the projection keeps all; and every run must replay with the
current code. With CONTINUUM_RECORD_HISTORIES set, the longest run is kept in tests/histories/.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from continuum.domain.commands import OpenEpisode, RecordAssessment, RecordReviewOutcome, RecordTestResult
from continuum.domain.episode import ReviewOutcome
from continuum.domain.errors import CommandRejected
from continuum.domain.retention import TEST_RECORD_OPEN_DAYS
from continuum.domain.testing import TestMethod, TestResult
from continuum.episodes import EpisodeCommands
from continuum.eventlog.store import PostgresEventStore
from continuum.eventlog.verify import verify_log
from continuum.workflows.episode import EPISODE_WORKFLOWS, workflow_id
from tests.integration.episodes import episode_worker, meta, projected_state

MILD = (1, 1, 1, 1, 1, 1)  # intensive outpatient: random tests twice a week
TESTS = 32  # twice a week: 16 weeks of care, past the 90 days a test stays in the working state
BOUND = 500  # the production mechanism at a larger bound: a few runs, each long enough to hold weeks of care
IN_FLIGHT_SLACK = 60  # events a run may add past the bound while the commands in flight finish
CARRIED_LIMIT = 64 * 1024  # bytes of the input carried across continue-as-new
COMPRESSED_DAY = timedelta(seconds=0.3)
STALLED_DAYS = 30  # care days without a new test: twice-a-week random tests never leave such a gap


async def _diagnosis(env: WorkflowEnvironment, episode: str) -> str:
    """What the current run was doing when the episode stopped ordering tests: its status, its clock, its
    timers and any workflow task failure (a stalled episode is a defect, so the failure must say why)."""
    handle = env.client.get_workflow_handle(workflow_id(episode))
    described = await handle.describe()
    events = [e async for e in handle.fetch_history_events()]
    kinds = [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events]
    failures = [e.workflow_task_failed_event_attributes.failure.message for e in events if e.HasField(_FAILED)]
    timers = [e.timer_started_event_attributes.start_to_fire_timeout.seconds for e in events if e.HasField(_TIMER)]
    return (
        f"run {described.run_id} {described.status}, {len(events)} events, timers (s) {timers}, "
        f"timers fired {kinds.count('TIMER_FIRED')}, cancelled {kinds.count('TIMER_CANCELED')}, task failures "
        f"{failures[-3:]}, events {[k for k in kinds if 'SKIPPING' not in k and 'OPTIONS' not in k]}"
    )


_FAILED, _TIMER = "workflow_task_failed_event_attributes", "timer_started_event_attributes"


async def _answer(episodes: EpisodeCommands, episode: str, state: dict[str, Any]) -> None:
    """A negative result for every test awaiting one, and an extended stay for a pending review."""
    for test in state["tests"]:
        if not test["cancelled"] and test["presumptive"] is None and test["confirmed"] is None:
            result = RecordTestResult(
                test["test_id"],
                TestResult.NEGATIVE,
                TestMethod.PRESUMPTIVE,
                test["ordered_at"],
                f"lab-{test['test_id']}",
            )
            try:
                await episodes.send(episode, meta(), result)
            except CommandRejected as error:  # only a test already closed may refuse a result
                assert "is closed to new results" in str(error)
    if state["pending_review"] is not None:
        review = RecordReviewOutcome(state["pending_review"]["review_id"], ReviewOutcome.EXTEND, "ther-1")
        await episodes.send(episode, meta(), review)


def _tests_ordered(store: PostgresEventStore, episode: str) -> int:
    with store.engine.connect() as conn:
        query = text("SELECT count(*) FROM events WHERE stream_id = :e AND event_type = 'TestOrdered'")
        return int(conn.execute(query, {"e": episode}).scalar_one())


async def test_four_months_of_care_continues_as_new_and_keeps_a_bounded_working_state(
    temporal_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    episode = "ep-long"
    async with episode_worker(temporal_env, store, history_events_bound=BOUND, day=COMPRESSED_DAY) as episodes:
        await episodes.open(meta(), OpenEpisode(episode, "client-long", assessment=RecordAssessment(MILD, "clin-1")))
        loop = asyncio.get_running_loop()
        ordered, last_new = 0, loop.time()
        while (count := _tests_ordered(store, episode)) < TESTS:
            ordered, last_new = (count, loop.time()) if count > ordered else (ordered, last_new)
            stalled = loop.time() - last_new > STALLED_DAYS * COMPRESSED_DAY.total_seconds()
            assert not stalled, f"no test for {STALLED_DAYS} care days: {await _diagnosis(temporal_env, episode)}"
            await asyncio.sleep(COMPRESSED_DAY.total_seconds() / 2)  # the lab and the therapist answer twice a day
            await _answer(episodes, episode, projected_state(store, episode))
        working = await episodes.state(episode)
        runs = [r async for r in temporal_env.client.list_workflows(f'WorkflowId = "{workflow_id(episode)}"')]
        histories = [
            await temporal_env.client.get_workflow_handle(workflow_id(episode), run_id=run.run_id).fetch_history()
            for run in runs
        ]

    projected = projected_state(store, episode)
    assert working is not None and projected["status"] == "active" and projected["level"] == "intensive_outpatient"
    ordered = [e for e in store.read_stream(episode) if e.event_type == "TestOrdered"]
    assert len(ordered) >= TESTS and len(projected["tests"]) == len(ordered)  # the projection keeps every test
    assert 0 < len(working["tests"]) < len(ordered)  # the working state keeps the recent ones
    assert working["tests_closed_through"] > 0
    horizon = len(working["tests"]) * 7 / 2  # twice a week: the kept tests cover about this many days
    assert horizon <= TEST_RECORD_OPEN_DAYS + 14

    lengths = sorted(len(h.events) for h in histories)
    assert len(histories) >= 2, f"never continued as new: {lengths}"
    assert lengths[-1] <= BOUND + IN_FLIGHT_SLACK, lengths
    for history in histories:
        started = history.events[0].workflow_execution_started_event_attributes
        assert sum(len(p.data) for p in started.input.payloads) < CARRIED_LIMIT
        replayer = Replayer(workflows=list(EPISODE_WORKFLOWS), data_converter=temporal_env.client.data_converter)
        replayed = await replayer.replay_workflow(history, raise_on_replay_failure=True)
        assert replayed.replay_failure is None
    assert verify_log(store.engine).ok

    if os.environ.get("CONTINUUM_RECORD_HISTORIES"):  # replayed by the test of recorded histories
        longest = max(histories, key=lambda h: len(h.events))
        path = Path(__file__).resolve().parents[1] / "histories" / "episode_long.json"
        path.write_text(WorkflowHistory(longest.workflow_id, longest.events).to_json())
