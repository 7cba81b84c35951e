"""Placement, policy and decisions: pure, with hypothesis driving random command sequences."""

from __future__ import annotations

from datetime import datetime, timedelta
from random import Random

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from continuum.domain.aftercare import FollowUpOutcome, ReferralStatus
from continuum.domain.assessment import place, validate_ratings
from continuum.domain.commands import (
    ChangeMedications,
    CompleteAftercare,
    DecideStepUp,
    Discharge,
    DrawTestSchedule,
    EscalateReview,
    FlagLabNotNotified,
    FlagReferralNotSent,
    MarkResultOverdue,
    OpenEpisode,
    OrderScheduledTest,
    OrderTest,
    OverridePlacement,
    PutOnHold,
    RecordAssessment,
    RecordConsent,
    RecordFollowUpOutcome,
    RecordReviewOutcome,
    RecordTestResult,
    RequestReview,
    Resume,
    ReverseStepUp,
    RevokeConsent,
    UpdateReferral,
)
from continuum.domain.decisions import decide
from continuum.domain.directory import load_directory
from continuum.domain.episode import DischargeReason, EpisodeStatus, HoldReason, OverrideReason, ReviewOutcome
from continuum.domain.errors import CommandRejected, PolicyError
from continuum.domain.events import (
    ConsentRecorded,
    ConsentRevoked,
    LevelChanged,
    PlacementDecided,
    ReferralIssued,
    ReviewEscalated,
)
from continuum.domain.fold import REVIEW_OVERDUE, fold
from continuum.domain.levels import Direction, LevelOfCare
from continuum.domain.policy import default_policy_text, load_policy
from continuum.domain.testing import TestMethod, TestResult, draw_schedule
from tests.unit.scenario import DAY, POLICY, T0, Scenario

L = LevelOfCare
PARTNERS = sorted({r.partner for r in load_directory().resources if r.partner is not None})


@pytest.mark.parametrize(
    ("ratings", "level", "after", "rules"),
    [
        ((1, 1, 1, 2, 2, 1), L.INTENSIVE_OUTPATIENT, None, ()),
        ((3, 1, 1, 2, 2, 1), L.WITHDRAWAL_MANAGEMENT, L.RESIDENTIAL, ("withdrawal_potential",)),
        ((0, 0, 0, 0, 0, 3), L.RESIDENTIAL, None, ("unstable_recovery_environment",)),
        ((0, 0, 0, 0, 3, 0), L.PARTIAL_HOSPITALIZATION, None, ("high_relapse_potential",)),
        ((0, 4, 0, 0, 0, 0), L.RESIDENTIAL, None, ("severe_biomedical_conditions",)),
        (
            (4, 0, 4, 0, 3, 4),
            L.WITHDRAWAL_MANAGEMENT,
            L.RESIDENTIAL,
            (
                "withdrawal_potential",
                "unstable_recovery_environment",
                "severe_emotional_behavioural_conditions",
                "high_relapse_potential",
            ),
        ),
    ],
)
def test_placement_picks_the_least_intensive_safe_level_and_names_the_rules(
    ratings: tuple[int, ...], level: LevelOfCare, after: LevelOfCare | None, rules: tuple[str, ...]
) -> None:
    placement = place(validate_ratings(ratings), POLICY)
    assert (placement.recommended_level, placement.after_withdrawal_level) == (level, after)
    assert placement.rules_fired == rules


@pytest.mark.parametrize(
    ("ratings", "message"),
    [((1, 1, 1), "all six ASAM dimensions; 3 ratings"), ((1, 1, 5, 1, 1, 1), "dimension 3 .* must be rated 0-4")],
)
def test_an_assessment_out_of_range_names_the_dimension(ratings: tuple[int, ...], message: str) -> None:
    with pytest.raises(CommandRejected, match=message):
        validate_ratings(ratings)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("residential = 30\n", ""), "stay_minimum_days.residential is missing"),
        (('re_entry_level = "intensive_outpatient"', 're_entry_level = "spa"'), "aftercare.re_entry_level: 'spa'"),
        (("due_within_days = 3", "due_within_days = -1"), "reviews.due_within_days must be a positive number"),
        (('outpatient = "aftercare"', 'outpatient = "residential"'), "step_down.outpatient: residential is not less"),
        (("dimension = 6", "dimension = 9"), r"placement.rules\[1\].dimension must be an ASAM dimension"),
        (('asam_edition = "3"', 'asam_edition = ["'), "not valid TOML"),
    ],
)
def test_a_malformed_policy_names_the_key(edit: tuple[str, str], message: str) -> None:
    text = default_policy_text()
    assert edit[0] in text
    with pytest.raises(PolicyError, match=message):
        load_policy(text.replace(edit[0], edit[1], 1))


