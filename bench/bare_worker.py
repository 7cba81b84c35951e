"""`python -m bench.bare_worker QUEUE`: a worker of bare episodes (bench/bare.py), its own process like
`continuum up`, so the throughput benchmark reads each side's CPU apart. TEMPORAL_ADDRESS and DATABASE_URL
come from the environment; its activity INSERTs one row into `bare_events` per update."""

from __future__ import annotations

import asyncio
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import psycopg
from sqlalchemy import create_engine
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from bench.bare import BareEpisode

THREADS = 32  # as many activity threads as the product's worker (bootstrap.ACTIVITY_THREADS)


def _conninfo() -> str:
    return os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")


def prepare_table() -> None:
    with psycopg.connect(_conninfo(), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bare_events (position bigserial PRIMARY KEY, stream_id text NOT NULL,"
            " n integer NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())"
        )


async def main(queue: str) -> None:
    prepare_table()
    engine = create_engine(os.environ["DATABASE_URL"], pool_size=THREADS)

    @activity.defn(name="bench_insert")
    def insert(stream: str, n: int) -> None:
        conn = engine.raw_connection()
        try:
            conn.cursor().execute("INSERT INTO bare_events (stream_id, n) VALUES (%s, %s)", (stream, n))
            conn.commit()
        finally:
            conn.close()

    client = await Client.connect(os.environ["TEMPORAL_ADDRESS"])
    with ThreadPoolExecutor(THREADS) as executor:
        worker = Worker(
            client, task_queue=queue, workflows=[BareEpisode], activities=[insert], activity_executor=executor
        )
        print("bare_worker.started", flush=True)
        await worker.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
