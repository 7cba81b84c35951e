"""The `continuum` command: thin, calling the same services as the worker and the API.

Human tables by default, `--json` for scripts; errors in one line; exit codes: 0 ok, 1 not found,
2 usage, 3 a server is unreachable or a setting is invalid, 4 the record was altered.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import importlib
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Coroutine, Iterator, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import structlog
import typer
import uvicorn

from continuum.domain.errors import DomainError, PolicyError
from continuum.eventlog.errors import EventStoreError
from continuum.runtime.logs import configure_logging
from continuum.runtime.servers import EmbeddedPostgres, EmbeddedServers, ServerUnavailable, running_servers
from continuum.runtime.settings import Settings, SettingsError
from continuum.workflows.search_attributes import SEARCH_ATTRIBUTES

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Continuum: care-continuum workflow engine.",
)
projections = typer.Typer(no_args_is_help=True, help="Read models kept from the event log.")
audit = typer.Typer(no_args_is_help=True, help="Auditors' tools over the event log.")
keys = typer.Typer(no_args_is_help=True, help="API keys (stored hashed; a secret is shown once).")
episodes = typer.Typer(no_args_is_help=True, help="Episodes, as the projection has them.")
app.add_typer(projections, name="projections")
app.add_typer(audit, name="audit")
app.add_typer(keys, name="keys")
app.add_typer(episodes, name="episodes")

T = TypeVar("T")
EXIT_NOT_FOUND = 1
EXIT_UNAVAILABLE = 3
EXIT_VERIFICATION_FAILED = 4
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Host = Annotated[str | None, typer.Option(help="Address the API listens on (CONTINUUM_API_HOST).")]
Port = Annotated[int | None, typer.Option(help="Port the API listens on (CONTINUUM_API_PORT).")]


class NotFound(Exception):
    """What the command was asked about does not exist (exit 1)."""


class Usage(Exception):
    """An option's value is not one the command can use (exit 2); the message names the option."""


def _settings() -> Settings:
    settings = Settings.from_env()
    configure_logging(settings)
    return settings


# -- serving -----------------------------------------------------------------------------------------


def _serve(*, worker: bool, api: bool, host: str | None = None, port: int | None = None, demo: Any = None) -> None:
    import continuum.worker as worker_module
    from continuum.domain.policy import load_policy

    # Everything the service imports, imported before the signal handlers go in: a stop asked for while the
    # servers start unwinds the start, and must never land inside an import (it broke FastAPI's once).
    for module in ("continuum.api.app", "continuum.api.services", "continuum.demo", "continuum.episodes"):
        importlib.import_module(module)

    settings = _settings()
    policy = load_policy(settings.policy_text(), settings.directory_text())  # malformed: stops here, naming the key
    host, port = host or settings.api_host, port or settings.api_port
    if api:
        _check_port_free(host, port)
    servers = EmbeddedServers(settings, SEARCH_ATTRIBUTES)
    shutdown = Shutdown(servers)
    shutdown.install()
    try:
        with running_servers(settings, SEARCH_ATTRIBUTES, servers) as endpoints:
            store = worker_module.build_store(endpoints.database_url, settings)
            typer.echo(f"Temporal      {endpoints.temporal_address} (namespace {settings.temporal_namespace})")
            if endpoints.temporal_ui_url:
                typer.echo(f"Temporal UI   {endpoints.temporal_ui_url}")
            typer.echo(f"Task queue    {settings.temporal_task_queue}")
            typer.echo(f"Policy        {settings.policy_file or 'default'} ({policy.version})")
            if policy.referrals:
                directory = policy.referrals.directory
                typer.echo(
                    f"Directory     {settings.directory_file or 'default'} ({len(directory.resources)} resources, {directory.version})"
                )
            if api:
                typer.echo(f"API           http://{host}:{port}/api/v1   (OpenAPI: http://{host}:{port}/docs)")
                typer.echo(f"Dashboard     http://{host}:{port}/dashboard   (sign in with a director or auditor key)")
            typer.echo("Press Ctrl-C to stop.")
            try:
                _run_until_stopped(
                    _serve_async(
                        settings, endpoints, store, shutdown, worker=worker, api=api, host=host, port=port, demo=demo
                    )
                )
            finally:
                shutdown.servers_stopping()
                store.engine.dispose()
    except KeyboardInterrupt:  # a stop asked for while the servers were starting: they are stopped; a clean stop
        if not shutdown.requested:
            raise
    shutdown.leave_if_forced()


