"""Read latency: census and episode-list queries at 100,000 episodes and 10 million events.

    python3 dev.py bench reads     (CONTINUUM_BENCH_EPISODES=N, CONTINUUM_BENCH_EVENTS_PER_EPISODE=M;
                                    defaults 100,000 and 100)

Seeds the log by COPY (valid, hash-chained events: 100 per episode) and the episodes projection with
rows spread over levels, statuses and flags like a real census, then times the API's read queries
(`EpisodeReads`, the code behind GET /census and GET /episodes): p50 and p95 over 300 runs each.
Writes bench/results/reads.json.
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

from bench.seed import seed
from bench.stack import embedded_postgres, publish
from continuum.domain.levels import LevelOfCare
from continuum.eventlog.db import make_engine
from continuum.eventlog.migrate import apply_migrations
from continuum.eventlog.reads import EpisodeReads

RESULTS = Path(__file__).parent / "results" / "reads.json"
RUNS = 300
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
    with embedded_postgres() as url:
        report = _measure(url, episodes, per_episode)
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
    latencies = {}
    for name, query in queries.items():
        for _ in range(10):
            query()  # warm the connection and the plan cache
        samples = []
        for _ in range(RUNS):
            began = time.perf_counter()
            query()
            samples.append((time.perf_counter() - began) * 1000)
        samples.sort()
        latencies[name] = {
            "p50_ms": round(statistics.median(samples), 2),
            "p95_ms": round(samples[int(RUNS * 0.95)], 2),
        }
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
