"""Treatment services at the HTTP edge: sessions scheduled, attended, missed or cancelled (a clinician's key,
or the scheduling system's), and the weekly dose an episode delivered (directors, auditors and clinicians read
it; a lab or a partner never sees sessions)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from continuum.access import ApiKey
from continuum.api.auth import ATTENDANCE, COMMANDS, REPORT, facility_scope
from continuum.api.commands import CREATES, IDEMPOTENT, _run
from continuum.api.episode_models import (
    ATTENDANCE_REPORT_RESPONSES,
    AttendanceReport,
    CommandAnswer,
    CreatedKind,
    EpisodeAttendanceView,
    answer,
)
from continuum.api.params import IdPath, services_of, viewed_state
from continuum.api.problems import COMMAND_ERRORS
from continuum.api.schemas import (
    AttendanceBody,
    MissedSessionBody,
    ReEngagementReviewBody,
    SessionBody,
    SessionCancellationBody,
)
from continuum.domain import ids
from continuum.domain.attendance import attendance_of
from continuum.domain.attendance_report import AttendanceRow, ReportPeriodInvalid, report_period
from continuum.domain.codec import decode, encode, format_instant
from continuum.domain.commands import (
    CancelSession,
    RecordAttendance,
    RecordMissedSession,
    RecordReEngagementReview,
    ScheduleSession,
)
from continuum.domain.episode import Episode
from continuum.domain.levels import LevelOfCare
from continuum.eventlog.attendance import report_csv, report_json

router = APIRouter(prefix="/api/v1", tags=["attendance"])


@router.post(
    "/episodes/{episode_id}/sessions",
    response_model=CommandAnswer,
    responses=CREATES,
    dependencies=[IDEMPOTENT],
)
async def schedule_session(
    body: SessionBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    """Schedule a session (idempotent by session id: the same session again records nothing)."""
    command = ScheduleSession(body.session_id, body.kind, body.starts_at, body.minutes, body.scheduled_by)
    return await _run(request, caller, episode_id, command, CreatedKind.SESSION)


@router.post(
    "/episodes/{episode_id}/sessions/{session_id}/attendance",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def record_attendance(
    body: AttendanceBody,
    request: Request,
    episode_id: str = IdPath(),
    session_id: str = IdPath(),
    caller: ApiKey = Depends(COMMANDS),
) -> JSONResponse:
    """The client attended: minutes (at most the session's length), in person or by telehealth."""
    command = RecordAttendance(session_id, body.minutes, body.modality, body.recorded_by)
    return await _run(request, caller, episode_id, command)


@router.post(
    "/episodes/{episode_id}/sessions/{session_id}/missed",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def record_missed_session(
    body: MissedSessionBody,
    request: Request,
    episode_id: str = IdPath(),
    session_id: str = IdPath(),
    caller: ApiKey = Depends(COMMANDS),
) -> JSONResponse:
    """The client missed the session, excused or not, with a coded reason."""
    command = RecordMissedSession(session_id, body.excused, body.reason, body.recorded_by)
    return await _run(request, caller, episode_id, command)


@router.post(
    "/episodes/{episode_id}/sessions/{session_id}/cancellation",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def cancel_session(
    body: SessionCancellationBody,
    request: Request,
    episode_id: str = IdPath(),
    session_id: str = IdPath(),
    caller: ApiKey = Depends(COMMANDS),
) -> JSONResponse:
    """The program cancelled the session: it counts neither for nor against the client."""
    return await _run(request, caller, episode_id, CancelSession(session_id, body.reason, body.cancelled_by))


@router.post(
    "/episodes/{episode_id}/re-engagement-review",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def record_re_engagement_review(
    body: ReEngagementReviewBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    """The clinician's re-engagement review of a client's non-attendance (a discharge stays a separate decision)."""
    return await _run(request, caller, episode_id, RecordReEngagementReview(body.clinician, body.note))


def attendance_body(request: Request, state: dict[str, Any]) -> dict[str, Any] | None:
    """The episode's weekly dose as the API shows it, judged by the policy the episode was decided under (its
    recorded version); None under a policy without `[services]`."""
    reads = services_of(request).attendance
    judged = reads.policy_of(str(state["episode_id"]))
    services = judged.policy.services
    if services is None:
        return None
    body: dict[str, Any] = encode(attendance_of(decode(Episode, state), services, datetime.now(UTC), reads.day))
    body["policy_version"] = judged.version
    body["policy_on_record"] = judged.on_record
    return body


@router.get("/attendance", response_model=AttendanceReport, responses=ATTENDANCE_REPORT_RESPONSES)
def attendance_report(
    request: Request,
    start: Annotated[str, Query(alias="from", max_length=40, description="a date (YYYY-MM-DD) or an instant")],
    end: Annotated[str, Query(alias="to", max_length=40, description="a date (included) or an instant (excluded)")],
    level: LevelOfCare | None = None,
    after: Annotated[str, Query(pattern=f"^({ids.ID_PATTERN})?$", description="the page after this episode")] = "",
    format: Annotated[str | None, Query(pattern="^(json|csv)$")] = None,  # noqa: A002 (the query's name)
    caller: ApiKey = Depends(REPORT),
) -> Response:
    """One row per client and care week in the period: minutes delivered in person and by telehealth, the level's
    minimum (by the policy the episode was decided under), how far short, misses excused and not, holds. JSON
    comes in pages of 200 episodes (`next_after` asks for the next); CSV is the whole report."""
    try:
        first, last = report_period(start, end)
    except ReportPeriodInvalid as error:
        raise HTTPException(422, f"query.{error}") from None  # the field, as FastAPI names it
    services = services_of(request)
    reads, now = services.attendance, datetime.now(UTC)
    wants_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    shape = f"attendance report from={format_instant(first)} to={format_instant(last)} level={level or 'any'}"
    if wants_csv:
        # Rows per client: recorded as a view of identifiable data (the query's shape; the rows stream later).
        services.access.record_view(caller, f"{shape} csv", "operations")
        # A sync iterator: Starlette runs each step on its thread pool, one page of the report at a time.
        rows = reads.report_all(first, last, now, level, facility_scope(caller))
        return StreamingResponse(report_csv(rows), media_type="text/csv")
    page = reads.report(first, last, now, level, after=after, facilities=facility_scope(caller))
    episode_ids = list(dict.fromkeys(str(row.episode_id) for row in page.rows))
    services.access.record_view(
        caller, f"{shape} after={after or '-'}", "operations", episode_ids=episode_ids, rows=len(page.rows)
    )
    return answer(
        {
            "from": format_instant(first),
            "to": format_instant(last),
            "rows": report_json(page.rows),
            "count": len(page.rows),
            "next_after": page.next_after,
        }
    )


@router.get("/episodes/{episode_id}/attendance", response_model=EpisodeAttendanceView)
def episode_attendance(
    request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(ATTENDANCE)
) -> JSONResponse:
    """Hours delivered per care week against the level's minimum (telehealth apart), misses, expectations."""
    state = viewed_state(request, caller, episode_id, "attendance")
    return answer(
        {"episode_id": episode_id, "sessions": state.get("sessions", []), "attendance": attendance_body(request, state)}
    )


# -- the dashboard's attendance strip and the clients below their minimum ------------------------------------


def attendance_strip(request: Request, state: dict[str, Any], at: datetime | None) -> dict[str, Any] | None:
    """The episode page's strip: its care weeks as of `at` (a replay) or now, by the episode's own policy."""
    if not state.get("sessions"):
        return None
    reads = services_of(request).attendance
    services = reads.policy_of(str(state["episode_id"])).policy.services
    if services is None:
        return None
    shown = attendance_of(decode(Episode, state), services, at or datetime.now(UTC), reads.day)
    widest = max([1.0, *(w.hours for w in shown.weeks), *(w.minimum_hours or 0 for w in shown.weeks)])
    return {"attendance": shown, "widest": widest}


def below_minimum_now(
    request: Request, facilities: Collection[str] | None = None, limit: int = 50
) -> list[AttendanceRow]:
    """Clients (at `facilities`, None: every one) whose care week in progress is, so far, below their level's
    minimum (fewest hours first)."""
    now = datetime.now(UTC)
    pages = services_of(request).attendance.report_all(now, now + timedelta(seconds=1), now, None, facilities)
    below = [r for rows in pages for r in rows if r.in_progress and r.short_by_hours > 0]
    return sorted(below, key=lambda r: (-r.short_by_hours, r.episode_id))[:limit]