# After Ctrl-C or SIGTERM, everything stops in order within STOP_DEADLINE_SECONDS (API requests get
# API_GRACE_SECONDS, the worker worker.WORKER_STOP_SECONDS, Temporal servers.STOP_GRACE_SECONDS); past the
# deadline, or at a second signal, the stop is forced: Temporal killed, PostgreSQL left, the process gone.
STOP_DEADLINE_SECONDS = 20.0
API_GRACE_SECONDS = 5.0
LEFTOVER_TASK_SECONDS = 2.0
FORCE_SECONDS = 8.0
EXIT_FORCED = 130


class Shutdown:
    """Ctrl-C and SIGTERM, from start to exit: the first stops everything in order, a second forces it."""

    def __init__(self, servers: EmbeddedServers) -> None:
        self.servers = servers
        self.requested = False
        self._starting = True  # until the service runs: a signal unwinds the start
        self._serving: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self._forcing = threading.Lock()

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def serving(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        """From now on a signal sets `stop`, which every part of the service watches."""
        self._serving, self._starting = (loop, stop), False
        if self.requested:
            stop.set()

    def servers_stopping(self) -> None:
        """The service has stopped: a signal now only bounds (or, the second, forces) the servers' stop."""
        self._serving, self._starting = None, False

    def leave_if_forced(self) -> None:
        """The orderly stop finished while a forced one runs: let that one end the process (exit 130)."""
        if self._forcing.locked():
            time.sleep(FORCE_SECONDS)  # the forcing thread leaves through os._exit well before this
            raise SystemExit(EXIT_FORCED)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        # A signal handler: flags, a timer and a thread only; no printing (it may interrupt a print).
        if self.requested:
            threading.Thread(target=self.force, args=("a second signal",), daemon=True).start()
            return
        self.requested = True
        deadline = threading.Timer(
            STOP_DEADLINE_SECONDS, self.force, args=(f"not stopped after {STOP_DEADLINE_SECONDS:.0f} s",)
        )
        deadline.daemon = True
        deadline.start()
        if self._serving is not None:
            loop, stop = self._serving
            loop.call_soon_threadsafe(_stopping, stop, signal.Signals(signum).name)
        elif self._starting:
            raise KeyboardInterrupt  # unwinding the start stops whatever has started

    def force(self, reason: str) -> None:
        """Stop the servers at once and leave; from any thread, once."""
        if not self._forcing.acquire(blocking=False):
            return
        try:
            print(f"continuum: stopping now ({reason})", file=sys.stderr, flush=True)
            self.servers.stop_now()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_FORCED)


def _stopping(stop: asyncio.Event, signal_name: str) -> None:
    structlog.get_logger(__name__).info(
        "continuum.stopping", signal=signal_name, deadline_seconds=STOP_DEADLINE_SECONDS
    )
    typer.echo("Stopping (press Ctrl-C again to force) …", err=True)
    stop.set()


