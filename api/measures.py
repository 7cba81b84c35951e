"""`GET /api/v1/measures`: outcome measures from the log for directors and auditors (JSON, CSV or a FHIR
MeasureReport), stating the log position and hash they were computed at; `GET /api/v1/measures/verify`
checks such a report against the chain."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from continuum.access import ApiKey
from continuum.api.auth import MEASURES, facility_scope
from continuum.api.params import services_of
from continuum.api.service_models import FhirMeasureReport, MeasuresAnswer, ReportVerificationAnswer
from continuum.domain.measures import MeasuresError, default_period, parse_groupings
from continuum.eventlog.measure_report import fhir_measure_report, report_body, report_csv
from continuum.eventlog.measures import MeasuresReport, measures_at, verify_report

router = APIRouter(prefix="/api/v1", tags=["measures"])


def compute(
    request: Request, first: date | None, last: date | None, by: str, at: int | None, caller: ApiKey | None = None
) -> MeasuresReport:
    """The measures, from the episodes at the caller's facilities (every one without a caller or a scope)."""
    services = services_of(request)
    scope = facility_scope(caller) if caller is not None else None
    try:
        period = default_period(first, last, datetime.now(UTC).date())
        return measures_at(
            services.store, period, by=parse_groupings(by), position=at, day=services.episodes.day, facilities=scope
        )
    except MeasuresError as refused:
        raise HTTPException(422, str(refused)) from None


FORMATS: dict[int | str, dict[str, Any]] = {
    200: {
        "model": MeasuresAnswer,
        "description": "the report: JSON (`format=json`), CSV (`csv`, one row per group and measure) or FHIR (`fhir`)",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/fhir+json": {"schema": FhirMeasureReport.model_json_schema()},
        },
    }
}


@router.get("/measures", response_class=JSONResponse, responses=FORMATS)
def measures(
    request: Request,
    first: Annotated[date | None, Query(alias="from", description="first day (YYYY-MM-DD, UTC), included")] = None,
    last: Annotated[date | None, Query(alias="to", description="last day (YYYY-MM-DD, UTC), included")] = None,
    by: Annotated[str, Query(max_length=100, description="groupings, comma-separated: level, cohort")] = "",
    at: Annotated[
        int | None, Query(ge=0, le=2**62, description="the log position to compute at (default: head)")
    ] = None,
    format: Annotated[str, Query(pattern="^(json|csv|fhir)$")] = "json",
    caller: ApiKey = Depends(MEASURES),
) -> Response:
    """Outcome measures over a period (default: the last 90 days), from every episode's events up to `at`;
    the answer states the log position, its chain hash and the policy versions (README: "Outcome measures")."""
    report = compute(request, first, last, by, at, caller)
    if format == "csv":
        name = f"measures-{report.position}.csv"
        return Response(
            report_csv(report), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )
    if format == "fhir":
        return JSONResponse(fhir_measure_report(report), media_type="application/fhir+json")
    return JSONResponse(report_body(report))


@router.get("/measures/verify", response_model=ReportVerificationAnswer)
def verify(
    request: Request,
    position: Annotated[int, Query(ge=0, le=2**62, description="a report's log_position")],
    hash: Annotated[str, Query(pattern="^[0-9a-f]{64}$", description="and its log_head_hash")],
    caller: ApiKey = Depends(MEASURES),
) -> dict[str, Any]:
    """Whether the chain verifies and still holds this hash at this position: then the events the report was
    computed from are the ones in the log, and `GET /measures?at=<position>` recomputes the same numbers."""
    result = verify_report(services_of(request).store.engine, position, hash)
    return {
        "ok": result.ok,
        "position": position,
        "events_checked": result.events_checked,
        "problems": [asdict(p) for p in result.problems],
    }