def test_the_policy_version_is_the_hash_of_its_text() -> None:
    text = default_policy_text()
    assert load_policy(text).version == POLICY.version
    assert load_policy(text + "\n# changed\n").version != POLICY.version


def test_a_whole_journey_from_withdrawal_management_to_completed_aftercare() -> None:
    j = Scenario()
    j.do(OpenEpisode("ep-1", "client-7", assessment=RecordAssessment((3, 1, 2, 2, 2, 2), "clin-1")))
    levels = []
    for review in range(1, 6):
        assert j.state is not None
        levels.append(j.state.level)
        if j.state.level is L.AFTERCARE:
            break
        with pytest.raises(CommandRejected, match="has not reached its review point"):
            j.do(RequestReview(f"r-{review}"))
        j.wait(POLICY.stay_minimum_days[j.state.level])
        j.do(RequestReview(f"r-{review}"))
        j.wait(1)
        completed, moved, *brought = j.do(RecordReviewOutcome(f"r-{review}", ReviewOutcome.GOALS_MET, "ther-3"))
        assert isinstance(moved, LevelChanged) and moved.direction is Direction.DOWN
        # leaving withdrawal management or residential plans follow-ups; aftercare brings referrals too
        assert {type(e).__name__ for e in brought} <= {
            "FollowUpsScheduled",
            "ReferralIssued",
            "ReferralAwaitingConsent",
        }
    assert levels == [L.WITHDRAWAL_MANAGEMENT, L.RESIDENTIAL, L.INTENSIVE_OUTPATIENT, L.OUTPATIENT, L.AFTERCARE]
    with pytest.raises(CommandRejected, match="aftercare has no completion review"):
        j.do(RequestReview("r-6"))
    with pytest.raises(CommandRejected, match="has not ended"):
        j.do(CompleteAftercare())
    j.wait(365)
    j.do(CompleteAftercare())
    assert j.state is not None and j.state.status is EpisodeStatus.CLOSED
    assert j.state.discharge_reason is DischargeReason.COMPLETED
    assert fold(j.recorded) == j.state
    with pytest.raises(CommandRejected, match="the episode is closed \\(completed\\)"):
        j.do(PutOnHold(HoldReason.LEAVE))


def test_reviews_are_escalated_when_overdue_and_never_skipped() -> None:
    j = Scenario()
    j.do(OpenEpisode("ep-1", "client-7", assessment=RecordAssessment((0, 0, 0, 0, 0, 3), "clin-1")))
    j.wait(30)
    j.do(RequestReview("r-1"))
    j.wait(2)
    with pytest.raises(CommandRejected, match="not overdue yet"):
        j.do(EscalateReview("r-1"))
    j.wait(1)
    [escalated] = j.do(EscalateReview("r-1"))
    assert isinstance(escalated, ReviewEscalated) and j.state is not None and REVIEW_OVERDUE in j.state.flags
    with pytest.raises(CommandRejected, match="already pending"):
        j.do(RequestReview("r-2"))
    j.do(RecordReviewOutcome("r-1", ReviewOutcome.EXTEND, "ther-3", next_review_in_days=7))
    assert j.state.flags == () and j.state.pending_review is None
    assert j.state.review_after_days == pytest.approx(33 + 7)


