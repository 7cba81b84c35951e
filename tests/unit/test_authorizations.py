"""Utilization review: requests, approvals, partial approvals, denials and extensions; the three levels side by
side and the flags that compare them; concurrent reviews falling due before an authorization ends, escalated when
overdue, closed by a review or an extension; the policy's `[utilization_review]`; the report's groups."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from continuum.domain.authorization_decisions import authorization_dues
from continuum.domain.authorizations import (
    AuthorizationDecision,
    AuthorizationStatus,
    AuthorizationUnit,
    ConcurrentReviewOutcome,
    DenialReason,
)
from continuum.domain.clock import next_due
from continuum.domain.commands import (
    CheckAuthorizations,
    Discharge,
    EscalateConcurrentReview,
    OverridePlacement,
    PutOnHold,
    RecordAuthorizationDecision,
    RecordConcurrentReview,
    RequestAuthorization,
    RequestConcurrentReview,
    Resume,
)
from continuum.domain.decisions import admit
from continuum.domain.episode import DischargeReason, HoldReason, OverrideReason
from continuum.domain.errors import CommandInvalid, CommandRejected, PolicyError
from continuum.domain.events import (
    AuthorizationDecided,
    AuthorizationExtended,
    AuthorizationRequested,
    ConcurrentReviewEscalated,
    ConcurrentReviewRecorded,
    ConcurrentReviewRequested,
    FlagRaised,
)
from continuum.domain.levels import LevelOfCare as L
from continuum.domain.policy import default_policy_text, load_policy
from continuum.domain.utilization import (
    STANDING_FAMILIES,
    Comparison,
    Standing,
    UnauthorizedReason,
    beyond_authorization,
    expiring,
    levels,
    mismatch_report,
    standing_flags,
    utilization_row,
)
from tests.unit.scenario import DAY, WITHOUT_TESTING_TEXT, Scenario

MILD = (1, 1, 1, 1, 1, 1)  # placed at intensive outpatient
TABLE = "\n[utilization_review]" + default_policy_text().split("\n[utilization_review]")[1]
# The default policy less random drug testing, with its `[utilization_review]`: the care clock alone.
POLICY = load_policy(WITHOUT_TESTING_TEXT + TABLE)


def placed(episode_id: str = "ep-1") -> Scenario:
    return Scenario.opened(MILD, episode_id=episode_id, policy=POLICY)


def request(s: Scenario, level: L = L.INTENSIVE_OUTPATIENT, units: int = 10) -> str:
    events = s.do(RequestAuthorization("payer-1", level, AuthorizationUnit.DAYS, units, "ur-1"))
    requested = events[0]
    assert isinstance(requested, AuthorizationRequested)
    return requested.authorization_id


def approve(s: Scenario, auth: str, days: int = 10, start: datetime | None = None) -> list[object]:
    begins = start or s.at
    decision = AuthorizationDecision.APPROVED
    return list(
        s.do(RecordAuthorizationDecision(auth, decision, "ur-1", "payer-1", "PA-1", begins, begins + DAY * days, days))
    )


def types(events: list[object]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_a_request_mints_its_id_and_flags_the_level_unauthorized_while_pending() -> None:
    s = placed()
    events = s.do(RequestAuthorization("payer-1", L.INTENSIVE_OUTPATIENT, AuthorizationUnit.DAYS, 10, "ur-1"))
    assert types(events) == ["AuthorizationRequested", "FlagRaised"]
    assert events[0].authorization_id == "ep-1.A1"  # type: ignore[attr-defined]
    raised = events[1]
    assert isinstance(raised, FlagRaised) and raised.flag == "level_unauthorized"
    assert raised.reason.startswith("pending:")
    shown = levels(s.state, s.at)
    assert (shown.recommended, shown.clinical, shown.authorized) == (
        L.INTENSIVE_OUTPATIENT,
        L.INTENSIVE_OUTPATIENT,
        None,
    )
    assert (shown.standing, shown.reason) == (Standing.UNAUTHORIZED, UnauthorizedReason.PENDING)
    assert request(s) == "ep-1.A2"


def test_an_approval_authorizes_the_level_and_clears_the_flag_and_a_repeat_records_nothing() -> None:
    s = placed()
    auth = request(s)
    events = approve(s, auth)
    assert types(events) == ["AuthorizationDecided", "FlagCleared"]
    assert s.flags() == set()
    shown = levels(s.state, s.at)
    assert (shown.standing, shown.authorized, shown.authorization_id) == (
        Standing.AUTHORIZED,
        L.INTENSIVE_OUTPATIENT,
        auth,
    )
    assert s.state.authorization(auth).status is AuthorizationStatus.APPROVED  # type: ignore[union-attr]
    decided = events[0]
    assert isinstance(decided, AuthorizationDecided)
    again = RecordAuthorizationDecision(
        auth, AuthorizationDecision.APPROVED, "ur-1", "payer-1", "PA-1", decided.start, decided.end, 10
    )
    assert s.do(again) == []
    with pytest.raises(CommandRejected, match="already approved"):
        s.do(
            RecordAuthorizationDecision(
                auth, AuthorizationDecision.DENIED, "ur-1", denial_reason=DenialReason.ADMINISTRATIVE
            )
        )


def test_a_partial_approval_is_fewer_units_or_a_shorter_period_and_an_approval_is_neither() -> None:
    s = placed()
    auth = request(s, units=10)
    partial = AuthorizationDecision.PARTIALLY_APPROVED
    with pytest.raises(CommandInvalid, match="^units: .*partial approval"):
        s.do(
            RecordAuthorizationDecision(
                auth, AuthorizationDecision.APPROVED, "ur-1", None, "PA-1", s.at, s.at + DAY * 5, 5
            )
        )
    with pytest.raises(CommandInvalid, match="^units: .*shorter period"):
        s.do(
            RecordAuthorizationDecision(
                auth, AuthorizationDecision.APPROVED, "ur-1", None, "PA-1", s.at, s.at + DAY * 5, 10
            )
        )
    with pytest.raises(CommandInvalid, match="^units: .*not a partial one"):
        s.do(RecordAuthorizationDecision(auth, partial, "ur-1", None, "PA-1", s.at, s.at + DAY * 10, 10))
    events = s.do(RecordAuthorizationDecision(auth, partial, "ur-1", None, "PA-1", s.at, s.at + DAY * 5, 5))
    assert s.state.authorization(auth).status is AuthorizationStatus.PARTIALLY_APPROVED  # type: ignore[union-attr]
    assert types(events) == ["AuthorizationDecided", "FlagCleared"]


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (RecordAuthorizationDecision("ep-1.A9", AuthorizationDecision.APPROVED, "ur-1"), "authorization_id"),
        (RecordAuthorizationDecision("ep-1.A1", AuthorizationDecision.APPROVED, "ur-1", "payer-2"), "payer"),
        (RecordAuthorizationDecision("ep-1.A1", AuthorizationDecision.APPROVED, "ur-1"), "authorization_number"),
        (RecordAuthorizationDecision("ep-1.A1", AuthorizationDecision.DENIED, "ur-1"), "denial_reason"),
        (RecordAuthorizationDecision("ep-1.A1", AuthorizationDecision.EXTENDED, "ur-1"), "authorization_id"),
        (RecordAuthorizationDecision("ep-1.A1", AuthorizationDecision.APPROVED, "Jane Doe"), "decided_by"),
        (RequestAuthorization("payer-1", L.RESIDENTIAL, AuthorizationUnit.DAYS, 0, "ur-1"), "requested_units"),
        (RequestAuthorization("payer one", L.RESIDENTIAL, AuthorizationUnit.DAYS, 3, "ur-1"), "payer"),
        (RecordConcurrentReview("ep-1.A1", ConcurrentReviewOutcome.EXTENSION_REQUESTED, "ur-1"), "authorization_id"),
    ],
)
def test_bad_input_names_its_field_and_records_nothing(command: object, field: str) -> None:
    s = placed()
    request(s)
    before = list(s.recorded)
    with pytest.raises(CommandInvalid, match=f"^{field}:"):
        s.do(command)
    assert s.recorded == before


def test_an_end_before_the_start_and_days_not_above_zero_are_refused() -> None:
    s = placed()
    auth = request(s)
    approved = AuthorizationDecision.APPROVED
    with pytest.raises(CommandInvalid, match="^end: .* is not after the start"):
        s.do(RecordAuthorizationDecision(auth, approved, "ur-1", None, "PA-1", s.at, s.at - DAY, 10))
    for units in (0, -3):
        with pytest.raises(CommandInvalid, match="^units:"):
            s.do(RecordAuthorizationDecision(auth, approved, "ur-1", None, "PA-1", s.at, s.at + DAY * 10, units))


def test_a_denial_keeps_the_level_unauthorized_with_the_payers_reason_and_is_never_extended() -> None:
    s = placed()
    auth = request(s)
    denial = RecordAuthorizationDecision(
        auth, AuthorizationDecision.DENIED, "ur-1", denial_reason=DenialReason.NOT_MEDICALLY_NECESSARY
    )
    assert types(s.do(denial)) == ["AuthorizationDecided"]  # the level stays flagged; its reason is now the denial
    assert s.flags() == {"level_unauthorized"}
    shown = levels(s.state, s.at)
    assert (shown.reason, shown.denial_reason) == (UnauthorizedReason.DENIED, DenialReason.NOT_MEDICALLY_NECESSARY)
    extension = RecordAuthorizationDecision(auth, AuthorizationDecision.EXTENDED, "ur-1", end=s.at + DAY * 5, units=5)
    with pytest.raises(CommandInvalid, match="^authorization_id: .* is denied"):
        s.do(extension)


def test_a_clinical_level_other_than_the_authorized_one_is_a_mismatch_with_its_reason() -> None:
    s = placed()
    approve(s, request(s))
    events = s.do(OverridePlacement(L.RESIDENTIAL, OverrideReason.CLINICAL_JUDGMENT, "", "clin-1"))
    assert [str(e.flag) for e in events if isinstance(e, FlagRaised)] == ["authorized_level_mismatch"]
    shown = levels(s.state, s.at)
    assert (shown.clinical, shown.authorized, shown.standing) == (
        L.RESIDENTIAL,
        L.INTENSIVE_OUTPATIENT,
        Standing.MISMATCH,
    )
    assert (
        shown.reason is UnauthorizedReason.NOT_REQUESTED and shown.override_reason is OverrideReason.CLINICAL_JUDGMENT
    )
    # The residential stay authorized: the mismatch clears.
    residential = request(s, L.RESIDENTIAL)
    events = approve(s, residential)
    assert s.flags() == set() and levels(s.state, s.at).authorized is L.RESIDENTIAL


def test_the_clock_flags_a_stay_past_its_authorized_end_and_an_extension_clears_it() -> None:
    s = placed()
    auth = request(s)
    approve(s, auth, days=10)
    end = s.state.authorization(auth).end  # type: ignore[union-attr]
    assert end is not None
    # The concurrent review falls due 3 days before the end (the default policy), due at the end.
    command = s.clock()
    assert command == RequestConcurrentReview(auth) and s.at == end - DAY * 3
    [requested] = s.do(command)
    assert isinstance(requested, ConcurrentReviewRequested) and requested.due_at == end
    # At the end: the review is escalated, and the stay runs past its authorization.
    s.advance(end + timedelta(seconds=1))
    assert s.flags() == {f"concurrent_review_overdue:{auth}", f"authorization_expired:{auth}"}
    assert [type(e) for e in s.recorded[-3:]].count(ConcurrentReviewEscalated) == 1
    assert levels(s.state, s.at).standing is Standing.EXPIRED
    # The payer extends it: both flags clear, and a new review falls due before the new end.
    extension = RecordAuthorizationDecision(auth, AuthorizationDecision.EXTENDED, "ur-1", end=end + DAY * 7, units=7)
    events = s.do(extension)
    assert types(events) == ["AuthorizationExtended", "FlagCleared", "FlagCleared"]
    assert isinstance(events[0], AuthorizationExtended) and events[0].previous_end == end
    assert s.flags() == set() and s.state.authorization(auth).approved_units == 17  # type: ignore[union-attr]
    assert s.do(extension) == []  # the same extension again
    assert s.clock() == RequestConcurrentReview(auth) and s.at == end + DAY * 4


def test_a_concurrent_review_recorded_closes_it_and_none_falls_due_again_for_the_same_end() -> None:
    s = placed()
    auth = request(s)
    approve(s, auth, days=10)
    s.do(s.clock())
    outcome = RecordConcurrentReview(auth, ConcurrentReviewOutcome.CONTINUE_AS_AUTHORIZED, "ur-1", "plan reviewed")
    [recorded] = s.do(outcome)
    assert isinstance(recorded, ConcurrentReviewRecorded)
    assert s.state.authorization(auth).concurrent_review is None  # type: ignore[union-attr]
    assert s.do(outcome) == []
    assert [
        c for c, _ in authorization_dues(s.state, s.policy, s.at, DAY) if not isinstance(c, CheckAuthorizations)
    ] == []
    with pytest.raises(CommandRejected, match="not overdue yet|awaits escalation"):
        s.do(EscalateConcurrentReview(auth))


def test_an_approval_from_a_later_start_is_not_current_until_then() -> None:
    s = placed()
    auth = request(s)
    approve(s, auth, start=s.at + DAY * 2)
    assert levels(s.state, s.at).reason is UnauthorizedReason.NOT_STARTED
    assert s.flags() == {"level_unauthorized"}
    command = s.clock()
    assert isinstance(command, CheckAuthorizations) and s.at == command.at
    assert types(s.do(command)) == ["FlagCleared"]
    with pytest.raises(CommandRejected):
        s.do(CheckAuthorizations(s.at))  # nothing changed


def test_an_episode_without_authorizations_records_no_utilization_flags_nor_dues() -> None:
    s = placed()
    s.advance(s.at + DAY * 40)
    assert not any(f.startswith(("level_", "authoriz")) for f in s.flags())
    assert authorization_dues(s.state, s.policy, s.at, DAY) == []


def test_a_discharge_ends_the_utilization_flags() -> None:
    s = placed()
    request(s)
    s.do(Discharge(DischargeReason.COMPLETED))
    assert s.flags() == set() and levels(s.state, s.at).standing is Standing.NOT_TRACKED


def test_a_policy_without_utilization_review_records_no_authorizations() -> None:
    text = default_policy_text().split("\n[utilization_review]")[0] + "\n"
    s = Scenario.opened(MILD, policy=load_policy(text))
    with pytest.raises(CommandRejected, match=r"no \[utilization_review\]"):
        request(s)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("concurrent_review_days_before_end = 0\nescalate_after_days = 0", "concurrent_review_days_before_end"),
        ("concurrent_review_days_before_end = 3", "escalate_after_days"),
        ("concurrent_review_days_before_end = 3\nescalate_after_days = -1", "escalate_after_days"),
        ("concurrent_review_days_before_end = 'x'\nescalate_after_days = 0", "concurrent_review_days_before_end"),
        ("concurrent_review_days_before_end = 3\nescalate_after_days = 0\nremind = 1", "remind"),
    ],
)
def test_the_utilization_review_policy_is_validated_naming_the_key(table: str, key: str) -> None:
    text = default_policy_text().split("\n[utilization_review]")[0] + f"\n[utilization_review]\n{table}\n"
    with pytest.raises(PolicyError, match=f"utilization_review.{key}"):
        load_policy(text)


def test_the_report_lists_expiring_and_beyond_authorization_and_groups_mismatches_by_reason_and_level() -> None:
    authorized, expired, denied, overridden = (placed(f"ep-{n}") for n in range(1, 5))
    approve(authorized, request(authorized, units=5), days=5)
    approve(expired, request(expired, units=2), days=2)
    expired.advance(expired.at + DAY * 3)
    denied.do(
        RecordAuthorizationDecision(
            request(denied), AuthorizationDecision.DENIED, "ur-1", denial_reason=DenialReason.LEVEL_NOT_COVERED
        )
    )
    approve(overridden, request(overridden))
    overridden.do(OverridePlacement(L.RESIDENTIAL, OverrideReason.COURT_ORDER, "", "clin-1"))
    at = expired.at
    rows = [utilization_row(s.state, at) for s in (authorized, expired, denied, overridden)]
    assert [r.episode_id for r in expiring(rows, at, DAY * 7)] == ["ep-1", "ep-4"]  # ep-4 at another level
    assert expiring(rows, at, DAY) == []
    assert [r.episode_id for r in beyond_authorization(rows)] == ["ep-2"]
    report = {(g.comparison, g.reason, g.level): g.episodes for g in mismatch_report(rows)}
    assert report == {
        (Comparison.CLINICAL_AUTHORIZED, "expired", "intensive_outpatient"): ("ep-2",),
        (Comparison.CLINICAL_AUTHORIZED, "payer_denial:level_not_covered", "intensive_outpatient"): ("ep-3",),
        (Comparison.CLINICAL_AUTHORIZED, "not_requested", "residential"): ("ep-4",),
        (Comparison.RECOMMENDED_CLINICAL, "court_order", "residential"): ("ep-4",),
    }
    by_parity = mismatch_report(rows, group_by=lambda row: "even" if row.episode_id[-1] in "24" else "odd")
    assert {g.group for g in by_parity} == {"even", "odd"}


@settings(max_examples=60, deadline=None)
@given(
    units=st.integers(min_value=1, max_value=60),
    start_in=st.integers(min_value=-5, max_value=5),
    at_day=st.integers(min_value=0, max_value=70),
)
def test_the_flags_always_say_what_the_levels_say(units: int, start_in: int, at_day: int) -> None:
    """Whatever the approval's period and the instant, at most one standing flag is on, the one `levels` names."""
    s = placed()
    auth = request(s, units=units)
    approve(s, auth, days=units, start=s.at + DAY * start_in)
    s.advance(s.at + DAY * at_day)
    shown = levels(s.state, s.at)
    standing_flags = {
        f
        for f in s.flags()
        if f.split(":")[0] in {"authorization_expired", "level_unauthorized", "authorized_level_mismatch"}
    }
    expected = {
        Standing.AUTHORIZED: set(),
        Standing.EXPIRED: {f"authorization_expired:{auth}"},
        Standing.UNAUTHORIZED: {"level_unauthorized"},
    }[shown.standing]
    assert standing_flags == expected
    due = next_due(s.state, s.policy, s.at, DAY)
    assert due is None or due.at >= s.at


_ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["request", "approve", "partial", "deny", "extend", "review", "move", "wait"]),
        st.sampled_from([L.INTENSIVE_OUTPATIENT, L.RESIDENTIAL, L.PARTIAL_HOSPITALIZATION]),
        st.integers(min_value=1, max_value=6),  # which request, days, or days to wait
    ),
    max_size=14,
)


def _act(s: Scenario, action: str, level: L, n: int) -> None:
    auth = f"ep-1.A{n}"
    start = s.at - DAY
    match action:
        case "request":
            s.do(RequestAuthorization("payer-1", level, AuthorizationUnit.DAYS, n + 1, "ur-1"))
        case "approve" | "partial":
            units = n + 1 if action == "approve" else n
            decision = (
                AuthorizationDecision.APPROVED if action == "approve" else AuthorizationDecision.PARTIALLY_APPROVED
            )
            s.do(RecordAuthorizationDecision(auth, decision, "ur-1", None, "PA-1", start, start + DAY * units, units))
        case "deny":
            denied = AuthorizationDecision.DENIED
            s.do(RecordAuthorizationDecision(auth, denied, "ur-1", denial_reason=DenialReason.OUT_OF_NETWORK))
        case "extend":
            current = s.state.authorization(auth)
            end = (current.end if current and current.end else s.at) + DAY * n
            s.do(RecordAuthorizationDecision(auth, AuthorizationDecision.EXTENDED, "ur-1", end=end, units=n))
        case "review":
            s.do(RecordConcurrentReview(auth, ConcurrentReviewOutcome.EXTENSION_REQUESTED, "ur-1"))
        case "move":
            s.do(OverridePlacement(level, OverrideReason.CLINICAL_JUDGMENT, "", "clin-1", director="dir-1"))
        case "wait":
            s.advance(s.at + DAY * n)


