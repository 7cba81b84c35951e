"""Audit speed: replay of a 10,000-event episode, and hash-chain verification of the whole log, in events/s.

    python3 dev.py bench audit        (CONTINUUM_BENCH_AUDIT_EVENTS=N: log size, default 1,000,000)

Seeds one embedded PostgreSQL with a valid chained log (one 10,000-event episode, the rest in episodes of
100 events) by COPY, then times: `episode_as_of` (read the stream, fold every event), `verify_stream` of
that episode, and `verify_log` over everything. Writes bench/results/audit.json.
"""

from __future__ import annotations

import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench.seed import seed
from bench.stack import embedded_postgres, publish
from continuum.eventlog.db import make_engine
from continuum.eventlog.migrate import apply_migrations
from continuum.eventlog.projection import episode_as_of
from continuum.eventlog.store import PostgresEventStore
from continuum.eventlog.verify import verify_log, verify_stream

RESULTS = Path(__file__).parent / "results" / "audit.json"
LONG = 10_000


def main() -> None:
    total = int(os.environ.get("CONTINUUM_BENCH_AUDIT_EVENTS", "1000000"))
    with embedded_postgres() as url:
        report = _measure(url, total)
    publish(RESULTS, report)


def _measure(url: str, total: int) -> dict[str, object]:
    apply_migrations(url)
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    started = time.perf_counter()
    rest = max(0, total - LONG)
    seed(conninfo, [("EP-LONG", LONG)] + [(f"EP-{i:07d}", 100) for i in range(rest // 100)])
    seeding = time.perf_counter() - started
    with psycopg.connect(conninfo, autocommit=True) as conn:  # as autovacuum would have done on a live log
        conn.execute("VACUUM (FREEZE, ANALYZE) events")
    engine = make_engine(url, role=None, pool_size=2)
    store = PostgresEventStore(engine)
    timings: dict[str, float] = {}

    def timed(name: str, run):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        result = run()
        timings[name] = time.perf_counter() - began
        return result

    state = timed("replay", lambda: episode_as_of(store, "EP-LONG", at=datetime.now(UTC)))
    stream = timed("verify_stream", lambda: verify_stream(engine, "EP-LONG"))
    first = timed("verify_log_first", lambda: verify_log(engine))
    log = timed("verify_log", lambda: verify_log(engine))
    assert state is not None and state.version == LONG and stream.ok and log.ok and first.ok, log.problems[:3]
    events = log.events_checked
    return {
        "benchmark": "audit",
        "command": f"CONTINUUM_BENCH_AUDIT_EVENTS={total} python3 dev.py bench audit",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "log_events": events,
        "seeded_in_seconds": round(seeding, 1),
        "replay_10000_event_episode": {
            "seconds": round(timings["replay"], 3),
            "events_per_second": round(LONG / timings["replay"]),
        },
        "verify_episode_stream": {
            "seconds": round(timings["verify_stream"], 3),
            "events_per_second": round(LONG / timings["verify_stream"]),
        },
        "verify_whole_log": {
            "seconds": round(timings["verify_log"], 2),
            "events_per_second": round(events / timings["verify_log"]),
            "first_run_events_per_second": round(events / timings["verify_log_first"]),
        },
        "targets": {"verification_at_least_500000_per_s": events / timings["verify_log"] >= 500_000},
    }
