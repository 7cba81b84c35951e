"""Policy simulation over the log: read the recorded cohort, re-decide it under a proposed policy with the pure
domain (`domain.simulation`), and report it beside what happened. Reads only: nothing is written to the log
and no workflow is started. The one path the API (`POST /api/v1/simulations`) and `continuum simulate` share.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from multiprocessing import get_context
from typing import Any

from sqlalchemy import text

from continuum.domain.codec import EventEnvelope, encode, from_envelope
from continuum.domain.comparison import CohortComparison, EpisodeComparison, compare, summarise
from continuum.domain.errors import DomainError
from continuum.domain.events import DomainEvent, EpisodeOpened
from continuum.domain.measures import Grouping, Measures, compute_measures
from continuum.domain.measures import Period as MeasuresPeriod
from continuum.domain.policy import load_policy
from continuum.domain.simulation import SimulatedEpisode, simulate
from continuum.eventlog.db import make_engine
from continuum.eventlog.store import PostgresEventStore

PAGE = 20_000  # log rows read per page
PARALLEL_FROM_EVENTS = 200_000  # a log this long is read and simulated in one process per core


class PeriodInvalid(DomainError):
    """A simulation's period that is not a date range; `field` names the option or body field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


@dataclass(frozen=True)
class Period:
    """The admission cohort: episodes opened from `start` through `end` (whole UTC days, both inclusive)."""

    start: date | None = None
    end: date | None = None

    @classmethod
    def parse(cls, start: str | None, end: str | None) -> Period:
        period = cls(_date("from", start), _date("to", end))
        if period.start and period.end and period.end < period.start:
            raise PeriodInvalid("to", f"{period.end} is before from ({period.start})")
        return period

    def admits(self, opened_at: datetime) -> bool:
        if self.start and opened_at < datetime.combine(self.start, time(), UTC):
            return False
        return not (self.end and opened_at >= datetime.combine(self.end + timedelta(days=1), time(), UTC))


def _date(field: str, value: str | None) -> date | None:
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PeriodInvalid(field, f"{value!r} is not a date (YYYY-MM-DD)") from None


@dataclass(frozen=True)
class SimulationRun:
    """A cohort simulated, with the log position it was read at: each episode compared, and (read in this
    process) the histories as recorded and as simulated."""

    log_position: int
    policy_version: str
    day: timedelta
    comparisons: list[EpisodeComparison]
    recorded: dict[str, list[DomainEvent]] = field(default_factory=dict)
    simulated: dict[str, SimulatedEpisode] = field(default_factory=dict)


@dataclass(frozen=True)
class Partition:
    """One share of the log's episodes (by a hash of the episode id), so that processes read and simulate
    apart; `Partition(0, 1)` is the whole log."""

    index: int = 0
    count: int = 1


def read_histories(
    store: PostgresEventStore, period: Period = Period(), *, head: int | None = None, share: Partition = Partition()
) -> tuple[int, dict[str, list[DomainEvent]]]:
    """Every episode opened in `period` (in `share` of the log), as its events in order, and the log position
    read up to: the head when the read began, unless given (the log is append-only, so everything up to a
    position is one consistent record)."""
    histories: dict[str, list[DomainEvent]] = {}
    excluded: set[str] = set()
    head = store.head_position() if head is None else head
    last = 0
    with store.engine.connect() as connection:
        while last < head:
            page = store.read_envelopes(
                connection, after_position=last, until_position=head, limit=PAGE, share=(share.index, share.count)
            )
            if not page:
                break
            for _, stream, event_type, version, payload in page:
                if stream in excluded:
                    continue
                event = from_envelope(EventEnvelope(event_type, version, payload))
                events = histories.get(stream)
                if events is None:
                    if not isinstance(event, EpisodeOpened) or not period.admits(event.occurred_at):
                        excluded.add(stream)
                        continue
                    events = histories[stream] = []
                events.append(event)
            last = page[-1][0]
    return head, histories


def run_simulation(
    store: PostgresEventStore,
    policy_text: str,
    *,
    day: timedelta,
    period: Period = Period(),
    directory_text: str | None = None,
    workers: int | None = None,
) -> SimulationRun:
    """Simulate the cohort under the policy in `policy_text` (a PolicyError names a bad key). A large log is
    shared among `workers` processes (default: one per core once the log holds PARALLEL_FROM_EVENTS), each
    reading and simulating its share; then only the comparisons come back (no histories)."""
    policy = load_policy(policy_text, directory_text)
    head = store.head_position()
    if workers is None:
        workers = (os.cpu_count() or 1) if head >= PARALLEL_FROM_EVENTS else 1
    if workers <= 1:
        _, histories = read_histories(store, period, head=head)
        simulated = {e: simulate(e, events, policy, day) for e, events in histories.items()}
        each = [compare(histories[e], simulated[e], day) for e in sorted(simulated)]
        return SimulationRun(head, policy.version, day, each, histories, simulated)
    with store.engine.connect() as connection:
        role = str(connection.execute(text("SELECT current_user")).scalar_one())
    job = _Job(
        store.engine.url.render_as_string(hide_password=False), role, policy_text, directory_text, day, period, head
    )
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        shares = list(pool.map(_simulate_share, [(job, Partition(k, workers)) for k in range(workers)]))
    each = sorted((c for share in shares for c in share), key=lambda c: c.episode_id)
    return SimulationRun(head, policy.version, day, each)


