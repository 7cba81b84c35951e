"""Burst: drug-test results posted concurrently through the HTTP API, until all are in the projection.

    python3 dev.py bench burst
    (CONTINUUM_BENCH_RESULTS=N, default 10,000; CONTINUUM_BENCH_TESTS_PER_EPISODE=K, default 5)

`continuum up` (worker and API) runs as its own process on the embedded stack. The bench opens N/K
episodes and orders K tests in each. Then it posts every result at once with a lab key: HTTP/1.1,
256 requests in flight on 256 connections (bench/lean_http.py, a client that costs little CPU: its own
CPU per result is reported), the rest queued in the bench. A 503 is retried after its
Retry-After and a dropped connection at once, both with the same Idempotency-Key, as a lab would. It
measures the time from the first POST until the projection shows every result, and counts results
lost (never reflected) and duplicated
(recorded twice). Writes bench/results/burst.json.
"""

from __future__ import annotations

import asyncio
import os
import platform
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
from sqlalchemy import text

from bench.lean_http import Dropped, LeanHttp
from bench.stack import BenchStack, bench_stack, free_port, healthy, negative_result, publish
from continuum.access import ApiKeyStore, Role
from continuum.domain.commands import OpenEpisode, OrderTest, RecordAssessment
from continuum.episodes import EpisodeCommands
from continuum.workflows.episode import CommandMeta

RESULTS = Path(__file__).parent / "results" / "burst.json"
MILD = (1, 1, 1, 1, 1, 1)
CONNECTIONS = 256


def main() -> None:
    total = int(os.environ.get("CONTINUUM_BENCH_RESULTS", "10000"))
    per_episode = int(os.environ.get("CONTINUUM_BENCH_TESTS_PER_EPISODE", "5"))
    with bench_stack() as stack:
        report = asyncio.run(_measure(stack, total, per_episode))
    publish(RESULTS, report)


async def _measure(stack: BenchStack, total: int, per_episode: int) -> dict[str, Any]:
    store = stack.store()
    keys = ApiKeyStore(store.engine)
    lab = keys.create("bench-lab", Role.LAB, "lab-1")[1]
    port = free_port()
    queue = f"burst-{uuid.uuid4().hex[:6]}"
    with stack.process("up", ready="worker.started", TEMPORAL_TASK_QUEUE=queue, CONTINUUM_API_PORT=str(port)):
        client = await stack.client()
        episodes = EpisodeCommands(client, queue, lab_id="lab-1")
        began = time.perf_counter()
        tests = await _order(episodes, queue, total // per_episode, per_episode)
        setup = time.perf_counter() - began
        await healthy(f"http://127.0.0.1:{port}")
        api = LeanHttp("127.0.0.1", port, connections=CONNECTIONS)
        try:
            me = psutil.Process()
            cpu_before = sum(me.cpu_times()[:2])
            statuses: Counter[int] = Counter()
            retries = Counter[str]()
            began = time.perf_counter()
            gate = asyncio.Semaphore(CONNECTIONS)  # all are sent at once; the client keeps 256 in flight

            async def post(episode: str, test: str) -> None:
                async with gate:
                    await _post(api, lab, episode, test, statuses, retries)

            posting = asyncio.gather(*(post(episode, test) for episode, test in tests))
            await posting
            posted = time.perf_counter() - began
            reflected = await _until_reflected(store, queue, len(tests))
            converged = time.perf_counter() - began
            load_generator_cpu = sum(me.cpu_times()[:2]) - cpu_before
        finally:
            await api.aclose()
    with store.engine.connect() as conn:
        recorded = conn.execute(
            text(
                "SELECT payload->>'test_id' AS test_id, count(*) AS n FROM events"
                " WHERE event_type = 'TestResultRecorded' AND stream_id LIKE :p GROUP BY 1"
            ),
            {"p": f"BURST-{queue}-%"},
        ).all()
    duplicated = sum(r.n - 1 for r in recorded if r.n > 1)
    return {
        "benchmark": "burst",
        "command": (
            f"CONTINUUM_BENCH_RESULTS={total} CONTINUUM_BENCH_TESTS_PER_EPISODE={per_episode}"
            " python3 dev.py bench burst"
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "results_posted": len(tests),
        "episodes": total // per_episode,
        "setup_seconds": round(setup, 1),
        "unanswered": len(tests) - sum(statuses.values()),
        "http_connections": CONNECTIONS,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "retries_after_503": retries["503"],
        "retries_after_a_dropped_connection": retries["connection"],
        "all_answered_seconds": round(posted, 1),
        "all_in_projection_seconds": round(converged, 1),
        "results_per_second": round(len(tests) / converged, 1),
        "load_generator_cpu_ms_per_result": round(load_generator_cpu * 1000 / len(tests), 2),
        "lost": len(tests) - reflected,
        "duplicated": duplicated,
    }


async def _order(episodes: EpisodeCommands, queue: str, count: int, per_episode: int) -> list[tuple[str, str]]:
    gate = asyncio.Semaphore(64)
    tests: list[tuple[str, str]] = []

    async def one(n: int) -> None:
        episode = f"BURST-{queue}-{n:05d}"
        async with gate:
            await episodes.open(
                _meta(), OpenEpisode(episode, f"client-{n}", assessment=RecordAssessment(MILD, "clin-b"))
            )
            for _ in range(per_episode):
                result = await episodes.send(episode, _meta(), OrderTest("clin-b"))
                tests.append((episode, next(e.data["test_id"] for e in result.events if e.type == "TestOrdered")))

    await asyncio.gather(*(one(n) for n in range(count)))
    return tests


def _meta() -> CommandMeta:
    return CommandMeta(uuid.uuid4().hex, "svc:bench")


async def _post(
    api: LeanHttp, key: str, episode: str, test: str, statuses: Counter[int], retries: Counter[str]
) -> None:
    body, idempotency_key = negative_result(test)
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key}
    for _ in range(20):
        try:
            response = await api.post(f"/api/v1/episodes/{episode}/tests/{test}/results", body, headers)
        except Dropped:  # a dropped connection: send it again (the Idempotency-Key makes that safe)
            retries["connection"] += 1
            await asyncio.sleep(0.5)
            continue
        if response.status != 503:
            statuses[response.status] += 1
            return
        retries["503"] += 1
        await asyncio.sleep(float(response.headers.get("retry-after", "1")))
    statuses[503] += 1


async def _until_reflected(store: Any, queue: str, expected: int) -> int:
    query = text(
        "SELECT count(*) FROM episodes e, jsonb_array_elements(e.state->'tests') t"
        " WHERE e.episode_id LIKE :p AND jsonb_typeof(t->'confirmed') = 'object'"
    )
    seen = 0
    for _ in range(1200):
        with store.engine.connect() as conn:
            seen = conn.execute(query, {"p": f"BURST-{queue}-%"}).scalar_one()
        if seen >= expected:
            return int(seen)
        await asyncio.sleep(0.1)
    return int(seen)
