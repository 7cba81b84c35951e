"""A worker restart under N open episodes with a year of care each: how long until all of them answer again.

    python3 dev.py bench restart   (CONTINUUM_BENCH_RESTART_EPISODES=N, default 1,000;
                                    CONTINUUM_BENCH_RESTART_COMMANDS=C, commands per episode before the kill, default 3;
                                    CONTINUUM_BENCH_RESTART_IN_FLIGHT=64, commands in flight at once;
                                    CONTINUUM_BENCH_RESTART_LEAD_SECONDS=L, when the overdue results fall due,
                                    in seconds after the start; default estimated from N and C;
                                    CONTINUUM_BENCH_RESTART_PATH=aftercare, or outpatient: where the year leads;
                                    CONTINUUM_BENCH_RESTART_DEADLINE_SECONDS=300: after the restart, the bench
                                    stops waiting and counts what has not answered or fired)

Seeding, as a continued-as-new episode looks: each episode's year is played in the pure domain
(`bench.care.simulate`: the clock's `next_due` with `draw_schedule` from a seeded `random.Random`, `decide`,
`fold`): assessment, intensive outpatient, reviews answered `goals_met`, outpatient, aftercare (the default
policy, real day length), with scheduled tests ordered and resulted, referrals and consents, follow-ups.
With PATH=outpatient the client stays in outpatient instead (every review answered `extend`), so the state
has reviews and tests but no referrals or follow-ups.
Three days before its due instant (the start + L s, spread over 10 s), a clinician orders a test whose result
never comes: its window (3 days) ends while the worker is down. The events are COPYed into the log (hash
chain continued, real metadata), and the episodes projection is rebuilt from the log. Each workflow is then
started with `EpisodeInput(..., state=encode(final state))` plus the command results and ids continue-as-new
would carry (as `_carry` in workflows/episode.py does), and its search attributes.

Then a `continuum worker` process serves them; each episode gets C real commands (a clinician's
ChangeMedications), the worker is SIGKILLed, the bench waits until every overdue instant has passed, and a new
worker is started. Measured from the new worker's start: until every episode has answered one more command
(ChangeMedications, 64 in flight), and until every overdue timer has fired (its TestResultOverdue recorded in
the log). From the histories afterwards: the longest workflow task (WorkflowTaskStarted to its Completed or
Failed), workflow task timeouts (by type) and failures; and the workers' log lines with TMPRL1104.
Targets: all answered within 60 s, no workflow task over 1 s, no task timeouts. Writes bench/results/restart.json
(restart_outpatient.json for PATH=outpatient). If a workflow started from its carried state fails its first
workflow task, the bench stops there and records the failure (`carried_state_refused`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import platform
import re
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

from sqlalchemy import text
from temporalio.api.enums.v1 import EventType, TimeoutType, WorkflowTaskFailedCause
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.converter import DataConverter

from bench.care import Step, simulate
from bench.seed import seed_events
from bench.stack import BenchStack, bench_stack, publish
from continuum.domain.codec import encode, to_envelope
from continuum.domain.commands import ChangeMedications, OrderTest
from continuum.domain.episode import Episode
from continuum.domain.levels import LevelOfCare
from continuum.domain.policy import default_policy_text, load_policy
from continuum.domain.testing import OrderReason
from continuum.eventlog.projection import rebuild_episodes
from continuum.eventlog.records import EventMetadata
from continuum.workflows import episode as episode_module
from continuum.workflows.episode import (
    CareEpisodeWorkflow,
    CommandMeta,
    CommandResult,
    EpisodeInput,
    RecordedEvent,
    workflow_id,
)
from continuum.workflows.search_attributes import EPISODE_LEVEL, EPISODE_STATUS

RESULTS = Path(__file__).parent / "results" / "restart.json"
DAY = timedelta(days=1)
SPREAD = timedelta(seconds=10)  # the overdue instants, spread over this much
MIN_OUTAGE = timedelta(seconds=5)
UNHANDLED_FAILURE = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE
ANSWER_TIMEOUT = 900.0  # a command not answered by then stops the bench
# Where the simulated year leads: the policy's continuum into aftercare (follow-ups, referrals), or a client
# kept in outpatient (every review answered `extend`), whose state has no follow-ups or referrals.
PATHS = {"aftercare": LevelOfCare.AFTERCARE, "outpatient": LevelOfCare.OUTPATIENT}


class CarriedStateRefused(Exception):
    """A workflow started from a carried state fails its workflow task (the message is the task's failure)."""


def _worker_env() -> dict[str, str]:
    """The worker settings a run may set (the bench's stack passes no CONTINUUM_ variable on by itself)."""
    return {k: os.environ[k] for k in ("CONTINUUM_WORKFLOW_TASKS", "CONTINUUM_WORKFLOW_CACHE") if k in os.environ}


def main() -> None:
    count = int(os.environ.get("CONTINUUM_BENCH_RESTART_EPISODES", "1000"))
    commands = int(os.environ.get("CONTINUUM_BENCH_RESTART_COMMANDS", "3"))
    in_flight = int(os.environ.get("CONTINUUM_BENCH_RESTART_IN_FLIGHT", "64"))
    lead = float(os.environ.get("CONTINUUM_BENCH_RESTART_LEAD_SECONDS", "0")) or _estimated_lead(count, commands)
    path = os.environ.get("CONTINUUM_BENCH_RESTART_PATH", "aftercare")
    deadline = float(os.environ.get("CONTINUUM_BENCH_RESTART_DEADLINE_SECONDS", "300"))
    if path not in PATHS:
        raise SystemExit(f"CONTINUUM_BENCH_RESTART_PATH is one of {', '.join(PATHS)}, not {path!r}")
    with bench_stack() as stack:
        report = asyncio.run(_measure(stack, count, commands, in_flight, lead, path, deadline))
    publish(RESULTS if path == "aftercare" else RESULTS.with_name(f"restart_{path}.json"), report)


def _estimated_lead(count: int, commands: int) -> float:
    """Seconds from the start until the kill, with room: the overdue instants must fall after it."""
    return 30 + count * (0.2 + commands * 0.14)  # main, 1,000 episodes x 3 commands: killed 618 s after the start


async def _measure(
    stack: BenchStack, count: int, commands: int, in_flight: int, lead: float, path: str, deadline: float
) -> dict[str, Any]:
    client = await stack.client()
    queue = f"restart-{uuid.uuid4().hex[:6]}"
    policy_text = default_policy_text()
    policy = load_policy(policy_text)
    began = time.perf_counter()
    start = datetime.now(UTC)
    ids = [f"YR-{queue}-{n:05d}" for n in range(count)]

    # -- seeding: a year of care per episode, in the pure domain, COPYed into the log --------------------
    window = DAY * policy.drug_testing.result_window_days
    overdue_at = {eid: start + timedelta(seconds=lead) + SPREAD * n / count for n, eid in enumerate(ids)}
    simulated: dict[str, tuple[Episode, list[Step]]] = {}
    for n, eid in enumerate(ids):
        ordered = overdue_at[eid] - window
        simulated[eid] = simulate(
            eid,
            ordered - DAY * 365,
            start,
            policy,
            DAY,
            Random(n),
            step_down_to=PATHS[path],
            orders=((ordered, "clin-1", OrderTest("clin-1")),),
        )
    awaited = {eid: next(t for t in s.tests if t.reason is OrderReason.CLINICIAN) for eid, (s, _) in simulated.items()}
    assert all(test.result_due_at == overdue_at[eid] for eid, test in awaited.items())
    simulate_seconds = time.perf_counter() - began
    copy_seconds, rebuild_seconds, rows = seed_simulated(stack, simulated)
    seeding_seconds = time.perf_counter() - began
    inputs = {eid: carried(eid, policy_text, state, steps) for eid, (state, steps) in simulated.items()}
    state_bytes = [len(json.dumps(i.state, separators=(",", ":"))) for i in inputs.values()]
    payload_bytes = [DataConverter.default.payload_converter.to_payloads([i])[0].ByteSize() for i in inputs.values()]
    print(
        f"seeded {rows} events in {seeding_seconds:.1f} s; overdue instants {lead:.0f} s after the start",
        flush=True,
    )

    common = {
        "benchmark": "restart",
        "command": "".join(f"{k}={v} " for k, v in _worker_env().items())
        + f"CONTINUUM_BENCH_RESTART_EPISODES={count} CONTINUUM_BENCH_RESTART_COMMANDS={commands} "
        f"CONTINUUM_BENCH_RESTART_IN_FLIGHT={in_flight} CONTINUUM_BENCH_RESTART_PATH={path} "
        f"CONTINUUM_BENCH_RESTART_LEAD_SECONDS={lead:g} CONTINUUM_BENCH_RESTART_DEADLINE_SECONDS={deadline:g} "
        "python3 dev.py bench restart",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "measured_at": start.isoformat(timespec="seconds"),
        "episodes": count,
        "commands_before_kill_per_episode": commands,
        "in_flight": in_flight,
        "path": path,
        "final_levels": dict(Counter(s.level.value for s, _ in simulated.values() if s.level)),
        "seeding": {
            "events": rows,
            "events_per_episode": round(rows / count, 1),
            "simulate_seconds": round(simulate_seconds, 1),
            "copy_seconds": round(copy_seconds, 1),
            "projection_rebuild_seconds": round(rebuild_seconds, 1),
            "total_seconds": round(seeding_seconds, 1),
            "carried_state_bytes_median": int(statistics.median(state_bytes)),
            "carried_state_bytes_max": max(state_bytes),
            "carried_input_payload_bytes_median": int(statistics.median(payload_bytes)),
            "carried_input_payload_bytes_max": max(payload_bytes),
        },
    }
    try:
        return {
            **common,
            **await _restart(
                stack,
                client,
                queue,
                ids,
                simulated,
                inputs,
                overdue_at,
                awaited,
                commands,
                in_flight,
                lead,
                start,
                began,
                deadline,
            ),
        }
    except CarriedStateRefused as refused:
        print(f"a workflow started from its carried state fails its first task: {refused}", flush=True)
        return {**common, "carried_state_refused": str(refused), "targets": {"starts_from_carried_state": False}}


async def _restart(
    stack: BenchStack,
    client: Client,
    queue: str,
    ids: list[str],
    simulated: dict[str, tuple[Episode, list[Step]]],
    inputs: dict[str, EpisodeInput],
    overdue_at: dict[str, datetime],
    awaited: dict[str, Any],
    commands: int,
    in_flight: int,
    lead: float,
    start: datetime,
    began: float,
    deadline: float,
) -> dict[str, Any]:
    gate = asyncio.Semaphore(in_flight)
    errors: Counter[str] = Counter()
    medications = (("buprenorphine",), ())

    async def send(eid: str, key: str, k: int) -> None:
        command = ChangeMedications(medications[k % 2], "clin-1")
        handle = client.get_workflow_handle(workflow_id(eid))
        give_up = time.monotonic() + ANSWER_TIMEOUT
        attempt = 0
        while time.monotonic() < give_up:
            attempt += 1
            try:
                async with gate:
                    # By its wire name, as any client of a running episode sends it.
                    meta = CommandMeta(key, "clin-1")
                    await handle.execute_update("change_medications", args=[meta, command], id=key)
                return
            except Exception as error:  # noqa: BLE001 - counted, and sent again with the same id
                task = asyncio.current_task()
                if task is not None and task.cancelling():  # the SDK reports a cancelled wait as an error
                    raise asyncio.CancelledError from None
                name = type(error).__name__
                if "Workflow Task in failed state" in str(error):  # retried tasks (after a timeout), or a real failure
                    failure = await _task_failure(client, eid)
                    if failure is not None:
                        raise CarriedStateRefused(failure) from None
                    name = "workflow task being retried"
                if not errors[name]:
                    print(f"{key}: {name}: {error} {getattr(error, 'cause', '')}", flush=True)
                errors[name] += 1
                await asyncio.sleep(min(0.5 * attempt, 5))
        raise RuntimeError(f"episode {eid} did not answer {key}")

    # -- the first worker: the episodes start from their carried state, and get C commands each --------------
    first_log: list[str] = []
    with stack.process(
        "worker", ready="worker.started", log=first_log, TEMPORAL_TASK_QUEUE=queue, **_worker_env()
    ) as worker:
        phase = time.perf_counter()

        async def start_one(eid: str) -> None:
            async with gate:
                await start_carried(client, queue, simulated[eid][0], inputs[eid])

        await _all_or_none([start_one(eid) for eid in ids])
        start_seconds = time.perf_counter() - phase
        phase = time.perf_counter()

        async def before_kill(eid: str) -> None:
            for k in range(commands):
                await send(eid, f"before-{k}-{eid}", k)

        await _all_or_none([before_kill(eid) for eid in ids])
        commands_seconds = time.perf_counter() - phase
        killed_at = datetime.now(UTC)
        worker.kill()  # SIGKILL: no graceful shutdown, the sticky queues and in-flight tasks are lost
        worker.wait()
    print(f"worker killed {(killed_at - start).total_seconds():.0f} s after the start", flush=True)
    errors_before_kill = dict(errors)
    errors.clear()

    lengths_at_kill = await _gathered(ids, in_flight, lambda eid: _history_length(client, eid))
    restart_at = max(max(overdue_at.values()) + timedelta(seconds=1), killed_at + MIN_OUTAGE)
    await asyncio.sleep(max(0.0, (restart_at - datetime.now(UTC)).total_seconds()))

    # -- the restart: a new worker; every episode answers a command; every overdue timer fires -----------
    second_log: list[str] = []
    restarted_at = datetime.now(UTC)
    restarted = time.perf_counter()
    with stack.process("worker", ready="worker.started", log=second_log, TEMPORAL_TASK_QUEUE=queue, **_worker_env()):
        ready_seconds = time.perf_counter() - restarted
        answered: dict[str, float] = {}

        async def after_restart(eid: str) -> None:
            await send(eid, f"after-{eid}", commands)
            answered[eid] = time.perf_counter() - restarted

        overdue_task = asyncio.create_task(_overdue_recorded(stack, awaited, restarted + deadline))
        tasks = [asyncio.create_task(after_restart(eid)) for eid in ids]
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, restarted + deadline - time.perf_counter()))
        for task in pending:  # not answered by the deadline: counted, not waited for
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        failed = [error for t in tasks if t.done() and not t.cancelled() and (error := t.exception()) is not None]
        if failed:
            overdue_task.cancel()
            raise failed[0]
        answered_all = time.perf_counter() - restarted
        overdue = await overdue_task
        histories = await _gathered(ids, in_flight, lambda eid: _workflow_tasks(client, eid, restarted_at))
    total_seconds = time.perf_counter() - began

    expected = [eid for eid in ids if killed_at < overdue_at[eid] < restarted_at]
    fired_before_kill = sum(1 for eid, at in overdue.items() if at < killed_at)
    fired = [(at - restarted_at).total_seconds() for eid, at in overdue.items() if eid in expected]
    durations = [d for h in histories.values() for d in h["durations"]]
    after = [d for h in histories.values() for d in h["durations_after_restart"]]
    timeouts: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    for h in histories.values():
        timeouts.update(h["timeouts"])
        failures.update(h["failures"])
    warnings = {
        name: Counter(code for line in log for code in _codes(line))
        for name, log in (("first", first_log), ("second", second_log))
    }
    latencies = sorted(answered.values())
    answered_within = not pending and answered_all <= 60
    longest = max(durations, default=0.0)
    return {
        "before_kill": {
            "start_seconds": round(start_seconds, 1),
            "commands_seconds": round(commands_seconds, 1),
            "commands_per_second": round(len(ids) * commands / commands_seconds, 1) if commands else None,
            "commands_sent_again": errors_before_kill,
            "history_events_per_run_at_kill_median": int(statistics.median(lengths_at_kill.values())),
            "history_events_per_run_at_kill_max": max(lengths_at_kill.values()),
            "kill_after_start_seconds": round((killed_at - start).total_seconds(), 1),
            "lead_seconds": round(lead, 1),
        },
        "outage_seconds": round((restarted_at - killed_at).total_seconds(), 1),
        "after_restart": {
            "worker_ready_seconds": round(ready_seconds, 1),
            "deadline_seconds": deadline,
            "unanswered_at_deadline": len(pending),
            "all_answered_seconds": round(answered_all, 1) if not pending else None,
            "answered_by_the_deadline": len(latencies),
            "answer_seconds_p50": _quantile(latencies, 0.5),
            "answer_seconds_p95": _quantile(latencies, 0.95),
            "commands_sent_again": dict(errors),
            "overdue_timers_expected": len(expected),
            "overdue_timers_fired": len(fired),
            "overdue_fired_before_the_kill": fired_before_kill,
            "all_overdue_fired_seconds": round(max(fired), 1) if fired else None,
        },
        "workflow_tasks": {
            "count": len(durations),
            "longest_ms": round(longest * 1000, 1),
            "longest_after_restart_ms": round(max(after, default=0.0) * 1000, 1),
            "p99_after_restart_ms": round(sorted(after)[int(len(after) * 0.99)] * 1000, 1) if after else None,
            "over_1s": sum(1 for d in durations if d > 1),
            "timeouts": dict(timeouts),
            "failures": dict(failures),
            "history_events_per_run_at_end_max": max(h["length"] for h in histories.values()),
        },
        "worker_log_codes": {name: dict(codes) for name, codes in warnings.items()},
        "tmprl1104_lines": sum(codes.get("TMPRL1104", 0) for codes in warnings.values()),
        "total_seconds": round(total_seconds, 1),
        "targets": {
            "all_answered_within_60s": answered_within,
            "no_workflow_task_over_1s": longest <= 1,
            "no_task_timeouts": not timeouts,
            "every_overdue_timer_fired": len(fired) == len(expected) and bool(expected),
        },
    }


