"""The composition root of a worker process: builds the store and the activities, serves the task queue."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from continuum.activities.aftercare import AftercareActivities
from continuum.activities.eventlog import EventLogActivities
from continuum.activities.lab import LabOrderActivities
from continuum.eventlog.db import check_reachable, make_engine
from continuum.eventlog.migrate import apply_migrations
from continuum.eventlog.projection import EpisodesProjection
from continuum.eventlog.store import PostgresEventStore
from continuum.runtime.codec import encrypted_converter
from continuum.runtime.servers import Endpoints
from continuum.runtime.settings import Settings
from continuum.runtime.temporal import connect_temporal, ensure_search_attributes
from continuum.workflows.episode import EpisodeWorkflow
from continuum.workflows.search_attributes import SEARCH_ATTRIBUTES

log = structlog.get_logger(__name__)

WORKFLOWS: Sequence[type] = (EpisodeWorkflow,)
ACTIVITY_THREADS = 32
WORKER_GRACE = timedelta(seconds=5)  # in-flight activities finish (or are cancelled) within this
WORKER_STOP_SECONDS = 10.0  # after a stop, the worker is waited for this long at most


def build_store(database_url: str, settings: Settings) -> PostgresEventStore:
    """Migrate (as the owner), then open the store as the restricted application role."""
    apply_migrations(database_url)
    engine = make_engine(database_url, role=settings.database_role, pool_size=ACTIVITY_THREADS // 2)
    check_reachable(engine)
    return PostgresEventStore(engine, projectors=[EpisodesProjection()])


def activities_for(
    store: PostgresEventStore, *, lab_order_url: str | None = None, follow_up_url: str | None = None
) -> list[Callable[..., Any]]:
    aftercare = AftercareActivities(follow_up_url)
    event_log = EventLogActivities(store)
    return [
        event_log.record_events,
        event_log.load_episode,
        LabOrderActivities(lab_order_url).send_lab_order,
        aftercare.send_referral,
        aftercare.request_follow_up,
    ]


async def run_worker(settings: Settings, client: Client, store: PostgresEventStore, stop: asyncio.Event) -> None:
    """Serve the task queue until `stop` is set, then stop within WORKER_STOP_SECONDS.

    In-flight activities get WORKER_GRACE to finish before they are cancelled. A worker still busy after
    that (a long replay) is left behind rather than waited for: Temporal hands its tasks to another worker
    once their timeouts pass, and every activity is safe to retry.
    """
    executor = ThreadPoolExecutor(max_workers=ACTIVITY_THREADS, thread_name_prefix="activity")
    worker = Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=list(WORKFLOWS),
        activities=activities_for(store, lab_order_url=settings.lab_order_url, follow_up_url=settings.follow_up_url),
        activity_executor=executor,
        max_concurrent_activities=ACTIVITY_THREADS,
        # Beyond the cache, every workflow task of an evicted episode replays its whole history: with
        # the SDK's default of 1,000, a burst across 2,000 episodes replayed more than it worked.
        max_cached_workflows=settings.workflow_cache,
        # Workflow tasks run one at a time under the GIL: a worker that took the SDK's 100 at once after a
        # restart (each a replay) kept every one open for seconds; a few at a time keeps each short, and the
        # rest wait at the server, where a wait costs nothing.
        max_concurrent_workflow_tasks=settings.workflow_tasks,
        graceful_shutdown_timeout=WORKER_GRACE,
    )
    running = asyncio.create_task(worker.run())
    stopped = asyncio.create_task(stop.wait())
    log.info("worker.started", task_queue=settings.temporal_task_queue, namespace=settings.temporal_namespace)
    try:
        await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if running.done():  # the worker failed on its own: its error says why
            running.result()
            return
        log.info("worker.stopping")
        try:
            await asyncio.wait_for(asyncio.shield(worker.shutdown()), WORKER_STOP_SECONDS)
        except TimeoutError:
            log.warning("worker.left_running", after_seconds=WORKER_STOP_SECONDS)
            return
        with contextlib.suppress(asyncio.CancelledError):
            await running
        log.info("worker.stopped")
    finally:
        stopped.cancel()
        executor.shutdown(wait=False, cancel_futures=True)  # an activity thread still running is not waited for


async def connect(settings: Settings, endpoints: Endpoints) -> Client:
    """Connect to Temporal and make sure the search attributes exist."""
    converter = encrypted_converter(settings.key_ring())
    client = await connect_temporal(endpoints.temporal_address, settings.temporal_namespace, data_converter=converter)
    added = await ensure_search_attributes(client, SEARCH_ATTRIBUTES)
    if added:
        log.info("temporal.search_attributes_registered", names=added)
    return client