def _run_until_stopped(main: Coroutine[Any, Any, None]) -> None:
    """Like asyncio.run, except that tasks still running after the stop (a worker waiting on a long replay)
    and threads the loop cannot cancel are left behind after a bound instead of waited for: the process
    leaves through os._exit, so nothing depends on them finishing."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main)
    finally:
        leftover = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.wait(leftover, timeout=LEFTOVER_TASK_SECONDS))
        if all(task.done() for task in leftover):
            loop.close()
        asyncio.set_event_loop(None)


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As uvicorn binds: the connections of a run just stopped (TIME_WAIT) do not make the port taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            raise ServerUnavailable(
                f"the API cannot listen on {host}:{port} ({error.strerror}); choose another with --port or CONTINUUM_API_PORT"
            ) from None


async def _serve_async(
    settings: Settings,
    endpoints: Any,
    store: Any,
    shutdown: Shutdown,
    *,
    worker: bool,
    api: bool,
    host: str,
    port: int,
    demo: Any = None,
) -> None:
    import continuum.worker as worker_module
    from continuum.api.app import create_app
    from continuum.api.services import Services
    from continuum.episodes import EpisodeCommands

    stop = asyncio.Event()
    shutdown.serving(asyncio.get_running_loop(), stop)
    client = await _unless_stopped(worker_module.connect(settings, endpoints), stop)
    if client is None:
        return
    # The API drains first, while the worker still runs its requests' workflow tasks; then the worker stops.
    api_stopped, worker_stop = asyncio.Event(), asyncio.Event()
    parts = [_after_all(worker_stop, stop, *([api_stopped] if api else []))]
    if worker:
        parts.append(_stopping_all_after(worker_module.run_worker(settings, client, store, worker_stop), stop))
    if api:
        day_seconds = demo.day_seconds if demo is not None else settings.day_seconds
        commands = EpisodeCommands(
            client,
            settings.temporal_task_queue,
            policy_text=settings.policy_text(),
            day=timedelta(seconds=day_seconds),
            lab_id=settings.lab_id,
            directory_text=settings.directory_text(),
        )
        # Requests still running API_GRACE_SECONDS after the stop are cancelled (and answered 503, quietly).
        server = QuietServer(
            uvicorn.Config(
                create_app(Services.build(commands, store)),
                host=host,
                port=port,
                log_config=None,
                lifespan="off",
                timeout_graceful_shutdown=API_GRACE_SECONDS,
            )
        )
        parts.append(_stopping_all_after(server.serve(), stop, then=api_stopped))

        async def stop_api() -> None:
            await stop.wait()
            server.should_exit = True

        parts.append(stop_api())
    if demo is not None:
        parts.append(_unless_stopped(_run_demo(settings, endpoints, store, host, port, demo, stop), stop))
    await asyncio.gather(*parts)


async def _stopping_all_after(
    part: Coroutine[Any, Any, None], stop: asyncio.Event, then: asyncio.Event | None = None
) -> None:
    """Run one part of the service; when it ends, for whatever reason, the others stop too (and `then` is set)."""
    try:
        await part
    finally:
        stop.set()
        if then is not None:
            then.set()


async def _after_all(event: asyncio.Event, *before: asyncio.Event) -> None:
    for earlier in before:
        await earlier.wait()
    event.set()


async def _unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """The work's result, or None once `stop` is set first (the work is then cancelled)."""
    task, stopped = asyncio.ensure_future(work), asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done() and not task.cancelled() and not (stop.is_set() and task.exception() is not None):
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):  # stopping: what it was doing no longer matters
        await task
    return None


async def _run_demo(
    settings: Settings, endpoints: Any, store: Any, host: str, port: int, config: Any, stop: asyncio.Event
) -> None:
    """Drive the cohort through the public API (or take it up again), print what happened, then serve on with the
    simulated clinic still working (or stop with --exit)."""
    from continuum.demo import run_demo

    await run_demo(
        store,
        f"http://{host}:{port}",
        config,
        stop,
        lab_id=settings.lab_id,
        directory_text=settings.directory_text(),
        temporal_ui_url=endpoints.temporal_ui_url,
    )


