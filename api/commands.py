"""Command routes: each sends one update to the episode's workflow and answers with its outcome.

An `Idempotency-Key` header makes a retried command return the first response (kept per API key): the
first request claims the key atomically and runs; the same request again waits for that response; a
different request under the key is refused (422). The key's text is never kept: the idempotency table holds its
digest, and the command id (in Temporal's history and the log's causation ids) is derived from that digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from continuum.access import ApiKey, Claimed, IdempotencyStore, InProgress, Role, StoredResponse, UsedForAnotherRequest
from continuum.api.auth import COMMANDS, REFERRAL_ANSWERS, RESULTS, refuse_outside_scope
from continuum.api.episode_models import CommandAnswer, CreatedKind
from continuum.api.facilities import known_facility, unavailable_at, unavailable_for_episode
from continuum.api.params import IdPath, services_of
from continuum.api.problems import COMMAND_ERRORS, UNRECORDABLE_DETAIL, log_refused, problem_body
from continuum.api.schemas import (
    AssessmentBody,
    CancelTestBody,
    CollectionBody,
    ConsentBody,
    DischargeBody,
    FollowUpOutcomeBody,
    HoldBody,
    MedicationsBody,
    OpenEpisodeBody,
    OrderTestBody,
    OverrideBody,
    PlanReviewBody,
    ReferralStatusBody,
    ReviewOutcomeBody,
    RevocationBody,
    StepUpDecisionBody,
    StepUpReversalBody,
    TestResultBody,
    TransferBody,
    TreatmentPlanBody,
)
from continuum.api.utilization_reads import authorizations_body
from continuum.domain.aftercare import Referral
from continuum.domain.answering import disclosed_to, lab_was_sent
from continuum.domain.codec import decode
from continuum.domain.commands import (
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
    RecordPlanReview,
    RecordReviewOutcome,
    RecordSpecimenCollection,
    RecordTestResult,
    RecordTreatmentPlan,
    Resume,
    ReverseStepUp,
    RevokeConsent,
    TransferEpisode,
    UpdateReferral,
)
from continuum.domain.errors import CommandInvalid, CommandRejected, CommandUnrecordable, UnknownEpisode
from continuum.domain.plans import PlanGoal, PlanProblem
from continuum.domain.testing import DrugTest
from continuum.runtime.servers import ServerTimedOut
from continuum.workflows.episode import CommandMeta, CommandResult

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/v1", tags=["commands"])


# A command waits this long for its workflow (then 503, and the same request may be retried); a request that
# finds the same request running waits a little longer for its answer. Both stay well below CLAIM_EXPIRES.
COMMAND_TIMEOUT_SECONDS = 60.0


async def idempotency_header(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=128,
            description="makes a retry safe: the same request under the same key answers the first response",
        ),
    ] = None,
) -> None:
    """Declares the header (and checks its length) for the OpenAPI document; `_run` reads it."""


IDEMPOTENT = Depends(idempotency_header)
FIRST_RESPONSE_WAIT_SECONDS = COMMAND_TIMEOUT_SECONDS + 5.0
_LOCATION = {
    "Location": {
        "description": "the created resource (`created[0].href`)",
        "required": True,
        "schema": {"type": "string"},
    }
}
# A route that creates a resource: 201 with its Location, or 200 when the same again created nothing.
CREATED: dict[int | str, dict[str, Any]] = {
    201: {"description": "created", "model": CommandAnswer, "headers": _LOCATION}
}
CREATES = {**COMMAND_ERRORS, **CREATED, 200: {"description": "nothing new: the same resource was already recorded"}}


def key_digest(idempotency_key: str) -> str:
    """The Idempotency-Key as it is kept: its SHA-256 in hex. A caller's key may say more than an id should
    (`jane-doe-heroin-relapse`), so its text reaches neither the database, the log nor Temporal."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


def command_id_of(key_id: str, digest: str) -> str:
    """The command id of a request under an Idempotency-Key: the same key always gives the same id, so Temporal
    deduplicates a retry too (the update id is the command id)."""
    return f"{key_id}:{digest[:32]}"


