"""Treatment services at the HTTP edge: sessions scheduled, attended, missed or cancelled (a clinician's key,
or the scheduling system's), and the weekly dose an episode delivered (directors, auditors and clinicians read
it; a lab or a partner never sees sessions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from continuum.access import ApiKey
from continuum.api.auth import ATTENDANCE, COMMANDS
from continuum.api.commands import ERRORS, _run
from continuum.api.params import IdPath, services_of
from continuum.api.schemas import (
    AttendanceBody,
    CommandResponse,
    MissedSessionBody,
    ReEngagementReviewBody,
    SessionBody,
    SessionCancellationBody,
)
from continuum.domain.attendance import attendance_of
from continuum.domain.codec import decode, encode
from continuum.domain.commands import (
    CancelSession,
    RecordAttendance,
    RecordMissedSession,
    RecordReEngagementReview,
    ScheduleSession,
)
from continuum.domain.episode import Episode
from continuum.domain.policy import load_policy

router = APIRouter(prefix="/api/v1", tags=["attendance"])


@router.post("/episodes/{episode_id}/sessions", response_model=CommandResponse, responses=ERRORS)
async def schedule_session(
    body: SessionBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    """Schedule a session (idempotent by session id: the same session again records nothing)."""
    command = ScheduleSession(body.session_id, body.kind, body.starts_at, body.minutes, body.scheduled_by)
    return await _run(request, caller, episode_id, command)


@router.post(
    "/episodes/{episode_id}/sessions/{session_id}/attendance", response_model=CommandResponse, responses=ERRORS
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


@router.post("/episodes/{episode_id}/sessions/{session_id}/missed", response_model=CommandResponse, responses=ERRORS)
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
    "/episodes/{episode_id}/sessions/{session_id}/cancellation", response_model=CommandResponse, responses=ERRORS
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


@router.post("/episodes/{episode_id}/re-engagement-review", response_model=CommandResponse, responses=ERRORS)
async def record_re_engagement_review(
    body: ReEngagementReviewBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    """The clinician's re-engagement review of a client's non-attendance (a discharge stays a separate decision)."""
    return await _run(request, caller, episode_id, RecordReEngagementReview(body.clinician, body.note))


def attendance_body(request: Request, state: dict[str, Any]) -> dict[str, Any] | None:
    """The episode's weekly dose as the API shows it; None under a policy without `[services]`."""
    episodes = services_of(request).episodes
    services = load_policy(episodes.policy_text, episodes.directory_text).services
    if services is None:
        return None
    day: timedelta = episodes.day
    body: dict[str, Any] = encode(attendance_of(decode(Episode, state), services, datetime.now(UTC), day))
    return body


@router.get("/episodes/{episode_id}/attendance")
def episode_attendance(
    request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(ATTENDANCE)
) -> dict[str, Any]:
    """Hours delivered per care week against the level's minimum (telehealth apart), misses, expectations."""
    state = services_of(request).reads.get(episode_id)
    if state is None:
        raise HTTPException(404, f"no episode {episode_id}")
    return {
        "episode_id": episode_id,
        "sessions": state.get("sessions", []),
        "attendance": attendance_body(request, state),
    }
