"""Throughput against bare Temporal, with the CPU each process spends per command.

    python3 dev.py bench throughput
    (CONTINUUM_BENCH_OPENS=N, default 300; CONTINUUM_BENCH_RESULTS=M, default 600; 3 interleaved rounds)

On one embedded stack, `continuum up` (worker and API) and a bare worker (bench/bare_worker.py: each update
runs one activity that INSERTs one row) run as processes of their own. Each round, in turn:
- opens: N episodes opened through the HTTP API (with an assessment: placement, stay), 64 in flight;
  and N bare workflows started, each with one update;
- results: M lab results posted through the HTTP API (tests ordered beforehand, untimed; posted in rounds
  across the episodes), 64 in flight on 32 connections (bench/lean_http.py, a client that costs little CPU);
  and M updates to bare workflows, round the workflows.
Rates are medians of the rounds; the ratio is Continuum's over bare's in the same round. The CPU of each
process (the bench itself, i.e. the load generator; the Continuum process; the bare worker; the Temporal
server; PostgreSQL) is read from /proc before and after each phase, as milliseconds per command.
History events per command are counted over every run of the workflows a phase touched (a chain that
continued as new counts whole), read after the phase's CPU. Writes bench/results/throughput.json.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
from sqlalchemy import text
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from bench.lean_http import Answer, LeanHttp
from bench.stack import BenchStack, bench_stack, free_port, healthy, negative_result, publish
from continuum.access import ApiKeyStore, Role
from continuum.domain.commands import OpenEpisode, OrderTest, RecordAssessment
from continuum.episodes import EpisodeCommands
from continuum.eventlog.store import PostgresEventStore
from continuum.workflows.episode import CommandMeta, workflow_id

RESULTS = Path(__file__).parent / "results" / "throughput.json"
ROUNDS = 3
IN_FLIGHT = 64
CONNECTIONS = 32  # enough to keep 64 requests in flight on HTTP/1.1 keep-alive; fewer costs the client less
KEEPALIVE = 2.0  # seconds an idle connection is kept by the client
MILD = [1, 1, 1, 1, 1, 1]
Phase = Callable[[], Awaitable[int]]


def main() -> None:
    opens = int(os.environ.get("CONTINUUM_BENCH_OPENS", "300"))
    results = int(os.environ.get("CONTINUUM_BENCH_RESULTS", "600"))
    with bench_stack() as stack:
        report = asyncio.run(_measure(stack, opens, results))
    publish(RESULTS, report)


class CpuMeter:
    """CPU seconds (user + system) of the processes that do the work, by role, read from /proc."""

    def __init__(self, continuum: int, bare: int, data_dir: Path) -> None:
        self.me = psutil.Process()
        self.data_dir = data_dir
        self.continuum = psutil.Process(continuum)
        self.bare = psutil.Process(bare)

    def _servers(self) -> dict[str, list[psutil.Process]]:
        """The Temporal dev server (a child of the bench) and PostgreSQL (pg_ctl detaches the postmaster:
        found by its data directory under the stack's, with its backends)."""
        groups: dict[str, list[psutil.Process]] = {"temporal": [], "postgres": []}
        for process in self.me.children(recursive=True):
            try:
                if "temporal" in process.name() and "server" in process.cmdline():
                    groups["temporal"].append(process)
            except psutil.Error:
                continue
        for process in psutil.process_iter(["name", "cmdline"]):
            if process.info["name"] == "postgres" and str(self.data_dir) in " ".join(process.info["cmdline"] or []):
                groups["postgres"] += [process, *process.children(recursive=True)]
        return groups

    def read(self) -> dict[str, float]:
        def cpu(processes: list[psutil.Process]) -> float:
            total = 0.0
            for process in processes:
                try:
                    times = process.cpu_times()
                except psutil.Error:
                    continue
                total += times.user + times.system
            return total

        servers = self._servers()
        return {
            "load_generator": cpu([self.me]),
            "continuum": cpu([self.continuum]),
            "bare_worker": cpu([self.bare]),
            "temporal_server": cpu(servers["temporal"]),
            "postgres": cpu(servers["postgres"]),
        }


def _sessions(store: PostgresEventStore) -> int:
    """PostgreSQL sessions opened so far on the database (a pool that churns opens many)."""
    with store.engine.connect() as conn:
        query = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        return int(conn.execute(text(query)).scalar_one())


async def _timed(
    meter: CpuMeter, store: PostgresEventStore, client: Client, phase: Phase, workflow_ids: Callable[[], list[str]]
) -> dict[str, Any]:
    sessions = _sessions(store)
    history_before = await _history_events(client, workflow_ids())
    before = meter.read()
    began = time.perf_counter()
    count = await phase()
    wall = time.perf_counter() - began
    after = meter.read()
    history_after = await _history_events(client, workflow_ids())
    return {
        "rate_per_second": count / wall,
        "cpu_ms_per_command": {k: (after[k] - before[k]) * 1000 / count for k in before},
        "history_events_per_command": (history_after - history_before) / count,
        "postgres_sessions_opened": _sessions(store) - sessions,  # the bench's own is pooled: opened once, before
    }


async def _history_events(client: Client, workflow_ids: Sequence[str]) -> int:
    """Events in the histories of every run of these workflows (none for one not started yet)."""
    gate = asyncio.Semaphore(16)

    async def one(workflow_id: str) -> int:
        async with gate:
            return await _chain_length(client, workflow_id)

    return sum(await asyncio.gather(*(one(workflow_id) for workflow_id in workflow_ids)))


async def _chain_length(client: Client, workflow_id: str) -> int:
    """The history length of a workflow's latest run and of each run it continued from, walked back through
    each run's first event (describing is exact for a running workflow, where visibility may lag)."""
    total, run_id = 0, None
    while True:
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        try:
            description = await handle.describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return total
            raise
        total += description.history_length
        async for event in handle.fetch_history_events(page_size=1):
            run_id = event.workflow_execution_started_event_attributes.continued_execution_run_id or None
            break
        if run_id is None:
            return total


async def _gathered(count: int, job: Callable[[int], Awaitable[Any]]) -> None:
    """`job(0)` .. `job(count - 1)`, IN_FLIGHT at a time."""
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(n: int) -> None:
        async with gate:
            await job(n)

    await asyncio.gather(*(one(n) for n in range(count)))


def _meta() -> CommandMeta:
    return CommandMeta(uuid.uuid4().hex, "svc:bench")


async def _check(response: Awaitable[Answer], expected: int) -> None:
    answer = await response
    if answer.status != expected:
        raise RuntimeError(f"the API answered {answer.status}: {answer.text[:200]}")


@contextmanager
def bare_worker(stack: BenchStack, queue: str) -> Any:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.bare_worker", queue],
        env=stack.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "bare_worker.started" in line:
            break
    else:
        raise RuntimeError("the bare worker exited before it started")
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=60)