def test_holds_stop_the_stay_clock() -> None:
    j = Scenario()
    j.do(OpenEpisode("ep-1", "client-7", assessment=RecordAssessment((1, 1, 1, 1, 1, 1), "clin-1")))  # IOP, 30 days
    j.wait(10)
    j.do(PutOnHold(HoldReason.HOSPITALISED))
    with pytest.raises(CommandRejected, match="on hold \\(hospitalised\\); resume it first"):
        j.do(RequestReview("r-1"))
    j.wait(5)
    j.do(Resume())
    j.wait(19.5)  # 34.5 days since the stay began, 29.5 of them on the care clock
    with pytest.raises(CommandRejected, match="has not reached its review point"):
        j.do(RequestReview("r-1"))
    j.wait(0.5)
    j.do(RequestReview("r-1"))
    assert j.state is not None and j.state.stay_held_seconds == 5 * 86400


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (RecordReviewOutcome("r-9", ReviewOutcome.GOALS_MET, "ther-3"), "no review is pending"),
        (Resume(), "the episode is not on hold"),
        (OverridePlacement(L.INTENSIVE_OUTPATIENT, OverrideReason.CLIENT_PREFERENCE, "", "clin-1"), "already at"),
        (RecordAssessment((1, 1, 1, 1, 1, 1), "clin-1"), "already assessed and placed"),
        (OpenEpisode("ep-1", "client-7"), "already open"),
        (Discharge(DischargeReason.ADMINISTRATIVE, "x" * 2001), "at most 2000 characters"),
        (OverridePlacement(L.RESIDENTIAL, OverrideReason.COURT_ORDER, "", "Dr Jane Doe"), "a staff id is"),
    ],
)
def test_invalid_commands_are_refused_with_a_reason(command: object, message: str) -> None:
    j = Scenario()
    j.do(OpenEpisode("ep-1", "client-7", assessment=RecordAssessment((1, 1, 1, 1, 1, 1), "clin-1")))
    with pytest.raises(CommandRejected, match=message):
        j.do(command)


def test_commands_before_the_assessment_are_refused_but_discharge_is_not() -> None:
    j = Scenario()
    j.do(OpenEpisode("ep-1", "client-7"))
    with pytest.raises(CommandRejected, match="has not been assessed yet"):
        j.do(PutOnHold(HoldReason.LEAVE))
    j.do(Discharge(DischargeReason.AGAINST_MEDICAL_ADVICE))
    assert j.state is not None and j.state.status is EpisodeStatus.CLOSED and j.state.level is None


def test_an_override_keeps_both_levels_on_record_and_step_up_has_a_ceiling() -> None:
    j = Scenario()
    j.do(OpenEpisode("ep-1", "client-7", assessment=RecordAssessment((1, 1, 1, 1, 1, 1), "clin-1")))
    overridden, moved = j.do(OverridePlacement(L.RESIDENTIAL, OverrideReason.COURT_ORDER, "order 12", "clin-2"))
    assert (overridden.recommended_level, overridden.actual_level) == (L.INTENSIVE_OUTPATIENT, L.RESIDENTIAL)  # type: ignore[attr-defined]
    assert isinstance(moved, LevelChanged) and moved.cause == "placement override (court_order)"
    assert j.state is not None and j.state.recommended_level is L.INTENSIVE_OUTPATIENT
    j.wait(30)
    j.do(RequestReview("r-1"))
    with pytest.raises(CommandRejected, match="no more intensive level than residential"):
        j.do(RecordReviewOutcome("r-1", ReviewOutcome.STEP_UP, "ther-3"))


