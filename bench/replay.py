"""Replay cost per history event of a 1-year and a 3-year episode, whatever the runs they continued into.

    python3 dev.py bench replay   (CONTINUUM_BENCH_REPLAY_YEARS="1,3": the episode lengths in care years;
                                   CONTINUUM_BENCH_REPLAY_DAY_SECONDS=0.4: one care day of the run, in seconds;
                                   CONTINUUM_BENCH_REPLAY_ROUNDS=3: replays of each run, the median is kept;
                                   CONTINUUM_BENCH_WRITE_HISTORY=1: also write the first length's longest run
                                   to tests/histories/episode_long.json)

One episode per length runs through the real stack (embedded Temporal and PostgreSQL, a `continuum worker`
process, `EpisodeCommands`) on a compressed care day, all at once: placed in intensive outpatient, stepped
down into outpatient at its first review, then kept there (every review answered `extend`), with drug tests
twice a week (the default policy, but outpatient tests 2/week instead of 1). The bench plays the lab (a
negative result for every test awaiting one, read from the `episodes` projection) and the therapists, until
the episode has been open for its length of care days; then it is discharged (completed), which ends its
workflow. The day is 0.4 s, not shorter: the dev server
fires timers on a tick of about a second, so with shorter days scheduled tests fall due while the clock
is late and are skipped (at 0.1 s an episode got about a third of its tests).

Then every run of each workflow is fetched (following continue-as-new from the first run) and replayed with
`temporalio.worker.Replayer` (both episode workflow types), one `replay_workflow` call per run, ROUNDS times
(fewer if a length's rounds pass 60 s; at least once).
Reported per length: events per run, runs, total events, ms per event (sum of the runs' median replay times
over all their events) and the longest single-run replay; and the ratio of the last length's ms per event to
the first's (target: 3y within 1.2x of 1y). Writes bench/results/replay.json.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from bench.care import answers
from bench.stack import BenchStack, bench_stack, publish
from continuum.domain.codec import decode
from continuum.domain.commands import Discharge, OpenEpisode, RecordAssessment
from continuum.domain.episode import DischargeReason, Episode
from continuum.domain.levels import LevelOfCare
from continuum.domain.policy import default_policy_text, load_policy
from continuum.episodes import EpisodeCommands
from continuum.eventlog.db import make_engine
from continuum.workflows.episode import EPISODE_WORKFLOWS, CommandMeta, workflow_id

RESULTS = Path(__file__).parent / "results" / "replay.json"
HISTORY = Path(__file__).resolve().parents[1] / "tests" / "histories" / "episode_long.json"
MILD = (1, 1, 1, 1, 1, 1)
REPLAY_BUDGET_SECONDS = 60.0  # per length: no new round of replays after this (the default run stays near 10 min)
# The default policy, with outpatient tested twice a week (as intensive outpatient is).
POLICY = default_policy_text().replace("\noutpatient = 1\n", "\noutpatient = 2\n")
assert POLICY != default_policy_text()


def main() -> None:
    years = [float(y) for y in os.environ.get("CONTINUUM_BENCH_REPLAY_YEARS", "1,3").split(",")]
    day_seconds = float(os.environ.get("CONTINUUM_BENCH_REPLAY_DAY_SECONDS", "0.4"))
    rounds = int(os.environ.get("CONTINUUM_BENCH_REPLAY_ROUNDS", "3"))
    write_history = os.environ.get("CONTINUUM_BENCH_WRITE_HISTORY") == "1"
    with bench_stack() as stack:
        report = asyncio.run(_measure(stack, years, day_seconds, rounds, write_history))
    publish(RESULTS, report)


async def _measure(
    stack: BenchStack, years: list[float], day_seconds: float, rounds: int, write_history: bool
) -> dict[str, Any]:
    client = await stack.client()
    queue = f"replay-{uuid.uuid4().hex[:6]}"
    day = timedelta(seconds=day_seconds)
    ids = {y: f"LONG-{queue}-{y:g}y" for y in years}
    began = time.perf_counter()
    with stack.process("worker", ready="worker.started", TEMPORAL_TASK_QUEUE=queue):
        episodes = EpisodeCommands(client, queue, policy_text=POLICY, day=day)
        sent = await _drive(episodes, stack.database_url, ids, day)
    engine = make_engine(stack.database_url)
    with engine.connect() as conn:
        recorded: dict[str, dict[str, int]] = {
            eid: dict(
                conn.execute(
                    text("SELECT event_type, count(*) FROM events WHERE stream_id = :s GROUP BY 1 ORDER BY 2 DESC"),
                    {"s": eid},
                ).all()
            )
            for eid in ids.values()
        }
    engine.dispose()
    driven = time.perf_counter() - began
    replayer = Replayer(workflows=list(EPISODE_WORKFLOWS), data_converter=client.data_converter)
    lengths: dict[str, Any] = {}
    for y, eid in ids.items():
        runs = await _runs(client, workflow_id(eid))
        samples: list[list[float]] = [[] for _ in runs]
        budget = time.perf_counter() + REPLAY_BUDGET_SECONDS
        for round_ in range(rounds):  # whole rounds over all runs, as many as the budget allows (at least one)
            if round_ and time.perf_counter() > budget:
                break
            for n, history in enumerate(runs):
                start = time.perf_counter()
                await replayer.replay_workflow(history)
                samples[n].append(time.perf_counter() - start)
        times = [statistics.median(s) for s in samples]
        events = [len(h.events) for h in runs]
        lengths[f"{y:g}y"] = {
            "episode_id": eid,
            "care_days": round(y * 365),
            "commands_sent_by_the_bench": sent[eid],
            "log_events": sum(recorded[eid].values()),
            "log_events_by_type": recorded[eid],
            "runs": len(runs),
            "replay_rounds": len(samples[0]),
            "events_per_run": events,
            "total_events": sum(events),
            "history_bytes_per_run": [h.to_json().__len__() for h in runs],
            "replay_ms_per_run": [round(t * 1000, 1) for t in times],
            "ms_per_event": round(sum(times) * 1000 / sum(events), 4),
            "longest_run_replay_ms": round(max(times) * 1000, 1),
        }
        if write_history and y == years[0]:
            longest = max(runs, key=lambda h: len(h.events))
            HISTORY.write_text(longest.to_json())
            print(f"written: {HISTORY} ({len(longest.events)} events)")
    first, last = lengths[f"{years[0]:g}y"], lengths[f"{years[-1]:g}y"]
    ratio = last["ms_per_event"] / first["ms_per_event"]
    return {
        "benchmark": "replay",
        "command": f"CONTINUUM_BENCH_REPLAY_YEARS={','.join(f'{y:g}' for y in years)} "
        f"CONTINUUM_BENCH_REPLAY_DAY_SECONDS={day_seconds:g} CONTINUUM_BENCH_REPLAY_ROUNDS={rounds}"
        " python3 dev.py bench replay",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "path": "intensive_outpatient -> outpatient (reviews answered extend), tests twice a week",
        "day_seconds": day_seconds,
        "replay_rounds": rounds,
        "episodes_run_seconds": round(driven, 1),
        "lengths": lengths,
        "ratio_ms_per_event_last_to_first": round(ratio, 3),
        "longest_single_run_replay_ms": max(v["longest_run_replay_ms"] for v in lengths.values()),
        "targets": {"last_within_1_2x_of_first": ratio <= 1.2},
    }


async def _drive(episodes: EpisodeCommands, database_url: str, ids: dict[float, str], day: timedelta) -> dict[str, int]:
    """Open the episodes and play the lab and the therapists until each has been open its length of care days."""
    policy = load_policy(POLICY)
    until = {eid: y * 365 for y, eid in ids.items()}
    for eid in ids.values():
        await episodes.open(
            _meta(), OpenEpisode(eid, f"client-{eid.lower()}", assessment=RecordAssessment(MILD, "clin-b"))
        )
    engine = make_engine(database_url)
    answered: set[str] = set()
    sent = dict.fromkeys(ids.values(), 0)
    remaining = set(ids.values())
    last_print = time.monotonic()
    try:
        while remaining:
            with engine.connect() as conn:
                rows = conn.execute(
                    text("SELECT episode_id, state FROM episodes WHERE episode_id = ANY(:ids)"),
                    {"ids": list(remaining)},
                ).all()
            work, keys = [], []
            for row in rows:
                state = decode(Episode, row.state)
                elapsed = (datetime.now(UTC) - state.opened_at) / day
                if elapsed >= until[row.episode_id]:  # its length of care: discharged, so its workflow ends
                    await episodes.send(
                        row.episode_id,
                        CommandMeta(f"{row.episode_id}/discharge", "clin-b"),
                        Discharge(DischargeReason.COMPLETED),
                    )
                    sent[row.episode_id] += 1
                    remaining.discard(row.episode_id)
                    continue
                for owed in answers(state, policy, day, step_down_to=LevelOfCare.OUTPATIENT):
                    key = f"{row.episode_id}/{owed.key}"
                    if key not in answered:
                        keys.append((row.episode_id, key))
                        work.append(episodes.send(row.episode_id, CommandMeta(key, owed.actor), owed.command))
            outcomes = await asyncio.gather(*work, return_exceptions=True)
            for (eid, key), outcome in zip(keys, outcomes, strict=True):
                if not isinstance(outcome, BaseException):
                    answered.add(key)
                    sent[eid] += 1
            if time.monotonic() - last_print > 15:
                last_print = time.monotonic()
                print(f"commands sent: {sent}", flush=True)
            await asyncio.sleep(0.05)
    finally:
        engine.dispose()
    return sent


async def _runs(client: Client, wid: str) -> list[WorkflowHistory]:
    """Every run of the workflow, oldest first: from its first run, along continue-as-new."""
    description = await client.get_workflow_handle(wid).describe()
    run_id: str | None = description.raw_description.workflow_execution_info.first_run_id or None
    if run_id is None:  # an older server: the oldest run the visibility store lists
        listed = [w async for w in client.list_workflows(f'WorkflowId = "{wid}"')]
        run_id = min(listed, key=lambda w: w.start_time).run_id
    runs = []
    while run_id:
        history = await client.get_workflow_handle(wid, run_id=run_id).fetch_history()
        runs.append(history)
        last = history.events[-1]
        attributes = last.workflow_execution_continued_as_new_event_attributes
        run_id = (
            attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else None
        )
    return runs


def _meta() -> CommandMeta:
    return CommandMeta(uuid.uuid4().hex, "svc:bench")