async def _claim(store: IdempotencyStore, key_id: str, digest: str, request_hash: bytes) -> Claimed | StoredResponse:
    """Claim the key for this request, or wait for the first response of the same request (polled, with a
    growing pause); a different request under the key is refused at once."""
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + FIRST_RESPONSE_WAIT_SECONDS, 0.02
    while True:
        outcome = await run_in_threadpool(store.claim, key_id, digest, request_hash)
        if isinstance(outcome, UsedForAnotherRequest):
            raise HTTPException(422, "this Idempotency-Key was used for a different request")
        if not isinstance(outcome, InProgress):
            return outcome
        if loop.time() + pause > deadline:
            raise HTTPException(503, "a request with this Idempotency-Key is still running; retry shortly")
        await asyncio.sleep(pause)
        pause = min(pause * 2, 1.0)


async def _release(store: IdempotencyStore, key_id: str, digest: str, claimed: Claimed) -> None:
    """Free the key for a retry; if even that fails, the claim expires on its own (CLAIM_EXPIRES)."""
    try:
        await asyncio.shield(run_in_threadpool(store.release, key_id, digest, claimed.claim))
    except Exception as error:
        log.warning("api.idempotency_release_failed", error_type=type(error).__name__)


async def _execute(
    request: Request, caller: ApiKey, episode_id: str, command: Command, command_id: str, creates: CreatedKind | None
) -> tuple[int, dict[str, Any]]:
    """Send the command and answer with its outcome, or a refusal to keep; anything else raises."""
    services = services_of(request)
    meta = CommandMeta(command_id, caller.actor)
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT_SECONDS):
            if isinstance(command, OpenEpisode):
                result = await services.episodes.open(meta, command)
            else:
                result = await services.episodes.send(episode_id, meta, command)
        body = await _body(request, episode_id, result, caller, creates)
        primary = body["created"][:1]
        return (201 if primary and primary[0]["kind"] == creates else 200), body
    except TimeoutError:
        raise ServerTimedOut("Temporal did not answer in time") from None
    except CommandInvalid as error:  # a value the episode's policy does not know: the caller fixes the request
        log_refused(request, 422, "command invalid")
        return 422, problem_body(422, str(error))
    except CommandRejected as error:
        log_refused(request, 409, "command rejected")
        return 409, problem_body(409, str(error))
    except CommandUnrecordable:
        log_refused(request, 422, "command unrecordable")
        return 422, problem_body(422, UNRECORDABLE_DETAIL)
    except UnknownEpisode as error:
        return 404, problem_body(404, str(error))


async def _run(
    request: Request, caller: ApiKey, episode_id: str, command: Command, creates: CreatedKind | None = None
) -> JSONResponse:
    """Run the command (once per Idempotency-Key). A command that `creates` a resource of that kind answers 201
    with its `Location` when it did create one (the same again, which records nothing, answers 200)."""
    services = services_of(request)
    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 128:
        raise HTTPException(422, "Idempotency-Key is 1-128 characters")
    if not idempotency_key:
        command_id = command_id_of(caller.key_id, uuid.uuid4().hex)
        return _respond(*await _execute(request, caller, episode_id, command, command_id, creates))
    digest = key_digest(idempotency_key)  # from here on, only the digest
    request_hash = hashlib.sha256(request.method.encode() + request.url.path.encode() + await request.body()).digest()
    claimed = await _claim(services.idempotency, caller.key_id, digest, request_hash)
    if isinstance(claimed, StoredResponse):
        return _respond(claimed.status, claimed.body)
    try:
        status, body = await _execute(
            request, caller, episode_id, command, command_id_of(caller.key_id, digest), creates
        )
    except BaseException:  # no answer to keep (Temporal unavailable, a timeout, a shutdown): a retry runs again
        await _release(services.idempotency, caller.key_id, digest, claimed)
        raise
    await run_in_threadpool(services.idempotency.complete, caller.key_id, digest, claimed.claim, status, body)
    return _respond(status, body)


