"""Random drug testing in the episode workflow, on the real Temporal dev server (time skipping) and PostgreSQL."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from continuum.domain.codec import parse_instant
from continuum.domain.commands import (
    CancelTest,
    OpenEpisode,
    OrderTest,
    RecordAssessment,
    RecordSpecimenCollection,
    RecordTestResult,
)
from continuum.domain.errors import CommandRejected
from continuum.domain.testing import TestMethod, TestResult
from continuum.episodes import EpisodeCommands
from continuum.eventlog.store import PostgresEventStore
from continuum.workflows.episode import workflow_id
from tests.integration.episodes import DAY, awaitable, episode_worker, events_of, eventually, meta, projected_row
from tests.integration.lab_server import lab_server

pytestmark = pytest.mark.integration
MILD = (1, 1, 1, 1, 1, 1)  # intensive outpatient: two tests a week


async def open_at_iop(episodes: EpisodeCommands, episode: str) -> None:
    await episodes.open(meta(), OpenEpisode(episode, f"client-{episode}", assessment=RecordAssessment(MILD, "clin-1")))


async def first_order(
    env: WorkflowEnvironment, episodes: EpisodeCommands, store: PostgresEventStore, episode: str
) -> Any:
    """Move the episode's clock to its first scheduled test and return the order."""
    draw = (
        await eventually(lambda: awaitable(events_of(store, episode, "TestScheduleDrawn")), bool, "a schedule drawn")
    )[0]
    first_day = min(draw.payload["chosen_days"])
    handle = env.client.get_workflow_handle(workflow_id(episode))
    await env.fast_forward(handle, DAY * (first_day + 0.25))
    return (await eventually(lambda: awaitable(events_of(store, episode, "TestOrdered")), bool, "a test ordered"))[0]


