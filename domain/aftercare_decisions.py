"""Decisions about aftercare: referrals and their disclosure under consent, partners' answers, follow-ups.

`consequences` adds what a move along the continuum brings with it (referrals and follow-ups on the step
down into aftercare, the HEDIS follow-ups on leaving residential or withdrawal management);
`decide_aftercare` decides the aftercare commands.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from continuum.domain.aftercare import (
    REFERRAL_TRANSITIONS,
    Disclosure,
    FollowUpKind,
    FollowUpOutcome,
    PlannedFollowUp,
    ReferralStatus,
)
from continuum.domain.commands import (
    Command,
    FlagReferralNotSent,
    FlagReferralUnanswered,
    RecordConsent,
    RecordFollowUpOutcome,
    RequestFollowUp,
    RevokeConsent,
    UpdateReferral,
)
from continuum.domain.directory import Resource
from continuum.domain.episode import DischargeReason, Episode, EpisodeStatus, Numbered
from continuum.domain.errors import CommandRejected
from continuum.domain.events import (
    ConsentRecorded,
    ConsentRevoked,
    DomainEvent,
    EpisodeClosed,
    FlagRaised,
    FollowUpRecorded,
    FollowUpRequested,
    FollowUpsScheduled,
    LevelChanged,
    ReferralAwaitingConsent,
    ReferralIssued,
    ReferralStatusChanged,
    SobrietyDateReset,
)
from continuum.domain.flags import Flag, FlagFamily
from continuum.domain.fold import evolve
from continuum.domain.ids import consent_id, staff_id
from continuum.domain.levels import Direction, LevelOfCare
from continuum.domain.policy import Policy, ReferralPolicy
from continuum.domain.stays import move
from continuum.domain.values import instant_problem

_PURPOSE = re.compile(r"[a-z_]{1,40}")
_PARTNER = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MAX_CONSENT_DAYS = 5 * 366
LEAVING = (LevelOfCare.RESIDENTIAL, LevelOfCare.WITHDRAWAL_MANAGEMENT)


def consequences(
    state: Episode | None, events: list[DomainEvent], policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    """What the moves among `events` bring with them, decided on the state they leave."""
    if state is None or not any(isinstance(e, LevelChanged) for e in events):
        return []
    if any(isinstance(e, EpisodeClosed) for e in events):
        return []
    for event in events:
        state = evolve(state, event)
    added: list[DomainEvent] = []

    def add(new: list[DomainEvent]) -> None:
        nonlocal state
        for event in new:
            state = evolve(state, event)
            added.append(event)

    for changed in (e for e in events if isinstance(e, LevelChanged)):
        if policy.follow_up and changed.direction is Direction.DOWN and changed.from_level in LEAVING:
            add([_schedule(state, FollowUpKind.AFTER_LEAVING, policy.follow_up.after_leaving_days, policy, at, day)])
        if changed.to_level is LevelOfCare.AFTERCARE:
            if policy.referrals:
                add(_refer_on_entry(state, policy.referrals, at, day))
            if policy.follow_up:
                add([_schedule(state, FollowUpKind.AFTERCARE, _aftercare_days(policy, state), policy, at, day)])
    return added


def _aftercare_days(policy: Policy, state: Episode) -> tuple[float, ...]:
    assert policy.follow_up is not None
    period = state.review_after_days or policy.stay_minimum_days[LevelOfCare.AFTERCARE]
    days = [d for d in policy.follow_up.aftercare_days if d < period]
    next_day = (days[-1] if days else 0.0) + policy.follow_up.then_every_days
    while next_day < period:
        days.append(next_day)
        next_day += policy.follow_up.then_every_days
    return tuple(days)


def _schedule(
    state: Episode, kind: FollowUpKind, days: tuple[float, ...], policy: Policy, at: datetime, day: timedelta
) -> FollowUpsScheduled:
    planned = tuple(
        PlannedFollowUp(Numbered.FOLLOW_UP.id(state.episode_id, state.follow_ups_planned + n), kind, at + day * d)
        for n, d in enumerate(days, start=1)
    )
    return FollowUpsScheduled(state.episode_id, at, kind, planned, policy.version)


def _refer_on_entry(state: Episode, referrals: ReferralPolicy, at: datetime, day: timedelta) -> list[DomainEvent]:
    """One referral per type of resource that fits the client, unless that type is already open."""
    open_types = {r.resource_type for r in state.referrals if r.open}
    chosen: dict[object, Resource] = {}
    for resource in referrals.directory.fitting(state.ratings, state.medications):
        if resource.type not in open_types:
            chosen.setdefault(resource.type, resource)
    events: list[DomainEvent] = []
    for number, resource in enumerate(chosen.values(), start=len(state.referrals) + 1):
        events.append(_refer(state, resource, Numbered.REFERRAL.id(state.episode_id, number), referrals, at, day))
    return events


def _refer(
    state: Episode,
    resource: Resource,
    referral_id: str,
    referrals: ReferralPolicy,
    at: datetime,
    day: timedelta,
    alternative_of: str | None = None,
) -> DomainEvent:
    """Issue the referral, disclosing to its partner only under a consent valid now; else it waits."""
    version = referrals.directory.version
    if resource.partner is None:
        return ReferralIssued(
            state.episode_id,
            at,
            referral_id,
            resource.resource_id,
            resource.type,
            None,
            None,
            None,
            version,
            alternative_of,
        )
    disclosure = _disclosure(state, resource.partner, referrals, at)
    if disclosure is None:
        return ReferralAwaitingConsent(
            state.episode_id,
            at,
            referral_id,
            resource.resource_id,
            resource.type,
            resource.partner,
            referrals.purpose,
            version,
            alternative_of,
        )
    return ReferralIssued(
        state.episode_id,
        at,
        referral_id,
        resource.resource_id,
        resource.type,
        resource.partner,
        disclosure,
        at + day * referrals.answer_within_days,
        version,
        alternative_of,
    )


def _disclosure(state: Episode, recipient: str, referrals: ReferralPolicy, at: datetime) -> Disclosure | None:
    consent = next(
        (
            c
            for c in reversed(state.consents)
            if c.recipient == recipient and c.purpose == referrals.purpose and c.valid_at(at)
        ),
        None,
    )
    return Disclosure(recipient, referrals.purpose, referrals.disclosed, consent.consent_id) if consent else None


def admit_aftercare(command: Command, at: datetime) -> None:
    """The admission rules of an aftercare command's values (see `domain.decisions.admit`)."""
    if isinstance(command, RecordConsent):
        problem = instant_problem(command.expires_at, at, timedelta(days=MAX_CONSENT_DAYS))
        if problem is not None:
            raise CommandRejected(f"a consent's expiry {problem}")