async def _body(
    request: Request, episode_id: str, result: CommandResult, caller: ApiKey, creates: CreatedKind | None
) -> dict[str, Any]:
    if caller.role in (Role.LAB, Role.PARTNER):  # outside services learn that it was accepted, not the record
        return {"episode_id": episode_id, "command_id": result.command_id, "events": [], "state": {}, "created": []}
    events = [{"type": e.type, "data": e.data} for e in result.events]
    # The projection is written in the append's transaction, so it holds this command's events: the state
    # answered is the one every read shows (the workflow's own is a bounded working state).
    state = await run_in_threadpool(services_of(request).reads.get, episode_id)
    created = created_by(episode_id, events, state or {}, creates)
    if caller.role is Role.UTILIZATION_REVIEWER and state:  # its own events, and the levels: no clinical content
        shown = authorizations_body(state, datetime.now(UTC))
    else:
        shown = state or {}
    return {
        "episode_id": episode_id,
        "command_id": result.command_id,
        "events": events,
        "state": shown,
        "created": created,
    }


def _respond(status: int, body: Any) -> JSONResponse:
    """The answer (or the stored first one, replayed): a 201 names its primary resource in `Location`."""
    media = "application/json" if status < 400 else "application/problem+json"
    created = body.get("created") if status == 201 and isinstance(body, dict) else None
    headers = {"Location": created[0]["href"]} if created else None
    return JSONResponse(body, status_code=status, media_type=media, headers=headers)


# -- the resources a command created: each event that creates one names its kind and its id --------------------

_CREATING: dict[str, tuple[CreatedKind, str]] = {
    "EpisodeOpened": (CreatedKind.EPISODE, "episode_id"),
    "TestOrdered": (CreatedKind.TEST, "test_id"),
    "ReviewRequested": (CreatedKind.REVIEW, "review_id"),
    "StepUpPending": (CreatedKind.STEP_UP, "test_id"),
    "ReferralAwaitingConsent": (CreatedKind.REFERRAL, "referral_id"),
    "ReferralIssued": (CreatedKind.REFERRAL, "referral_id"),
    "SessionScheduled": (CreatedKind.SESSION, "session_id"),
    "ConsentRecorded": (CreatedKind.CONSENT, "consent_id"),
    "AuthorizationRequested": (CreatedKind.AUTHORIZATION, "authorization_id"),
    "TreatmentPlanRecorded": (CreatedKind.TREATMENT_PLAN, "episode_id"),
}
_PATHS = {
    CreatedKind.EPISODE: "",
    CreatedKind.TEST: "/tests/{}",
    CreatedKind.REVIEW: "/reviews/{}",
    CreatedKind.STEP_UP: "/step-ups/{}",
    CreatedKind.FOLLOW_UP: "/follow-ups/{}",
    CreatedKind.REFERRAL: "/referrals/{}",
    CreatedKind.SESSION: "/sessions/{}",
    CreatedKind.CONSENT: "/consents/{}",
    CreatedKind.AUTHORIZATION: "/authorizations/{}",
    CreatedKind.TREATMENT_PLAN: "/treatment-plan",
}


def created_href(episode_id: str, kind: CreatedKind, item_id: str) -> str:
    return f"/api/v1/episodes/{episode_id}" + _PATHS[kind].format(item_id)


def created_by(
    episode_id: str, events: list[dict[str, Any]], state: dict[str, Any], creates: CreatedKind | None
) -> list[dict[str, str]]:
    """Each resource the events created, once, the first of kind `creates` first (the `Location`). A referral
    issued once its consent came was created before (its `created_at` is older than the issue)."""
    found: dict[tuple[CreatedKind, str], None] = {}
    if creates is CreatedKind.EPISODE:
        found[(CreatedKind.EPISODE, episode_id)] = None  # a retried open answers the episode too
    for event in events:
        data = event["data"]
        if event["type"] == "FollowUpsScheduled":
            found.update({(CreatedKind.FOLLOW_UP, str(f["follow_up_id"])): None for f in data["follow_ups"]})
        elif event["type"] in _CREATING and not _issued_later(event, state):
            kind, key = _CREATING[event["type"]]
            found[(kind, str(data[key]))] = None
        elif _stepped_up_at_once(event, events, state):
            found[(CreatedKind.STEP_UP, str(data["cause_test_id"]))] = None
    ordered = sorted(found, key=lambda item: item[0] != creates)
    return [{"kind": kind.value, "id": item, "href": created_href(episode_id, kind, item)} for kind, item in ordered]


