"""Policy simulation over the log: read the recorded cohort, re-decide it under a proposed policy with the pure
domain (`domain.simulation`), and report it beside what happened. Reads only: nothing is written to the log
and no workflow is started. The one path the API (`POST /api/v1/simulations`) and `continuum simulate` share.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from continuum.domain.codec import EventEnvelope, encode, from_envelope
from continuum.domain.comparison import CohortComparison, EpisodeComparison, compare, summarise
from continuum.domain.errors import DomainError
from continuum.domain.events import DomainEvent, EpisodeOpened
from continuum.domain.policy import load_policy
from continuum.domain.simulation import SimulatedEpisode, simulate
from continuum.eventlog.store import PostgresEventStore

PAGE = 20_000  # log rows read per page


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
    """A cohort's histories as recorded and as simulated, with the log position they were read at."""

    log_position: int
    policy_version: str
    day: timedelta
    recorded: dict[str, list[DomainEvent]]
    simulated: dict[str, SimulatedEpisode]


def read_histories(store: PostgresEventStore, period: Period = Period()) -> tuple[int, dict[str, list[DomainEvent]]]:
    """Every episode opened in `period`, as its events in order, read in one transaction (one snapshot of the
    log), and the log position read up to."""
    histories: dict[str, list[DomainEvent]] = {}
    excluded: set[str] = set()
    last = 0
    with store.engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection, connection.begin():
        while True:
            page = store.read_page(connection, after_position=last, limit=PAGE)
            for stored in page:
                stream = stored.stream_id
                if stream in excluded:
                    continue
                event = from_envelope(EventEnvelope(stored.event_type, stored.schema_version, stored.payload))
                if stream not in histories:
                    if not isinstance(event, EpisodeOpened) or not period.admits(event.occurred_at):
                        excluded.add(stream)
                        continue
                    histories[stream] = []
                histories[stream].append(event)
            if len(page) < PAGE:
                break
            last = page[-1].position
        if page:
            last = page[-1].position
    return last, histories


def run_simulation(
    store: PostgresEventStore,
    policy_text: str,
    *,
    day: timedelta,
    period: Period = Period(),
    directory_text: str | None = None,
) -> SimulationRun:
    """Simulate the cohort under the policy in `policy_text` (a PolicyError names a bad key)."""
    policy = load_policy(policy_text, directory_text)
    position, histories = read_histories(store, period)
    simulated = {episode_id: simulate(episode_id, events, policy, day) for episode_id, events in histories.items()}
    return SimulationRun(position, policy.version, day, histories, simulated)


def histories_for_measures(run: SimulationRun) -> tuple[list[Sequence[DomainEvent]], list[Sequence[DomainEvent]]]:
    """The seam for the outcome measures (issue 18, items 1-3): the cohort's histories, one event sequence per
    episode, as recorded and as simulated, in the shape `domain.measures.compute_measures` takes."""
    recorded: list[Sequence[DomainEvent]] = [run.recorded[e] for e in sorted(run.recorded)]
    simulated: list[Sequence[DomainEvent]] = [run.simulated[e].events for e in sorted(run.simulated)]
    return recorded, simulated


def comparisons(run: SimulationRun) -> Iterator[EpisodeComparison]:
    for episode_id in sorted(run.simulated):
        yield compare(run.recorded[episode_id], run.simulated[episode_id], run.day)


def report(run: SimulationRun, *, per_episode: bool = False) -> dict[str, Any]:
    """The simulation as the API and the CLI show it: the cohort side by side, per episode if asked."""
    each = list(comparisons(run))
    cohort: CohortComparison = summarise(each)
    body: dict[str, Any] = {
        "log_position": run.log_position,
        "policy_version": run.policy_version,
        "day_seconds": run.day.total_seconds(),
        "cohort": encode(cohort),
    }
    if per_episode:
        body["episodes"] = [_episode(c) for c in each if not c.unchanged or c.results_dropped or c.tests_without_result]
    return body


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
