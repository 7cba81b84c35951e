"""Aftercare referrals, consent and follow-ups: pure decisions over the default policy and directory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from continuum.domain.aftercare import FollowUpKind, FollowUpOutcome, ReferralStatus, ResourceType
from continuum.domain.commands import (
    RecordConsent,
    RecordFollowUpOutcome,
    RequestFollowUp,
    RevokeConsent,
    UpdateReferral,
)
from continuum.domain.directory import load_directory
from continuum.domain.episode import DischargeReason, EpisodeStatus
from continuum.domain.errors import CommandRejected, PolicyError
from continuum.domain.events import FlagRaised, LevelChanged, ReferralAwaitingConsent, ReferralIssued
from continuum.domain.levels import LevelOfCare
from tests.unit.scenario import DAY, T0, WITHOUT_TESTING, Scenario

POLICY = WITHOUT_TESTING  # no random tests in the way
L = LevelOfCare
UNSTABLE_HOME = (0, 0, 2, 0, 0, 3)  # residential; sober living and therapy fit
MILD = (1, 1, 1, 1, 1, 1)  # IOP; only the open resources fit


def aftercare_episode(ratings: tuple[int, ...], medications: tuple[str, ...] = ()) -> Scenario:
    return Scenario.opened(ratings, episode_id="E1", medications=medications, policy=POLICY)


def test_eligibility_picks_one_referral_per_fitting_type() -> None:
    on_mat = aftercare_episode(UNSTABLE_HOME, medications=("Buprenorphine",))
    on_mat.do(RecordConsent("c-1", "harbor-house", "aftercare_referral", T0 + DAY * 400, "clin-1"))
    on_mat.to_aftercare()
    mild = aftercare_episode(MILD)
    mild.to_aftercare()

    assert {r.resource_id for r in on_mat.state.referrals} == {
        "twelve-step-community",
        "smart-recovery-local",
        "alumni-group",
        "family-programme",
        "harbor-house",
        "riverside-otp",
        "community-counselling",
    }
    assert {r.resource_type for r in mild.state.referrals} == {
        ResourceType.TWELVE_STEP,
        ResourceType.SMART_RECOVERY,
        ResourceType.ALUMNI,
        ResourceType.FAMILY_PROGRAMME,
    }
    by_id = {r.resource_id: r for r in on_mat.state.referrals}
    assert by_id["harbor-house"].status is ReferralStatus.ISSUED  # consented
    assert by_id["riverside-otp"].status is ReferralStatus.AWAITING_CONSENT  # no consent: nothing sent
    assert (
        by_id["twelve-step-community"].status is ReferralStatus.ISSUED
        and by_id["twelve-step-community"].recipient is None
    )


def test_disclosures_are_in_the_log_and_only_under_a_valid_consent() -> None:
    episode = aftercare_episode(UNSTABLE_HOME, medications=("methadone",))
    episode.to_aftercare()
    waiting = next(r for r in episode.state.referrals if r.resource_id == "riverside-otp")
    issued = episode.do(RecordConsent("c-9", "riverside-otp", "aftercare_referral", episode.at + DAY * 90, "clin-1"))

    disclosed = [e for e in episode.recorded if isinstance(e, ReferralIssued) and e.disclosure]
    assert [type(e).__name__ for e in issued] == ["ConsentRecorded", "ReferralIssued"]
    assert [
        (e.referral_id, e.disclosure.recipient, e.disclosure.purpose, e.disclosure.disclosed, e.disclosure.consent_id)
        for e in disclosed
    ] == [(waiting.referral_id, "riverside-otp", "aftercare_referral", ("episode_id", "referral_type"), "c-9")]
    assert not any(isinstance(e, ReferralIssued) and e.recipient == "harbor-house" for e in episode.recorded)

    episode.do(RevokeConsent("c-9", "clin-1"))
    episode.do(UpdateReferral(waiting.referral_id, ReferralStatus.DECLINED, "riverside-otp"))
    alternative = episode.state.referrals[-1]
    assert alternative.resource_id == "northside-obot" or alternative.status is ReferralStatus.AWAITING_CONSENT


def test_a_decline_brings_an_alternative_of_the_same_type() -> None:
    episode = aftercare_episode(UNSTABLE_HOME)
    for partner in ("harbor-house", "oak-street"):
        episode.do(RecordConsent(f"c-{partner}", partner, "aftercare_referral", T0 + DAY * 400, "clin-1"))
    episode.to_aftercare()
    first = next(r for r in episode.state.referrals if r.resource_type is ResourceType.SOBER_LIVING)

    events = episode.do(UpdateReferral(first.referral_id, ReferralStatus.DECLINED, "harbor-house"), after_days=1)
    second = episode.state.referrals[-1]
    again = episode.do(UpdateReferral(second.referral_id, ReferralStatus.DECLINED, "oak-street"))

    assert [type(e).__name__ for e in events] == ["ReferralStatusChanged", "ReferralIssued"]
    assert (second.resource_id, second.alternative_of, second.status) == (
        "oak-street-residence",
        first.referral_id,
        ReferralStatus.ISSUED,
    )
    assert [type(e).__name__ for e in again] == ["ReferralStatusChanged"]  # the directory has no third


def test_referral_transitions_are_validated() -> None:
    episode = aftercare_episode(UNSTABLE_HOME)
    episode.do(RecordConsent("c-1", "harbor-house", "aftercare_referral", T0 + DAY * 400, "clin-1"))
    episode.to_aftercare()
    referral = next(r for r in episode.state.referrals if r.recipient == "harbor-house").referral_id
    waiting = next(r for r in episode.state.referrals if r.status is ReferralStatus.AWAITING_CONSENT).referral_id

    with pytest.raises(CommandRejected, match="cannot become completed"):
        episode.do(UpdateReferral(referral, ReferralStatus.COMPLETED, "harbor-house"))
    with pytest.raises(CommandRejected, match="awaits the client's consent"):
        episode.do(UpdateReferral(waiting, ReferralStatus.ACCEPTED, "x"))
    episode.do(UpdateReferral(referral, ReferralStatus.ACCEPTED, "harbor-house"))
    assert episode.do(UpdateReferral(referral, ReferralStatus.ACCEPTED, "harbor-house")) == []
    episode.do(UpdateReferral(referral, ReferralStatus.COMPLETED, "harbor-house"))
    with pytest.raises(CommandRejected, match="no referral"):
        episode.do(UpdateReferral("E1.R99", ReferralStatus.ACCEPTED, "x"))


def test_a_silent_partner_is_flagged_and_the_flag_clears_on_an_answer() -> None:
    episode = aftercare_episode(UNSTABLE_HOME)
    episode.do(RecordConsent("c-1", "harbor-house", "aftercare_referral", T0 + DAY * 400, "clin-1"))
    episode.to_aftercare()
    referral = next(r for r in episode.state.referrals if r.recipient == "harbor-house")

    assert referral.answer_due_at == episode.at + DAY * 7
    episode.advance(episode.at + DAY * 7)
    assert [e.flag for e in episode.recorded if isinstance(e, FlagRaised)] == [
        f"referral_unanswered:{referral.referral_id}"
    ]
    assert f"referral_unanswered:{referral.referral_id}" in episode.state.flags
    episode.do(UpdateReferral(referral.referral_id, ReferralStatus.ACCEPTED, "harbor-house"))
    assert not any(f.startswith("referral_unanswered") for f in episode.state.flags)


def _follow_ups_until(episode: Scenario, count: int, outcome: FollowUpOutcome) -> None:
    for _ in range(count):
        command = episode.clock()
        assert isinstance(command, RequestFollowUp), command
        episode.do(command)
        episode.do(RecordFollowUpOutcome(command.follow_up_id, outcome, "outreach-1"))


def test_follow_ups_after_residential_and_through_aftercare() -> None:
    episode = aftercare_episode(UNSTABLE_HOME)
    left_residential = episode.step_down()[-1]
    episode.to_aftercare()
    entered = episode.at

    after_leaving = [f for f in episode.state.follow_ups if f.kind is FollowUpKind.AFTER_LEAVING]
    aftercare = [f for f in episode.state.follow_ups if f.kind is FollowUpKind.AFTERCARE]
    assert [f.due_at - left_residential.occurred_at for f in after_leaving] == [DAY * 7, DAY * 30]
    assert [(f.due_at - entered) / DAY for f in aftercare] == [30, 60, 90, 181, 272, 363]
    assert all(f.requested_at is not None for f in after_leaving)  # requested on time, during IOP and outpatient


def test_a_relapse_at_the_60_day_follow_up_re_enters_at_the_re_entry_level() -> None:
    episode = aftercare_episode(MILD)
    episode.to_aftercare()
    _follow_ups_until(episode, 1, FollowUpOutcome.ABSTINENT)
    command = episode.clock()
    episode.do(command)
    events = episode.do(RecordFollowUpOutcome(command.follow_up_id, FollowUpOutcome.USING, "outreach-1"))  # type: ignore[attr-defined]

    move = events[-1]
    assert isinstance(move, LevelChanged) and move.cause_follow_up_id == command.follow_up_id  # type: ignore[attr-defined]
    assert (move.from_level, move.to_level, move.direction.value) == (L.AFTERCARE, POLICY.re_entry_level, "up")
    assert episode.state.sobriety_since == episode.at and episode.state.level is L.INTENSIVE_OUTPATIENT
    assert not any(f.kind is FollowUpKind.AFTERCARE and f.requested_at is None for f in episode.state.follow_ups)


def test_repeated_not_reached_closes_the_episode_as_lost_to_follow_up() -> None:
    episode = aftercare_episode(MILD)
    episode.to_aftercare()
    _follow_ups_until(episode, 1, FollowUpOutcome.NOT_REACHED)
    _follow_ups_until(episode, 1, FollowUpOutcome.ABSTINENT)  # the count starts again
    _follow_ups_until(episode, 2, FollowUpOutcome.NOT_REACHED)
    assert episode.state.status is EpisodeStatus.ACTIVE
    _follow_ups_until(episode, 1, FollowUpOutcome.NOT_REACHED)

    assert (
        episode.state.status is EpisodeStatus.CLOSED
        and episode.state.discharge_reason is DischargeReason.LOST_TO_FOLLOW_UP
    )
    assert DischargeReason.LOST_TO_FOLLOW_UP.teds.value == "dropped_out"


def test_consent_rules() -> None:
    episode = aftercare_episode(MILD)
    later = T0 + DAY * 30
    episode.do(RecordConsent("c-1", "harbor-house", "aftercare_referral", later, "clin-1"))
    assert episode.do(RecordConsent("c-1", "harbor-house", "aftercare_referral", later, "clin-1")) == []
    for command, reason in [
        (RecordConsent("c-1", "oak-street", "aftercare_referral", later, "clin-1"), "other terms"),
        (RecordConsent("c-2", "oak-street", "aftercare_referral", T0 - DAY, "clin-1"), "expire after now"),
        (RecordConsent("c-2", "Oak Street", "aftercare_referral", later, "clin-1"), "partner id"),
        (RecordConsent("c-2", "oak-street", "Referral!", later, "clin-1"), "purpose"),
        (RevokeConsent("c-404", "clin-1"), "no consent"),
        (RecordFollowUpOutcome("E1.F1", FollowUpOutcome.USING, "x"), "no follow-up"),
    ]:
        with pytest.raises(CommandRejected, match=reason):
            episode.do(command)


def test_an_expired_consent_discloses_nothing() -> None:
    episode = aftercare_episode(UNSTABLE_HOME)
    episode.do(RecordConsent("c-1", "harbor-house", "aftercare_referral", T0 + DAY * 10, "clin-1"))
    events = episode.to_aftercare()
    assert any(isinstance(e, ReferralAwaitingConsent) and e.recipient == "harbor-house" for e in events)


@given(
    st.lists(st.integers(0, 4), min_size=6, max_size=6),
    st.sets(st.sampled_from(["buprenorphine", "methadone", "sertraline"])),
)
def test_selection_fits_every_resource_rule(ratings: list[int], medications: set[str]) -> None:
    directory = load_directory()
    fitting = directory.fitting(tuple(ratings), tuple(sorted(medications)))
    for resource in directory.resources:
        fits = (
            not resource.eligibility.on_medication or bool(set(resource.eligibility.on_medication) & medications)
        ) and all(ratings[d - 1] >= r for d, r in resource.eligibility.ratings_at_least)
        assert (resource in fitting) == fits


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[resources]]\nid = "a"\ntype = "sober_living"\nname = "A"\n', "narr_level"),
        ('[[resources]]\nid = "a"\ntype = "gym"\nname = "A"\n', "type must be one of"),
        ('[[resources]]\nid = "a"\ntype = "alumni"\nname = "A"\nendpoint = "http://x"\n', "needs a partner"),
        (
            '[[resources]]\nid = "a"\ntype = "alumni"\nname = "A"\neligibility = { ratings_at_least = { mood = 2 } }\n',
            "mood",
        ),
        (
            '[[resources]]\nid = "a"\ntype = "alumni"\nname = "A"\n'
            '[[resources]]\nid = "a"\ntype = "alumni"\nname = "B"\n',
            "used twice",
        ),
        ("resources = []", "at least one"),
    ],
)
def test_a_malformed_directory_is_refused_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        load_directory(text)
