"""Policy simulation speed: recorded episodes re-decided a minute, the log read included.

    python3 dev.py bench simulate   (CONTINUUM_BENCH_SIMULATE_EPISODES=N, default 10,000;
                                     CONTINUUM_BENCH_SIMULATE_WORKERS=W, default one process per core)

Plays N episodes in the pure domain as the workflow records them (`bench.care.simulate`: the clock's
`next_due`, schedule draws from a seeded generator, the lab's negative results, therapists' reviews, referrals
and follow-ups answered), each 30 to 365 care days long, some with a clinician's order, stepping down to a
level drawn per episode; seeds them into an embedded PostgreSQL by COPY (a valid, hash-chained log), then
times `continuum.simulations.run_simulation` (the one path behind the API and `continuum simulate`: the log
read in one snapshot, every episode re-decided, compared and reported) under the current policy (every
episode must come back unchanged) and under a proposed one (intensive outpatient tested once a week instead of
twice, and the unstable-environment rule from rating 2), and the pure engine alone on the histories in memory.
Target: at least 10,000 recorded episodes a minute. Writes bench/results/simulate.json.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

from bench.care import simulate as play
from bench.seed import seed_events
from bench.stack import embedded_postgres, publish
from continuum.domain.commands import OrderTest
from continuum.domain.events import DomainEvent
from continuum.domain.levels import LevelOfCare
from continuum.domain.policy import default_policy_text, load_policy
from continuum.domain.simulation import simulate
from continuum.eventlog.db import make_engine
from continuum.eventlog.migrate import apply_migrations
from continuum.eventlog.records import EventMetadata
from continuum.eventlog.store import PostgresEventStore
from continuum.simulations import report, run_simulation

RESULTS = Path(__file__).parent / "results" / "simulate.json"
DAY = timedelta(days=1)
T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
TARGET_PER_MINUTE = 10_000
UNSTABLE = 'name = "unstable_recovery_environment"\ndimension = 6\nat_least = 3'
PROPOSED = (
    default_policy_text()
    .replace("intensive_outpatient = 2\n", "intensive_outpatient = 1\n", 1)
    .replace(UNSTABLE, UNSTABLE.replace("at_least = 3", "at_least = 2"))
)
STEP_DOWN_TO = (LevelOfCare.INTENSIVE_OUTPATIENT, LevelOfCare.OUTPATIENT, LevelOfCare.AFTERCARE)


def main() -> None:
    count = int(os.environ.get("CONTINUUM_BENCH_SIMULATE_EPISODES", "10000"))
    workers = int(os.environ.get("CONTINUUM_BENCH_SIMULATE_WORKERS", str(os.cpu_count() or 1)))
    assert PROPOSED != default_policy_text() and "intensive_outpatient = 1\n" in PROPOSED
    load = round(os.getloadavg()[0], 2)  # other work on the machine slows every figure below
    began = time.perf_counter()
    histories = dict(_recorded(count))
    played = time.perf_counter() - began
    events = sum(map(len, histories.values()))
    with embedded_postgres() as url:
        apply_migrations(url)
        began = time.perf_counter()
        seed_events(url.replace("postgresql+psycopg://", "postgresql://"), _rows(histories))
        seeded = time.perf_counter() - began
        store = PostgresEventStore(make_engine(url, role="continuum_app", pool_size=2))
        current = _timed(store, default_policy_text(), count, workers)
        proposed = _timed(store, PROPOSED, count, workers)
    policy = load_policy(default_policy_text())
    began, cpu = time.perf_counter(), _cpu()
    unchanged = sum(simulate(e, h, policy, DAY).events == tuple(h) for e, h in histories.items())
    engine_seconds, engine_cpu = time.perf_counter() - began, _cpu() - cpu
    assert current["cohort"]["episodes_unchanged"] == count == unchanged, "the current policy must reproduce the log"
    publish(
        RESULTS,
        {
            "benchmark": "simulate",
            "command": (
                f"CONTINUUM_BENCH_SIMULATE_EPISODES={count} CONTINUUM_BENCH_SIMULATE_WORKERS={workers}"
                " python3 dev.py bench simulate"
            ),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_average_1m_at_start": load,
            "workers": workers,
            "episodes": count,
            "events": events,
            "events_per_episode": round(events / count, 1),
            "played_in_seconds": round(played, 1),
            "seeded_in_seconds": round(seeded, 1),
            "current_policy": current["timing"],
            "proposed_policy": proposed["timing"],
            "pure_engine_current_policy_one_process": _rate(count, engine_seconds, engine_cpu, 1),
            "current_policy_unchanged_episodes": current["cohort"]["episodes_unchanged"],
            "proposed_policy_cohort": {
                k: proposed["cohort"][k]
                for k in (
                    "placements_changed",
                    "step_ups_added",
                    "step_ups_removed",
                    "tests_ordered",
                    "results_dropped",
                    "tests_without_result",
                    "draws_new",
                )
            },
            "targets": {
                "at_least_10000_episodes_a_minute_current": current["timing"]["episodes_per_minute"]
                >= TARGET_PER_MINUTE,
                "at_least_10000_episodes_a_minute_proposed": proposed["timing"]["episodes_per_minute"]
                >= TARGET_PER_MINUTE,
            },
        },
    )


def _recorded(count: int) -> Iterator[tuple[str, list[DomainEvent]]]:
    """`count` episodes as the workflow would have recorded them, opened a few minutes apart."""
    policy = load_policy(default_policy_text())
    for n in range(count):
        rng = Random(n)
        episode_id = f"SIM-{n:06d}"
        opened = T0 + timedelta(minutes=7 * n)
        until = opened + DAY * rng.randint(30, 365)
        orders = ((opened + DAY * rng.uniform(1, 25), "clin-1", OrderTest("clin-1", "lab-1")),) if n % 3 == 0 else ()
        down = rng.choice(STEP_DOWN_TO)
        _, steps = play(episode_id, opened, until, policy, DAY, rng, step_down_to=down, orders=orders)
        yield episode_id, [event for step in steps for event in step.events]


def _rows(histories: dict[str, list[DomainEvent]]) -> Iterator[tuple[str, int, DomainEvent, EventMetadata]]:
    metadata = EventMetadata(actor="service:bench")
    for episode_id, events in histories.items():
        for version, event in enumerate(events, start=1):
            yield episode_id, version, event, metadata


def _timed(store: PostgresEventStore, policy_text: str, count: int, workers: int) -> dict[str, Any]:
    began, cpu = time.perf_counter(), _cpu()
    run = run_simulation(store, policy_text, day=DAY, workers=workers)
    body = report(run, per_episode=True)
    seconds, cpu = time.perf_counter() - began, _cpu() - cpu
    assert len(run.comparisons) == count
    return {"cohort": body["cohort"], "timing": _rate(count, seconds, cpu, workers)}


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the worker processes; PostgreSQL's not counted)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _rate(count: int, seconds: float, cpu: float, workers: int) -> dict[str, float]:
    """Wall-clock rate, and the rate the CPU time spent would give on an idle machine with `workers` cores (an
    estimate: on a shared machine the wall clock counts other processes' turns too)."""
    return {
        "seconds": round(seconds, 2),
        "episodes_per_minute": round(count / seconds * 60),
        "cpu_seconds": round(cpu, 2),
        "episodes_per_minute_idle_estimate": round(count / (cpu / workers) * 60),
    }
