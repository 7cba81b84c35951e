"""Episode throughput against a bare workflow, and worker memory with many open episodes.

    python3 dev.py bench episodes   (CONTINUUM_BENCH_EPISODE_COUNT=N, default 50;
                                     CONTINUUM_BENCH_OPEN_EPISODES=M, default 10,000)

Throughput: N episodes run the whole continuum (intensive outpatient, outpatient, aftercare, closed) on a
compressed day, with drug testing, the bench playing the therapists (reviews) and the lab (negative
results). Then N bare workflows replay, step for step, each episode's activities (a no-op activity) and
fired timers (same durations), on the same kind of worker. Overhead = episode wall time / bare wall time.

Memory: `continuum worker` as its own process; M episodes are opened (real day length, so each waits on
its timers), and the worker's resident memory is read from /proc before and after.
Writes bench/results/episodes.json.
"""

from __future__ import annotations

import asyncio
import os
import platform
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from temporalio.client import Client
from temporalio.worker import Worker

from bench.bare import BareWorkflow, noop
from bench.stack import BenchStack, bench_stack, publish, rss_mib
from continuum.bootstrap import ACTIVITY_THREADS, WORKFLOWS, activities_for
from continuum.domain.commands import OpenEpisode, RecordAssessment, RecordReviewOutcome, RecordTestResult
from continuum.domain.episode import ReviewOutcome
from continuum.domain.policy import default_policy_text
from continuum.domain.testing import TestMethod, TestResult
from continuum.episodes import EpisodeCommands
from continuum.eventlog.store import PostgresEventStore
from continuum.runtime.settings import Settings
from continuum.workflows.episode import CommandMeta, workflow_id

RESULTS = Path(__file__).parent / "results" / "episodes.json"
MILD = (1, 1, 1, 1, 1, 1)
DAY_SECONDS = 1.0  # one care day per second, as in the demo
# The default policy with a 30-day aftercare period, so a whole continuum fits in a compressed run.
POLICY = default_policy_text().replace("aftercare = 365", "aftercare = 30")


def main() -> None:
    count = int(os.environ.get("CONTINUUM_BENCH_EPISODE_COUNT", "50"))
    open_count = int(os.environ.get("CONTINUUM_BENCH_OPEN_EPISODES", "10000"))
    with bench_stack() as stack:
        report = asyncio.run(_measure(stack, count, open_count))
    publish(RESULTS, report)


