"""Command routes: each sends one update to the episode's workflow and answers with its outcome.

An `Idempotency-Key` header makes a retried command return the first response (kept per API key).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.auth import COMMANDS, REFERRAL_ANSWERS, RESULTS
from api.schemas import (
    AssessmentBody,
    CancelTestBody,
    CollectionBody,
    CommandResponse,
    ConsentBody,
    FollowUpOutcomeBody,
    DischargeBody,
    HoldBody,
    MedicationsBody,
    OpenEpisodeBody,
    OrderTestBody,
    OverrideBody,
    ReferralStatusBody,
    RevocationBody,
    ReviewOutcomeBody,
    StepUpDecisionBody,
    StepUpReversalBody,
    TestResultBody,
)
from api.params import IdPath, services_of
from api.problems import log_refused, problem_body
from domain.commands import (
    CancelTest,
    ChangeMedications,
    Command,
    DecideStepUp,
    Discharge,
    OpenEpisode,
    OrderTest,
    OverridePlacement,
    PutOnHold,
    RecordAssessment,
    RecordConsent,
    RecordFollowUpOutcome,
    RecordReviewOutcome,
    RecordSpecimenCollection,
    RecordTestResult,
    Resume,
    ReverseStepUp,
    RevokeConsent,
    UpdateReferral,
)
from domain.errors import CommandRejected, UnknownEpisode
from eventlog.access import ApiKey, Role
from workflows.episode import CommandMeta, CommandResult

router = APIRouter(prefix="/api/v1", tags=["commands"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid API key"},
    403: {"description": "the key's role may not do this"},
    404: {"description": "unknown episode"},
    409: {"description": "the episode's state does not allow the command; `detail` says why"},
    413: {"description": "body too large"},
    422: {"description": "invalid body; `detail` names the field"},
    503: {"description": "Temporal or PostgreSQL unavailable; retry after `Retry-After` seconds"},
}


async def _run(request: Request, caller: ApiKey, episode_id: str, command: Command, created: bool = False) -> JSONResponse:
    services = services_of(request)
    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 128:
        raise HTTPException(422, "Idempotency-Key is 1-128 characters")
    request_hash = hashlib.sha256(request.method.encode() + request.url.path.encode() + await request.body()).digest()
    if idempotency_key:
        stored = await run_in_threadpool(services.idempotency.get, caller.key_id, idempotency_key)
        if stored is not None:
            if stored.request_hash != request_hash:
                raise HTTPException(422, "this Idempotency-Key was used for a different request")
            return _respond(stored.status, stored.body)
    meta = CommandMeta(f"{caller.key_id}:{idempotency_key or uuid.uuid4().hex}", caller.actor)
    try:
        if isinstance(command, OpenEpisode):
            result = await services.episodes.open(meta, command)
        else:
            result = await services.episodes.send(episode_id, meta, command)
        status, body = (201 if created else 200), await _body(request, episode_id, result, caller)
    except CommandRejected as error:
        log_refused(request, 409, "command rejected")
        status, body = 409, problem_body(409, "Command rejected", str(error))
    except UnknownEpisode as error:
        status, body = 404, problem_body(404, "Unknown episode", str(error))
    if idempotency_key:
        await run_in_threadpool(services.idempotency.put, caller.key_id, idempotency_key, request_hash, status, body)
    return _respond(status, body)


async def _body(request: Request, episode_id: str, result: CommandResult, caller: ApiKey) -> dict[str, Any]:
    if caller.role in (Role.LAB, Role.PARTNER):  # outside services learn that it was accepted, not the record
        return {"episode_id": episode_id, "command_id": result.command_id, "events": [], "state": {}}
    events = [{"type": e.type, "data": e.data} for e in result.events]
    # The projection is written in the append's transaction, so it holds this command's events: the state
    # answered is the one every read shows (the workflow's own is a bounded working state).
    state = await run_in_threadpool(services_of(request).reads.get, episode_id)
    return {"episode_id": episode_id, "command_id": result.command_id, "events": events, "state": state or {}}


def _respond(status: int, body: Any) -> JSONResponse:
    media = "application/json" if status < 400 else "application/problem+json"
    return JSONResponse(body, status_code=status, media_type=media)


@router.post("/episodes", status_code=201, response_model=CommandResponse, responses=ERRORS)
async def open_episode(body: OpenEpisodeBody, request: Request, caller: ApiKey = Depends(COMMANDS)) -> JSONResponse:
    """Open an episode at intake (with its assessment, if already done). A retried open never makes two."""
    assessment = RecordAssessment(tuple(body.assessment.ratings), body.assessment.assessed_by) if body.assessment else None
    command = OpenEpisode(body.episode_id, body.client_id, body.previous_episode_id, assessment)
    return await _run(request, caller, body.episode_id, command, created=True)


@router.post("/episodes/{episode_id}/assessment", response_model=CommandResponse, responses=ERRORS)
async def record_assessment(
    body: AssessmentBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    return await _run(request, caller, episode_id, RecordAssessment(tuple(body.ratings), body.assessed_by))


@router.post("/episodes/{episode_id}/placement-override", response_model=CommandResponse, responses=ERRORS)
async def override_placement(
    body: OverrideBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    command = OverridePlacement(body.level, body.reason, body.note, body.clinician)
    return await _run(request, caller, episode_id, command)


@router.post("/episodes/{episode_id}/discharge", response_model=CommandResponse, responses=ERRORS)
async def discharge(
    body: DischargeBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    return await _run(request, caller, episode_id, Discharge(body.reason, body.note))


@router.post("/episodes/{episode_id}/hold", response_model=CommandResponse, responses=ERRORS)
async def hold(
    body: HoldBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    return await _run(request, caller, episode_id, PutOnHold(body.reason))


@router.post("/episodes/{episode_id}/resume", response_model=CommandResponse, responses=ERRORS)
async def resume(request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)) -> JSONResponse:
    return await _run(request, caller, episode_id, Resume())


@router.post("/episodes/{episode_id}/reviews/{review_id}/outcome", response_model=CommandResponse, responses=ERRORS)
async def review_outcome(
    body: ReviewOutcomeBody, request: Request, episode_id: str = IdPath(), review_id: str = IdPath(),
    caller: ApiKey = Depends(COMMANDS),
) -> JSONResponse:  # fmt: skip
    command = RecordReviewOutcome(review_id, body.outcome, body.therapist, body.next_review_in_days)
    return await _run(request, caller, episode_id, command)


@router.post("/episodes/{episode_id}/tests", response_model=CommandResponse, responses=ERRORS)
async def order_test(
    body: OrderTestBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    """Order an unscheduled test now."""
    return await _run(request, caller, episode_id, OrderTest(body.ordered_by))


async def _item(request: Request, episode_id: str, collection: str, key: str, item_id: str) -> dict[str, Any] | None:
    """One test or referral of the episode, from the projection (None if there is no such one)."""
    state = await run_in_threadpool(services_of(request).reads.get, episode_id)
    return next((item for item in (state or {}).get(collection, []) if item[key] == item_id), None)


async def _lab_may_report(request: Request, caller: ApiKey, episode_id: str, test_id: str) -> None:
    """A lab reports only on tests its lab was sent (and learns nothing about any other)."""
    if caller.role is not Role.LAB:
        return
    test = await _item(request, episode_id, "tests", "test_id", test_id)
    if test is None or test.get("lab_id") != caller.subject:
        raise HTTPException(403, f"this lab was not sent test {test_id}")


@router.post("/episodes/{episode_id}/tests/{test_id}/collection", response_model=CommandResponse, responses=ERRORS)
async def record_collection(
    body: CollectionBody, request: Request, episode_id: str = IdPath(), test_id: str = IdPath(),
    caller: ApiKey = Depends(RESULTS),
) -> JSONResponse:  # fmt: skip
    await _lab_may_report(request, caller, episode_id, test_id)
    command = RecordSpecimenCollection(test_id, body.collected_at, body.observed, body.temperature_in_range, body.site)
    return await _run(request, caller, episode_id, command)


@router.post("/episodes/{episode_id}/tests/{test_id}/results", response_model=CommandResponse, responses=ERRORS)
async def record_result(
    body: TestResultBody, request: Request, episode_id: str = IdPath(), test_id: str = IdPath(),
    caller: ApiKey = Depends(RESULTS),
) -> JSONResponse:  # fmt: skip
    """A drug-test result (presumptive or confirmed), or a lab's correction of one."""
    await _lab_may_report(request, caller, episode_id, test_id)
    command = RecordTestResult(
        test_id, body.result, body.method, body.collected_at, body.lab_reference, tuple(body.substances),
        body.corrects_lab_reference,
    )  # fmt: skip
    return await _run(request, caller, episode_id, command)


