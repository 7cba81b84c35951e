"""Worker memory per cached episode, with 1, 3 and 5 months of care behind each episode.

    python3 dev.py bench memory   (CONTINUUM_BENCH_MEMORY_EPISODES=N per history length, default 1,000;
                                   CONTINUUM_BENCH_MEMORY_MONTHS=1,3,5)

For each history length, N episodes' care is played in the pure domain (`bench.care.simulate`, as the
restart benchmark seeds them: the default policy, real day length, the client kept in outpatient so the
state holds reviews and tests), written into the log, and each workflow is started from the input its
earlier run carried (state, kept results and command ids). A `continuum worker` process with a cache
larger than N serves them; every episode answers one command (so each is in the worker's cache), and the
worker's resident memory is read from /proc before the starts and after the answers:
per cached episode = (after - before) / N. Alongside, the Python objects a workflow keeps (its decoded
state, kept results and ids) are sized with tracemalloc in this process, and the bare workflow
(bench/bare.py BareEpisode) is measured the same way on its own worker: how much of the figure is the
episode's own data, how much the SDK's per-workflow machinery.
Target (issue 21): <= 150 KiB per cached episode. Writes bench/results/memory.json.
"""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from random import Random
from typing import Any

from temporalio.client import Client
from temporalio.converter import DataConverter

from bench.care import simulate
from bench.restart import DAY, PATHS, carried, seed_simulated, start_carried
from bench.stack import BenchStack, bench_stack, publish, rss_mib
from bench.throughput import bare_worker
from continuum.domain.codec import decode
from continuum.domain.commands import ChangeMedications
from continuum.domain.episode import Episode
from continuum.domain.policy import default_policy_text, load_policy
from continuum.workflows.episode import CommandMeta, EpisodeInput, KeptResults, workflow_id

RESULTS = Path(__file__).parent / "results" / "memory.json"
TARGET_KIB = 150
SETTLE_SECONDS = 5  # after the last answer, for the worker's own appends and timers to settle


def main() -> None:
    count = int(os.environ.get("CONTINUUM_BENCH_MEMORY_EPISODES", "1000"))
    months = [int(m) for m in os.environ.get("CONTINUUM_BENCH_MEMORY_MONTHS", "1,3,5").split(",")]
    with bench_stack() as stack:
        rounds, bare = asyncio.run(_rounds(stack, count, months))
    publish(
        RESULTS,
        {
            "benchmark": "memory",
            "command": f"CONTINUUM_BENCH_MEMORY_EPISODES={count} CONTINUUM_BENCH_MEMORY_MONTHS="
            + ",".join(map(str, months))
            + " python3 dev.py bench memory",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "episodes_per_round": count,
            "rounds": rounds,
            "bare_workflow_per_cached_kib": round(bare, 1),
            "note": (
                "the bare workflow (bench/bare.py BareEpisode: no state, one update) on its own worker, with"
                " the SDK's default cache of 1,000, is the SDK's own cost per cached workflow"
            ),
            "targets": {
                f"at_most_{TARGET_KIB}_kib_per_cached_episode": all(
                    r["per_cached_episode_kib"] <= TARGET_KIB for r in rounds
                )
            },
        },
    )


async def _rounds(stack: BenchStack, count: int, months: list[int]) -> tuple[list[dict[str, Any]], float]:
    client = await stack.client()
    return [await _round(stack, client, count, m) for m in months], await _bare(stack, count)


async def _bare(stack: BenchStack, count: int) -> float:
    """KiB per cached workflow of the bare workflow (one update with one activity, no state), on its worker."""
    plain = await Client.connect(stack.temporal_address)
    gate = asyncio.Semaphore(64)
    with bare_worker(stack, "memory-bare") as worker:
        before = rss_mib(worker.pid)

        async def start_and_answer(n: int) -> None:
            async with gate:
                handle = await plain.start_workflow("BareEpisode", id=f"memory-bare-{n}", task_queue="memory-bare")
                await handle.execute_update("command", args=[f"memory-bare-{n}", 0])

        await asyncio.gather(*(start_and_answer(n) for n in range(count)))
        await asyncio.sleep(SETTLE_SECONDS)
        return (rss_mib(worker.pid) - before) * 1024 / count


async def _round(stack: BenchStack, client: Client, count: int, months: int) -> dict[str, Any]:
    policy_text = default_policy_text()
    policy = load_policy(policy_text)
    now = datetime.now(UTC)
    queue = f"memory-{months}m"
    simulated = {}
    for n in range(count):
        eid = f"M{months}-{n:05d}"
        simulated[eid] = simulate(
            eid, now - DAY * 30 * months, now, policy, DAY, Random(n), step_down_to=PATHS["outpatient"]
        )
    _, _, events = seed_simulated(stack, simulated)
    inputs = {eid: carried(eid, policy_text, state, steps) for eid, (state, steps) in simulated.items()}
    held = _python_kib(list(inputs.values())[: min(count, 200)])
    gate = asyncio.Semaphore(64)
    with stack.process(
        "worker", ready="worker.started", TEMPORAL_TASK_QUEUE=queue, CONTINUUM_WORKFLOW_CACHE=str(count + 100)
    ) as worker:
        before = rss_mib(worker.pid)

        async def start_and_answer(eid: str) -> None:
            async with gate:
                await start_carried(client, queue, simulated[eid][0], inputs[eid])
                meta = CommandMeta(f"memory-{eid}", "clin-1")
                handle = client.get_workflow_handle(workflow_id(eid))
                await handle.execute_update("change_medications", args=[meta, ChangeMedications((), "clin-1")])

        await asyncio.gather(*(start_and_answer(eid) for eid in inputs))
        await asyncio.sleep(SETTLE_SECONDS)
        after = rss_mib(worker.pid)
    return {
        "months_of_history": months,
        "episodes": count,
        "events_per_episode": round(events / count, 1),
        "worker_rss_before_mib": round(before, 1),
        "worker_rss_with_cached_episodes_mib": round(after, 1),
        "per_cached_episode_kib": round((after - before) * 1024 / count, 1),
        "python_objects_held_per_episode_kib": round(held, 1),
    }


def _python_kib(inputs: list[EpisodeInput]) -> float:
    """What a workflow keeps per episode once started from its carried input, as EpisodeWorkflow keeps it
    (the decoded state, the kept results packed, the earlier ids), sized with tracemalloc over a sample."""
    converter = DataConverter.default.payload_converter
    payloads = [converter.to_payloads([i])[0] for i in inputs]
    gc.collect()
    tracemalloc.start()
    began = tracemalloc.take_snapshot()
    decoded = [converter.from_payloads([p], [EpisodeInput])[0] for p in payloads]
    held = [(decode(Episode, i.state), KeptResults(i.results), dict.fromkeys(i.earlier_command_ids)) for i in decoded]
    del decoded
    gc.collect()
    grown = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(began, "filename"))
    tracemalloc.stop()
    del held
    return grown / 1024 / len(inputs)
