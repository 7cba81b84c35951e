"""The dashboard's outcomes page (`/dashboard/measures`): the measures by level, drawn as inline SVG on the
server (no chart library, no script), with the log position and hash they were computed at and a link to
check them against the chain. Registered on the dashboard's router, behind its sign-in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from fastapi import Request
from fastapi.responses import HTMLResponse

from continuum.api.auth import MEASURES, facility_scope
from continuum.api.dashboard import _page, _signed_in, router
from continuum.api.params import services_of
from continuum.domain.levels import LevelOfCare
from continuum.domain.measures import (
    RETENTION_DAYS,
    Grouping,
    MeasureGroup,
    Measures,
    MeasuresError,
    default_period,
)
from continuum.eventlog.measures import measures_at

CHART_WIDTH = 260  # the bars' full length in the SVG's units (labels take the first 150)
OUTCOMES = ("completion", "against_medical_advice", "dropped_out", "administrative")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # None: nothing counted
    width: float
    css: str = "bar"


def _bars(items: list[tuple[str, float | None]], widest: float | None = None) -> list[Bar]:
    top = widest or max((v for _, v in items if v is not None), default=0.0) or 1.0
    return [Bar(label, value, CHART_WIDTH * (value or 0.0) / top) for label, value in items]


def _by_level(measures: Measures) -> list[tuple[str, MeasureGroup]]:
    """The level groups, most intensive first (as the census draws them)."""
    found = {dict(g.key).get(Grouping.LEVEL): g for g in measures.groups[1:]}
    return [(level.value, found[level.value]) for level in reversed(LevelOfCare) if level.value in found]


def _stacked(levels: list[tuple[str, MeasureGroup]]) -> list[tuple[str, list[Bar]]]:
    """Each level's ended stays as one bar, split by how they ended (the rest: stepped up or other)."""
    rows = []
    for level, group in levels:
        ended = group.get("completion").denominator
        if not ended:
            continue
        parts = [(name, group.get(name).numerator) for name in OUTCOMES]
        rest = ended - sum(n for _, n in parts)
        rows.append(
            (
                level,
                [
                    Bar(name, n, CHART_WIDTH * n / ended, f"outcome-{name}")
                    for name, n in [*parts, ("other", rest)]
                    if n
                ],
            )
        )
    return rows


def _day(text: str, name: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise MeasuresError(name, f"{text.strip()!r} is not a date (YYYY-MM-DD)") from None


def register() -> None:
    """Add the page to the dashboard's router (once, however many apps are created), before it is mounted."""
    if not any(getattr(route, "path", None) == "/dashboard/measures" for route in router.routes):
        router.add_api_route("/measures", measures_page, methods=["GET"], response_class=HTMLResponse)


def measures_page(request: Request, start: str = "", end: str = "", at: str = "") -> HTMLResponse:
    caller = MEASURES.refuse_unless(_signed_in(request))  # the API's rule: director and auditor
    services = services_of(request)
    form = {"start": start, "end": end, "at": at}
    try:
        period = default_period(_day(start, "from"), _day(end, "to"), datetime.now(UTC).date())
        if at.strip() and not at.strip().isdigit():
            raise MeasuresError("at", f"{at.strip()!r} is not a log position (a whole number)")
        position = int(at) if at.strip() else None
        report = measures_at(
            services.store,
            period,
            by=[Grouping.LEVEL],
            position=position,
            day=services.episodes.day,
            facilities=facility_scope(caller),
        )
    except MeasuresError as refused:
        return _page(request, "measures.html", caller, 422, error=str(refused), form=form, report=None)
    measures = report.measures
    levels = _by_level(measures)
    total = measures.total
    return _page(
        request,
        "measures.html",
        caller,
        error=None,
        form=form,
        report=report,
        measures=measures,
        level_groups=levels,
        retention=_bars([(f"{n} days", total.get(f"retention_{n}d").value) for n in RETENTION_DAYS], 100.0),
        outcomes=_stacked(levels),
        step_ups=_bars([(level, g.get("step_ups").value) for level, g in levels]),
        positives=_bars([(level, g.get("positive_rate").value) for level, g in levels], 100.0),
        stays=_bars([(level, g.get("length_of_stay").value) for level, g in levels]),
    )
