"""The people around an episode, for benchmarks: the lab, the therapists, the client and partners, outreach.

`answers` says, from an episode's state, what each of them owes and from when (a result for an ordered
test, an outcome for a pending review, a consent or a partner's answer for a referral, a follow-up's
outcome). The benches send those as real commands to live episodes; `simulate` uses the same answers
and the episode's own clock (`next_due`, `draw_schedule`) to play a whole stretch of care in the pure
domain, as the workflow would have recorded it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from random import Random

from continuum.domain.aftercare import FollowUpOutcome, ReferralStatus
from continuum.domain.clock import next_due
from continuum.domain.commands import (
    Command,
    DrawTestSchedule,
    OpenEpisode,
    RecordAssessment,
    RecordConsent,
    RecordFollowUpOutcome,
    RecordReviewOutcome,
    RecordTestResult,
    UpdateReferral,
)
from continuum.domain.decisions import decide
from continuum.domain.episode import Episode, EpisodeStatus, ReviewOutcome
from continuum.domain.errors import DomainError
from continuum.domain.events import DomainEvent
from continuum.domain.fold import fold
from continuum.domain.levels import LevelOfCare
from continuum.domain.policy import Policy
from continuum.domain.testing import OrderReason, TestMethod, TestResult, draw_schedule

MILD = (1, 1, 1, 1, 1, 1)  # placed in intensive outpatient, the policy's baseline
STEP_DOWN_FROM = (LevelOfCare.INTENSIVE_OUTPATIENT, LevelOfCare.OUTPATIENT)


@dataclass(frozen=True)
class Answer:
    """A command a person owes the episode, from `ready_at` (a simulated delay after what asked for it)."""

    key: str  # what it answers (so a live bench sends it once)
    ready_at: datetime
    actor: str
    command: Command


def answers(
    state: Episode, policy: Policy, day: timedelta, *, step_down_to: LevelOfCare | None, clinician_orders: bool = True
) -> list[Answer]:
    """What people owe the episode. Reviews: `goals_met` while the level is above `step_down_to`, else
    `extend`; results are negative (also for clinicians' orders unless `clinician_orders` is false); consents
    are signed, partners accept, follow-ups find the client abstinent."""
    if state.status is EpisodeStatus.CLOSED:
        return []
    owed: list[Answer] = []
    eid = state.episode_id
    for test in state.tests:
        if test.awaiting_result and (clinician_orders or test.reason is not OrderReason.CLINICIAN):
            collected = test.ordered_at + day / 2
            result = RecordTestResult(
                test.test_id, TestResult.NEGATIVE, TestMethod.CONFIRMED, collected, f"L-{eid}-{test.test_id}"
            )
            owed.append(Answer(f"result/{test.test_id}", test.ordered_at + day, "svc:lab-1", result))
    review = state.pending_review
    if review is not None and state.status is EpisodeStatus.ACTIVE:
        down = step_down_to is not None and state.level in STEP_DOWN_FROM and state.level is not step_down_to
        outcome = ReviewOutcome.GOALS_MET if down else ReviewOutcome.EXTEND
        owed.append(
            Answer(
                f"review/{review.review_id}",
                review.requested_at + day,
                "ther-1",
                RecordReviewOutcome(review.review_id, outcome, "ther-1"),
            )
        )
    for referral in state.referrals:
        rid = referral.referral_id
        if referral.status is ReferralStatus.AWAITING_CONSENT and referral.recipient and policy.referrals:
            consent = RecordConsent(
                f"consent-{rid}",
                referral.recipient,
                policy.referrals.purpose,
                referral.created_at + timedelta(days=400),
                "clin-1",
            )
            owed.append(Answer(f"consent/{rid}", referral.created_at + day, "clin-1", consent))
        elif referral.status is ReferralStatus.ISSUED and referral.issued_at is not None:
            actor = f"partner:{referral.recipient}" if referral.recipient else "clin-1"
            owed.append(
                Answer(
                    f"referral/{rid}",
                    referral.issued_at + 2 * day,
                    actor,
                    UpdateReferral(rid, ReferralStatus.ACCEPTED, actor),
                )
            )
    for follow_up in state.follow_ups:
        if follow_up.requested_at is not None and follow_up.outcome is None:
            recorded = RecordFollowUpOutcome(follow_up.follow_up_id, FollowUpOutcome.ABSTINENT, "outreach-1")
            owed.append(
                Answer(f"follow-up/{follow_up.follow_up_id}", follow_up.requested_at + 2 * day, "outreach-1", recorded)
            )
    return owed


@dataclass(frozen=True)
class Step:
    """One decided command of a simulated episode: what the workflow would have recorded for it."""

    command_id: str
    actor: str
    events: list[DomainEvent]


def simulate(
    episode_id: str,
    opened_at: datetime,
    until: datetime,
    policy: Policy,
    day: timedelta,
    rng: Random,
    *,
    step_down_to: LevelOfCare | None = LevelOfCare.AFTERCARE,
    orders: tuple[tuple[datetime, str, Command], ...] = (),
) -> tuple[Episode, list[Step]]:
    """An episode opened (mild ratings) at `opened_at` and cared for until `until`: the clock's commands
    when due (with the schedule draws from `rng`, as the workflow draws them), people's answers when ready,
    and `orders` (instant, actor, command) given by clinicians. The lab does not answer clinicians' orders.
    Command ids follow the workflow's (`clock:<Command>:v<version>` for the clock's)."""
    opening = OpenEpisode(episode_id, f"client-{episode_id.lower()}", assessment=RecordAssessment(MILD, "clin-1"))
    events = decide(None, opening, policy, opened_at, day)
    state = fold(events)
    assert state is not None
    steps = [Step(f"open-{episode_id}", "svc:ehr", events)]
    now = opened_at
    while True:
        due = next_due(state, policy, now, day)
        owed = min(
            answers(state, policy, day, step_down_to=step_down_to, clinician_orders=False),
            key=lambda a: a.ready_at,
            default=None,
        )
        if orders and (due is None or orders[0][0] <= due.at) and (owed is None or orders[0][0] <= owed.ready_at):
            (at, actor, command), orders = orders[0], orders[1:]
            command_id = f"order-{episode_id}-{state.version}"
        elif owed is not None and (due is None or owed.ready_at <= due.at):
            at, command, actor, command_id = owed.ready_at, owed.command, owed.actor, f"{owed.key}@{state.version}"
        elif due is not None:
            at, command, actor = due.at, due.command, "clock"
            command_id = f"clock:{type(command).__name__}:v{state.version}"
            if isinstance(command, DrawTestSchedule) and command.draw is None and state.level is not None:
                command = DrawTestSchedule(draw_schedule(rng, state.level, max(now, at), policy.drug_testing))
        else:
            break
        at = max(now, at)
        if at >= until:
            break
        now = at
        try:
            events = decide(state, command, policy, now, day)
        except DomainError as error:
            raise RuntimeError(f"simulated {type(command).__name__} refused at {now}: {error}") from None
        state = fold(events, state)
        assert state is not None
        steps.append(Step(command_id, actor, events))
    return state, steps
