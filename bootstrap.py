"""The one composition root: from one `Settings`, the store, the activities, the worker, the Temporal client, the
application client and the HTTP app; and `serve`, which runs them (on embedded servers for whatever the settings
leave unconfigured) until Ctrl-C or SIGTERM stops them in order.

The CLI and `worker.py` build every process through these functions, and the benchmarks their stores, clients and
activities (a benchmark's own queue or policy aside); nothing here runs at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from continuum.activities.aftercare import AftercareActivities
from continuum.activities.eventlog import EventLogActivities
from continuum.activities.lab import LabOrderActivities
from continuum.activities.webhooks import WebhookActivities
from continuum.api.app import create_app
from continuum.api.services import Services
from continuum.domain.errors import FacilityError, PolicyError
from continuum.domain.policy import load_policy
from continuum.episodes import EpisodeCommands
from continuum.eventlog.checkpoints import CheckpointKeyError, load_signing_key
from continuum.eventlog.db import check_reachable, make_engine
from continuum.eventlog.errors import EventStoreError
from continuum.eventlog.migrate import apply_migrations, check_at_head
from continuum.eventlog.policies import PolicyRegistry
from continuum.eventlog.projection import EpisodesProjection
from continuum.eventlog.store import PostgresEventStore
from continuum.runtime.codec import encrypted_converter
from continuum.runtime.detached import DetachedHeaders, DetachedRunner
from continuum.runtime.servers import EmbeddedPostgres, EmbeddedServers, Endpoints, ServerUnavailable, running_servers
from continuum.runtime.settings import Settings, SettingsError
from continuum.runtime.shutdown import Shutdown, after_all, run_until_stopped, stopping_all_after, unless_stopped
from continuum.runtime.temporal import connect_temporal, ensure_search_attributes
from continuum.workflows.episode import EPISODE_WORKFLOWS
from continuum.workflows.search_attributes import SEARCH_ATTRIBUTES
from continuum.workflows.webhooks import WebhooksInput, WebhooksWorkflow, dispatcher_id

log = structlog.get_logger(__name__)

WORKFLOWS: Sequence[type] = (*EPISODE_WORKFLOWS, WebhooksWorkflow)
ACTIVITY_THREADS = 32
WORKER_GRACE = timedelta(seconds=5)  # in-flight activities finish (or are cancelled) within this
WORKER_STOP_SECONDS = 10.0  # after a stop, the worker is waited for this long at most
API_GRACE_SECONDS = 5  # after a stop, requests under way get this long; those still running answer 503
# What a serving process reports in one line and exit code 3: a server is unreachable or a setting is invalid.
SERVICE_FAILURES = (ServerUnavailable, EventStoreError, SettingsError, PolicyError, FacilityError)
EXIT_UNAVAILABLE = 3


# -- the store -----------------------------------------------------------------------------------------------


def build_store(database_url: str, settings: Settings) -> PostgresEventStore:
    """Migrate (as the owner) unless the settings say the schema is migrated apart, then open the store as
    the restricted application role; a schema other than this release's is refused in one line."""
    if settings.migrate_at_start:
        apply_migrations(database_url)
    # As many connections as activity threads, kept open (no overflow to close and reopen under a burst): the
    # same 32 at most as before, and API requests queue for one rather than open more (issue 21).
    engine = make_engine(database_url, role=settings.database_role, pool_size=ACTIVITY_THREADS, max_overflow=0)
    check_reachable(engine)
    if not settings.migrate_at_start:
        check_at_head(engine)
    return PostgresEventStore(engine, projectors=[EpisodesProjection()])


@contextlib.contextmanager
def open_store(settings: Settings) -> Iterator[PostgresEventStore]:
    """The event store without Temporal (on the embedded PostgreSQL if DATABASE_URL is unset)."""
    postgres = EmbeddedPostgres(settings.data_dir) if settings.embedded_postgres else None
    try:
        url = postgres.start() if postgres else settings.database_url
        assert url is not None
        store = build_store(url, settings)
        yield store
        store.engine.dispose()
    finally:
        if postgres:
            postgres.stop()


# -- the worker ----------------------------------------------------------------------------------------------


def activities_for(
    store: PostgresEventStore, *, lab_order_url: str | None = None, follow_up_url: str | None = None
) -> list[Callable[..., Any]]:
    """Every activity the workflows call, bound to their dependencies."""
    aftercare = AftercareActivities(follow_up_url)
    event_log = EventLogActivities(store)
    webhooks = WebhookActivities(store)
    return [
        event_log.record_events,
        event_log.load_episode,
        LabOrderActivities(lab_order_url).send_lab_order,
        aftercare.send_referral,
        aftercare.request_follow_up,
        webhooks.find_deliveries,
        webhooks.deliver,
    ]