async def test_the_schedule_is_drawn_recorded_and_ordered_with_the_lab_told_once_despite_a_failure(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    episode = "ep-schedule"
    with lab_server(fail_first=1) as lab:
        async with episode_worker(skipping_env, store, lab_order_url=lab.url) as episodes:
            await open_at_iop(episodes, episode)
            order = await first_order(skipping_env, episodes, store, episode)
            await eventually(lambda: awaitable(lab.accepted), lambda a: order.payload["test_id"] in a, "lab told")
            state = await episodes.state(episode)

    [draw] = events_of(store, episode, "TestScheduleDrawn")
    assert draw.payload["level"] == "intensive_outpatient" and len(draw.payload["chosen_days"]) == 8
    assert draw.payload["eligible_days"] == list(range(28)) and len(draw.payload["weights"]) == 28
    assert order.payload["reason"] == "scheduled" and order.metadata.actor == "clock"
    assert state is not None and len(state["planned_tests"]) == 7
    assert [a["key"] for a in lab.attempts] == [order.payload["test_id"]] * 2  # failed once, retried once
    assert lab.accepted[order.payload["test_id"]]["episode_id"] == episode


async def test_a_replay_draws_the_same_schedule(skipping_env: WorkflowEnvironment, store: PostgresEventStore) -> None:
    """With no workflow cache every task replays the whole history: the random draw must come out the same."""
    episode = "ep-replay"
    async with episode_worker(skipping_env, store, max_cached_workflows=0) as episodes:
        await open_at_iop(episodes, episode)
        await first_order(skipping_env, episodes, store, episode)
        await episodes.send(episode, meta(), OrderTest("clin-1"))  # more tasks, each a full replay
        state = await episodes.state(episode)

    [draw] = events_of(store, episode, "TestScheduleDrawn")
    start = parse_instant(draw.payload["window_start"])
    drawn = [start + DAY * d for d in sorted(draw.payload["chosen_days"])]
    assert state is not None
    planned = [parse_instant(p) for p in state["planned_tests"]]
    assert planned == drawn[1:]  # the replayed state is the recorded draw, less the test already ordered


async def test_a_positive_at_iop_steps_up_and_every_outcome_names_its_cause(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    episode = "ep-positive"
    async with episode_worker(skipping_env, store) as episodes:
        await open_at_iop(episodes, episode)
        order = await first_order(skipping_env, episodes, store, episode)
        test_id = order.payload["test_id"]
        collected = order.occurred_at + timedelta(hours=1)
        command = meta("lab-result-1", actor="svc:lab-3")
        result = await episodes.send(
            episode,
            command,
            RecordTestResult(test_id, TestResult.POSITIVE, TestMethod.CONFIRMED, collected, "L-77", ("fentanyl",)),
        )
        again = await episodes.send(
            episode,
            meta(actor="svc:lab-3"),
            RecordTestResult(test_id, TestResult.POSITIVE, TestMethod.CONFIRMED, collected, "L-77", ("fentanyl",)),
        )
        with pytest.raises(CommandRejected, match="already has a confirmed result"):
            await episodes.send(
                episode,
                meta(actor="svc:lab-3"),
                RecordTestResult(test_id, TestResult.NEGATIVE, TestMethod.CONFIRMED, collected, "L-78"),
            )
        with pytest.raises(CommandRejected, match="no test ep-positive.T99 was ordered"):
            await episodes.send(
                episode,
                meta(actor="svc:lab-3"),
                RecordTestResult("ep-positive.T99", TestResult.NEGATIVE, TestMethod.CONFIRMED, collected, "L-79"),
            )

        if (
            os.environ.get("CONTINUUM_RECORD_HISTORIES")
            and not (Path(__file__).resolve().parents[1] / "histories" / "episode_drug_testing.json").exists()
        ):  # earlier code's recording stays
            history = await skipping_env.client.get_workflow_handle(workflow_id(episode)).fetch_history()
            (Path(__file__).resolve().parents[1] / "histories" / "episode_drug_testing.json").write_text(
                history.to_json()
            )

    assert [e.type for e in result.events] == ["TestResultRecorded", "SobrietyDateReset", "LevelChanged"]
    assert again.events == []  # the identical result again records nothing
    assert projected_row(store, episode).level == "residential"
    recorded = {e.event_type: e for e in store.read_stream(episode) if e.metadata.causation_id == "lab-result-1"}
    assert set(recorded) == {"TestResultRecorded", "SobrietyDateReset", "LevelChanged"}
    assert events_of(store, episode, "TestScheduleDrawn")[-1].payload["level"] == "residential"  # redrawn
    for kind in ("TestResultRecorded", "SobrietyDateReset", "LevelChanged"):
        assert recorded[kind].metadata.causation_id == "lab-result-1" and recorded[kind].metadata.actor == "svc:lab-3"
    step = recorded["LevelChanged"].payload
    assert step["cause_test_id"] == test_id and step["direction"] == "up" and "fentanyl" in step["cause"]
    assert "rule step_up.intensive_outpatient -> residential" in step["cause"]


async def test_refused_steps_up_and_a_presumptive_positive_then_negative_confirmation_does_not(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    async with episode_worker(skipping_env, store) as episodes:
        await open_at_iop(episodes, "ep-refused")
        await open_at_iop(episodes, "ep-unconfirmed")
        refused = await episodes.send("ep-refused", meta(), OrderTest("clin-1"))
        unconfirmed = await episodes.send("ep-unconfirmed", meta(), OrderTest("clin-1"))
        refused_id = refused.events[0].data["test_id"]
        unconfirmed_id = unconfirmed.events[0].data["test_id"]
        now = parse_instant(refused.events[0].data["occurred_at"])
        collected = await episodes.send(
            "ep-refused", meta(actor="svc:site-1"), RecordSpecimenCollection(refused_id, now, True, True, "site-1")
        )
        cancelled_order = await episodes.send("ep-refused", meta(), OrderTest("clin-1"))
        await episodes.send(
            "ep-refused", meta(), CancelTest(cancelled_order.events[0].data["test_id"], "clin-1", "duplicate order")
        )
        with pytest.raises(CommandRejected, match="was cancelled; no result is expected"):
            await episodes.send(
                "ep-refused",
                meta(),
                RecordTestResult(
                    cancelled_order.events[0].data["test_id"], TestResult.NEGATIVE, TestMethod.CONFIRMED, now, "C-9"
                ),
            )
        await episodes.send(
            "ep-refused", meta(), RecordTestResult(refused_id, TestResult.REFUSED, TestMethod.PRESUMPTIVE, now, "P-1")
        )
        pending = await episodes.send(
            "ep-unconfirmed",
            meta(),
            RecordTestResult(unconfirmed_id, TestResult.POSITIVE, TestMethod.PRESUMPTIVE, now, "P-2", ("cocaine",)),
        )
        cancelled = await episodes.send(
            "ep-unconfirmed",
            meta(),
            RecordTestResult(unconfirmed_id, TestResult.NEGATIVE, TestMethod.CONFIRMED, now, "C-2"),
        )

    assert [e.type for e in collected.events] == ["SpecimenCollected"]
    assert projected_row(store, "ep-refused").level == "residential"
    assert [e.type for e in pending.events] == ["TestResultRecorded", "StepUpPending"]
    assert [e.type for e in cancelled.events] == ["TestResultRecorded", "StepUpCancelled"]
    assert projected_row(store, "ep-unconfirmed").level == "intensive_outpatient"


async def test_a_missing_result_is_flagged_for_the_director(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    episode = "ep-missing"
    async with episode_worker(skipping_env, store) as episodes:
        await open_at_iop(episodes, episode)
        ordered = await episodes.send(episode, meta(), OrderTest("clin-1"))
        test_id = ordered.events[0].data["test_id"]
        handle = skipping_env.client.get_workflow_handle(workflow_id(episode))
        await skipping_env.fast_forward(handle, DAY * 3.2)
        overdue = await eventually(
            lambda: awaitable(events_of(store, episode, "TestResultOverdue")), bool, "result overdue"
        )

    assert any(e.payload["test_id"] == test_id for e in overdue)
    assert f"result_missing:{test_id}" in projected_row(store, episode).flags