@settings(max_examples=80, deadline=None)
@given(actions=_ACTIONS)
def test_whatever_is_recorded_the_flags_match_the_levels_and_a_refusal_records_nothing(
    actions: list[tuple[str, L, int]],
) -> None:
    """Any sequence of the reviewer's commands, moves and waits: a refused command records nothing, at most one
    standing flag is on, and it is the one the three levels name at that instant."""
    s = placed()
    for action, level, n in actions:
        before = list(s.recorded)
        try:
            _act(s, action, level, n)
        except CommandRejected:
            assert s.recorded == before
        held = {f for f in s.state.flags if f.family in STANDING_FAMILIES}
        assert held == set(standing_flags(s.state, s.at)), (action, level, n)
        assert len(held) <= 1


def test_a_hold_moves_no_payer_date_and_the_resumption_brings_the_flags_up_to_date() -> None:
    s = placed()
    auth = request(s, units=4)
    approve(s, auth, days=4)
    s.do(PutOnHold(HoldReason.HOSPITALISED))
    assert authorization_dues(s.state, s.policy, s.at, DAY) == []  # the clock waits while on hold
    s.wait(6)
    assert s.flags() == set()
    events = s.do(Resume())
    assert [str(e.flag) for e in events if isinstance(e, FlagRaised)] == [f"authorization_expired:{auth}"]
    assert s.state.authorization(auth).end == s.state.authorization(auth).start + DAY * 4  # type: ignore[union-attr,operator]


def test_a_period_outside_the_plausible_window_is_refused_where_it_arrives() -> None:
    s = placed()
    auth = request(s)
    approved = AuthorizationDecision.APPROVED
    for start, end, field in [(s.at, s.at + DAY * 800, "end"), (s.at.replace(year=1800), s.at, "start")]:
        command = RecordAuthorizationDecision(auth, approved, "ur-1", None, "PA-1", start, end, 10)
        with pytest.raises(CommandInvalid, match=f"^{field}:"):
            admit(s.state, command, s.at)
    admit(s.state, RecordAuthorizationDecision(auth, approved, "ur-1", None, "PA-1", s.at, s.at + DAY * 10, 10), s.at)


def test_a_move_along_the_continuum_after_an_override_is_no_mismatch_with_the_recommendation() -> None:
    s = placed()
    s.do(OverridePlacement(L.RESIDENTIAL, OverrideReason.SERVICE_UNAVAILABLE, "", "clin-1"))
    assert levels(s.state, s.at).override_reason is OverrideReason.SERVICE_UNAVAILABLE
    s.step_down()  # residential -> the next level the policy names
    assert levels(s.state, s.at).override_reason is None
    assert mismatch_report([utilization_row(s.state, s.at)]) == []  # nothing requested: not tracked