class QuietServer(uvicorn.Server):
    """Uvicorn without its own signal handling (which would keep the signal from us): Shutdown handles
    Ctrl-C and SIGTERM for the API, the worker and the servers together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@app.command()
def up(host: Host = None, port: Port = None) -> None:
    """Everything on the embedded default (or the configured servers): worker and API, until Ctrl-C."""
    _serve(worker=True, api=True, host=host, port=port)


@app.command()
def demo(
    clients: Annotated[int, typer.Option(min=1, max=5000, help="Synthetic clients in the cohort.")] = 200,
    days: Annotated[float, typer.Option(min=1, help="Simulated care days before the summary.")] = 120,
    day_seconds: Annotated[float, typer.Option(min=0.05, help="Real seconds per care day.")] = 1.0,
    positive_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of test results that are positive.")] = 0.1,
    seed: int = 7,
    exit_: Annotated[bool, typer.Option("--exit", help="Stop after the summary instead of serving on.")] = False,
    host: Host = None,
    port: Port = None,
) -> None:
    """The main job: a synthetic cohort through the public API on the embedded stack, then a summary."""
    from continuum.demo import DemoConfig

    config = DemoConfig(clients, days, day_seconds, positive_rate, seed, exit_)
    _serve(worker=True, api=True, host=host, port=port, demo=config)


@app.command("worker")
def worker_command() -> None:
    """Run a worker on the task queue (starts embedded servers for what is not configured)."""
    _serve(worker=True, api=False)


@app.command("api")
def api_command(host: Host = None, port: Port = None) -> None:
    """Serve the HTTP API only (workers run elsewhere)."""
    _serve(worker=False, api=True, host=host, port=port)


# -- the database alone --------------------------------------------------------------------------------


@contextlib.contextmanager
def _store() -> Iterator[Any]:
    """The event store without Temporal (embedded PostgreSQL if DATABASE_URL is unset)."""
    import continuum.worker as worker_module

    settings = _settings()
    postgres = EmbeddedPostgres(settings.data_dir) if settings.embedded_postgres else None
    try:
        url = postgres.start() if postgres else settings.database_url
        assert url is not None
        store = worker_module.build_store(url, settings)
        yield store
        store.engine.dispose()
    finally:
        if postgres:
            postgres.stop()


@app.command()
def migrate() -> None:
    """Apply the database migrations and exit."""
    with _store():
        typer.echo("migrations applied")


@projections.command("rebuild")
def rebuild() -> None:
    """Rebuild the episodes read model from the whole log (byte-identical to the live one)."""
    from continuum.eventlog.projection import projection_fingerprint, rebuild_episodes

    with _store() as store:
        count = rebuild_episodes(store)
        typer.echo(f"rebuilt episodes from {count} events; fingerprint {projection_fingerprint(store.engine)}")


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "-"
    return "-" if value is None else str(value)


def _emit(data: Any, as_json: bool, human: str) -> None:
    typer.echo(json.dumps(data, default=str, indent=2) if as_json else human)


@episodes.command("list")
def episodes_list(
    level: Annotated[str | None, typer.Option(help="A level of care, e.g. residential.")] = None,
    status: Annotated[str | None, typer.Option(help="intake, active, on_hold or closed.")] = None,
    flag: Annotated[str | None, typer.Option(help="e.g. review_overdue or result_missing.")] = None,
    page: int = 1,
    page_size: int = 50,
    as_json: Json = False,
) -> None:
    """Episodes, filtered and paged."""
    from continuum.domain.episode import EpisodeStatus
    from continuum.domain.levels import LevelOfCare
    from continuum.eventlog.reads import EpisodeReads

    if level is not None and level not in {lv.value for lv in LevelOfCare}:
        raise Usage(f"--level: {level!r} is not a level of care")
    if status is not None and status not in {s.value for s in EpisodeStatus}:
        raise Usage(f"--status: {status!r} is not an episode status")
    with _store() as store:
        result = EpisodeReads(store.engine).list(level=level, status=status, flag=flag, page=page, page_size=page_size)
    columns = ["episode_id", "status", "level", "level_since", "flags"]
    human = _table(result.items, columns) + f"\n{len(result.items)} of {result.total} (page {result.page})"
    _emit({"items": result.items, "total": result.total, "page": result.page}, as_json, human)


@episodes.command("show")
def episodes_show(episode_id: str, as_json: Json = False) -> None:
    """One episode's current state."""
    from continuum.eventlog.reads import EpisodeReads

    with _store() as store:
        state = EpisodeReads(store.engine).get(episode_id)
    if state is None:
        raise NotFound(f"no episode {episode_id}")
    pending = state.get("pending_review")
    human = "\n".join(
        [
            f"episode   {state['episode_id']} (client {state['client_id']})",
            f"status    {state['status']} since {state['status_since']}",
            f"level     {state.get('level') or '-'} since {state.get('level_since') or '-'}",
            f"review    {pending['review_id'] + ' due ' + pending['due_at'] if pending else '-'}",
            f"tests     {len(state.get('tests', []))} ordered",
            f"flags     {', '.join(state.get('flags', [])) or '-'}",
        ]
    )
    _emit(state, as_json, human)


