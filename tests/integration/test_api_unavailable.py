"""A command Temporal does not answer in time is a 503 with Retry-After, and its Idempotency-Key runs again."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from continuum.access import Role
from continuum.api import commands
from continuum.api.app import create_app
from continuum.api.services import Services
from continuum.bootstrap import WORKFLOWS, activities_for
from continuum.episodes import EpisodeCommands
from continuum.eventlog.store import PostgresEventStore

pytestmark = pytest.mark.integration


async def test_a_command_no_worker_answers_is_a_503_and_a_retry_with_its_key_runs_once(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commands, "COMMAND_TIMEOUT_SECONDS", 1.0)  # the default is a minute
    queue = f"nobody-{uuid.uuid4().hex[:8]}"  # no worker polls it yet
    services = Services.build(EpisodeCommands(skipping_env.client, queue), store)
    secret = services.keys.create("ehr-1", Role.CLINICIAN)[1]
    episode = f"EP-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": f"open-{episode}"}
    body = {"episode_id": episode, "client_id": "client-1"}
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://continuum.test") as http:
        unanswered = await http.post("/api/v1/episodes", json=body, headers=headers)

        assert unanswered.status_code == 503 and unanswered.headers["Retry-After"] == "5"
        assert unanswered.headers["content-type"] == "application/problem+json"
        assert (
            unanswered.json()["title"] == "Service unavailable"
            and "did not answer in time" in unanswered.json()["detail"]
        )

        with ThreadPoolExecutor(4) as executor:
            async with Worker(
                skipping_env.client,
                task_queue=queue,
                workflows=list(WORKFLOWS),
                activities=activities_for(store),
                activity_executor=executor,
            ):
                monkeypatch.setattr(commands, "COMMAND_TIMEOUT_SECONDS", 60.0)
                retried = await http.post("/api/v1/episodes", json=body, headers=headers)

    assert retried.status_code == 201, retried.text
    assert [e.event_type for e in store.read_stream(episode)].count("EpisodeOpened") == 1
