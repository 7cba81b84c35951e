"""Utilization review decisions: a request to a payer, the payer's decision (approved, partially approved, denied,
extended), the concurrent reviews the care clock requests before an authorization ends (escalated like completion
reviews when overdue), and the flags that keep the clinical level beside the authorized one (`domain.utilization`).

Pure: time and the length of a care-clock day come in as arguments; the request's id is minted from the state.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from continuum.domain.authorizations import (
    MAX_AUTHORIZATION_NUMBER,
    MAX_AUTHORIZED_DAYS_AHEAD,
    MAX_UNITS,
    Authorization,
    AuthorizationDecision,
    AuthorizationStatus,
    AuthorizationUnit,
    UtilizationReviewPolicy,
)
from continuum.domain.commands import (
    AUTHORIZATION_COMMANDS,
    MAX_NOTE,
    CheckAuthorizations,
    Command,
    EscalateConcurrentReview,
    RecordAuthorizationDecision,
    RecordConcurrentReview,
    RequestAuthorization,
    RequestConcurrentReview,
)
from continuum.domain.episode import Episode, EpisodeStatus, Numbered
from continuum.domain.errors import CommandInvalid, CommandRejected
from continuum.domain.events import (
    AuthorizationDecided,
    AuthorizationExtended,
    AuthorizationRequested,
    ConcurrentReviewEscalated,
    ConcurrentReviewRecorded,
    ConcurrentReviewRequested,
    DomainEvent,
    FlagCleared,
    FlagRaised,
)
from continuum.domain.flags import Flag, FlagFamily
from continuum.domain.fold import fold
from continuum.domain.ids import field_id
from continuum.domain.policy import Policy
from continuum.domain.utilization import STANDING_FAMILIES, standing_changes, standing_flags
from continuum.domain.values import instant_problem, text_problem

# -- the clock -------------------------------------------------------------------------------------------------


AuthorizationClockCommand = RequestConcurrentReview | EscalateConcurrentReview | CheckAuthorizations


def authorization_dues(
    state: Episode, policy: Policy, now: datetime, day: timedelta
) -> list[tuple[AuthorizationClockCommand, datetime]]:
    """Concurrent reviews as authorizations near their end, their escalation when overdue, and the next instant an
    approval begins or ends that changes the flags; nothing without authorizations or unless active."""
    review = policy.utilization_review
    if review is None or not state.authorizations or state.status is not EpisodeStatus.ACTIVE:
        return []
    dues: list[tuple[AuthorizationClockCommand, datetime]] = []
    for authorization in state.authorizations:
        pending = authorization.concurrent_review
        if pending is not None and not pending.escalated:
            dues.append(
                (EscalateConcurrentReview(authorization.authorization_id), _overdue_at(pending.due_at, review, day))
            )
        elif _review_wanted(authorization, now):
            assert authorization.end is not None
            at = authorization.end - day * review.review_days_before_end
            dues.append((RequestConcurrentReview(authorization.authorization_id), at))
    held = _held(state)
    change = next((t for t in standing_changes(state, now) if set(standing_flags(state, t)) != held), None)
    if change is not None:
        dues.append((CheckAuthorizations(change), change))
    return dues


def _review_wanted(authorization: Authorization, at: datetime) -> bool:
    """A concurrent review is wanted for an approval still running, not yet reviewed for its end, none pending."""
    end = authorization.end
    return (
        authorization.approved
        and end is not None
        and at < end
        and authorization.concurrent_review is None
        and authorization.reviewed_for_end != end
    )


def _overdue_at(due_at: datetime, review: UtilizationReviewPolicy, day: timedelta) -> datetime:
    return due_at + day * review.escalate_after_days


def _held(state: Episode) -> set[Flag]:
    return {f for f in map(Flag.parse, state.flags) if f.family in STANDING_FAMILIES}


# -- consequences: the flags follow every change ---------------------------------------------------------------


def standing_consequences(state: Episode | None, events: list[DomainEvent], at: datetime) -> list[DomainEvent]:
    """The flags comparing the clinical and authorized levels, raised or cleared after `events` (nothing for an
    episode without authorizations: histories from before them keep their command sequence)."""
    if state is None or not (state.authorizations or any(isinstance(e, AuthorizationRequested) for e in events)):
        return []
    after = fold(events, state)
    assert after is not None
    return _reconcile(after, at)


def _reconcile(state: Episode, at: datetime) -> list[DomainEvent]:
    held = _held(state)
    wanted = standing_flags(state, at)
    cleared: list[DomainEvent] = [FlagCleared(state.episode_id, at, f) for f in sorted(held - set(wanted))]
    raised = [FlagRaised(state.episode_id, at, f, reason) for f, reason in sorted(wanted.items()) if f not in held]
    return cleared + raised


# -- decisions ---------------------------------------------------------------------------------------------------


def admit_authorizations(command: Command, at: datetime) -> None:
    """A note or a number with control characters, or a period outside the plausible window (before 1900, ending
    more than two years ahead), is refused where the command arrives (the text also in `decide`)."""
    if isinstance(command, RecordConcurrentReview):
        _text("note", command.note, MAX_NOTE)
    elif isinstance(command, RecordAuthorizationDecision):
        if command.authorization_number is not None:
            _text("authorization_number", command.authorization_number, MAX_AUTHORIZATION_NUMBER)
        for field, instant in (("start", command.start), ("end", command.end)):
            problem = instant and instant_problem(instant, at, timedelta(days=MAX_AUTHORIZED_DAYS_AHEAD))
            if problem:
                raise CommandInvalid(f"{field}: {problem}")


def decide_authorizations(
    state: Episode, command: Command, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    review = policy.utilization_review
    if review is None:
        raise CommandRejected("this episode's policy has no [utilization_review]: it records no authorizations")
    if state.placed_at is None and isinstance(command, AUTHORIZATION_COMMANDS):
        raise CommandRejected("the client has not been assessed and placed yet; record the assessment first")
    match command:
        case RequestAuthorization():
            return _request(state, command, at)
        case RecordAuthorizationDecision(decision=AuthorizationDecision.EXTENDED):
            return _extend(state, command, policy.version, at)
        case RecordAuthorizationDecision():
            return _decide(state, command, policy.version, at, day)
        case RecordConcurrentReview():
            return _record_review(state, command, at)
        case RequestConcurrentReview():
            return _request_review(state, command, review, policy.version, at, day)
        case EscalateConcurrentReview():
            return _escalate_review(state, command, review, policy.version, at, day)
        case CheckAuthorizations():
            events = _reconcile(state, at)
            if not events:
                raise CommandRejected("the authorized level stands as flagged")
            return events
    raise CommandRejected(f"{type(command).__name__} is not a utilization review command")


def _request(state: Episode, command: RequestAuthorization, at: datetime) -> list[DomainEvent]:
    payer = field_id("payer", command.payer)
    requested_by = field_id("requested_by", command.requested_by)
    _units("requested_units", command.requested_units)
    authorization_id = Numbered.AUTHORIZATION.id(state.episode_id, len(state.authorizations) + 1)
    return [
        AuthorizationRequested(
            state.episode_id,
            at,
            authorization_id,
            payer,
            command.level,
            command.unit,
            command.requested_units,
            requested_by,
        )
    ]


def _decide(
    state: Episode, command: RecordAuthorizationDecision, version: str, at: datetime, day: timedelta
) -> list[DomainEvent]:
    requested = _requested(state, command)
    decided_by = field_id("decided_by", command.decided_by)
    if command.decision is AuthorizationDecision.DENIED:
        if command.denial_reason is None:
            raise CommandInvalid("denial_reason: a denial gives the payer's coded reason")
        number, start, end, units = command.authorization_number, None, None, None
    else:
        if command.denial_reason is not None:
            raise CommandInvalid("denial_reason: only a denial gives one")
        number = _number(command.authorization_number)
        start, end = _period(command.start, command.end)
        units = _units("units", command.units)
        _check_partial(requested, command.decision, units, end - start, day)
    decided = AuthorizationDecided(
        state.episode_id,
        at,
        requested.authorization_id,
        command.decision,
        requested.payer,
        number,
        start,
        end,
        units,
        command.denial_reason,
        decided_by,
        version,
    )
    if requested.status is not AuthorizationStatus.REQUESTED:
        if _as_decided(requested, decided):
            return []  # the same decision again: already on record
        raise CommandRejected(
            f"authorization {requested.authorization_id} was already {requested.status.value};"
            " an approved one is extended (decision `extended`), a denied one is requested again"
        )
    return [decided]


def _check_partial(
    requested: Authorization, decision: AuthorizationDecision, units: int, period: timedelta, day: timedelta
) -> None:
    """A partial approval approves fewer days or units than requested, or a shorter period; an approval does not."""
    short_period = requested.unit is AuthorizationUnit.DAYS and period < day * requested.requested_units
    partial = units < requested.requested_units or short_period
    if decision is AuthorizationDecision.APPROVED and partial:
        raise CommandInvalid(
            f"units: {units} of the {requested.requested_units} {requested.unit.value} requested"
            + (" (or a shorter period)" if short_period else "")
            + " is a partial approval: record the decision partially_approved"
        )
    if decision is AuthorizationDecision.PARTIALLY_APPROVED and not partial:
        raise CommandInvalid(
            f"units: {units} {requested.unit.value} over the whole period requested is an approval, not a partial one"
        )


def _as_decided(authorization: Authorization, decided: AuthorizationDecided) -> bool:
    return (
        authorization.status,
        authorization.authorization_number,
        authorization.start,
        authorization.end,
        authorization.approved_units,
        authorization.denial_reason,
    ) == (
        AuthorizationStatus(decided.decision.value),
        decided.authorization_number,
        decided.start,
        decided.end,
        decided.approved_units,
        decided.denial_reason,
    )


def _extend(state: Episode, command: RecordAuthorizationDecision, version: str, at: datetime) -> list[DomainEvent]:
    authorization = _requested(state, command)
    extended_by = field_id("decided_by", command.decided_by)
    if not authorization.approved:
        raise CommandInvalid(
            f"authorization_id: {authorization.authorization_id} is {authorization.status.value}; only an approved"
            " authorization is extended"
        )
    if command.denial_reason is not None:
        raise CommandInvalid("denial_reason: only a denial gives one")
    assert authorization.end is not None and authorization.start is not None
    if command.end is None:
        raise CommandInvalid("end: an extension gives the new end")
    _period(authorization.start, command.end)
    if command.end == authorization.end and authorization.extensions:
        return []  # the same extension again: already on record
    if command.end <= authorization.end:
        raise CommandInvalid(f"end: an extension ends after the current end, {authorization.end.isoformat()}")
    added = _units("units", command.units)
    number = _number(command.authorization_number) if command.authorization_number is not None else None
    extended = AuthorizationExtended(
        state.episode_id,
        at,
        authorization.authorization_id,
        authorization.end,
        command.end,
        added,
        number,
        extended_by,
        version,
    )
    return [extended, *_review_flag_cleared(state, authorization, at)]


def _record_review(state: Episode, command: RecordConcurrentReview, at: datetime) -> list[DomainEvent]:
    authorization = _known(state, command.authorization_id)
    reviewed_by = field_id("reviewed_by", command.reviewed_by)
    _text("note", command.note, MAX_NOTE)
    if not authorization.approved:
        raise CommandInvalid(
            f"authorization_id: {authorization.authorization_id} is {authorization.status.value};"
            " a concurrent review is of an approved authorization"
        )
    if authorization.concurrent_review is None and authorization.reviewed_for_end == authorization.end:
        return []  # already reviewed for this end (a repeat)
    recorded = ConcurrentReviewRecorded(
        state.episode_id, at, authorization.authorization_id, command.outcome, reviewed_by, command.note
    )
    return [recorded, *_review_flag_cleared(state, authorization, at)]


def _request_review(
    state: Episode,
    command: RequestConcurrentReview,
    review: UtilizationReviewPolicy,
    version: str,
    at: datetime,
    day: timedelta,
) -> list[DomainEvent]:
    authorization = _known(state, command.authorization_id)
    if not _review_wanted(authorization, at):
        raise CommandRejected(f"no concurrent review of {authorization.authorization_id} is wanted")
    assert authorization.end is not None
    if at < authorization.end - day * review.review_days_before_end:
        raise CommandRejected(f"the concurrent review of {authorization.authorization_id} is not due yet")
    return [ConcurrentReviewRequested(state.episode_id, at, authorization.authorization_id, authorization.end, version)]


def _escalate_review(
    state: Episode,
    command: EscalateConcurrentReview,
    review: UtilizationReviewPolicy,
    version: str,
    at: datetime,
    day: timedelta,
) -> list[DomainEvent]:
    authorization = _known(state, command.authorization_id)
    pending = authorization.concurrent_review
    if pending is None or pending.escalated:
        raise CommandRejected(f"no concurrent review of {authorization.authorization_id} awaits escalation")
    if at < _overdue_at(pending.due_at, review, day):
        raise CommandRejected(f"the concurrent review of {authorization.authorization_id} is not overdue yet")
    flag = Flag(FlagFamily.CONCURRENT_REVIEW_OVERDUE, authorization.authorization_id)
    reason = f"the concurrent review of {authorization.authorization_id} was due {pending.due_at.isoformat()}"
    return [
        ConcurrentReviewEscalated(state.episode_id, at, authorization.authorization_id, pending.due_at, version),
        FlagRaised(state.episode_id, at, flag, reason),
    ]


def _review_flag_cleared(state: Episode, authorization: Authorization, at: datetime) -> list[DomainEvent]:
    flag = Flag(FlagFamily.CONCURRENT_REVIEW_OVERDUE, authorization.authorization_id)
    return [FlagCleared(state.episode_id, at, flag)] if flag in state.flags else []


# -- the values' checks, each naming its field ------------------------------------------------------------------


def _known(state: Episode, authorization_id: str) -> Authorization:
    authorization = state.authorization(authorization_id)
    if authorization is None:
        raise CommandInvalid(f"authorization_id: no authorization {authorization_id} was requested for this episode")
    return authorization


def _requested(state: Episode, command: RecordAuthorizationDecision) -> Authorization:
    authorization = _known(state, command.authorization_id)
    if command.payer is not None and command.payer != authorization.payer:
        raise CommandInvalid(f"payer: {authorization.authorization_id} was requested of {authorization.payer}")
    return authorization


def _period(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    if start is None:
        raise CommandInvalid("start: an approval gives the first day it covers")
    if end is None:
        raise CommandInvalid("end: an approval gives the instant it ends")
    if start.tzinfo is None or end.tzinfo is None:
        raise CommandInvalid(("start" if start.tzinfo is None else "end") + ": an instant with a time zone")
    if end <= start:
        raise CommandInvalid(f"end: {end.isoformat()} is not after the start, {start.isoformat()}")
    return start, end


def _units(field: str, units: int | None) -> int:
    if isinstance(units, bool) or not isinstance(units, int) or not 0 < units <= MAX_UNITS:
        raise CommandInvalid(f"{field}: a whole number of days or units, 1 to {MAX_UNITS}, not {units!r}")
    return units


def _number(number: str | None) -> str:
    if number is None:
        raise CommandInvalid("authorization_number: an approval gives the payer's authorization number")
    return _text("authorization_number", number, MAX_AUTHORIZATION_NUMBER, required=True)


def _text(field: str, value: str, limit: int, *, required: bool = False) -> str:
    if not isinstance(value, str) or len(value) > limit or (required and not value.strip()):
        raise CommandInvalid(f"{field}: {'1' if required else '0'}-{limit} characters of text")
    problem = text_problem(value)
    if problem is not None:
        raise CommandInvalid(f"{field}: {problem}")
    return value