@app.command()
def census(as_json: Json = False) -> None:
    """Open episodes by level of care and status."""
    from continuum.eventlog.reads import EpisodeReads

    with _store() as store:
        rows = EpisodeReads(store.engine).census()
    _emit(rows, as_json, _table(rows, ["level", "status", "episodes"]) + f"\ntotal {sum(r['episodes'] for r in rows)}")


# -- keys ---------------------------------------------------------------------------------------------


@keys.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="director, clinician, lab, partner, auditor or admin.")],
    name: Annotated[str, typer.Option(help="A name for the key's holder (an id, not a person's name).")],
    subject: Annotated[str | None, typer.Option(help="The lab or partner id a lab or partner key speaks for.")] = None,
    as_json: Json = False,
) -> None:
    """Create a key and print its secret (shown this once)."""
    from continuum.access import ApiKeyStore, Role
    from continuum.domain.ids import staff_id

    try:
        chosen = Role(role)
    except ValueError:
        raise Usage(f"--role: {role!r} is not one of {', '.join(r.value for r in Role)}") from None
    staff_id(name)
    if chosen in (Role.LAB, Role.PARTNER) and not subject:
        raise Usage(f"--subject: a {role} key names the {role} it speaks for")
    with _store() as store:
        key, secret = ApiKeyStore(store.engine).create(name, chosen, subject)
    _emit(
        {"key_id": key.key_id, "role": key.role.value, "name": key.name, "secret": secret},
        as_json,
        f"key {key.key_id} ({key.role.value}, {key.name})\nsecret {secret}\nStore it now; it is not shown again.",
    )


@keys.command("list")
def keys_list(as_json: Json = False) -> None:
    """Every key, with its role and whether it is revoked (never the secrets)."""
    from continuum.access import ApiKeyStore

    with _store() as store:
        rows = [{**vars(k), "role": k.role.value} for k in ApiKeyStore(store.engine).list()]
    _emit(rows, as_json, _table(rows, ["key_id", "name", "role", "subject", "created_at", "revoked_at"]))


@keys.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key at once."""
    from continuum.access import ApiKeyStore

    with _store() as store:
        if not ApiKeyStore(store.engine).revoke(key_id):
            raise NotFound(f"no active key {key_id}")
    typer.echo(f"revoked {key_id}")


# -- audit --------------------------------------------------------------------------------------------


@audit.command("verify")
def verify(
    episode: Annotated[str | None, typer.Option(help="Verify one episode's stream instead of the whole log.")] = None,
    anchor: Annotated[
        list[Path] | None,
        typer.Option(help="A file of anchors (one JSON object a line, from `audit anchor`) that must still hold."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Recompute the hash chain and report the first broken link (exit 4 when the record was altered)."""
    from continuum.eventlog.verify import verify_log, verify_stream

    anchors = [a for path in anchor or [] for a in _read_anchors(path)]
    if anchors and episode:
        raise Usage("--anchor checks the whole log; leave out --episode")
    with _store() as store:
        report = verify_stream(store.engine, episode) if episode else verify_log(store.engine, anchors=anchors)
    if episode and report.ok and report.events_checked == 0:  # nothing to be intact: never "chain intact"
        raise NotFound(f"no episode {episode}")
    data = {
        "scope": report.scope,
        "ok": report.ok,
        "events_checked": report.events_checked,
        "anchors_checked": len(anchors),
        "problems": [vars(p) for p in report.problems],
    }
    if report.ok:
        held = f", {len(anchors)} anchor(s) hold" if anchors else ""
        human = f"verified: {report.scope}, {report.events_checked} events, chain intact{held}"
    else:
        assert report.first_broken is not None
        lines = [f"ALTERED: {report.scope}, {len(report.problems)} problem(s); first: {report.first_broken.describe()}"]
        human = "\n".join(lines + [f"  also: {p.describe()}" for p in report.problems[1:]])
    _emit(data, as_json, human)
    if not report.ok:
        raise typer.Exit(EXIT_VERIFICATION_FAILED)