def _stepped_up_at_once(event: dict[str, Any], events: list[dict[str, Any]], state: dict[str, Any]) -> bool:
    """A step-up taken on the result that brought it (an automatic one), not one that waited: a waiting step-up
    was created by its `StepUpPending` (a presumptive positive that counted, or a review), listed then."""
    data = event["data"]
    test_id = data.get("cause_test_id") if event["type"] == "LevelChanged" and data.get("direction") == "up" else None
    if test_id is None:
        return False
    if any(e["type"] in ("StepUpPending", "StepUpReviewDecided") and e["data"]["test_id"] == test_id for e in events):
        return False
    test = next((t for t in state.get("tests", []) if t["test_id"] == test_id), None)
    presumptive = (test or {}).get("presumptive") or {}
    return not (presumptive.get("counts_as_positive") and (test or {}).get("confirmed") is not None)


def _issued_later(event: dict[str, Any], state: dict[str, Any]) -> bool:
    if event["type"] != "ReferralIssued":
        return False
    referral_id = event["data"]["referral_id"]
    referral = next((r for r in state.get("referrals", []) if r["referral_id"] == referral_id), None)
    return referral is not None and referral["created_at"] != event["data"]["occurred_at"]


@router.post(
    "/episodes",
    status_code=201,
    response_model=CommandAnswer,
    responses={**COMMAND_ERRORS, **CREATED},
    dependencies=[IDEMPOTENT],
)
async def open_episode(body: OpenEpisodeBody, request: Request, caller: ApiKey = Depends(COMMANDS)) -> JSONResponse:
    """Open an episode at intake (with its assessment, if already done). A retried open never makes two."""
    assessment = (
        RecordAssessment(tuple(body.assessment.ratings), body.assessment.assessed_by) if body.assessment else None
    )
    facility = known_facility(request, caller, body.facility_id)
    refuse_outside_scope(caller, request, body.episode_id)  # an id taken at another facility is no one's business
    if assessment is not None:
        assessment = replace(assessment, unavailable=await unavailable_at(request, facility))
    command = OpenEpisode(body.episode_id, body.client_id, body.previous_episode_id, assessment, facility.facility_id)
    return await _run(request, caller, body.episode_id, command, CreatedKind.EPISODE)