async def start_carried(client: Client, queue: str, state: Episode, carried: EpisodeInput) -> None:
    """Start an episode's workflow from the input its earlier run carried, with its search attributes."""
    attributes = TypedSearchAttributes(
        [
            SearchAttributePair(EPISODE_LEVEL, state.level.value if state.level else "none"),
            SearchAttributePair(EPISODE_STATUS, state.status.value),
        ]
    )
    await client.start_workflow(
        CareEpisodeWorkflow.run,
        carried,
        id=workflow_id(carried.episode_id),
        task_queue=queue,
        search_attributes=attributes,
    )


def seed_simulated(stack: BenchStack, simulated: dict[str, tuple[Episode, list[Step]]]) -> tuple[float, float, int]:
    """Write simulated episodes into the log as their earlier run recorded them (hash chain continued, real
    metadata), in one log order, and rebuild the episodes projection from it: (copy s, rebuild s, events)."""
    store = stack.store()  # migrates the empty database
    rows = []
    for eid, (_, steps) in simulated.items():
        meta = EventMetadata(workflow_id=workflow_id(eid), run_id=str(uuid.uuid4()))  # the earlier run
        version = 0
        for step in steps:
            stamp = dataclasses.replace(meta, actor=step.actor, causation_id=step.command_id)
            for event in step.events:
                version += 1
                rows.append((eid, version, event, stamp))
    rows.sort(key=lambda row: row[2].occurred_at)  # one log, in the order it was written
    copy_began = time.perf_counter()
    seed_events(stack.database_url.replace("postgresql+psycopg://", "postgresql://"), rows)
    copy_seconds = time.perf_counter() - copy_began
    rebuild_began = time.perf_counter()
    rebuild_episodes(store)
    store.engine.dispose()
    return copy_seconds, time.perf_counter() - rebuild_began, len(rows)