@dataclass(frozen=True)
class _Job:
    database_url: str
    role: str
    policy_text: str
    directory_text: str | None
    day: timedelta
    period: Period
    head: int


def _simulate_share(task: tuple[_Job, Partition]) -> list[EpisodeComparison]:
    """In a worker process: read one share of the log and simulate it (a process of its own, started afresh)."""
    job, share = task
    engine = make_engine(job.database_url, role=job.role, pool_size=1)
    try:
        policy = load_policy(job.policy_text, job.directory_text)
        _, histories = read_histories(PostgresEventStore(engine), job.period, head=job.head, share=share)
        return [compare(events, simulate(e, events, policy, job.day), job.day) for e, events in histories.items()]
    finally:
        engine.dispose()


def histories_for_measures(run: SimulationRun) -> tuple[list[Sequence[DomainEvent]], list[Sequence[DomainEvent]]]:
    """The seam for the outcome measures (issue 18, items 1-3): the cohort's histories, one event sequence per
    episode, as recorded and as simulated, in the shape `domain.measures.compute_measures` takes (a run read in
    this process; a shared run keeps only its comparisons)."""
    recorded: list[Sequence[DomainEvent]] = [run.recorded[e] for e in sorted(run.recorded)]
    simulated: list[Sequence[DomainEvent]] = [run.simulated[e].events for e in sorted(run.simulated)]
    return recorded, simulated


def report(run: SimulationRun, *, per_episode: bool = False) -> dict[str, Any]:
    """The simulation as the API and the CLI show it: the cohort side by side, per episode if asked."""
    each = run.comparisons
    cohort: CohortComparison = summarise(each)
    body: dict[str, Any] = {
        "log_position": run.log_position,
        "policy_version": run.policy_version,
        "day_seconds": run.day.total_seconds(),
        "cohort": encode(cohort),
    }
    body["measures"] = _measures_side_by_side(run)
    if per_episode:
        body["episodes"] = [_episode(c) for c in each if not c.unchanged or c.results_dropped or c.tests_without_result]
    return body


def _measures_side_by_side(run: SimulationRun) -> dict[str, Any] | None:
    """The outcome measures (domain/measures.py) of the cohort as recorded and as simulated, by level, over the
    span the record covers and observed up to the record's last event, so both are counted alike. None for a run
    shared among processes (they send back only their comparisons)."""
    recorded, simulated = histories_for_measures(run)
    instants = [e.occurred_at for events in recorded for e in events]
    if not run.recorded or not instants:
        return None
    period = MeasuresPeriod(min(instants), max(instants))
    sides = {
        side: compute_measures(histories, period, by=[Grouping.LEVEL], day=run.day, observed_until=period.end)
        for side, histories in (("recorded", recorded), ("simulated", simulated))
    }
    return {
        "period": {"from": encode(period.start), "to": encode(period.end)},
        "groups": _paired(sides["recorded"], sides["simulated"]),
    }


def _paired(recorded: Measures, simulated: Measures) -> list[dict[str, Any]]:
    """Each group's measures, the recorded value beside the simulated one (a group only one side has shows None)."""

    def values(measures: Measures) -> dict[str, dict[str, float | None]]:
        return {group.label: {v.name: v.value for v in group.values} for group in measures.groups}

    mine, theirs = values(recorded), values(simulated)
    return [
        {
            "group": label,
            "measures": {
                name: {"recorded": mine.get(label, {}).get(name), "simulated": theirs.get(label, {}).get(name)}
                for name in dict.fromkeys([*mine.get(label, {}), *theirs.get(label, {})])
            },
        }
        for label in dict.fromkeys([*mine, *theirs])
    ]


def _episode(c: EpisodeComparison) -> dict[str, Any]:
    def ups(step_ups: Any) -> list[dict[str, Any]]:
        return [
            {"at": encode(s.at), "from": s.from_level.value, "to": s.to_level.value, "cause": s.cause} for s in step_ups
        ]

    return {
        "episode_id": c.episode_id,
        "placement": {"recorded": encode(c.recorded.placement), "simulated": encode(c.simulated.placement)},
        "step_ups_added": ups(c.step_ups_added),
        "step_ups_removed": ups(c.step_ups_removed),
        "days_at_level": {"recorded": c.recorded.days_at_level, "simulated": c.simulated.days_at_level},
        "tests_ordered": {"recorded": c.recorded.tests_ordered, "simulated": c.simulated.tests_ordered},
        "discharge": {"recorded": c.recorded.discharge, "simulated": c.simulated.discharge},
        "results_dropped": c.results_dropped,
        "tests_without_result": c.tests_without_result,
        "inputs_refused": c.inputs_refused,
    }