def _read_anchors(path: Path) -> list[Any]:
    from continuum.eventlog.verify import Anchor, AnchorError

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise Usage(f"--anchor {path}: {error.strerror}") from None
    anchors = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            anchors.append(Anchor.from_json(json.loads(line)))
        except ValueError as error:  # AnchorError and json.JSONDecodeError are both ValueErrors
            reason = error if isinstance(error, AnchorError) else "not JSON"
            raise Usage(f"--anchor {path}, line {number}: {reason}") from None
    if not anchors:
        raise Usage(f"--anchor {path}: no anchors in the file")
    return anchors


@audit.command("anchor")
def anchor() -> None:
    """Print the log's head (position, hash, time) as one JSON line, to keep outside the database.

    Append it to write-once storage (`continuum audit anchor >> anchors.ndjson`); `audit verify --anchor
    anchors.ndjson` then proves that the log up to each anchor is the one that was anchored, even against
    someone who could rewrite the whole chain inside the database."""
    from continuum.eventlog.verify import take_anchor

    with _store() as store:
        head = take_anchor(store.engine)
    typer.echo(json.dumps(head.as_json()))


def _cli_reader(what: str, episode_id: str, purpose: str, store: Any, export: tuple[str, Any] | None = None) -> None:
    """Reads of a record through the CLI are logged like the API's, under the operating system user; an
    `export` (format, the export asked for) as the disclosure it is, on the basis the domain accepts."""
    from continuum.access import AccessLog, ApiKey, Role
    from continuum.domain.codec import decode
    from continuum.domain.disclosure import export_basis
    from continuum.domain.episode import Episode
    from continuum.domain.errors import DisclosureRefused
    from continuum.eventlog.reads import EpisodeReads

    reader = ApiKey(f"cli:{getpass.getuser()}", "cli", Role.AUDITOR, None, datetime.now().astimezone(), None)
    if export is not None:
        format, asked = export
        recorded = EpisodeReads(store.engine).get(episode_id)
        if recorded is None:
            raise NotFound(f"no episode {episode_id}")
        try:
            justified = export_basis(decode(Episode, recorded), asked, datetime.now().astimezone())
        except DisclosureRefused as refused:
            raise Usage(f"--{refused.parameter.replace('_', '-')}: {str(refused).split(': ', 1)[1]}") from None
        AccessLog(store.engine).record_export(
            reader, episode_id, format=format, recipient=asked.recipient, purpose=purpose, basis=justified
        )
        return
    AccessLog(store.engine).record(reader, episode_id, what, purpose)