async def _measure(stack: BenchStack, count: int, open_count: int) -> dict[str, Any]:
    client = await stack.client()
    store = stack.store()
    throughput = await _throughput(client, store, count)
    memory = await _memory(stack, client, open_count)
    return {
        "benchmark": "episodes",
        "command": (
            f"CONTINUUM_BENCH_EPISODE_COUNT={count} CONTINUUM_BENCH_OPEN_EPISODES={open_count}"
            " python3 dev.py bench episodes"
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "throughput": throughput,
        "worker_memory": memory,
        "targets": {"episode_within_1_5x_of_bare": throughput["overhead_ratio"] <= 1.5},
    }


async def _throughput(client: Client, store: PostgresEventStore, count: int) -> dict[str, Any]:
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    with ThreadPoolExecutor(ACTIVITY_THREADS) as executor:
        async with Worker(
            client,
            task_queue=queue,
            workflows=[*WORKFLOWS, BareWorkflow],
            activities=[*activities_for(store), noop],
            activity_executor=executor,
            max_concurrent_activities=ACTIVITY_THREADS,
        ):
            episodes = EpisodeCommands(client, queue, policy_text=POLICY, day=timedelta(seconds=DAY_SECONDS))
            ids = [f"BENCH-{queue}-{n:04d}" for n in range(count)]
            began = time.perf_counter()
            await asyncio.gather(
                *(
                    episodes.open(_meta(), OpenEpisode(i, f"client-{i}", assessment=RecordAssessment(MILD, "clin-b")))
                    for i in ids
                )
            )
            commands = await _drive(episodes, store, ids)
            episode_wall = time.perf_counter() - began
            steps = [await _steps(client, i) for i in ids]
            began = time.perf_counter()
            await asyncio.gather(
                *(
                    client.execute_workflow(BareWorkflow.run, s, id=f"bare-{queue}-{n}", task_queue=queue)
                    for n, s in enumerate(steps)
                )
            )
            bare_wall = time.perf_counter() - began
    with store.engine.connect() as conn:
        events = conn.execute(
            text("SELECT count(*) FROM events WHERE stream_id LIKE :p"), {"p": f"BENCH-{queue}-%"}
        ).scalar_one()
    activities = sum(1 for s in steps for x in s if x < 0)
    timers = sum(1 for s in steps for x in s if x >= 0)
    return {
        "episodes": count,
        "day_seconds": DAY_SECONDS,
        "path": "intensive_outpatient -> outpatient -> aftercare -> closed",
        "episode_wall_seconds": round(episode_wall, 2),
        "bare_wall_seconds": round(bare_wall, 2),
        "overhead_ratio": round(episode_wall / bare_wall, 3),
        "events_recorded": events,
        "commands_sent_by_the_bench": commands,
        "activities": activities,
        "fired_timers": timers,
        "timer_seconds_per_episode": round(sum(x for s in steps for x in s if x >= 0) / count, 2),
    }


def _meta() -> CommandMeta:
    return CommandMeta(uuid.uuid4().hex, "svc:bench")


async def _drive(episodes: EpisodeCommands, store: PostgresEventStore, ids: list[str]) -> int:
    """Play the therapists and the lab until every episode is closed; returns the commands sent."""
    answered: set[str] = set()
    failures: Counter[str] = Counter()
    sent = 0
    remaining = set(ids)
    while remaining:
        with store.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT episode_id, status, state FROM episodes WHERE episode_id = ANY(:ids)"),
                {"ids": list(remaining)},
            ).all()
        work, keys = [], []
        for row in rows:
            if row.status == "closed":
                remaining.discard(row.episode_id)
                continue
            review = row.state.get("pending_review")
            if review and f"{row.episode_id}/{review['review_id']}" not in answered:
                keys.append(f"{row.episode_id}/{review['review_id']}")
                work.append(
                    episodes.send(
                        row.episode_id,
                        _meta(),
                        RecordReviewOutcome(review["review_id"], ReviewOutcome.GOALS_MET, "ther-b"),
                    )
                )
            for test in row.state.get("tests", []):
                key = f"{row.episode_id}/{test['test_id']}"
                if not test["cancelled"] and not test["confirmed"] and key not in answered:
                    keys.append(key)
                    result = RecordTestResult(
                        test["test_id"], TestResult.NEGATIVE, TestMethod.CONFIRMED, datetime.now(UTC), f"L-{key}"
                    )
                    work.append(episodes.send(row.episode_id, _meta(), result))
        outcomes = await asyncio.gather(*work, return_exceptions=True)
        for key, outcome in zip(keys, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                failures[type(outcome).__name__] += 1  # answered again on the next look, as a person would
            else:
                answered.add(key)
                sent += 1
        await asyncio.sleep(0.05)
    print(f"commands refused or failed and sent again: {dict(failures)}")
    return sent


async def _steps(client: Client, episode_id: str) -> list[float]:
    """The episode's activities (-1) and fired timers (their durations), in history order."""
    history = await client.get_workflow_handle(workflow_id(episode_id)).fetch_history()
    started: dict[int, float] = {}
    order: list[tuple[int, float]] = []
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            order.append((event.event_id, -1.0))
        elif event.HasField("timer_started_event_attributes"):
            started[event.event_id] = (
                event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
            )
        elif event.HasField("timer_fired_event_attributes"):
            timer = event.timer_fired_event_attributes.started_event_id
            order.append((timer, started[timer]))
    return [step for _, step in sorted(order)]


async def _memory(stack: BenchStack, client: Client, count: int) -> dict[str, Any]:
    queue = f"mem-{uuid.uuid4().hex[:6]}"
    cache = Settings.from_env().workflow_cache
    with stack.process("worker", ready="worker.started", TEMPORAL_TASK_QUEUE=queue) as worker:
        idle = rss_mib(worker.pid)
        episodes = EpisodeCommands(client, queue)  # a real day: every episode stays open, waiting on its timers
        gate = asyncio.Semaphore(64)

        async def open_one(n: int) -> None:
            async with gate:
                i = f"MEM-{queue}-{n:05d}"
                await episodes.open(_meta(), OpenEpisode(i, f"client-{i}", assessment=RecordAssessment(MILD, "clin-b")))

        began = time.perf_counter()
        await asyncio.gather(*(open_one(n) for n in range(count)))
        opening = time.perf_counter() - began
        await asyncio.sleep(5)  # let the schedule draws and their appends settle
        loaded = rss_mib(worker.pid)
    return {
        "open_episodes": count,
        "opened_in_seconds": round(opening, 1),
        "opened_per_second": round(count / opening, 1),
        "worker_rss_idle_mib": round(idle, 1),
        "worker_rss_with_open_episodes_mib": round(loaded, 1),
        "per_open_episode_kib": round((loaded - idle) * 1024 / count, 1),
        "workflow_cache": cache,
        "per_cached_episode_kib": round((loaded - idle) * 1024 / min(count, cache), 1),
        "note": (
            f"the worker keeps up to {cache} workflows in memory (CONTINUUM_WORKFLOW_CACHE);"
            " the others replay when they next have work"
        ),
    }
