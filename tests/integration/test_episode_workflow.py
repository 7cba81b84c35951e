"""EpisodeWorkflow on the real Temporal dev server (time skipping v2) and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from continuum.domain.commands import Discharge, OpenEpisode, PutOnHold, RecordAssessment, RecordReviewOutcome, Resume
from continuum.domain.episode import DischargeReason, HoldReason, ReviewOutcome
from continuum.domain.errors import CommandRejected, UnknownEpisode
from continuum.domain.levels import LevelOfCare
from continuum.domain.policy import load_policy
from continuum.episodes import EpisodeCommands
from continuum.eventlog.store import PostgresEventStore
from continuum.eventlog.verify import verify_log
from continuum.workflows.episode import EPISODE_WORKFLOWS, PATCH_CARE_EPISODE, EpisodeWorkflow, workflow_id
from tests.integration.episodes import (
    DAY,
    WITHOUT_TESTING,
    episode_worker,
    eventually,
    meta,
    projected_row,
    replay_recorded,
    worker_process,
)

pytestmark = pytest.mark.integration
POLICY = load_policy(WITHOUT_TESTING)
CARE_PATHWAY = {
    "EpisodeOpened",
    "AssessmentRecorded",
    "PlacementDecided",
    "StayStarted",
    "ReviewRequested",
    "ReviewCompleted",
    "LevelChanged",
    "EpisodeClosed",
}
HISTORIES = Path(__file__).resolve().parents[1] / "histories"
WITHDRAWAL_RISK = (3, 1, 2, 2, 2, 2)  # withdrawal management first, then residential
MILD = (1, 1, 1, 1, 1, 1)  # intensive outpatient


def types(store: PostgresEventStore, episode: str) -> list[str]:
    return [e.event_type for e in store.read_stream(episode)]


async def pending_review(episodes: EpisodeCommands, episode: str) -> dict[str, Any]:
    state = await eventually(lambda: episodes.state(episode), lambda s: s and s["pending_review"], "review requested")
    return state["pending_review"]  # type: ignore[no-any-return]


def handle_of(env: WorkflowEnvironment, episode: str) -> WorkflowHandle[Any, Any]:
    return env.client.get_workflow_handle(workflow_id(episode))


def patch_markers(history: WorkflowHistory) -> list[str]:
    """The patch ids a run's history records (the SDK's `core_patch` markers)."""
    return [
        json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)["id"]
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]


async def test_a_whole_journey_from_withdrawal_management_to_completed_aftercare(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    episode = "ep-journey"
    async with episode_worker(skipping_env, store, policy_text=WITHOUT_TESTING) as episodes:
        opened = await episodes.open(
            meta(), OpenEpisode(episode, "client-1", assessment=RecordAssessment(WITHDRAWAL_RISK, "clin-1"))
        )
        assert [e.type for e in opened.events] == [
            "EpisodeOpened",
            "AssessmentRecorded",
            "PlacementDecided",
            "StayStarted",
        ]
        handle = handle_of(skipping_env, episode)
        first_run_id = (await handle.describe()).run_id
        first_run = skipping_env.client.get_workflow_handle(workflow_id(episode), run_id=first_run_id)
        path = [
            LevelOfCare.WITHDRAWAL_MANAGEMENT,
            LevelOfCare.RESIDENTIAL,
            LevelOfCare.INTENSIVE_OUTPATIENT,
            LevelOfCare.OUTPATIENT,
        ]
        for level in path:
            assert projected_row(store, episode).level == level.value
            await skipping_env.fast_forward(handle, DAY * (POLICY.stay_minimum_days[level] + 0.5))
            review = await pending_review(episodes, episode)
            assert [t for t in types(store, episode) if t in CARE_PATHWAY][-1] == "ReviewRequested"
            assert review["level"] == level.value
            moved = await episodes.send(
                episode, meta(), RecordReviewOutcome(review["review_id"], ReviewOutcome.GOALS_MET, "ther-1")
            )
            assert [e.type for e in moved.events][:2] == ["ReviewCompleted", "LevelChanged"]  # then aftercare's
            assert moved.events[1].data["direction"] == "down"
        assert projected_row(store, episode).level == "aftercare"
        await skipping_env.fast_forward(handle, DAY * (POLICY.stay_minimum_days[LevelOfCare.AFTERCARE] + 1))
        final = await handle.result()
        description = await handle.describe()

    assert final["status"] == "closed" and final["discharge_reason"] == "completed"
    row = projected_row(store, episode)
    assert (row.status, row.level, row.flags) == ("closed", "aftercare", [])
    recorded = types(store, episode)
    assert [t for t in recorded if t in CARE_PATHWAY] == [
        "EpisodeOpened",
        "AssessmentRecorded",
        "PlacementDecided",
        "StayStarted",
        *["ReviewRequested", "ReviewCompleted", "LevelChanged"] * 4,
        "EpisodeClosed",
    ]
    # 7 and 30 days after leaving withdrawal management and residential; 30, 60, 90 days of aftercare, then quarterly
    assert recorded.count("FollowUpRequested") == 2 + 2 + 6 and "ReferralIssued" in recorded
    closing = store.read_stream(episode)[-1]
    assert closing.payload["teds"] == "completed" and closing.metadata.actor == "clock"
    assert all(e.metadata.workflow_id == workflow_id(episode) for e in store.read_stream(episode))
    assert verify_log(store.engine).ok
    attributes = {key: value for key, value in description.search_attributes.items()}
    assert attributes["ContinuumStatus"] == ["closed"] and attributes["ContinuumLevel"] == ["aftercare"]
    history = await first_run.fetch_history()  # the run that carried the episode from its open
    assert description.workflow_type == "CareEpisode" and patch_markers(history) == []
    # episode_journey.json is EpisodeWorkflow's journey (with its patches); this one is the CareEpisode type's.
    if os.environ.get("CONTINUUM_RECORD_HISTORIES") and not (HISTORIES / "care_episode_journey.json").exists():
        (HISTORIES / "care_episode_journey.json").write_text(history.to_json())  # earlier code's recording stays


async def test_an_overdue_review_is_escalated_and_cleared_by_the_outcome(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    episode = "ep-overdue"
    async with episode_worker(skipping_env, store, policy_text=WITHOUT_TESTING) as episodes:
        await episodes.open(meta(), OpenEpisode(episode, "client-2", assessment=RecordAssessment(MILD, "clin-1")))
        handle = handle_of(skipping_env, episode)
        await skipping_env.fast_forward(handle, DAY * 30.5)
        review = await pending_review(episodes, episode)
        await skipping_env.fast_forward(handle, DAY * (POLICY.review_due_days + 1))
        await eventually(lambda: episodes.state(episode), lambda s: s["pending_review"]["escalated"], "escalation")
        assert types(store, episode)[-2:] == ["ReviewRequested", "ReviewEscalated"]
        assert projected_row(store, episode).flags == ["review_overdue"]

        await episodes.send(
            episode, meta(), RecordReviewOutcome(review["review_id"], ReviewOutcome.EXTEND, "ther-1", 10)
        )

        assert projected_row(store, episode).flags == []
        assert types(store, episode)[-1] == "ReviewCompleted"


async def test_a_discharge_against_medical_advice_mid_stay_closes_the_episode(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    episode = "ep-ama"
    async with episode_worker(skipping_env, store, policy_text=WITHOUT_TESTING) as episodes:
        await episodes.open(meta(), OpenEpisode(episode, "client-3", assessment=RecordAssessment(MILD, "clin-1")))
        handle = handle_of(skipping_env, episode)
        await skipping_env.fast_forward(handle, DAY * 12)
        result = await episodes.send(episode, meta(), Discharge(DischargeReason.AGAINST_MEDICAL_ADVICE))
        final = await handle.result()
        with pytest.raises(CommandRejected, match="the episode is closed"):
            await episodes.send(episode, meta(), PutOnHold(HoldReason.LEAVE))
        with pytest.raises(CommandRejected, match="a readmission is a new episode with previous_episode_id=ep-ama"):
            await episodes.open(meta(), OpenEpisode(episode, "client-3"))
        await episodes.open(meta(), OpenEpisode("ep-ama-2", "client-3", previous_episode_id=episode))
        readmitted = await episodes.state("ep-ama-2") or {}
        with pytest.raises(UnknownEpisode, match="no episode ep-never-opened"):
            await episodes.send("ep-never-opened", meta(), PutOnHold(HoldReason.LEAVE))

    assert [e.type for e in result.events] == ["EpisodeClosed"]
    assert result.events[0].data["teds"] == "dropped_out"
    assert readmitted["previous_episode_id"] == episode and types(store, episode).count("EpisodeOpened") == 1
    assert final["status"] == "closed" and projected_row(store, episode).status == "closed"
    assert types(store, episode)[-1] == "EpisodeClosed"


async def test_hold_and_resume_stop_and_restart_the_stay_clock(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    episode = "ep-hold"
    async with episode_worker(skipping_env, store, policy_text=WITHOUT_TESTING) as episodes:
        await episodes.open(meta(), OpenEpisode(episode, "client-4", assessment=RecordAssessment(MILD, "clin-1")))
        handle = handle_of(skipping_env, episode)
        await skipping_env.fast_forward(handle, DAY * 10)
        await episodes.send(episode, meta(), PutOnHold(HoldReason.HOSPITALISED))
        assert projected_row(store, episode).status == "on_hold"
        await skipping_env.fast_forward(handle, DAY * 40)  # past the 30-day review point, but on hold
        assert (await episodes.state(episode))["pending_review"] is None  # type: ignore[index]
        await episodes.send(episode, meta(), Resume())
        await skipping_env.fast_forward(handle, DAY * 19.5)  # 29.5 days on the care clock
        assert (await episodes.state(episode))["pending_review"] is None  # type: ignore[index]
        await skipping_env.fast_forward(handle, DAY * 1)
        await pending_review(episodes, episode)

    assert types(store, episode)[-3:] == ["EpisodePutOnHold", "EpisodeResumed", "ReviewRequested"]
    resumed = store.read_stream(episode)[-2]
    assert resumed.payload["held_seconds"] == pytest.approx(40 * 86400, rel=1e-3)


async def test_a_rejected_command_records_nothing_and_says_why(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    episode = "ep-rejected"
    async with episode_worker(skipping_env, store, policy_text=WITHOUT_TESTING) as episodes:
        await episodes.open(meta(), OpenEpisode(episode, "client-5"))
        before = types(store, episode)

        with pytest.raises(CommandRejected, match="has not been assessed yet"):
            await episodes.send(episode, meta(), PutOnHold(HoldReason.LEAVE))
        with pytest.raises(CommandRejected, match="dimension 2 .* must be rated 0-4"):
            await episodes.send(episode, meta(), RecordAssessment((1, 7, 1, 1, 1, 1), "clin-1"))
        with pytest.raises(CommandRejected, match="already open"):
            await episodes.open(meta(), OpenEpisode(episode, "client-5"))
        with pytest.raises(CommandRejected, match="a staff id is"):
            await episodes.send(episode, meta(actor="Dr Jane Doe"), RecordAssessment(MILD, "clin-1"))
        history = await handle_of(skipping_env, episode).fetch_history()

    assert types(store, episode) == before == ["EpisodeOpened"]
    assert projected_row(store, episode).status == "intake"
    assert not any(
        e.HasField("workflow_execution_update_accepted_event_attributes")
        and e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name == "put_on_hold"
        for e in history.events
    )


async def test_the_same_command_id_twice_records_once_even_across_continue_as_new(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    episode = "ep-twice"
    async with episode_worker(skipping_env, store, policy_text=WITHOUT_TESTING, continue_as_new_after=2) as episodes:
        open_meta = meta("open-1")
        first_open = await episodes.open(
            open_meta, OpenEpisode(episode, "client-6", assessment=RecordAssessment(MILD, "clin-1"))
        )
        again_open = await episodes.open(
            open_meta, OpenEpisode(episode, "client-6", assessment=RecordAssessment(MILD, "clin-1"))
        )
        handle = handle_of(skipping_env, episode)
        first_run = (await handle.describe()).run_id
        hold = meta("hold-1")
        first_hold = await episodes.send(episode, hold, PutOnHold(HoldReason.LEAVE))  # the 2nd command of the run
        await eventually(handle.describe, lambda d: d.run_id != first_run, "continued as new")
        again_hold = await episodes.send(episode, hold, PutOnHold(HoldReason.LEAVE))
        resumed = await episodes.send(episode, meta(), Resume())
        state = await episodes.state(episode)

    assert again_open.events == first_open.events and again_hold.events == first_hold.events
    assert again_hold.state == {} and state is not None and state["status"] == "active"
    assert types(store, episode) == [
        "EpisodeOpened",
        "AssessmentRecorded",
        "PlacementDecided",
        "StayStarted",
        "EpisodePutOnHold",
        "EpisodeResumed",
    ]
    assert [e.type for e in resumed.events] == ["EpisodeResumed"]
    assert state is not None and state["status"] == "active" and state["version"] == 6


async def test_an_episode_started_as_episode_workflow_continues_as_a_care_episode_with_its_state(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    """Versioning by type: a run of the old type keeps its patches (markers and all) and moves to CareEpisode,
    which records none, at its next continue-as-new; the episode goes on as if nothing happened."""
    episode = "ep-old-type"
    async with episode_worker(skipping_env, store, policy_text=WITHOUT_TESTING, continue_as_new_after=2) as episodes:
        handle = await skipping_env.client.start_workflow(
            EpisodeWorkflow.run, episodes._input(episode), id=workflow_id(episode), task_queue=episodes.task_queue
        )
        await episodes.open(meta(), OpenEpisode(episode, "client-8", assessment=RecordAssessment(MILD, "clin-1")))
        await episodes.send(episode, meta(), PutOnHold(HoldReason.LEAVE))  # the 2nd command of the run
        first_run = skipping_env.client.get_workflow_handle(workflow_id(episode), run_id=handle.first_execution_run_id)
        old_run = await first_run.fetch_history()
        latest = skipping_env.client.get_workflow_handle(workflow_id(episode))
        description = await eventually(latest.describe, lambda d: d.run_id != handle.result_run_id, "continued as new")
        resumed = await episodes.send(episode, meta(), Resume())
        new_run = await latest.fetch_history()
        state = await episodes.state(episode)

    assert (await first_run.describe()).workflow_type == "EpisodeWorkflow"
    assert description.workflow_type == "CareEpisode"
    assert PATCH_CARE_EPISODE in patch_markers(old_run) and patch_markers(new_run) == []
    assert [e.type for e in resumed.events] == ["EpisodeResumed"] and state is not None and state["version"] == 6
    assert types(store, episode)[-2:] == ["EpisodePutOnHold", "EpisodeResumed"]


async def test_a_worker_killed_mid_episode_is_replaced_without_duplicates_or_gaps(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore, database_url: str, tmp_path: Path
) -> None:
    episode, queue = "ep-killed", "episodes-killed"
    episodes = EpisodeCommands(skipping_env.client, queue, policy_text=WITHOUT_TESTING)
    address = skipping_env.client.service_client.config.target_host
    first = worker_process(address, database_url, queue, tmp_path)
    await episodes.open(
        meta(), OpenEpisode(episode, "client-7", assessment=RecordAssessment(WITHDRAWAL_RISK, "clin-1"))
    )
    handle = handle_of(skipping_env, episode)
    await skipping_env.fast_forward(handle, DAY * 3.5)
    review = await pending_review(episodes, episode)
    first.send_signal(signal.SIGKILL)
    first.wait()

    outcome = asyncio.ensure_future(
        episodes.send(episode, meta(), RecordReviewOutcome(review["review_id"], ReviewOutcome.GOALS_MET, "ther-1"))
    )  # waits for a worker
    second = worker_process(address, database_url, queue, tmp_path)
    try:
        moved = await outcome
        await skipping_env.fast_forward(handle, DAY * 30.5)
        await pending_review(episodes, episode)
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(timeout=60)

    assert [e.type for e in moved.events] == ["ReviewCompleted", "LevelChanged", "FollowUpsScheduled"]
    events = store.read_stream(episode)
    assert [e.stream_version for e in events] == list(range(1, len(events) + 1))
    assert len({e.event_id for e in events}) == len(events)
    care = [e.event_type for e in events if e.event_type in CARE_PATHWAY]
    assert care[-4:] == ["ReviewRequested", "ReviewCompleted", "LevelChanged", "ReviewRequested"]
    assert projected_row(store, episode).level == "residential"
    assert verify_log(store.engine).ok
    assert second.returncode == 0


async def test_recorded_histories_replay_with_the_current_workflow_code() -> None:
    """Temporal's Replayer runs the current EpisodeWorkflow over histories recorded by earlier code: a change
    to the command sequence that is not patched fails here with a non-determinism error."""

    assert await replay_recorded(EPISODE_WORKFLOWS, HISTORIES, "episode"), "no recorded histories under tests/histories"


async def test_a_hold_stops_every_clock_of_the_episode(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    """Held in hospital past a pending review's escalation instant: nothing escalates during the hold, and the
    resumption moves the review's due date by the time held (issue 14, finding 1)."""
    episode = "ep-held"
    policy = load_policy(WITHOUT_TESTING)
    async with episode_worker(skipping_env, store, policy_text=WITHOUT_TESTING) as episodes:
        await episodes.open(meta(), OpenEpisode(episode, "client-h", assessment=RecordAssessment(MILD, "clin-1")))
        handle = handle_of(skipping_env, episode)
        await skipping_env.fast_forward(
            handle, DAY * (policy.stay_minimum_days[LevelOfCare.INTENSIVE_OUTPATIENT] + 0.5)
        )
        review = await pending_review(episodes, episode)
        await episodes.send(episode, meta(), PutOnHold(HoldReason.HOSPITALISED))
        await skipping_env.fast_forward(handle, DAY * (policy.review_due_days + policy.review_escalate_after_days + 3))
        resumed = await episodes.send(episode, meta(), Resume())
        after = await pending_review(episodes, episode)

    assert "ReviewEscalated" not in types(store, episode)
    assert resumed.events[0].data["clocks_moved"] is True
    assert any(m.startswith(f"review {review['review_id']} due") for m in resumed.events[0].data["moved"])
    held = timedelta(seconds=resumed.events[0].data["held_seconds"])
    moved_by = datetime.fromisoformat(after["due_at"]) - datetime.fromisoformat(review["due_at"])
    assert after["review_id"] == review["review_id"] and abs(moved_by - held) < timedelta(seconds=1)
