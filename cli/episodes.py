"""`episodes list`, `episodes show` and `census`: episodes as the projection has them."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from continuum.cli.context import store
from continuum.cli.errors import NotFound, Usage
from continuum.cli.render import Json, emit, table
from continuum.runtime.settings import load_settings

commands = typer.Typer()
episodes = typer.Typer(no_args_is_help=True, help="Episodes, as the projection has them.")


@episodes.command("list")
def episodes_list(
    level: Annotated[str | None, typer.Option(help="A level of care, e.g. residential.")] = None,
    status: Annotated[str | None, typer.Option(help="intake, active, on_hold or closed.")] = None,
    flag: Annotated[str | None, typer.Option(help="e.g. review_overdue or result_missing.")] = None,
    page: Annotated[int, typer.Option(min=1, max=100_000, help="Which page, from 1.")] = 1,
    page_size: Annotated[int, typer.Option(min=1, max=200, help="Episodes a page (at most 200).")] = 50,
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
    with store() as opened:
        result = EpisodeReads(opened.engine).list(level=level, status=status, flag=flag, page=page, page_size=page_size)
    columns = ["episode_id", "status", "level", "level_since", "flags"]
    human = table(result.items, columns) + f"\n{len(result.items)} of {result.total} (page {result.page})"
    emit({"items": result.items, "total": result.total, "page": result.page}, as_json, human)


@episodes.command("show")
def episodes_show(episode_id: str, as_json: Json = False) -> None:
    """One episode's current state."""
    from continuum.eventlog.reads import EpisodeReads

    with store() as opened:
        state = EpisodeReads(opened.engine).get(episode_id)
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
    emit(state, as_json, human)


@commands.command()
def census(
    facility: Annotated[str | None, typer.Option(help="Only this facility's episodes.")] = None,
    as_json: Json = False,
) -> None:
    """Open episodes by level of care and status, then by facility: occupancy against capacity, and who waits."""
    from continuum.eventlog.reads import EpisodeReads, census_totals, facility_census

    facilities = load_settings().facilities()
    if facility is not None and facilities.get(facility) is None:
        raise Usage(f"--facility: {facility!r} is not a facility (known: {', '.join(facilities.ids)})")
    with store() as opened:
        reads = EpisodeReads(opened.engine)
        rows: list[dict[str, Any]] = reads.census(facility=facility)
        waitlist = reads.waitlist(facility=facility)
    totals = census_totals(rows)
    by_facility = facility_census(facilities, rows, only=facility)
    occupancy = [
        {"facility": f["facility"], **level, "capacity": level["capacity"] or "no limit"}
        for f in by_facility
        for level in f["levels"]
    ]
    text = (
        table(totals, ["level", "status", "episodes"])
        + f"\ntotal {sum(r['episodes'] for r in totals)}\n\n"
        + table(occupancy, ["facility", "level", "occupancy", "capacity", "free", "waitlisted"])
        + (
            f"\n\nwaitlist\n{table(waitlist, ['episode_id', 'facility', 'wanted_level', 'interim_level', 'since'])}"
            if waitlist
            else ""
        )
    )
    body = {"by_level_and_status": totals, "by_facility": by_facility, "waitlist": waitlist}
    emit(body, as_json, text)