@audit.command("replay")
def replay(
    episode_id: str,
    as_of: Annotated[str, typer.Option("--as-of", help="An instant with its zone, e.g. 2026-11-23T10:00:00Z.")],
    purpose: Annotated[str, typer.Option(help="Why the record is read (logged).")] = "audit",
    as_json: Json = False,
) -> None:
    """The episode's state as the record stood at an instant, and the events up to then."""
    from continuum.domain.codec import encode, parse_instant
    from continuum.eventlog.projection import episode_as_of

    try:
        at = parse_instant(as_of)
    except ValueError:
        raise Usage(f"--as-of: {as_of!r} is not an ISO-8601 instant") from None
    if at.tzinfo is None:
        raise Usage("--as-of: the instant needs a time zone (for example a trailing Z)")
    with _store() as store:
        _cli_reader(f"replay as_of {at.isoformat()}", episode_id, purpose, store)
        events = store.read_stream(episode_id, recorded_until=at)
        state = episode_as_of(store, episode_id, at=at)
    if not events:
        raise NotFound(f"episode {episode_id} had no recorded events at {at.isoformat()}")
    rows = [{"version": e.stream_version, "recorded_at": e.recorded_at, "type": e.event_type} for e in events]
    data = {"episode_id": episode_id, "as_of": at.isoformat(), "state": encode(state), "events": rows}
    assert state is not None
    human = _table(rows, ["version", "recorded_at", "type"]) + (
        f"\nstate as of {at.isoformat()}: {state.status.value}, level {state.level.value if state.level else '-'},"
        f" flags {', '.join(state.flags) or '-'}"
    )
    _emit(data, as_json, human)


class ExportFormat(StrEnum):
    NDJSON = "ndjson"
    FHIR = "fhir"


@audit.command("export")
def export(
    episode_id: str,
    purpose: Annotated[str, typer.Option(help="Why the record is exported (logged).")] = "audit",
    format: Annotated[ExportFormat, typer.Option(help="ndjson or fhir.")] = ExportFormat.NDJSON,  # noqa: A002
    recipient: Annotated[
        str, typer.Option(help="Who receives the export (the accounting of disclosures).")
    ] = "internal_audit",
    basis: Annotated[
        str | None,
        typer.Option(
            help="The lawful basis: consent, medical_emergency, audit_and_evaluation, court_order, program_staff."
        ),
    ] = None,
    consent_id: Annotated[str | None, typer.Option(help="The consent the export is made under.")] = None,
    court_order: Annotated[str | None, typer.Option(help="The order, for --basis court_order.")] = None,
    emergency_clinician: Annotated[str | None, typer.Option(help="Medical emergency: who receives it.")] = None,
    emergency_facility: Annotated[str | None, typer.Option(help="Medical emergency: their facility.")] = None,
    emergency_nature: Annotated[str | None, typer.Option(help="Medical emergency: its nature.")] = None,
) -> None:
    """The episode's history on standard output: NDJSON (one stored event per line, with its hashes; check it
    anywhere with `verify-export`) or a FHIR R4 Bundle. The export is recorded as a disclosure; outside the
    program it needs a consent valid now for the recipient and purpose, or a --basis."""
    from continuum.domain.disclosure import DisclosureBasis, ExportAsked, MedicalEmergency
    from continuum.eventlog.export import fhir_bundle, ndjson_lines

    try:
        lawful = DisclosureBasis(basis) if basis is not None else None
    except ValueError:
        raise Usage(f"--basis: one of {', '.join(b.value for b in DisclosureBasis)}") from None
    emergency = None
    if lawful is DisclosureBasis.MEDICAL_EMERGENCY:
        emergency = MedicalEmergency(emergency_clinician or "", emergency_facility or "", emergency_nature or "")
    asked = ExportAsked(recipient, purpose, lawful, consent_id, court_order, emergency)
    with _store() as store:
        events = store.read_stream(episode_id, as_recorded=True)  # the payloads the hashes cover
        if not events:
            raise NotFound(f"no episode {episode_id}")
        _cli_reader(f"export {format.value} to {recipient}", episode_id, purpose, store, (format.value, asked))
    if format is ExportFormat.FHIR:
        typer.echo(json.dumps(fhir_bundle(episode_id, events), indent=1))
        return
    for line in ndjson_lines(events):
        typer.echo(line)


