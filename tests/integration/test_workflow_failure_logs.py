"""Issue 19, finding 6: in JSON log mode a workflow-task failure is one JSON line (its exception a structured
value: type, message, frames by file name), never a multi-line traceback with the host's paths on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

# The real worker (bootstrap.build_worker) on a dev server; the episode workflow is started with input it cannot
# decode, so each of its workflow tasks fails inside the sandbox. Then a line that cannot be rendered at all.
FAILING_WORKER = """
import asyncio, logging, os, sys
from concurrent.futures import ThreadPoolExecutor
from sqlalchemy import create_engine
from temporalio.testing import WorkflowEnvironment
from continuum.bootstrap import build_worker
from continuum.eventlog.store import PostgresEventStore
from continuum.runtime.logs import configure_logging
from continuum.runtime.servers import temporal_binary
from continuum.runtime.settings import Settings

class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("cannot print")

async def main() -> None:
    configure_logging(Settings.from_env())
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=str(temporal_binary()))
    store = PostgresEventStore(create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))  # never reached
    try:
        with ThreadPoolExecutor(32) as executor:
            async with build_worker(Settings(temporal_task_queue="q"), env.client, store, executor):
                await env.client.start_workflow(
                    "EpisodeWorkflow", {"episode_id": 5, "client_id": "jane-doe-1980"}, id="episode-x", task_queue="q"
                )
                for _ in range(100):
                    await asyncio.sleep(0.1)
                    if "Failed activation" in open(os.environ["WATCH"]).read():
                        break
    finally:
        await env.shutdown()
    logging.getLogger("continuum.test").warning("value %s", Unprintable())

asyncio.run(main())
sys.stderr.flush()
os._exit(0)  # past the worker's threads: nothing more to tell
"""


def test_a_workflow_task_failure_is_one_json_line_without_host_paths(tmp_path: Path) -> None:
    stderr = tmp_path / "stderr.txt"
    env = {**os.environ, "CONTINUUM_LOG_FORMAT": "json", "WATCH": str(stderr)}
    with stderr.open("w") as sink:
        result = subprocess.run(
            [sys.executable, "-c", FAILING_WORKER], env=env, stdout=subprocess.PIPE, stderr=sink, text=True, timeout=120
        )
    # The dev server (a child process on the same stderr) writes its own `time=... level=...` lines.
    lines = [line for line in stderr.read_text().splitlines() if line.strip() and not line.startswith("time=")]
    records = [json.loads(line) for line in lines]  # every line is JSON: a traceback line would not parse
    failed = [r for r in records if r["event"].startswith("Failed activation on workflow EpisodeWorkflow")]

    assert result.returncode == 0
    assert failed and all(isinstance(r["exception"], dict) and r["exception"]["frames"] for r in failed)
    assert all("/" not in frame for r in failed for frame in r["exception"]["frames"])
    assert {"event": "log.unrenderable", "logger": "continuum.test"}.items() <= records[-1].items()
    told = "\n".join(lines)
    assert "Traceback" not in told and "site-packages" not in told and "jane-doe" not in told
