"""The `continuum` command: thin, calling the same services as the worker and the API."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Annotated

import typer

from continuum.logs import configure_logging
from continuum.servers import ServerUnavailable, running_servers
from continuum.settings import Settings, SettingsError
from domain.errors import PolicyError
from eventlog.errors import EventStoreError
from workflows.search_attributes import SEARCH_ATTRIBUTES

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Continuum: care-continuum workflow engine.")
projections = typer.Typer(no_args_is_help=True, help="Read models kept from the event log.")
audit = typer.Typer(no_args_is_help=True, help="Auditors' tools over the event log.")
app.add_typer(projections, name="projections")
app.add_typer(audit, name="audit")

EXIT_UNAVAILABLE = 3
EXIT_VERIFICATION_FAILED = 4


def _settings() -> Settings:
    settings = Settings.from_env()
    configure_logging(settings)
    return settings


def _serve() -> None:
    import worker

    from domain.policy import load_policy

    settings = _settings()
    policy = load_policy(settings.policy_text())  # a malformed policy stops us here, naming the key
    with running_servers(settings, SEARCH_ATTRIBUTES) as endpoints:
        store = worker.build_store(endpoints.database_url, settings)
        typer.echo(f"Policy        {settings.policy_file or 'default'} ({policy.version})")
        typer.echo(f"Temporal      {endpoints.temporal_address} (namespace {settings.temporal_namespace})")
        if endpoints.temporal_ui_url:
            typer.echo(f"Temporal UI   {endpoints.temporal_ui_url}")
        typer.echo(f"Task queue    {settings.temporal_task_queue}")
        typer.echo("Press Ctrl-C to stop.")
        asyncio.run(worker.run_worker(settings, endpoints, store))


@app.command()
def up() -> None:
    """Start everything on the embedded default (or the configured servers) and serve until Ctrl-C."""
    _serve()


@app.command("worker")
def worker_command() -> None:
    """Run a worker on the task queue (starts embedded servers for what is not configured)."""
    _serve()


@app.command()
def migrate() -> None:
    """Apply the database migrations and exit."""
    with _store_only(_settings()):
        typer.echo("migrations applied")


def _store_only(settings: Settings):  # type: ignore[no-untyped-def]
    """A context giving an event store without Temporal (embedded PostgreSQL if unconfigured)."""
    import contextlib

    from eventlog.db import check_reachable, make_engine
    from eventlog.migrate import apply_migrations
    from eventlog.projection import EpisodesProjection
    from eventlog.store import PostgresEventStore

    @contextlib.contextmanager
    def scope():  # type: ignore[no-untyped-def]
        from continuum.servers import EmbeddedPostgres

        postgres = EmbeddedPostgres(settings.data_dir) if settings.embedded_postgres else None
        try:
            url = postgres.start() if postgres else settings.database_url
            assert url is not None
            apply_migrations(url)
            engine = make_engine(url, role=settings.database_role)
            check_reachable(engine)
            yield PostgresEventStore(engine, projectors=[EpisodesProjection()])
            engine.dispose()
        finally:
            if postgres:
                postgres.stop()

    return scope()


@projections.command("rebuild")
def rebuild() -> None:
    """Rebuild the episodes read model from the whole log (byte-identical to the live one)."""
    from eventlog.projection import projection_fingerprint, rebuild_episodes

    with _store_only(_settings()) as store:
        count = rebuild_episodes(store)
        typer.echo(f"rebuilt episodes from {count} events; fingerprint {projection_fingerprint(store.engine)}")


@audit.command("verify")
def verify(
    episode: Annotated[str | None, typer.Option(help="Verify one episode's stream instead of the whole log.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Recompute the hash chain and report the first broken link (exit 4 when the record was altered)."""
    from eventlog.verify import verify_log, verify_stream

    with _store_only(_settings()) as store:
        report = verify_stream(store.engine, episode) if episode else verify_log(store.engine)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "scope": report.scope,
                    "ok": report.ok,
                    "events_checked": report.events_checked,
                    "problems": [vars(p) for p in report.problems],
                }
            )
        )
    elif report.ok:
        typer.echo(f"verified: {report.scope}, {report.events_checked} events, chain intact")
    else:
        typer.echo(f"ALTERED: {report.scope}, {len(report.problems)} problem(s); first: {report.first_broken.describe()}")  # type: ignore[union-attr]
        for problem in report.problems[1:]:
            typer.echo(f"  also: {problem.describe()}")
    if not report.ok:
        raise typer.Exit(EXIT_VERIFICATION_FAILED)


def main() -> None:
    """Entry point: run the command, turn known failures into one line, and leave through os._exit.

    The temporalio SDK can crash while the interpreter shuts down after all work succeeded, so the real
    status is handed to `os._exit` once output is flushed.
    """
    code = 0
    try:
        app(standalone_mode=False)
    except (ServerUnavailable, EventStoreError, SettingsError, PolicyError) as error:
        print(f"continuum: {error}", file=sys.stderr)
        code = EXIT_UNAVAILABLE
    except typer.Exit as exit_:
        code = exit_.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except Exception as error:  # click usage errors and the like carry their own message
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
