"""Read latency: census and episode-list queries at 100,000 episodes and 10 million events, and the attendance
report over 100,000 more episodes with a year of sessions.

    python3 dev.py bench reads     (CONTINUUM_BENCH_EPISODES=N, CONTINUUM_BENCH_EVENTS_PER_EPISODE=M,
                                    CONTINUUM_BENCH_ATTENDANCE_EPISODES=A; defaults 100,000, 100 and 100,000)

Seeds the log by COPY (valid, hash-chained events: 100 per episode) and the episodes projection with
rows spread over levels, statuses and flags like a real census, then times the API's read queries
(`EpisodeReads`, the code behind GET /census and GET /episodes): p50 and p95 over 300 runs each. Then the
attendance report (`AttendanceReads`, behind GET /attendance and `continuum attendance report`) for one
program-month (June): a page of 200 episodes at a random place in the month, for the whole program and for its
IOP, p50 and p95 over 100 runs; and the whole month, every page (what the CSV holds), timed 3 times (bench/attendance.py
says what is seeded). Writes bench/results/reads.json.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.attendance import PROGRAMS, YEAR_START, attendance_id, seed_attendance
from bench.seed import seed
from bench.stack import embedded_postgres, publish
from continuum.domain.levels import LevelOfCare
from continuum.domain.policy import default_policy_text, load_policy
from continuum.eventlog.attendance import AttendanceReads
from continuum.eventlog.db import make_engine
from continuum.eventlog.migrate import apply_migrations
from continuum.eventlog.reads import EpisodeReads

RESULTS = Path(__file__).parent / "results" / "reads.json"
RUNS = 300
ATTENDANCE_RUNS = 100
MONTH = (datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC))
STATE = json.dumps(
    {
        "status": "active",
        "flags": [],
        "tests": [{"test_id": "x", "reason": "scheduled"}] * 8,
        "referrals": [],
        "follow_ups": [],
        "medications": ["methadone"],
    }
)


def main() -> None:
    episodes = int(os.environ.get("CONTINUUM_BENCH_EPISODES", "100000"))
    per_episode = int(os.environ.get("CONTINUUM_BENCH_EVENTS_PER_EPISODE", "100"))
    attending = int(os.environ.get("CONTINUUM_BENCH_ATTENDANCE_EPISODES", "100000"))
    with embedded_postgres() as url:
        report = _measure(url, episodes, per_episode)
        report["attendance"] = _measure_attendance(url, attending)
        report["command"] = f"CONTINUUM_BENCH_ATTENDANCE_EPISODES={attending} {report['command']}"
    publish(RESULTS, report)


def _measure(url: str, episodes: int, per_episode: int) -> dict[str, object]:
    apply_migrations(url)
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    started = time.perf_counter()
    chunk = 5000  # one COPY per chunk of episodes keeps memory flat
    for first in range(0, episodes, chunk):
        seed(conninfo, [(f"EP-{i:07d}", per_episode) for i in range(first, min(first + chunk, episodes))])
    _seed_projection(conninfo, episodes)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) events")
        conn.execute("VACUUM (ANALYZE) episodes")
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]  # type: ignore[index]
    seeding = time.perf_counter() - started
    reads = EpisodeReads(make_engine(url, role="continuum_app", pool_size=2))
    rng = random.Random(3)
    levels = [level.value for level in LevelOfCare]
    queries: dict[str, Callable[[], object]] = {
        "census": reads.census,
        "list_first_page": lambda: reads.list(page=1, page_size=50),
        "list_by_level_and_status": lambda: reads.list(
            level=rng.choice(levels), status="active", page=rng.randint(1, 20)
        ),
        "list_by_flag": lambda: reads.list(flag="review_overdue", page=1),
        "list_deep_page": lambda: reads.list(page=rng.randint(1, episodes // 50), page_size=50),
        "search_by_id_prefix": lambda: reads.list(id_prefix=f"EP-{rng.randint(0, episodes - 1):07d}"[:8]),
    }
    latencies = {name: _latency(query, warm=10, runs=RUNS) for name, query in queries.items()}
    return {
        "benchmark": "reads",
        "command": (
            f"CONTINUUM_BENCH_EPISODES={episodes} CONTINUUM_BENCH_EVENTS_PER_EPISODE={per_episode}"
            " python3 dev.py bench reads"
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "episodes": episodes,
        "events": events,
        "seeded_in_seconds": round(seeding, 1),
        "runs_per_query": RUNS,
        "latency": latencies,
        "targets": {"p95_under_50_ms": all(v["p95_ms"] < 50 for v in latencies.values())},
    }


def _measure_attendance(url: str, episodes: int) -> dict[str, object]:
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    text = default_policy_text()
    version = load_policy(text).version
    now = YEAR_START + timedelta(days=365)
    started = time.perf_counter()
    seed_attendance(conninfo, episodes, version, text, now)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) events")
        conn.execute("VACUUM (ANALYZE) episodes")
        sessions = conn.execute(
            "SELECT sum(jsonb_array_length(state->'sessions')) FROM episodes WHERE episode_id LIKE 'AT-%'"
        ).fetchone()[0]  # type: ignore[index]
    seeding = time.perf_counter() - started
    reads = AttendanceReads(make_engine(url, role="continuum_app", pool_size=2), text, None, timedelta(days=1))
    rng = random.Random(5)
    # Episodes open evenly over the year, each for 91 days: those whose care overlaps June.
    first = int(episodes * ((MONTH[0] - timedelta(days=98)) - YEAR_START).days / 365)
    last = int(episodes * (MONTH[1] - YEAR_START).days / 365)
    iop = next(iter(PROGRAMS))

    def page(level: LevelOfCare | None = None) -> object:
        return reads.report(*MONTH, now, level, after=attendance_id(rng.randint(first, last - 200)))

    queries: dict[str, Callable[[], object]] = {"report_page": page, "report_page_iop": lambda: page(iop)}
    latencies = {name: _latency(query, warm=5, runs=ATTENDANCE_RUNS) for name, query in queries.items()}
    whole = []
    rows = 0
    for _ in range(3):
        began = time.perf_counter()
        rows = sum(len(page_rows) for page_rows in reads.report_all(*MONTH, now))
        whole.append(time.perf_counter() - began)
    return {
        "episodes": episodes,
        "sessions": sessions,
        "seeded_in_seconds": round(seeding, 1),
        "month": [MONTH[0].date().isoformat(), (MONTH[1] - timedelta(days=1)).date().isoformat()],
        "episodes_in_month": last - first,
        "rows_in_month": rows,
        "runs_per_query": ATTENDANCE_RUNS,
        "latency": latencies,
        "whole_month_seconds": {"p50": round(statistics.median(whole), 2), "max": round(max(whole), 2)},
        "targets": {"page_p95_under_200_ms": all(v["p95_ms"] < 200 for v in latencies.values())},
    }


def _latency(query: Callable[[], object], *, warm: int, runs: int) -> dict[str, float]:
    """p50 and p95 of `runs` timed calls of `query`, after `warm` untimed ones (the connection, the plan cache)."""
    for _ in range(warm):
        query()
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        query()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 2), "p95_ms": round(samples[int(runs * 0.95)], 2)}


def _seed_projection(conninfo: str, episodes: int) -> None:
    """Projection rows spread like a census: most active, across the levels, some flagged, some closed."""
    rng = random.Random(11)
    levels = [level.value for level in LevelOfCare]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with (
        psycopg.connect(conninfo) as conn,
        conn.cursor().copy(
            "COPY episodes (episode_id, client_id, status, status_since, level, level_since, flags, opened_at,"
            " closed_at, version, last_position, state) FROM STDIN"
        ) as copy,
    ):
        for i in range(episodes):
            status = rng.choices(["active", "on_hold", "closed", "intake"], weights=[70, 5, 22, 3])[0]
            level = None if status == "intake" else rng.choice(levels)
            flags = rng.choices([[], ["review_overdue"], ["result_missing:t-1"]], weights=[90, 6, 4])[0]
            opened = start + timedelta(minutes=i)
            copy.write_row(
                (
                    f"EP-{i:07d}",
                    f"client-{i}",
                    status,
                    opened,
                    level,
                    opened if level else None,
                    flags,
                    opened,
                    opened + timedelta(days=90) if status == "closed" else None,
                    100,
                    i,
                    STATE,
                )
            )