def carried(eid: str, policy_text: str, state: Episode, steps: list[Step]) -> EpisodeInput:
    """The input continue-as-new would hand the next run: the state, and the command results and ids it keeps."""
    fields = {f.name for f in dataclasses.fields(EpisodeInput)}
    carried: dict[str, Any] = {
        "episode_id": eid,
        "policy_text": policy_text,
        "day_seconds": DAY.total_seconds(),
        "state": encode(state),
    }
    kept = getattr(episode_module, "KEPT_RESULTS", 200)
    if "results" in fields:
        carried["results"] = {
            s.command_id: CommandResult(
                s.command_id, [RecordedEvent(e.type, e.data) for e in map(to_envelope, s.events)], {}
            )
            for s in steps[-kept:]
        }
    if "earlier_command_ids" in fields:
        carried["earlier_command_ids"] = sorted(s.command_id for s in steps[:-kept])
    return EpisodeInput(**carried)


async def _all_or_none(calls: list[Awaitable[None]]) -> None:
    """Run the calls at once; on the first failure, cancel the others and raise it."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _gathered(ids: list[str], in_flight: int, call: Callable[[str], Awaitable[Any]]) -> dict[str, Any]:
    gate = asyncio.Semaphore(in_flight)

    async def one(eid: str) -> Any:
        async with gate:
            return await call(eid)

    return dict(zip(ids, await asyncio.gather(*(one(eid) for eid in ids)), strict=True))


async def _history_length(client: Client, eid: str) -> int:
    description = await client.get_workflow_handle(workflow_id(eid)).describe()
    return int(description.raw_description.workflow_execution_info.history_length)


async def _overdue_recorded(stack: BenchStack, awaited: dict[str, Any], until: float) -> dict[str, datetime]:
    """When each awaited test's TestResultOverdue was recorded (polls the log until all are, or `until`)."""
    from continuum.eventlog.db import make_engine

    engine = make_engine(stack.database_url)
    query = text(
        "SELECT stream_id, payload->>'test_id' AS test_id, recorded_at FROM events "
        "WHERE event_type = 'TestResultOverdue' AND stream_id = ANY(:ids)"
    )
    found: dict[str, datetime] = {}
    try:
        while len(found) < len(awaited) and time.perf_counter() < until:
            with engine.connect() as conn:
                for row in conn.execute(query, {"ids": [e for e in awaited if e not in found]}):
                    if awaited[row.stream_id].test_id == row.test_id:
                        found[row.stream_id] = row.recorded_at
            await asyncio.sleep(0.5)
    finally:
        engine.dispose()
    return found