class EpisodeMachine(RuleBasedStateMachine):
    """Random sequences of commands at random times: accepted ones never reach an invalid state, and the
    fold of everything recorded always equals the state that produced it."""

    @initialize(ratings=st.tuples(*[st.integers(0, 4)] * 6), assess=st.booleans())
    def open(self, ratings: tuple[int, ...], assess: bool) -> None:
        self.scenario = Scenario()
        self.reviews = 0
        self.consents = 0
        self.scenario.do(
            OpenEpisode("ep-1", "client-7", assessment=RecordAssessment(ratings, "clin-1") if assess else None)
        )

    def attempt(self, command: object) -> None:
        try:
            self.scenario.do(command)
        except CommandRejected:
            pass

    @rule(days=st.floats(min_value=0, max_value=60))
    def time_passes(self, days: float) -> None:
        self.scenario.wait(days)

    @rule(ratings=st.tuples(*[st.integers(0, 4)] * 6))
    def assess(self, ratings: tuple[int, ...]) -> None:
        self.attempt(RecordAssessment(ratings, "clin-1"))

    @rule()
    def request_review(self) -> None:
        self.reviews += 1
        self.attempt(RequestReview(f"r-{self.reviews}"))

    @rule()
    def escalate(self) -> None:
        self.attempt(EscalateReview(f"r-{self.reviews}"))

    @rule(outcome=st.sampled_from(list(ReviewOutcome)), days=st.none() | st.floats(min_value=1, max_value=30))
    def review(self, outcome: ReviewOutcome, days: float | None) -> None:
        self.attempt(RecordReviewOutcome(f"r-{self.reviews}", outcome, "ther-3", days))

    @rule(reason=st.sampled_from(list(HoldReason)))
    def hold(self, reason: HoldReason) -> None:
        self.attempt(PutOnHold(reason))

    @rule()
    def resume(self) -> None:
        self.attempt(Resume())

    @rule(level=st.sampled_from(list(LevelOfCare)), reason=st.sampled_from(list(OverrideReason)))
    def override(self, level: LevelOfCare, reason: OverrideReason) -> None:
        self.attempt(OverridePlacement(level, reason, "", "clin-2"))

    @rule()
    def step_down_to_aftercare(self) -> None:
        """Into aftercare at once (its referrals and follow-ups are what the aftercare rules work on)."""
        self.attempt(OverridePlacement(LevelOfCare.AFTERCARE, OverrideReason.CLINICAL_JUDGMENT, "", "clin-2"))

    @rule(seed=st.integers(0, 1000))
    def draw_schedule(self, seed: int) -> None:
        state = self.scenario.state
        if state is not None and state.level is not None:
            draw = draw_schedule(Random(seed), state.level, self.scenario.at, POLICY.drug_testing)
            self.attempt(DrawTestSchedule(draw))

    @rule(scheduled=st.booleans())
    def order_test(self, scheduled: bool) -> None:
        self.attempt(OrderScheduledTest() if scheduled else OrderTest("clin-1"))

    @rule(
        index=st.integers(0, 5),
        result=st.sampled_from(list(TestResult)),
        method=st.sampled_from(list(TestMethod)),
        substances=st.lists(st.sampled_from(["fentanyl", "buprenorphine", "alcohol"]), max_size=2),
        correct=st.booleans(),
    )
    def result(self, index: int, result: TestResult, method: TestMethod, substances: list[str], correct: bool) -> None:
        state = self.scenario.state
        if state is None or not state.tests:
            return
        test = state.tests[min(index, len(state.tests) - 1)]
        original = test.confirmed if method is TestMethod.CONFIRMED else test.presumptive
        corrects = original.lab_reference if correct and original else None
        reference = f"lab-{len(self.scenario.recorded)}"
        self.attempt(
            RecordTestResult(test.test_id, result, method, self.scenario.at, reference, tuple(substances), corrects)
        )

    @rule(medications=st.lists(st.sampled_from(["buprenorphine", "methadone", "naltrexone"]), max_size=2))
    def medications(self, medications: list[str]) -> None:
        self.attempt(ChangeMedications(tuple(medications), "clin-1"))

    @rule(confirm=st.booleans(), reverse=st.booleans())
    def clinician_on_step_up(self, confirm: bool, reverse: bool) -> None:
        state = self.scenario.state
        if state is not None and state.pending_step_up is not None:
            self.attempt(DecideStepUp(state.pending_step_up.test_id, confirm, "clin-2"))
        if state is not None and state.last_step_up is not None and reverse:
            self.attempt(ReverseStepUp(state.last_step_up.test_id, "clin-2", "clinical judgment"))

    @rule()
    def overdue_results(self) -> None:
        state = self.scenario.state
        for test in state.tests if state else ():
            self.attempt(MarkResultOverdue(test.test_id))

    @rule()
    def complete_aftercare(self) -> None:
        self.attempt(CompleteAftercare())

    @rule(
        recipient=st.sampled_from([*PARTNERS, "Not A Partner"]),
        purpose=st.sampled_from(["aftercare_referral", "research"]),
        days=st.floats(min_value=-10, max_value=500),
    )
    def consent(self, recipient: str, purpose: str, days: float) -> None:
        self.consents += 1
        expires = self.scenario.at + DAY * days
        self.attempt(RecordConsent(f"c-{self.consents}", recipient, purpose, expires, "clin-1"))

    @rule(index=st.integers(0, 9))
    def revoke_consent(self, index: int) -> None:
        consents = self.scenario.state.consents
        self.attempt(RevokeConsent(consents[index % len(consents)].consent_id if consents else "c-404", "clin-1"))

    @rule(index=st.integers(0, 9), status=st.sampled_from(list(ReferralStatus)), by_partner=st.booleans())
    def referral_answer(self, index: int, status: ReferralStatus, by_partner: bool) -> None:
        referrals = self.scenario.state.referrals
        referral_id = referrals[index % len(referrals)].referral_id if referrals else "ep-1.R1"
        recipient = referrals[index % len(referrals)].recipient if referrals else None
        self.attempt(UpdateReferral(referral_id, status, recipient if by_partner and recipient else "clin-1"))

    @rule(index=st.integers(0, 9), outcome=st.sampled_from(list(FollowUpOutcome)))
    def follow_up_outcome(self, index: int, outcome: FollowUpOutcome) -> None:
        follow_ups = [f for f in self.scenario.state.follow_ups if f.requested_at] or self.scenario.state.follow_ups
        follow_up_id = follow_ups[index % len(follow_ups)].follow_up_id if follow_ups else "ep-1.F1"
        self.attempt(RecordFollowUpOutcome(follow_up_id, outcome, "outreach-1"))

    @rule(index=st.integers(0, 9))
    def outbound_failed(self, index: int) -> None:
        state = self.scenario.state
        if state.referrals:
            self.attempt(FlagReferralNotSent(state.referrals[index % len(state.referrals)].referral_id))
        if state.tests:
            self.attempt(FlagLabNotNotified(state.tests[index % len(state.tests)].test_id))

    @rule(days=st.floats(min_value=0, max_value=120))
    def clock_issues_what_falls_due(self, days: float) -> None:
        """What the workflow's timers issue over `days`: reviews, escalations, follow-ups, unanswered referrals."""
        until = self.scenario.at + DAY * days
        for _ in range(20):  # bounded: a clock command the domain refuses would fall due again at once
            command = self.scenario.clock(until)
            if command is None:
                break
            self.attempt(command)

    @rule(reason=st.sampled_from(list(DischargeReason)))
    def discharge(self, reason: DischargeReason) -> None:
        if reason is not DischargeReason.COMPLETED:  # completion is the aftercare clock's, mostly
            self.attempt(Discharge(reason))

    @invariant()
    def state_is_valid_and_is_the_fold_of_what_was_recorded(self) -> None:
        state = self.scenario.state
        assert state is not None and fold(self.scenario.recorded) == state
        assert state.version == len(self.scenario.recorded)
        assert (state.status is EpisodeStatus.CLOSED) == (state.discharge_reason is not None)
        assert (state.status is EpisodeStatus.INTAKE) == (state.level is None and state.discharge_reason is None) or (
            state.status is EpisodeStatus.CLOSED
        )
        assert (state.hold_reason is not None) == (state.status is EpisodeStatus.ON_HOLD)
        if state.pending_review is not None:
            assert state.status in (EpisodeStatus.ACTIVE, EpisodeStatus.ON_HOLD)
            assert state.pending_review.level is state.level and state.level is not LevelOfCare.AFTERCARE
        assert (REVIEW_OVERDUE in state.flags) == bool(state.pending_review and state.pending_review.escalated)
        assert list(state.flags) == sorted(set(state.flags)) and state.stay_held_seconds >= 0
        ids = [t.test_id for t in state.tests]
        assert len(ids) == len(set(ids)) == state.tests_ordered
        if state.pending_step_up is not None:
            assert state.test(state.pending_step_up.test_id) is not None
            assert state.pending_step_up.target_level.intensity > (state.level.intensity if state.level else -1)
        if state.last_step_up is not None and state.status is not EpisodeStatus.CLOSED:
            assert state.level is state.last_step_up.to_level
        assert all(p <= q for p, q in zip(state.planned_tests, state.planned_tests[1:], strict=False))
        referral_ids = [r.referral_id for r in state.referrals]
        assert len(referral_ids) == len(set(referral_ids))
        assert all(f.outcome is None or f.requested_at is not None for f in state.follow_ups)
        assert all(r.status is not ReferralStatus.AWAITING_CONSENT or r.recipient is not None for r in state.referrals)
        follow_up = POLICY.follow_up
        assert follow_up is not None and (
            state.not_reached_in_a_row < follow_up.not_reached_limit or state.status is EpisodeStatus.CLOSED
        )

    @invariant()
    def every_disclosure_was_under_a_consent_valid_when_it_was_made(self) -> None:
        consents: dict[str, ConsentRecorded] = {}
        revoked: dict[str, datetime] = {}
        for event in self.scenario.recorded:
            if isinstance(event, ConsentRecorded):
                consents[event.consent_id] = event
            elif isinstance(event, ConsentRevoked):
                revoked.setdefault(event.consent_id, event.occurred_at)
            elif isinstance(event, ReferralIssued) and event.disclosure is not None:
                consent = consents[event.disclosure.consent_id]
                assert (consent.recipient, consent.purpose) == (event.recipient, event.disclosure.purpose)
                assert consent.occurred_at <= event.occurred_at < consent.expires_at
                assert event.disclosure.consent_id not in revoked


