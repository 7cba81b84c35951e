"""`up`, `demo`, `worker` and `api`: the service on the embedded (or configured) servers, until Ctrl-C.

Each builds and runs through `bootstrap.serve`, which stops the parts in order within 30 seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Annotated

import typer

from continuum.runtime.settings import Settings, load_settings

if TYPE_CHECKING:
    from continuum.bootstrap import ExtraPart, Service

commands = typer.Typer()
Host = Annotated[str | None, typer.Option(help="Address the API listens on (CONTINUUM_API_HOST).")]
Port = Annotated[int | None, typer.Option(help="Port the API listens on (CONTINUUM_API_PORT).")]


def _serve(
    *,
    worker: bool,
    api: bool,
    host: str | None = None,
    port: int | None = None,
    day_seconds: float | None = None,
    extra: ExtraPart | None = None,
    settings: Settings | None = None,
) -> None:
    from continuum.bootstrap import serve  # imports everything the service needs, before its signal handlers

    settings = settings or load_settings()
    serve(settings, worker=worker, api=api, host=host, port=port, day_seconds=day_seconds, extra=extra)


@commands.command()
def up(host: Host = None, port: Port = None) -> None:
    """Everything on the embedded default (or the configured servers): worker and API, until Ctrl-C."""
    _serve(worker=True, api=True, host=host, port=port)


@commands.command()
def demo(
    clients: Annotated[int, typer.Option(min=1, max=5000, help="Synthetic clients in the cohort.")] = 60,
    days: Annotated[float, typer.Option(min=1, help="Simulated care days before the summary.")] = 120,
    day_seconds: Annotated[float, typer.Option(min=0.05, help="Real seconds per care day.")] = 1.0,
    positive_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of test results that are positive.")] = 0.1,
    seed: int = 7,
    exit_: Annotated[bool, typer.Option("--exit", help="Stop after the summary instead of serving on.")] = False,
    host: Host = None,
    port: Port = None,
) -> None:
    """The main job: a synthetic cohort through the public API on the embedded stack, then a summary."""
    from continuum.demo import DemoConfig, run_demo
    from continuum.domain.facilities import sample_facilities_file

    config = DemoConfig(clients, days, day_seconds, positive_rate, seed, exit_)
    settings = load_settings()
    if settings.facilities_file is None:  # the demo's operator runs the three sample centers
        settings = dataclasses.replace(settings, facilities_file=sample_facilities_file())
    programs = settings.facility_programs()
    facilities = {f: tuple(level.value for level in p.facility.levels) for f, p in programs.items()}
    labs = tuple(sorted({p.lab_id for p in programs.values() if p.lab_id}))

    async def cohort(service: Service, stop: asyncio.Event) -> None:
        """Drive the cohort through the public API (or take it up again), print what happened, then serve on
        with the simulated clinic still working (or stop with --exit)."""
        await run_demo(
            service.store,
            service.api_url,
            config,
            stop,
            lab_id=service.settings.lab_id,
            directory_text=service.settings.directory_text(),
            temporal_ui_url=service.endpoints.temporal_ui_url,
            facilities=facilities,
            labs=labs,
        )

    _serve(worker=True, api=True, host=host, port=port, day_seconds=config.day_seconds, extra=cohort, settings=settings)


@commands.command("worker")
def worker_command() -> None:
    """Run a worker on the task queue (starts embedded servers for what is not configured)."""
    _serve(worker=True, api=False)


@commands.command("api")
def api_command(host: Host = None, port: Port = None) -> None:
    """Serve the HTTP API only (workers run elsewhere)."""
    _serve(worker=False, api=True, host=host, port=port)
