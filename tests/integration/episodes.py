"""Helpers for episode tests: a worker on a queue of the test's own, and a bounded wait for a condition."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from continuum.bootstrap import ACTIVITY_THREADS, build_worker
from continuum.domain.policy import default_policy_text
from continuum.episodes import EpisodeCommands
from continuum.eventlog.store import PostgresEventStore
from continuum.runtime.settings import Settings
from continuum.workflows.episode import CommandMeta

T = TypeVar("T")
DAY = timedelta(days=1)
# The default policy less random drug testing: the care-pathway tests watch reviews and levels alone.
WITHOUT_TESTING = default_policy_text().split("\n[drug_testing]")[0] + "\n"


@contextlib.asynccontextmanager
async def episode_worker(
    env: WorkflowEnvironment,
    store: PostgresEventStore,
    *,
    lab_order_url: str | None = None,
    follow_up_url: str | None = None,
    max_cached_workflows: int = 1000,
    **options: Any,
) -> AsyncIterator[EpisodeCommands]:
    queue = f"episodes-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        temporal_task_queue=queue,
        lab_order_url=lab_order_url,
        follow_up_url=follow_up_url,
        workflow_cache=max_cached_workflows,
    )
    with ThreadPoolExecutor(ACTIVITY_THREADS) as executor:
        async with build_worker(settings, env.client, store, executor):  # wired as the service wires it
            yield EpisodeCommands(env.client, queue, **options)


def projected_state(store: PostgresEventStore, episode: str) -> dict[str, Any]:
    """The episode's state as the `episodes` projection (the read API) has it."""
    with store.engine.connect() as conn:
        return dict(conn.execute(text("SELECT state FROM episodes WHERE episode_id = :e"), {"e": episode}).one().state)


def projected_row(store: PostgresEventStore, episode: str) -> Any:
    """The episode's row in the `episodes` projection (state, level, status, flags, ...)."""
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT * FROM episodes WHERE episode_id = :e"), {"e": episode}).one()


def events_of(store: PostgresEventStore, episode: str, event_type: str) -> list[Any]:
    """The episode's recorded events of one type, in order."""
    return [e for e in store.read_stream(episode) if e.event_type == event_type]


async def awaitable(value: T) -> T:
    """`value` as an awaitable, for `eventually` to poll something that changes in place."""
    return value


def meta(command_id: str | None = None, actor: str = "svc:ehr-1") -> CommandMeta:
    return CommandMeta(command_id or f"cmd-{uuid.uuid4().hex[:10]}", actor)


async def eventually(probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], what: str, tries: int = 400) -> T:
    """Poll `probe` until `accept` holds (a bounded wait for asynchronous work, not a timing assertion)."""
    value = await probe()
    for _ in range(tries):
        if accept(value):
            return value
        await asyncio.sleep(0.05)
        value = await probe()
    raise AssertionError(f"never happened: {what}; last value: {value!r}")


async def replay_recorded(workflows: Sequence[type], folder: Path, id_prefix: str) -> int:
    """Replay every history recorded in `folder` (*.json) with the current code of `workflow` (Temporal's
    Replayer): an unpatched change to its command sequence fails with a non-determinism error. Returns how many."""
    from temporalio.client import WorkflowHistory
    from temporalio.worker import Replayer

    files = sorted(folder.glob("*.json"))
    replayer = Replayer(workflows=list(workflows))
    for path in files:
        history = WorkflowHistory.from_json(f"{id_prefix}-{path.stem}", json.loads(path.read_text()))
        result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
        assert result.replay_failure is None, path
    return len(files)


def worker_process(temporal_address: str, database_url: str, queue: str, data_dir: Path) -> subprocess.Popen[str]:
    """`continuum worker` as a real process on a queue of the test's own; returns once it serves."""
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "DATABASE_URL"))},
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_TASK_QUEUE": queue,
        "DATABASE_URL": database_url,
        "CONTINUUM_DATA_DIR": str(data_dir),
        "CONTINUUM_LOG_FORMAT": "json",
    }
    return continuum_process("worker", environment)


def continuum_process(command: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`continuum COMMAND` as a real process; returns once its worker serves (it exits: the test fails)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "continuum.cli", command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "worker.started" in line:
            # Keep reading its log: a pipe nobody reads fills up (64 KiB), and the process then blocks on its
            # next log line, with its event loop (the API stops answering). Stop it with wait(), not
            # communicate(): this thread owns the pipe.
            threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
            return process
    raise AssertionError(f"continuum {command} did not start: exit {process.wait()}")


def _drain(stream: Any) -> None:
    for _ in stream:  # read and drop each line until the process exits
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
