"""`attendance report`: one row per client and care week in a period, as the API's GET /attendance serves it."""

from __future__ import annotations

from typing import Annotated

import typer

from continuum.cli.context import store
from continuum.cli.errors import Usage
from continuum.cli.render import Json, emit, table

attendance = typer.Typer(no_args_is_help=True, help="Treatment services delivered, per client and care week.")


@attendance.command("report")
def attendance_report(
    start: Annotated[str, typer.Option("--from", help="A date (YYYY-MM-DD) or an instant with a time zone.")],
    end: Annotated[str, typer.Option("--to", help="A date (included) or an instant (excluded).")],
    level: Annotated[str | None, typer.Option(help="Only weeks at this level, e.g. intensive_outpatient.")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header line (for billing).")] = False,
    as_json: Json = False,
) -> None:
    """Minutes delivered in person and by telehealth against the level's minimum, misses, holds."""
    from datetime import UTC, datetime, timedelta

    from continuum.domain.attendance_report import ReportPeriodInvalid, report_period
    from continuum.domain.levels import LevelOfCare
    from continuum.eventlog.attendance import AttendanceReads, report_csv, report_json
    from continuum.runtime.settings import load_settings

    try:
        first, last = report_period(start, end)
    except ReportPeriodInvalid as error:
        field, _, reason = str(error).partition(": ")
        raise Usage(f"--{field}: {reason}") from None
    if level is not None and level not in {lv.value for lv in LevelOfCare}:
        raise Usage(f"--level: {level!r} is not a level of care")
    settings = load_settings()
    with store() as opened:
        reads = AttendanceReads(
            opened.engine, settings.policy_text(), settings.directory_text(), timedelta(seconds=settings.day_seconds)
        )
        pages = reads.report_all(first, last, datetime.now(UTC), LevelOfCare(level) if level else None)
        if as_csv:
            for chunk in report_csv(pages):
                typer.echo(chunk, nl=False)
            return
        found = [row for rows in pages for row in report_json(rows)]
    columns = ["episode_id", "care_week", "level", "in_person_minutes", "telehealth_minutes", "minimum_hours"]
    columns += ["short_by_hours", "missed_excused", "missed_unexcused", "held"]
    emit({"rows": found, "count": len(found)}, as_json, table(found, columns) + f"\n{len(found)} client-weeks")