TestEpisodeMachine = EpisodeMachine.TestCase
TestEpisodeMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


@pytest.mark.parametrize(
    ("ratings", "why"),
    [
        ((1, 1, 1, 1, 1, 1), "baseline intensive_outpatient: no rule fired"),
        ((0, 0, 0, 0, 0, 3), "rule unstable_recovery_environment: dimension 6 rated 3 (at least 3) -> residential"),
        (
            (3, 1, 1, 2, 2, 1),
            "rule withdrawal_potential: dimension 1 rated 3 (at least 3) -> withdrawal management "
            "first, then residential",
        ),
    ],
)
def test_every_placement_says_why_and_carries_the_ratings(ratings: tuple[int, ...], why: str) -> None:
    """A mild assessment placed in IOP recorded `rules_fired: []` and nothing else (issue 14, finding 3)."""
    opened = decide(None, OpenEpisode("ep-why", "client-1", assessment=RecordAssessment(ratings, "clin-1")), POLICY, T0)
    [placed] = [e for e in opened if isinstance(e, PlacementDecided)]
    assert placed.decided_by == why and placed.ratings == ratings


def test_a_hold_stops_every_clock_and_the_resumption_says_what_moved() -> None:
    """Three days in hospital with a review pending came back to an unchanged due date and an escalation
    at once (issue 14, finding 1): every due moves by the time held, and nothing falls due during the hold."""
    from continuum.domain.clock import next_due
    from continuum.domain.events import EpisodeResumed

    j = Scenario()
    j.do(OpenEpisode("ep-hold", "client-7", assessment=RecordAssessment((1, 1, 1, 1, 1, 1), "clin-1")))
    j.wait(POLICY.stay_minimum_days[L.INTENSIVE_OUTPATIENT])
    j.do(RequestReview("r-1"))
    assert j.state is not None and j.state.pending_review is not None
    due = j.state.pending_review.due_at
    j.do(PutOnHold(HoldReason.HOSPITALISED))
    j.wait(POLICY.review_due_days + POLICY.review_escalate_after_days + 3)  # past the old escalation instant
    assert next_due(j.state, POLICY, j.at, DAY) is None  # no clock runs on hold
    [resumed] = j.do(Resume())
    assert isinstance(resumed, EpisodeResumed) and resumed.clocks_moved
    assert any(m.startswith("review r-1 due") for m in resumed.moved)
    held = timedelta(seconds=resumed.held_seconds)
    assert j.state.pending_review is not None and j.state.pending_review.due_at == due + held
    # (the initial treatment plan, never recorded, was overdue long before the hold: its clock stays out of this)
    upcoming = next_due(j.state, POLICY, j.at, DAY, drug_testing=False, plans=False)
    assert upcoming is not None and upcoming.at > j.at  # the escalation waits: its instant moved too
    with pytest.raises(CommandRejected, match="not overdue yet"):
        j.do(EscalateReview("r-1"))
