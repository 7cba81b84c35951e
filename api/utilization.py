"""Utilization review routes: the utilization reviewer's commands (a request to a payer, the payer's decision, a
concurrent review) and the reads of levels and authorizations for it, a director and an auditor."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from continuum.access import ApiKey
from continuum.api.auth import AUTHORIZATIONS, UTILIZATION, facility_scope
from continuum.api.commands import CREATED, IDEMPOTENT, _run
from continuum.api.episode_models import (
    AuthorizationsView,
    AuthorizationView,
    CommandAnswer,
    CreatedKind,
    UtilizationReport,
    answer,
)
from continuum.api.facilities import known_facility
from continuum.api.params import IdPath, services_of, viewed_state
from continuum.api.problems import COMMAND_ERRORS
from continuum.api.reads import FacilityQuery, alerted_ids
from continuum.api.schemas import (
    AuthorizationDecisionBody,
    AuthorizationRequestBody,
    ConcurrentReviewBody,
)
from continuum.api.utilization_reads import authorizations_body, utilization_report
from continuum.domain.commands import RecordAuthorizationDecision, RecordConcurrentReview, RequestAuthorization

router = APIRouter(prefix="/api/v1", tags=["utilization review"])
Days = Annotated[int, Query(ge=1, le=365, description="authorizations ending within this many days")]


@router.post(
    "/episodes/{episode_id}/authorizations",
    status_code=201,
    response_model=CommandAnswer,
    responses={**COMMAND_ERRORS, **CREATED},
    dependencies=[IDEMPOTENT],
)
async def request_authorization(
    body: AuthorizationRequestBody,
    request: Request,
    episode_id: str = IdPath(),
    caller: ApiKey = Depends(AUTHORIZATIONS),
) -> JSONResponse:
    """Ask a payer to authorize a level: 201 with the new authorization's id, and its Location (a retry under the
    same Idempotency-Key answers the same)."""
    command = RequestAuthorization(body.payer, body.level, body.unit, body.requested_units, body.requested_by)
    outcome = await _run(request, caller, episode_id, command, CreatedKind.AUTHORIZATION)
    if outcome.status_code != 201:
        return outcome
    recorded = json.loads(bytes(outcome.body))
    minted = next(e["data"]["authorization_id"] for e in recorded["events"] if e["type"] == "AuthorizationRequested")
    location = f"/api/v1/episodes/{episode_id}/authorizations/{minted}"
    return JSONResponse({"authorization_id": minted, **recorded}, status_code=201, headers={"Location": location})


@router.post(
    "/episodes/{episode_id}/authorizations/{authorization_id}/decisions",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def record_authorization_decision(
    body: AuthorizationDecisionBody,
    request: Request,
    episode_id: str = IdPath(),
    authorization_id: str = IdPath(),
    caller: ApiKey = Depends(AUTHORIZATIONS),
) -> JSONResponse:
    """The payer's decision on a request: approved, partially_approved, denied, or extended (idempotent: the same
    decision again records nothing)."""
    command = RecordAuthorizationDecision(
        authorization_id,
        body.decision,
        body.decided_by,
        body.payer,
        body.authorization_number,
        body.start,
        body.end,
        body.units,
        body.denial_reason,
    )
    return await _run(request, caller, episode_id, command)


@router.post(
    "/episodes/{episode_id}/authorizations/{authorization_id}/concurrent-reviews",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def record_concurrent_review(
    body: ConcurrentReviewBody,
    request: Request,
    episode_id: str = IdPath(),
    authorization_id: str = IdPath(),
    caller: ApiKey = Depends(AUTHORIZATIONS),
) -> JSONResponse:
    """The utilization reviewer's concurrent review of an authorization: it closes the review due before its end."""
    command = RecordConcurrentReview(authorization_id, body.outcome, body.reviewed_by, body.note)
    return await _run(request, caller, episode_id, command)


@router.get("/episodes/{episode_id}/authorizations", response_model=AuthorizationsView)
def episode_authorizations(
    request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(UTILIZATION)
) -> JSONResponse:
    """The episode's recommended, clinical and authorized levels, and its authorizations (no clinical content)."""
    state = viewed_state(request, caller, episode_id, "authorizations")
    return answer(authorizations_body(state, datetime.now(UTC)))


@router.get("/episodes/{episode_id}/authorizations/{authorization_id}", response_model=AuthorizationView)
def episode_authorization(
    request: Request,
    episode_id: str = IdPath(),
    authorization_id: str = IdPath(),
    caller: ApiKey = Depends(UTILIZATION),
) -> JSONResponse:
    """One authorization (the Location a request answers with), beside the episode's levels."""
    state = viewed_state(request, caller, episode_id, "authorizations")
    body = authorizations_body(state, datetime.now(UTC))
    found = next((a for a in body["authorizations"] if a["authorization_id"] == authorization_id), None)
    if found is None:
        raise HTTPException(404, f"no authorization {authorization_id} on episode {episode_id}")
    return answer({"episode_id": episode_id, "levels": body["levels"], "authorization": found})


@router.get("/utilization-review", response_model=UtilizationReport)
def utilization_review(
    request: Request, days: Days = 7, facility: FacilityQuery = None, caller: ApiKey = Depends(UTILIZATION)
) -> JSONResponse:
    """Authorizations ending in the next `days` days, stays beyond their authorization, and the recommended /
    clinical / authorized mismatches by facility, reason and level; at the caller's facilities (and only
    `facility`, if given)."""
    services = services_of(request)
    if facility is not None:
        known_facility(request, caller, facility)
    report = utilization_report(services.reads, datetime.now(UTC), days, facility_scope(caller), facility)
    shown = alerted_ids({"rows": report["expiring"] + report["beyond_authorization"]})
    services.access.record_view(
        caller, f"utilization review days={days}", "operations", episode_ids=shown, rows=len(shown)
    )
    return answer(report)