@router.post(
    "/episodes/{episode_id}/assessment",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def record_assessment(
    body: AssessmentBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    """The ASAM assessment; a placement at a level the facility cannot take the client at now (not offered, or
    full) records a waitlist entry and places them at the nearest level it can."""
    unavailable = await unavailable_for_episode(request, episode_id)
    return await _run(request, caller, episode_id, RecordAssessment(tuple(body.ratings), body.assessed_by, unavailable))


@router.post(
    "/episodes/{episode_id}/transfer",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def transfer(
    body: TransferBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    """Move the episode to another facility, for a reason: from then on that facility's policy decides. A client
    whose level the facility cannot take now waits for it there (a waitlist entry) at an interim level."""
    facility = known_facility(request, None, body.facility_id)
    unavailable = await unavailable_at(request, facility)
    command = TransferEpisode(facility.facility_id, body.reason, body.clinician, unavailable=unavailable)
    return await _run(request, caller, episode_id, command)


@router.post(
    "/episodes/{episode_id}/placement-override",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def override_placement(
    body: OverrideBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    """Override the placement (or, after it, move the client); into a level the facility cannot take them at now,
    a waitlist entry and the nearest level it can."""
    unavailable = await unavailable_for_episode(request, episode_id)
    command = OverridePlacement(body.level, body.reason, body.note, body.clinician, body.director, unavailable)
    return await _run(request, caller, episode_id, command)


@router.post(
    "/episodes/{episode_id}/discharge",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def discharge(
    body: DischargeBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    return await _run(request, caller, episode_id, Discharge(body.reason, body.note))


@router.post(
    "/episodes/{episode_id}/hold", response_model=CommandAnswer, responses=COMMAND_ERRORS, dependencies=[IDEMPOTENT]
)
async def hold(
    body: HoldBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    return await _run(request, caller, episode_id, PutOnHold(body.reason))


@router.post(
    "/episodes/{episode_id}/resume", response_model=CommandAnswer, responses=COMMAND_ERRORS, dependencies=[IDEMPOTENT]
)
async def resume(request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)) -> JSONResponse:
    return await _run(request, caller, episode_id, Resume())


@router.post(
    "/episodes/{episode_id}/reviews/{review_id}/outcome",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def review_outcome(
    body: ReviewOutcomeBody,
    request: Request,
    episode_id: str = IdPath(),
    review_id: str = IdPath(),
    caller: ApiKey = Depends(COMMANDS),
) -> JSONResponse:
    """The therapist's completion review; a step down (`goals_met`) may name the treatment plan's goals it found met."""
    unavailable = await unavailable_for_episode(request, episode_id)
    command = RecordReviewOutcome(
        review_id, body.outcome, body.therapist, body.next_review_in_days, tuple(body.goals_met), unavailable
    )
    return await _run(request, caller, episode_id, command)


def _plan_contents(body: TreatmentPlanBody) -> tuple[tuple[PlanProblem, ...], tuple[PlanGoal, ...]]:
    problems = tuple(PlanProblem(p.dimension, p.description) for p in body.problems)
    return problems, tuple(PlanGoal(g.goal_id, g.dimension, g.description) for g in body.goals)


@router.post(
    "/episodes/{episode_id}/treatment-plan",
    response_model=CommandAnswer,
    responses=CREATES,
    dependencies=[IDEMPOTENT],
)
async def record_treatment_plan(
    body: TreatmentPlanBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    """The initial treatment plan: problems and goals by ASAM dimension, who signed it, whether the client did
    (the same plan again records nothing; a revision is a plan review)."""
    problems, goals = _plan_contents(body)
    command = RecordTreatmentPlan(problems, goals, body.signed_by, body.client_signed)
    return await _run(request, caller, episode_id, command, CreatedKind.TREATMENT_PLAN)


@router.post(
    "/episodes/{episode_id}/treatment-plan/reviews",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def record_plan_review(
    body: PlanReviewBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    """A review of the treatment plan: the plan as revised, signed (idempotent by review id)."""
    problems, goals = _plan_contents(body)
    command = RecordPlanReview(body.review_id, problems, goals, body.signed_by, body.client_signed)
    return await _run(request, caller, episode_id, command)


@router.post("/episodes/{episode_id}/tests", response_model=CommandAnswer, responses=CREATES, dependencies=[IDEMPOTENT])
async def order_test(
    body: OrderTestBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    """Order an unscheduled test now."""
    return await _run(request, caller, episode_id, OrderTest(body.ordered_by), CreatedKind.TEST)


async def _lab_may_report(request: Request, caller: ApiKey, episode_id: str, test_id: str) -> None:
    """A lab reports only on tests its lab was sent (and learns nothing about any other)."""
    if caller.role is not Role.LAB:
        return
    test = await run_in_threadpool(services_of(request).reads.element, episode_id, "tests", "test_id", test_id)
    if not lab_was_sent(decode(DrugTest, test) if test else None, caller.subject):
        raise HTTPException(403, f"this lab was not sent test {test_id}")


@router.post(
    "/episodes/{episode_id}/tests/{test_id}/collection",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def record_collection(
    body: CollectionBody,
    request: Request,
    episode_id: str = IdPath(),
    test_id: str = IdPath(),
    caller: ApiKey = Depends(RESULTS),
) -> JSONResponse:
    await _lab_may_report(request, caller, episode_id, test_id)
    command = RecordSpecimenCollection(test_id, body.collected_at, body.observed, body.temperature_in_range, body.site)
    return await _run(request, caller, episode_id, command)


@router.post(
    "/episodes/{episode_id}/tests/{test_id}/results",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def record_result(
    body: TestResultBody,
    request: Request,
    episode_id: str = IdPath(),
    test_id: str = IdPath(),
    caller: ApiKey = Depends(RESULTS),
) -> JSONResponse:
    """A drug-test result (presumptive or confirmed), or a lab's correction of one."""
    await _lab_may_report(request, caller, episode_id, test_id)
    command = RecordTestResult(
        test_id,
        body.result,
        body.method,
        body.collected_at,
        body.lab_reference,
        tuple(body.substances),
        body.corrects_lab_reference,
        await unavailable_for_episode(request, episode_id),  # a step-up it brings waits where the level is full
    )
    return await _run(request, caller, episode_id, command)


@router.post(
    "/episodes/{episode_id}/tests/{test_id}/cancel",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def cancel_test(
    body: CancelTestBody,
    request: Request,
    episode_id: str = IdPath(),
    test_id: str = IdPath(),
    caller: ApiKey = Depends(COMMANDS),
) -> JSONResponse:
    return await _run(request, caller, episode_id, CancelTest(test_id, body.cancelled_by, body.reason))


@router.put(
    "/episodes/{episode_id}/medications",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def change_medications(
    body: MedicationsBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    """Replace the active medication list (MAT and other prescriptions)."""
    return await _run(request, caller, episode_id, ChangeMedications(tuple(body.medications), body.changed_by))


@router.post(
    "/episodes/{episode_id}/step-ups/{test_id}/decision",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def decide_step_up(
    body: StepUpDecisionBody,
    request: Request,
    episode_id: str = IdPath(),
    test_id: str = IdPath(),
    caller: ApiKey = Depends(COMMANDS),
) -> JSONResponse:
    return await _run(request, caller, episode_id, DecideStepUp(test_id, body.confirm, body.clinician, body.note))


@router.post(
    "/episodes/{episode_id}/step-ups/{test_id}/reversal",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def reverse_step_up(
    body: StepUpReversalBody,
    request: Request,
    episode_id: str = IdPath(),
    test_id: str = IdPath(),
    caller: ApiKey = Depends(COMMANDS),
) -> JSONResponse:
    return await _run(request, caller, episode_id, ReverseStepUp(test_id, body.clinician, body.reason))


@router.post(
    "/episodes/{episode_id}/consents",
    response_model=CommandAnswer,
    responses=CREATES,
    dependencies=[IDEMPOTENT],
)
async def record_consent(
    body: ConsentBody, request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(COMMANDS)
) -> JSONResponse:
    """A client's consent (42 CFR Part 2) to disclose to a recipient for a purpose, until it expires.
    Referrals waiting for it are disclosed at once."""
    command = RecordConsent(body.consent_id, body.recipient, body.purpose, body.expires_at, body.recorded_by)
    return await _run(request, caller, episode_id, command, CreatedKind.CONSENT)


@router.post(
    "/episodes/{episode_id}/consents/{consent_id}/revocation",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def revoke_consent(
    body: RevocationBody,
    request: Request,
    episode_id: str = IdPath(),
    consent_id: str = IdPath(),
    caller: ApiKey = Depends(COMMANDS),
) -> JSONResponse:
    """Nothing more is disclosed under the consent from now on."""
    return await _run(request, caller, episode_id, RevokeConsent(consent_id, body.revoked_by))


@router.post(
    "/episodes/{episode_id}/referrals/{referral_id}/status",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def update_referral(
    body: ReferralStatusBody,
    request: Request,
    episode_id: str = IdPath(),
    referral_id: str = IdPath(),
    caller: ApiKey = Depends(REFERRAL_ANSWERS),
) -> JSONResponse:
    """A referral accepted, declined (an alternative of the same type follows, if the directory has one) or
    completed. A partner answers only referrals disclosed to it."""
    if caller.role is Role.PARTNER:
        reads = services_of(request).reads
        referral = await run_in_threadpool(reads.element, episode_id, "referrals", "referral_id", referral_id)
        if not disclosed_to(decode(Referral, referral) if referral else None, caller.subject):
            raise HTTPException(403, f"referral {referral_id} was not sent to this partner")
        changed_by = caller.subject or caller.name
    elif body.changed_by is None:
        raise HTTPException(422, "changed_by: who answers for the partner")
    else:
        changed_by = body.changed_by
    return await _run(request, caller, episode_id, UpdateReferral(referral_id, body.status, changed_by))


@router.post(
    "/episodes/{episode_id}/follow-ups/{follow_up_id}/outcome",
    response_model=CommandAnswer,
    responses=COMMAND_ERRORS,
    dependencies=[IDEMPOTENT],
)
async def record_follow_up_outcome(
    body: FollowUpOutcomeBody,
    request: Request,
    episode_id: str = IdPath(),
    follow_up_id: str = IdPath(),
    caller: ApiKey = Depends(COMMANDS),
) -> JSONResponse:
    """How a requested follow-up went: `using` re-enters the client; repeated `not_reached` closes the episode."""
    unavailable = await unavailable_for_episode(request, episode_id)
    command = RecordFollowUpOutcome(follow_up_id, body.outcome, body.recorded_by, unavailable)
    return await _run(request, caller, episode_id, command)