async def _workflow_tasks(client: Client, eid: str, since: datetime) -> dict[str, Any]:
    """The current run's workflow tasks: durations (started to completed or failed), timeouts and failures."""
    history = await client.get_workflow_handle(workflow_id(eid)).fetch_history()
    started: dict[int, datetime] = {}
    durations, after = [], []
    timeouts: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    for event in history.events:
        at = event.event_time.ToDatetime(tzinfo=UTC)
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            started[event.event_id] = at
        elif event.event_type in (
            EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
        ):
            attributes = (
                event.workflow_task_completed_event_attributes
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
                else event.workflow_task_failed_event_attributes
            )
            began = started.get(attributes.started_event_id)
            if began is not None:
                durations.append((at - began).total_seconds())
                if began >= since:
                    after.append((at - began).total_seconds())
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                failures[WorkflowTaskFailedCause.Name(event.workflow_task_failed_event_attributes.cause)] += 1
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            timeouts[TimeoutType.Name(event.workflow_task_timed_out_event_attributes.timeout_type)] += 1
    return {
        "durations": durations,
        "durations_after_restart": after,
        "timeouts": timeouts,
        "failures": failures,
        "length": len(history.events),
    }


def _quantile(values: list[float], q: float) -> float | None:
    return round(values[min(len(values) - 1, int(len(values) * q))], 2) if values else None


def _codes(line: str) -> list[str]:
    return re.findall(r"TMPRL\d{4}", line)


async def _task_failure(client: Client, eid: str) -> str | None:
    """The first workflow task of the episode's current run that failed in the workflow code: its message and
    where it was raised (None if there is none)."""
    history = await client.get_workflow_handle(workflow_id(eid)).fetch_history()
    for event in history.events:
        if (
            event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
            and event.workflow_task_failed_event_attributes.cause == UNHANDLED_FAILURE
        ):
            failure = event.workflow_task_failed_event_attributes.failure
            frames = [
                line.strip().split("/wt-bench/")[-1].split("/main/")[-1]
                for line in failure.stack_trace.splitlines()
                if line.strip().startswith("File") and ("domain/" in line or "workflows/" in line)
            ]
            return f"{failure.message} (a workflow task failure; raised in {' <- '.join(reversed(frames))})"
    return None  # no failure on record: the task timed out and is being retried