async def start_webhook_dispatcher(client: Client, task_queue: str) -> None:
    """Start the queue's webhook dispatcher (workflows/webhooks.py) unless it runs already: every worker asks,
    one runs."""
    await client.start_workflow(
        WebhooksWorkflow.run,
        WebhooksInput(),
        id=dispatcher_id(task_queue),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


def build_worker(settings: Settings, client: Client, store: PostgresEventStore, executor: ThreadPoolExecutor) -> Worker:
    """The worker of the settings' task queue, running its activities on `executor`."""
    return Worker(
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
        # A cached episode keeps what it uses of its first activation, not the activation (runtime/detached.py).
        unsandboxed_workflow_runner=DetachedRunner(),
        interceptors=[DetachedHeaders()],
    )


async def run_worker(settings: Settings, client: Client, store: PostgresEventStore, stop: asyncio.Event) -> None:
    """Serve the task queue until `stop` is set, then stop within WORKER_STOP_SECONDS.

    In-flight activities get WORKER_GRACE to finish before they are cancelled. A worker still busy after
    that (a long replay) is left behind rather than waited for: Temporal hands its tasks to another worker
    once their timeouts pass, and every activity is safe to retry.
    """
    executor = ThreadPoolExecutor(max_workers=ACTIVITY_THREADS, thread_name_prefix="activity")
    worker = build_worker(settings, client, store, executor)
    running = asyncio.create_task(worker.run())
    stopped = asyncio.create_task(stop.wait())
    await start_webhook_dispatcher(client, settings.temporal_task_queue)
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


# -- the client and the app ----------------------------------------------------------------------------------


async def connect(settings: Settings, endpoints: Endpoints) -> Client:
    """Connect to Temporal, every payload encrypted with the settings' keys (runtime/codec.py), and make sure
    the search attributes exist."""
    converter = encrypted_converter(settings.key_ring())
    tls = settings.temporal_tls() if not settings.embedded_temporal else False
    client = await connect_temporal(
        endpoints.temporal_address, settings.temporal_namespace, data_converter=converter, tls=tls
    )
    added = await ensure_search_attributes(client, SEARCH_ATTRIBUTES)
    if added:
        log.info("temporal.search_attributes_registered", names=added)
    return client


def build_commands(settings: Settings, client: Client, *, day_seconds: float | None = None) -> EpisodeCommands:
    """The application client on the settings' task queue, policy, lab and directory; `day_seconds` overrides
    the care day of new episodes (the demo's compressed days); each facility's episodes run its own program."""
    return EpisodeCommands(
        client,
        settings.temporal_task_queue,
        policy_text=settings.policy_text(),
        day=timedelta(seconds=settings.day_seconds if day_seconds is None else day_seconds),
        lab_id=settings.lab_id,
        directory_text=settings.directory_text(),
        facilities=settings.facility_programs(),
        default_facility=settings.facilities().default_id,
    )


def build_app(commands: EpisodeCommands, store: PostgresEventStore, settings: Settings | None = None) -> FastAPI:
    """The HTTP API and dashboard over the application client and the store; with `settings`, NDJSON exports
    are signed with the checkpoint key (the same key `continuum audit anchor` signs with)."""
    key = None
    if settings is not None:
        try:
            key = load_signing_key(settings.checkpoint_key_file, settings.data_dir)
        except CheckpointKeyError as error:
            raise SettingsError(str(error)) from None
    # The text new episodes start with, kept by its version: GET /api/v1/policy/{version} and the attendance
    # reads (which judge an episode's weeks by the policy it was decided under) find it later.
    registry = PolicyRegistry(store.engine)
    for text in dict.fromkeys([commands.policy_text, *(p.policy_text for p in commands.programs.values())]):
        registry.register(text)
    return create_app(Services.build(commands, store, key))


class QuietServer(uvicorn.Server):
    """Uvicorn without its own signal handling (which would keep the signal from us): Shutdown handles
    Ctrl-C and SIGTERM for the API, the worker and the servers together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build_api_server(app: FastAPI, host: str, port: int) -> QuietServer:
    """Uvicorn serving `app`; requests still running API_GRACE_SECONDS after the stop are cancelled (503)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        lifespan="off",
        timeout_graceful_shutdown=API_GRACE_SECONDS,
        access_log=False,  # it writes whole query strings; api.hygiene.AccessLine writes one line without them
    )
    return QuietServer(config)