def decide_aftercare(
    state: Episode, command: Command, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    """Events for an aftercare command (the caller has checked the episode is open)."""
    if policy.referrals is None and isinstance(
        command, (RecordConsent, RevokeConsent, UpdateReferral, FlagReferralUnanswered, FlagReferralNotSent)
    ):
        raise CommandRejected("this episode's policy makes no referrals, so it keeps no consents or referrals")
    match command:
        case RecordConsent():
            return _record_consent(state, command, policy, at, day)
        case RevokeConsent():
            consent = state.consent(command.consent_id)
            if consent is None:
                raise CommandRejected(f"no consent {command.consent_id} is on file")
            if consent.revoked_at is not None:
                return []  # already revoked: the same answer again
            return [ConsentRevoked(state.episode_id, at, command.consent_id, staff_id(command.revoked_by))]
        case UpdateReferral():
            return _update_referral(state, command, policy, at, day)
        case FlagReferralUnanswered(referral_id=referral_id):
            referral = state.referral(referral_id)
            flag = Flag(FlagFamily.REFERRAL_UNANSWERED, referral_id)
            if referral is None or referral.status is not ReferralStatus.ISSUED or referral.answer_due_at is None:
                raise CommandRejected(f"referral {referral_id} is not waiting for an answer")
            if flag in state.flags or at < referral.answer_due_at:
                raise CommandRejected(f"referral {referral_id} is not overdue, or is already flagged")
            return [
                FlagRaised(
                    state.episode_id,
                    at,
                    flag,
                    f"no answer from {referral.recipient} by {referral.answer_due_at.isoformat()}",
                )
            ]
        case FlagReferralNotSent(referral_id=referral_id):
            if state.referral(referral_id) is None:
                raise CommandRejected(f"no referral {referral_id}")
            return [
                FlagRaised(
                    state.episode_id,
                    at,
                    Flag(FlagFamily.REFERRAL_NOT_SENT, referral_id),
                    "the partner's endpoint did not take it",
                )
            ]
        case RecordFollowUpOutcome():
            return _follow_up_outcome(state, command, policy, at, day)
        case RequestFollowUp(follow_up_id=follow_up_id):
            follow_up = state.follow_up(follow_up_id)
            if follow_up is None or follow_up.requested_at is not None or at < follow_up.due_at:
                raise CommandRejected(f"follow-up {follow_up_id} is not due")
            if state.status is not EpisodeStatus.ACTIVE:
                raise CommandRejected("follow-ups wait while the episode is on hold")
            return [FollowUpRequested(state.episode_id, at, follow_up_id, follow_up.kind)]
    raise CommandRejected(f"{type(command).__name__} is not an aftercare command")


def _record_consent(
    state: Episode, command: RecordConsent, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    assert policy.referrals is not None
    staff_id(command.recorded_by)
    consent_id(command.consent_id)
    if not _PARTNER.fullmatch(command.recipient):
        raise CommandRejected("a consent's recipient is a partner id (lower-case letters, digits, '.', '_', '-')")
    if not _PURPOSE.fullmatch(command.purpose):
        raise CommandRejected("a consent's purpose is a code of lower-case letters and '_'")
    if command.expires_at.tzinfo is None:
        raise CommandRejected("a consent's expiry must carry a time zone")
    if not at < command.expires_at <= at + timedelta(days=MAX_CONSENT_DAYS):
        raise CommandRejected("a consent must expire after now and within 5 years (42 CFR 2.31 needs an expiry)")
    earlier = state.consent(command.consent_id)
    if earlier is not None:
        same = (earlier.recipient, earlier.purpose, earlier.expires_at) == (
            command.recipient,
            command.purpose,
            command.expires_at,
        )
        if same:
            return []
        raise CommandRejected(f"consent {command.consent_id} is already on file with other terms; record a new one")
    recorded = ConsentRecorded(
        state.episode_id,
        at,
        command.consent_id,
        command.recipient,
        command.purpose,
        command.expires_at,
        command.recorded_by,
    )
    after = evolve(state, recorded)
    events: list[DomainEvent] = [recorded]
    for referral in state.referrals:  # what was waiting for this consent is disclosed now
        if referral.status is ReferralStatus.AWAITING_CONSENT and referral.recipient == command.recipient:
            resource = policy.referrals.directory.get(referral.resource_id)
            if resource is not None and command.purpose == policy.referrals.purpose:
                issued = _refer(
                    after, resource, referral.referral_id, policy.referrals, at, day, referral.alternative_of
                )
                events.append(issued)
                after = evolve(after, issued)
    return events


def _update_referral(
    state: Episode, command: UpdateReferral, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    assert policy.referrals is not None
    referral = state.referral(command.referral_id)
    if referral is None:
        raise CommandRejected(f"no referral {command.referral_id}")
    if referral.status is command.status:
        return []  # the same answer again
    allowed = REFERRAL_TRANSITIONS.get(referral.status, frozenset())
    if command.status not in allowed:
        if referral.status is ReferralStatus.AWAITING_CONSENT:
            raise CommandRejected(
                f"referral {command.referral_id} awaits the client's consent; nothing was sent to answer"
            )
        raise CommandRejected(
            f"referral {command.referral_id} is {referral.status.value}; it cannot become {command.status.value}"
        )
    changed = ReferralStatusChanged(
        state.episode_id, at, command.referral_id, command.status, staff_id(command.changed_by)
    )
    if command.status is not ReferralStatus.DECLINED:
        return [changed]
    after = evolve(state, changed)
    referred = {r.resource_id for r in state.referrals}
    alternative = next(
        (
            r
            for r in policy.referrals.directory.fitting(state.ratings, state.medications)
            if r.type is referral.resource_type and r.resource_id not in referred
        ),
        None,
    )
    if alternative is None:
        return [changed]
    new_id = Numbered.REFERRAL.id(state.episode_id, len(state.referrals) + 1)
    return [changed, _refer(after, alternative, new_id, policy.referrals, at, day, referral.referral_id)]


def _follow_up_outcome(
    state: Episode, command: RecordFollowUpOutcome, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    follow_up = state.follow_up(command.follow_up_id)
    if follow_up is None:
        raise CommandRejected(f"no follow-up {command.follow_up_id}")
    if follow_up.outcome is not None:
        if follow_up.outcome is command.outcome:
            return []
        raise CommandRejected(f"follow-up {command.follow_up_id} was already recorded as {follow_up.outcome.value}")
    if follow_up.requested_at is None:
        raise CommandRejected(f"follow-up {command.follow_up_id} is not due until {follow_up.due_at.isoformat()}")
    recorded = FollowUpRecorded(
        state.episode_id, at, command.follow_up_id, command.outcome, staff_id(command.recorded_by)
    )
    after = evolve(state, recorded)
    if command.outcome is FollowUpOutcome.NOT_REACHED:
        limit = policy.follow_up.not_reached_limit if policy.follow_up else None
        if limit is not None and after.not_reached_in_a_row >= limit:
            lost = DischargeReason.LOST_TO_FOLLOW_UP
            note = f"not reached at {after.not_reached_in_a_row} follow-ups in a row"
            return [recorded, EpisodeClosed(state.episode_id, at, lost, lost.teds, policy.version, note)]
        return [recorded]
    if command.outcome is FollowUpOutcome.ABSTINENT or state.status is not EpisodeStatus.ACTIVE or state.level is None:
        return [recorded]
    # `using`: a relapse. From aftercare the client re-enters at the policy's level; elsewhere the step-up map applies.
    target = policy.re_entry_level if state.level is LevelOfCare.AFTERCARE else policy.step_up.get(state.level)
    if target is None or target.intensity <= state.level.intensity:
        return [recorded, SobrietyDateReset(state.episode_id, at, follow_up_id=command.follow_up_id)]
    moved = move(
        state, target, f"follow-up {command.follow_up_id}: using", policy, at, follow_up_id=command.follow_up_id
    )
    return [recorded, SobrietyDateReset(state.episode_id, at, follow_up_id=command.follow_up_id), moved]
