"""`measures`: outcome measures from the log as a table, `--json` or `--csv`, at the head or a stated position;
with `--check HASH`, the position's hash is verified against the chain first (exit 4 if it does not hold)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import typer

from continuum.cli.context import store
from continuum.cli.errors import EXIT_VERIFICATION_FAILED, Usage
from continuum.cli.render import Json, emit, table
from continuum.runtime.settings import load_settings

commands = typer.Typer()


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Usage(f"{option}: {text!r} is not a date (YYYY-MM-DD)") from None


@commands.command()
def measures(
    first: Annotated[str | None, typer.Option("--from", help="First day (YYYY-MM-DD, UTC), included.")] = None,
    last: Annotated[
        str | None, typer.Option("--to", help="Last day (YYYY-MM-DD, UTC), included; default today.")
    ] = None,
    by: Annotated[str, typer.Option(help="Groupings, comma-separated: level, cohort (month of admission).")] = "",
    at: Annotated[int | None, typer.Option(min=0, help="The log position to compute at (default: the head).")] = None,
    check: Annotated[
        str | None, typer.Option(help="The report's log_head_hash: verify the chain holds it at --at first.")
    ] = None,
    day_seconds: Annotated[
        float | None,
        typer.Option(min=0.001, max=604800, help="The care day in seconds (default CONTINUUM_DAY_SECONDS; a demo: 1)."),
    ] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="One CSV row per group and measure.")] = False,
    as_json: Json = False,
) -> None:
    """Outcome measures over a period (default: the last 90 days), stating the log position, its chain hash and
    the policy versions; the same position gives the same numbers (README: "Outcome measures")."""
    from continuum.domain.measures import MeasuresError, default_period, parse_groupings
    from continuum.eventlog.measure_report import report_body, report_csv
    from continuum.eventlog.measures import measures_at, verify_report

    if as_csv and as_json:
        raise Usage("--csv and --json: choose one")
    if check is not None and at is None:
        raise Usage("--check: give the report's position with --at")
    settings = load_settings()
    try:
        period = default_period(_day(first, "--from"), _day(last, "--to"), datetime.now(UTC).date())
        groupings = parse_groupings(by)
    except MeasuresError as refused:
        raise Usage(f"--{refused}") from None
    with store() as opened:
        if check is not None and at is not None:
            verified = verify_report(opened.engine, at, check.strip().lower())
            if not verified.ok:
                problem = verified.problems[0].describe()
                typer.echo(f"continuum: the report does not verify: {problem}", err=True)
                raise typer.Exit(EXIT_VERIFICATION_FAILED)
        try:
            report = measures_at(
                opened, period, by=groupings, position=at, day=timedelta(seconds=day_seconds or settings.day_seconds)
            )
        except MeasuresError as refused:
            raise Usage(f"--{refused}") from None
    if as_csv:
        typer.echo(report_csv(report), nl=False)
        return
    body = report_body(report)
    emit(body, as_json, _human(body))


def _human(body: dict[str, object]) -> str:
    groups = body["groups"]
    assert isinstance(groups, list)
    definitions = body["definitions"]
    assert isinstance(definitions, dict)
    labels = [str(g["label"]) for g in groups]
    rows = [
        {
            "measure": name,
            "unit": definitions[name]["unit"],
            **{label: g["measures"][name]["value"] for label, g in zip(labels, groups, strict=True)},
        }
        for name in definitions
    ]
    period = body["period"]
    assert isinstance(period, dict)
    versions = body["policy_versions"]
    assert isinstance(versions, list)
    head = [
        f"period {period['from']} .. {period['to']}; {body['episodes']} episodes",
        f"observed until {body['observed_until'] or '-'}",
        f"log position {body['log_position']}, hash {body['log_head_hash']}",
        f"policy versions {', '.join(versions) or '-'}; a care day is {body['day_seconds']} s",
        "",
    ]
    return "\n".join(head) + table(rows, ["measure", "unit", *labels])
