"""Fixtures of the integration tests: the API over a worker, and a log that refuses one value as data."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import Engine, text
from temporalio.testing import WorkflowEnvironment

from continuum.access import Role
from continuum.api.app import create_app
from continuum.api.services import Services
from continuum.eventlog.store import PostgresEventStore
from tests.integration.episodes import episode_worker
from tests.integration.stacks import POISON, POISON_NOTE, Stack


@pytest.fixture
async def stack(skipping_env: WorkflowEnvironment, store: PostgresEventStore) -> AsyncIterator[Stack]:
    """The API (through ASGI) over a worker on the time-skipping server, with a key for every role."""
    async with episode_worker(skipping_env, store) as episodes:
        episodes.lab_id = "lab-1"
        services = Services.build(episodes, store)
        secrets = {
            role.value: services.keys.create(
                f"{role.value}-1",
                role,
                "lab-1" if role is Role.LAB else ("partner-1" if role is Role.PARTNER else None),
            )[1]
            for role in Role
        }
        secrets["lab-2"] = services.keys.create("lab-2", Role.LAB, "lab-2")[1]
        transport = httpx.ASGITransport(app=create_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://continuum.test") as http:
            run = uuid.uuid4().hex[:6]
            yield Stack(http, secrets, episodes, skipping_env, store, f"EP-1-{run}", f"EP-2-{run}", f"EP-3-{run}")


@pytest.fixture
def poisoned_note(superuser_engine: Engine) -> str:
    """A note this test's database refuses to store, as data (installed by the database owner)."""
    with superuser_engine.begin() as conn:
        conn.execute(text(POISON))
    return POISON_NOTE
