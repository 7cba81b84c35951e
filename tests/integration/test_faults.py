"""Reliability under faults, with real processes: servers stopped and restarted, workers killed, commands
racing, unreadable records. Every wait is bounded, and everything started here is stopped here."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from continuum.access import Role
from continuum.api.app import create_app
from continuum.api.services import Services
from continuum.domain.commands import OpenEpisode, PutOnHold, RecordAssessment, RecordReviewOutcome
from continuum.domain.episode import HoldReason, ReviewOutcome
from continuum.domain.errors import UnknownEventType
from continuum.episodes import EpisodeCommands
from continuum.eventlog.db import make_engine
from continuum.eventlog.migrate import apply_migrations
from continuum.eventlog.projection import EpisodesProjection, rebuild_episodes
from continuum.eventlog.records import NewEvent
from continuum.eventlog.store import PostgresEventStore
from continuum.eventlog.verify import verify_log
from continuum.runtime.servers import EmbeddedPostgres, EmbeddedTemporal
from continuum.workflows.episode import workflow_id
from continuum.workflows.search_attributes import SEARCH_ATTRIBUTES
from tests.integration.episodes import (
    DAY,
    WITHOUT_TESTING,
    episode_worker,
    eventually,
    free_port,
    meta,
    worker_process,
)
from tests.integration.stacks import Stack
from tests.payloads import PAYLOADS

pytestmark = pytest.mark.integration
MILD = (1, 1, 1, 1, 1, 1)
WITHDRAWAL_RISK = (3, 1, 2, 2, 2, 2)
SHORT_STAYS = WITHOUT_TESTING.replace("intensive_outpatient = 30\n", "intensive_outpatient = 3\n", 1)


def _assert_clean(store: PostgresEventStore, episode: str) -> list[str]:
    events = store.read_stream(episode)
    assert [e.stream_version for e in events] == list(range(1, len(events) + 1))
    assert len({e.event_id for e in events}) == len(events)
    assert verify_log(store.engine).ok
    return [e.event_type for e in events]


async def test_refused_requests_are_logged_without_their_payload(stack: Stack) -> None:
    from structlog.testing import capture_logs

    secret_note = "client disclosed relapse to partner"
    with capture_logs() as logs:
        await stack.http.post(
            "/api/v1/episodes",
            json={"episode_id": stack.e1, "client_id": "c"},
            headers={"Authorization": "Bearer ck_wrong"},
        )
        await stack.post(f"/api/v1/episodes/{stack.e1}/discharge", {"reason": "nope", "note": secret_note})
        await stack.http.post("/api/v1/episodes", content=b"{" + b" " * 70_000 + b"}", headers=stack.auth("clinician"))

    refused = [entry for entry in logs if entry["event"] == "api.refused"]
    assert [entry["status"] for entry in refused] == [401, 422, 413]
    assert refused[0]["path"] == "/api/v1/episodes" and refused[1]["reason"] == "invalid reason"
    assert not any(secret_note in str(entry) or "ck_" in str(entry) for entry in logs)


async def test_two_services_racing_on_one_episode_one_wins_and_the_other_gets_409(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    path = f"/api/v1/episodes/{stack.e1}/hold"

    first, second = await asyncio.gather(
        stack.post(path, {"reason": "leave"}), stack.post(path, {"reason": "hospitalised"})
    )

    assert sorted([first.status_code, second.status_code]) == [200, 409]
    loser = first if first.status_code == 409 else second
    assert "on hold" in loser.json()["detail"]
    assert _assert_clean(stack.store, stack.e1).count("EpisodePutOnHold") == 1


def test_an_unknown_event_type_is_refused_on_append_and_named_when_found_in_the_log(
    store: PostgresEventStore, superuser_engine: Any, database_url: str, tmp_path: Path
) -> None:
    from continuum.domain.codec import to_envelope
    from continuum.domain.events import EpisodeOpened
    from continuum.domain.ids import ClientId, EpisodeId

    opened = EpisodeOpened(EpisodeId("ep-x"), datetime.now(UTC), ClientId("c-1"))
    envelope = to_envelope(opened)
    store.append(
        "ep-x", [NewEvent(uuid.uuid4(), envelope.type, 1, envelope.data, opened.occurred_at)], expected_version=0
    )
    bogus = NewEvent(uuid.uuid4(), "ClientTeleported", 1, {"episode_id": "ep-x"}, opened.occurred_at)
    with pytest.raises(UnknownEventType, match="unknown event type 'ClientTeleported'"):
        store.append("ep-x", [bogus], expected_version=1)
    assert len(store.read_stream("ep-x")) == 1
    # written behind the store's back, by someone with the owner's rights:
    raw = PostgresEventStore(superuser_engine)  # no projector: nothing reads the type on the way in
    raw.append("ep-x", [bogus], expected_version=1)
    with pytest.raises(UnknownEventType):
        rebuild_episodes(store)
    result = subprocess.run(
        [sys.executable, "-m", "continuum.cli", "projections", "rebuild"],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": database_url,
            "CONTINUUM_DATA_DIR": str(tmp_path),
            "CONTINUUM_LOG_FORMAT": "json",
        },
    )
    assert result.returncode == 2 and "continuum: unknown event type 'ClientTeleported'" in result.stderr


async def test_postgresql_down_while_commands_run_is_retried_with_nothing_lost_or_doubled(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    postgres = EmbeddedPostgres(tmp_path / "pg")
    url = postgres.start()
    try:
        apply_migrations(url)
        store = PostgresEventStore(make_engine(url, role="continuum_app"), projectors=[EpisodesProjection()])
        episode = f"ep-pgdown-{uuid.uuid4().hex[:6]}"
        async with episode_worker(temporal_env, store, policy_text=WITHOUT_TESTING) as episodes:
            services = Services.build(episodes, store)
            secret = services.keys.create("director-1", Role.DIRECTOR)[1]
            await episodes.open(meta(), OpenEpisode(episode, "client-1", assessment=RecordAssessment(MILD, "clin-1")))
            postgres.stop()  # PostgreSQL goes down

            hold = asyncio.ensure_future(
                episodes.send(episode, meta("hold-during-outage"), PutOnHold(HoldReason.LEAVE))
            )
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(services)), base_url="http://t"
            ) as http:
                during = await http.get("/api/v1/census", headers={"Authorization": f"Bearer {secret}"})
            await asyncio.sleep(2)
            assert not hold.done()  # the append is being retried by Temporal, not failed

            postgres.start()  # and comes back
            result = await asyncio.wait_for(hold, timeout=120)

        assert during.status_code == 503 and during.headers["Retry-After"] == "5"
        assert [e.type for e in result.events] == ["EpisodePutOnHold"]
        assert _assert_clean(store, episode) == [
            "EpisodeOpened",
            "AssessmentRecorded",
            "PlacementDecided",
            "StayStarted",
            "EpisodePutOnHold",
        ]
        with store.engine.connect() as conn:
            assert (
                conn.execute(text("SELECT status FROM episodes WHERE episode_id = :e"), {"e": episode}).scalar()
                == "on_hold"
            )
        store.engine.dispose()
    finally:
        postgres.stop()


async def test_temporal_stopped_and_restarted_with_its_database_keeps_episodes_and_timers(
    store: PostgresEventStore, database_url: str, tmp_path: Path
) -> None:
    temporal = EmbeddedTemporal(tmp_path / "temporal", free_port(), free_port(), "default", SEARCH_ATTRIBUTES)
    address = temporal.start()
    queue = f"restart-{uuid.uuid4().hex[:6]}"
    worker = worker_process(address, database_url, queue, tmp_path)
    try:
        client = await Client.connect(address, data_converter=PAYLOADS)
        episodes = EpisodeCommands(client, queue, policy_text=SHORT_STAYS, day=timedelta(seconds=2))
        episode = f"ep-restart-{uuid.uuid4().hex[:6]}"
        await episodes.open(meta(), OpenEpisode(episode, "client-1", assessment=RecordAssessment(MILD, "clin-1")))
        temporal.stop()  # the review timer (3 care days = 6 s) is pending while the server is down
        await asyncio.sleep(3)
        temporal.start()
        state = await eventually(
            lambda: _state(episodes, episode),
            lambda s: bool(s and s["pending_review"]),
            "the review timer fired after the restart",
            tries=1200,
        )
        review = state["pending_review"]["review_id"]
        await episodes.send(episode, meta(), RecordReviewOutcome(review, ReviewOutcome.EXTEND, "ther-1", 30))
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=60)
        temporal.stop()

    assert _assert_clean(store, episode)[-2:] == ["ReviewRequested", "ReviewCompleted"]


async def _state(episodes: EpisodeCommands, episode: str) -> dict[str, Any] | None:
    try:
        return await episodes.state(episode)
    except Exception:  # the frontend is still coming back
        return None


async def test_a_worker_killed_mid_cohort_is_replaced_and_every_episode_continues(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore, database_url: str, tmp_path: Path
) -> None:
    queue = f"cohort-{uuid.uuid4().hex[:6]}"
    episodes = EpisodeCommands(skipping_env.client, queue, policy_text=WITHOUT_TESTING)
    cohort = [f"ep-cohort-{uuid.uuid4().hex[:6]}-{n}" for n in range(8)]
    address = skipping_env.client.service_client.config.target_host
    first = worker_process(address, database_url, queue, tmp_path)
    await asyncio.gather(
        *(
            episodes.open(meta(), OpenEpisode(e, f"client-{n}", assessment=RecordAssessment(WITHDRAWAL_RISK, "clin-1")))
            for n, e in enumerate(cohort)
        )
    )
    moving = [
        asyncio.ensure_future(
            skipping_env.fast_forward(skipping_env.client.get_workflow_handle(workflow_id(e)), DAY * 3.5)
        )
        for e in cohort
    ]
    await asyncio.sleep(0.5)
    first.send_signal(signal.SIGKILL)  # mid-cohort: some reviews requested, some not yet
    first.wait()
    second = worker_process(address, database_url, queue, tmp_path)
    try:
        await asyncio.gather(*moving)
        for episode in cohort:
            await eventually(
                lambda e=episode: _state(episodes, e), lambda s: bool(s and s["pending_review"]), f"{episode} review"
            )
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(timeout=60)

    for episode in cohort:
        assert _assert_clean(store, episode)[-1] == "ReviewRequested"