@router.post("/episodes/{episode_id}/tests/{test_id}/cancel", response_model=CommandResponse, responses=ERRORS)
async def cancel_test(
    body: CancelTestBody, request: Request, episode_id: str = IdPath(), test_id: str = IdPath(),
    caller: ApiKey = Depends(COMMANDS),
) -> JSONResponse:  # fmt: skip
    return await _run(request, caller, episode_id, CancelTest(test_id, body.cancelled_by, body.reason))


@router.put("/episodes/{episode_id}/medications", response_model=CommandResponse, responses=ERRORS)
async def change_medications(
    body: MedicationsBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    """Replace the active medication list (MAT and other prescriptions)."""
    return await _run(request, caller, episode_id, ChangeMedications(tuple(body.medications), body.changed_by))


@router.post("/episodes/{episode_id}/step-ups/{test_id}/decision", response_model=CommandResponse, responses=ERRORS)
async def decide_step_up(
    body: StepUpDecisionBody, request: Request, episode_id: str = IdPath(), test_id: str = IdPath(),
    caller: ApiKey = Depends(COMMANDS),
) -> JSONResponse:  # fmt: skip
    return await _run(request, caller, episode_id, DecideStepUp(test_id, body.confirm, body.clinician, body.note))


@router.post("/episodes/{episode_id}/step-ups/{test_id}/reversal", response_model=CommandResponse, responses=ERRORS)
async def reverse_step_up(
    body: StepUpReversalBody, request: Request, episode_id: str = IdPath(), test_id: str = IdPath(),
    caller: ApiKey = Depends(COMMANDS),
) -> JSONResponse:  # fmt: skip
    return await _run(request, caller, episode_id, ReverseStepUp(test_id, body.clinician, body.reason))


@router.post("/episodes/{episode_id}/consents", response_model=CommandResponse, responses=ERRORS)
async def record_consent(
    body: ConsentBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    """A client's consent (42 CFR Part 2) to disclose to a recipient for a purpose, until it expires.
    Referrals waiting for it are disclosed at once."""
    command = RecordConsent(body.consent_id, body.recipient, body.purpose, body.expires_at, body.recorded_by)
    return await _run(request, caller, episode_id, command)


@router.post("/episodes/{episode_id}/consents/{consent_id}/revocation", response_model=CommandResponse, responses=ERRORS)
async def revoke_consent(
    body: RevocationBody, request: Request, episode_id: str = IdPath(), consent_id: str = IdPath(),
    caller: ApiKey = Depends(COMMANDS),
) -> JSONResponse:  # fmt: skip
    """Nothing more is disclosed under the consent from now on."""
    return await _run(request, caller, episode_id, RevokeConsent(consent_id, body.revoked_by))


@router.post("/episodes/{episode_id}/referrals/{referral_id}/status", response_model=CommandResponse, responses=ERRORS)
async def update_referral(
    body: ReferralStatusBody, request: Request, episode_id: str = IdPath(), referral_id: str = IdPath(),
    caller: ApiKey = Depends(REFERRAL_ANSWERS),
) -> JSONResponse:  # fmt: skip
    """A referral accepted, declined (an alternative of the same type follows, if the directory has one) or
    completed. A partner answers only referrals disclosed to it."""
    if caller.role is Role.PARTNER:
        referral = await _item(request, episode_id, "referrals", "referral_id", referral_id)
        if referral is None or referral["recipient"] != caller.subject or referral["status"] == "awaiting_consent":
            raise HTTPException(403, f"referral {referral_id} was not sent to this partner")
        changed_by = caller.subject or caller.name
    elif body.changed_by is None:
        raise HTTPException(422, "changed_by: who answers for the partner")
    else:
        changed_by = body.changed_by
    return await _run(request, caller, episode_id, UpdateReferral(referral_id, body.status, changed_by))


@router.post("/episodes/{episode_id}/follow-ups/{follow_up_id}/outcome", response_model=CommandResponse, responses=ERRORS)
async def record_follow_up_outcome(
    body: FollowUpOutcomeBody, request: Request, episode_id: str = IdPath(), follow_up_id: str = IdPath(),
    caller: ApiKey = Depends(COMMANDS),
) -> JSONResponse:  # fmt: skip
    """How a requested follow-up went: `using` re-enters the client; repeated `not_reached` closes the episode."""
    return await _run(request, caller, episode_id, RecordFollowUpOutcome(follow_up_id, body.outcome, body.recorded_by))