@audit.command("verify-export")
def verify_export(
    path: Annotated[Path, typer.Argument(help="An NDJSON export (`continuum audit export`), or - for standard input.")],
    as_json: Json = False,
) -> None:
    """Check an NDJSON export offline, without the database: every hash, and no missing version (exit 4 if altered)."""
    from continuum.eventlog.export import verify_ndjson

    try:
        text_ = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as error:
        raise Usage(f"{path}: {error.strerror}") from None
    report = verify_ndjson(text_.splitlines())
    data = {
        "scope": report.scope,
        "ok": report.ok,
        "events_checked": report.events_checked,
        "problems": [vars(p) for p in report.problems],
    }
    first = report.first_broken
    human = (
        f"verified: {report.scope}, {report.events_checked} events, every hash intact"
        if report.ok or first is None
        else f"ALTERED: {report.scope}: {first.describe()}"
    )
    _emit(data, as_json, human)
    if not report.ok or report.events_checked == 0:
        raise typer.Exit(EXIT_VERIFICATION_FAILED)


@audit.command("replay-workflows")
def replay_workflows(
    limit: Annotated[int, typer.Option(help="At most this many episodes, newest first.")] = 1000,
    as_json: Json = False,
) -> None:
    """Fetch episode histories from Temporal and replay them with the current workflow code (Temporal's
    Replayer); a non-deterministic change shows here before it breaks a running episode. Exit 4 on any."""
    settings = _settings()
    if settings.temporal_address is None:
        raise Usage("TEMPORAL_ADDRESS: replay needs the running Temporal (start `continuum up` and set it)")
    results = asyncio.run(_replay_all(settings, limit))
    failed = [r for r in results if r["error"]]
    human = f"replayed {len(results)} episode histories: {len(results) - len(failed)} deterministic, {len(failed)} not"
    human += "".join(f"\n  {r['workflow_id']}: {r['error']}" for r in failed)
    _emit({"replayed": len(results), "failed": failed}, as_json, human)
    if failed:
        raise typer.Exit(EXIT_VERIFICATION_FAILED)


async def _replay_all(settings: Settings, limit: int) -> list[dict[str, Any]]:
    from temporalio.worker import Replayer

    from continuum.runtime.codec import encrypted_converter
    from continuum.runtime.temporal import connect_temporal
    from continuum.workflows.episode import EpisodeWorkflow

    assert settings.temporal_address is not None
    converter = encrypted_converter(settings.key_ring())
    client = await connect_temporal(settings.temporal_address, settings.temporal_namespace, data_converter=converter)
    replayer = Replayer(workflows=[EpisodeWorkflow], data_converter=converter)
    results = []
    async for execution in client.list_workflows('WorkflowType = "EpisodeWorkflow"', limit=limit):
        history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        outcome = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        error = str(outcome.replay_failure).splitlines()[0][:300] if outcome.replay_failure else None
        results.append({"workflow_id": execution.id, "run_id": execution.run_id, "error": error})
    return results


def main() -> None:
    """Entry point: run the command, turn known failures into one line, and leave through os._exit.

    The temporalio SDK can crash while the interpreter shuts down after all work succeeded, so the real
    status is handed to `os._exit` once output is flushed.
    """
    code = 0
    try:
        # Without standalone mode, click hands back the code of a `typer.Exit` instead of raising it.
        returned = app(standalone_mode=False)
        code = returned if isinstance(returned, int) and not isinstance(returned, bool) else 0
    except (ServerUnavailable, EventStoreError, SettingsError, PolicyError) as error:
        print(f"continuum: {error}", file=sys.stderr)
        code = EXIT_UNAVAILABLE
    except NotFound as error:
        print(f"continuum: {error}", file=sys.stderr)
        code = EXIT_NOT_FOUND
    except Usage as error:
        print(f"continuum: {error}", file=sys.stderr)
        code = 2
    except DomainError as error:
        print(f"continuum: {error}", file=sys.stderr)
        code = 2
    except typer.Exit as exit_:
        code = exit_.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except Exception as error:  # click usage errors carry their own message
        import click

        if isinstance(error, click.ClickException):
            error.show()
            code = error.exit_code
        else:
            raise
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    main()