async def _measure(stack: BenchStack, opens: int, results: int) -> dict[str, Any]:
    store = stack.store()
    _sessions(store)  # the bench's own connection, opened before anything is counted
    keys = ApiKeyStore(store.engine)
    clinician = keys.create("bench-clinician", Role.CLINICIAN)[1]
    lab = keys.create("bench-lab", Role.LAB, "lab-1")[1]
    port = free_port()
    queue, bare_queue = f"tp-{uuid.uuid4().hex[:6]}", f"tp-bare-{uuid.uuid4().hex[:6]}"
    per_episode = 5
    samples: dict[str, list[dict[str, Any]]] = {}
    with (
        stack.process("up", ready="worker.started", TEMPORAL_TASK_QUEUE=queue, CONTINUUM_API_PORT=str(port)) as up,
        bare_worker(stack, bare_queue) as bare,
    ):
        meter = CpuMeter(up.pid, bare.pid, stack.data_dir)
        client = await stack.client()
        plain = await Client.connect(stack.temporal_address)
        episodes = EpisodeCommands(client, queue, lab_id="lab-1")
        api = LeanHttp("127.0.0.1", port, connections=CONNECTIONS, keepalive=KEEPALIVE)
        try:
            await healthy(f"http://127.0.0.1:{port}")
            for round_ in range(ROUNDS):
                tag = f"{round_}-{uuid.uuid4().hex[:4]}"
                tests = await _order(episodes, f"TP-{tag}", results // per_episode, per_episode)
                handles: list[WorkflowHandle[Any, Any]] = []

                async def continuum_opens(tag: str = tag) -> int:
                    auth = {"Authorization": f"Bearer {clinician}"}

                    async def one(n: int) -> None:
                        body = {
                            "episode_id": f"TPO-{tag}-{n}",
                            "client_id": f"c-{tag}-{n}",
                            "assessment": {"ratings": MILD, "assessed_by": "clin-b"},
                        }
                        await _check(api.post("/api/v1/episodes", body, auth), 201)

                    await _gathered(opens, one)
                    return opens

                async def bare_opens(tag: str = tag, handles: list[WorkflowHandle[Any, Any]] = handles) -> int:
                    async def one(n: int) -> None:
                        handle = await plain.start_workflow("BareEpisode", id=f"bare-{tag}-{n}", task_queue=bare_queue)
                        await handle.execute_update("command", args=[f"bare-{tag}-{n}", 0])
                        handles.append(handle)

                    await _gathered(opens, one)
                    return opens

                async def continuum_results(tests: list[tuple[str, str]] = tests) -> int:
                    await _gathered(len(tests), lambda i: _post_result(api, lab, *tests[i]))
                    return len(tests)

                async def bare_results(handles: list[WorkflowHandle[Any, Any]] = handles) -> int:
                    targets = [handles[i % len(handles)] for i in range(results)]
                    await _gathered(results, lambda i: targets[i].execute_update("command", args=[targets[i].id, i]))
                    return results

                touched = _touched(tag, opens, tests, handles)
                phases: dict[str, Phase] = {
                    "open:continuum_http": continuum_opens,
                    "open:bare": bare_opens,
                    "result:continuum_http": continuum_results,
                    "result:bare": bare_results,
                }
                for name, phase in phases.items():
                    samples.setdefault(name, []).append(await _timed(meter, store, plain, phase, touched[name]))
                for handle in handles:
                    await handle.signal("close")
        finally:
            await api.aclose()
    return _report(samples, opens, results)


def _touched(
    tag: str, opens: int, tests: list[tuple[str, str]], handles: list[WorkflowHandle[Any, Any]]
) -> dict[str, Callable[[], list[str]]]:
    """The workflows each phase of a round sends its commands to (the bare ones are known once opened)."""
    return {
        "open:continuum_http": lambda: [workflow_id(f"TPO-{tag}-{n}") for n in range(opens)],
        "open:bare": lambda: [f"bare-{tag}-{n}" for n in range(opens)],
        "result:continuum_http": lambda: sorted({workflow_id(episode) for episode, _ in tests}),
        "result:bare": lambda: [handle.id for handle in handles],
    }


def _report(samples: dict[str, list[dict[str, Any]]], opens: int, results: int) -> dict[str, Any]:
    def median_rate(name: str) -> float:
        return float(statistics.median(s["rate_per_second"] for s in samples[name]))

    def median_cpu(name: str) -> dict[str, float]:
        keys = samples[name][0]["cpu_ms_per_command"]
        return {k: round(statistics.median(s["cpu_ms_per_command"][k] for s in samples[name]), 2) for k in keys}

    ratios = {
        kind: round(
            statistics.median(
                c["rate_per_second"] / b["rate_per_second"]
                for c, b in zip(samples[f"{kind}:continuum_http"], samples[f"{kind}:bare"], strict=True)
            ),
            2,
        )
        for kind in ("open", "result")
    }
    return {
        "benchmark": "throughput",
        "command": f"CONTINUUM_BENCH_OPENS={opens} CONTINUUM_BENCH_RESULTS={results} python3 dev.py bench throughput",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "rounds": f"{ROUNDS} interleaved rounds, medians",
        "in_flight": IN_FLIGHT,
        "http_connections": CONNECTIONS,
        "rate_per_second": {name: round(median_rate(name), 1) for name in samples},
        "ratio_continuum_over_bare": ratios,
        "cpu_ms_per_command": {name: median_cpu(name) for name in samples},
        "history_events_per_command": {
            name: round(statistics.median(s["history_events_per_command"] for s in samples[name]), 2)
            for name in samples
        },
        "postgres_sessions_opened": {
            name: statistics.median(s["postgres_sessions_opened"] for s in samples[name]) for name in samples
        },
        "targets": {
            "results_at_least_0_7x_bare": ratios["result"] >= 0.7,
            "opens_at_least_0_7x_bare": ratios["open"] >= 0.7,
        },
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


async def _order(episodes: EpisodeCommands, prefix: str, count: int, per_episode: int) -> list[tuple[str, str]]:
    tests: list[tuple[str, str]] = []

    async def one(n: int) -> None:
        episode = f"{prefix}-{n:05d}"
        await episodes.open(
            _meta(), OpenEpisode(episode, f"client-{prefix}-{n}", assessment=RecordAssessment(tuple(MILD), "clin-b"))
        )
        for _ in range(per_episode):
            result = await episodes.send(episode, _meta(), OrderTest("clin-b"))
            tests.append((episode, next(e.data["test_id"] for e in result.events if e.type == "TestOrdered")))

    await _gathered(count, one)
    # Posted in rounds across the episodes (each one's first test, then each one's second, ...), as the bare
    # phase sends its updates round the workflows: five results of one episode in flight at once would wait
    # on each other in the episode (one command at a time) and measure that instead of the throughput.
    by_episode: dict[str, list[str]] = {}
    for episode, test in tests:
        by_episode.setdefault(episode, []).append(test)
    return [(episode, ids[k]) for k in range(per_episode) for episode, ids in by_episode.items() if k < len(ids)]


async def _post_result(api: LeanHttp, key: str, episode: str, test: str) -> None:
    body, idempotency_key = negative_result(test)
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key}
    await _check(api.post(f"/api/v1/episodes/{episode}/tests/{test}/results", body, headers), 200)
