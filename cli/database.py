"""`migrate` and `projections rebuild`: the database alone, without Temporal."""

from __future__ import annotations

import typer

from continuum.cli.context import store

commands = typer.Typer()
projections = typer.Typer(no_args_is_help=True, help="Read models kept from the event log.")


@commands.command()
def migrate() -> None:
    """Apply the database migrations and exit (as the schema's owner: DATABASE_URL's user)."""
    with store(migrate=True):
        typer.echo("migrations applied")


@projections.command("rebuild")
def rebuild() -> None:
    """Rebuild the episodes read model from the whole log (byte-identical to the live one)."""
    from continuum.eventlog.projection import projection_fingerprint, rebuild_episodes

    with store() as opened:
        count = rebuild_episodes(opened)
        typer.echo(f"rebuilt episodes from {count} events; fingerprint {projection_fingerprint(opened.engine)}")