# -- serving -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """A running service, as a part added to it (the demo's cohort) sees it."""

    settings: Settings
    endpoints: Endpoints
    store: PostgresEventStore
    api_host: str
    api_port: int

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"


# A part run beside the worker and the API until it ends or `stop` is set (the demo's cohort and clinic).
ExtraPart = Callable[[Service, asyncio.Event], Coroutine[Any, Any, None]]


def serve(
    settings: Settings,
    *,
    worker: bool,
    api: bool,
    host: str | None = None,
    port: int | None = None,
    day_seconds: float | None = None,
    extra: ExtraPart | None = None,
) -> None:
    """Run the worker and/or the API (and `extra`) on the embedded or configured servers until a signal, then
    stop them in order: the API drains, then the worker, then the embedded servers (runtime.shutdown)."""
    policy = load_policy(settings.policy_text(), settings.directory_text())  # malformed: stops here, naming the key
    settings.facility_programs()  # likewise a facilities file (and each facility's policy), naming facility and key
    host, port = host or settings.api_host, port or settings.api_port
    if api:
        _check_port_free(host, port)
    servers = EmbeddedServers(settings, SEARCH_ATTRIBUTES)
    shutdown = Shutdown(servers)
    shutdown.install()  # everything the service imports is imported above: a stop must never land in an import
    try:
        with running_servers(settings, SEARCH_ATTRIBUTES, servers) as endpoints:
            store = build_store(endpoints.database_url, settings)
            _say(f"Temporal      {endpoints.temporal_address} (namespace {settings.temporal_namespace})")
            if endpoints.temporal_ui_url:
                _say(f"Temporal UI   {endpoints.temporal_ui_url}")
            _say(f"Task queue    {settings.temporal_task_queue}")
            _say(f"Policy        {settings.policy_file or 'default'} ({policy.version})")
            if policy.referrals:
                directory = policy.referrals.directory
                resources = f"{len(directory.resources)} resources, {directory.version}"
                _say(f"Directory     {settings.directory_file or 'default'} ({resources})")
            if api:
                _say(f"API           http://{host}:{port}/api/v1   (OpenAPI: http://{host}:{port}/docs)")
                _say(f"Dashboard     http://{host}:{port}/dashboard   (sign in with a director or auditor key)")
            _say("Press Ctrl-C to stop.")
            service = Service(settings, endpoints, store, host, port)
            try:
                run_until_stopped(
                    _serve_async(service, shutdown, worker=worker, api=api, day_seconds=day_seconds, extra=extra)
                )
            finally:
                shutdown.servers_stopping()
                store.engine.dispose()
    except KeyboardInterrupt:  # a stop asked for while the servers were starting: they are stopped; a clean stop
        if not shutdown.requested:
            raise
    shutdown.leave_if_forced()


async def _serve_async(
    service: Service,
    shutdown: Shutdown,
    *,
    worker: bool,
    api: bool,
    day_seconds: float | None,
    extra: ExtraPart | None,
) -> None:
    settings = service.settings
    stop = asyncio.Event()
    shutdown.serving(asyncio.get_running_loop(), stop)
    client = await unless_stopped(connect(settings, service.endpoints), stop)
    if client is None:
        return
    # The API drains first, while the worker still runs its requests' workflow tasks; then the worker stops.
    api_stopped, worker_stop = asyncio.Event(), asyncio.Event()
    parts = [after_all(worker_stop, stop, *([api_stopped] if api else []))]
    if worker:
        parts.append(stopping_all_after(run_worker(settings, client, service.store, worker_stop), stop))
    if api:
        commands = build_commands(settings, client, day_seconds=day_seconds)
        server = build_api_server(build_app(commands, service.store, settings), service.api_host, service.api_port)
        parts.append(stopping_all_after(server.serve(), stop, then=api_stopped))

        async def stop_api() -> None:
            await stop.wait()
            server.should_exit = True

        parts.append(stop_api())
    if extra is not None:
        parts.append(unless_stopped(extra(service, stop), stop))
    await asyncio.gather(*parts)


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As uvicorn binds: the connections of a run just stopped (TIME_WAIT) do not make the port taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            raise ServerUnavailable(
                f"the API cannot listen on {host}:{port} ({error.strerror});"
                " choose another with --port or CONTINUUM_API_PORT"
            ) from None


def _say(line: str) -> None:
    print(line, flush=True)
