"""The FHIR export of an episode's history: every reference resolves inside the Bundle, every resource is valid
R4, the statuses and the stays are coded with their periods and causes, and the same log exports the same Bundle.
The episodes run through `decide` and `fold` (tests/unit/scenario.py); their events are stored as the log would."""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, uuid5

from hypothesis import given, settings
from hypothesis import strategies as st

from continuum.domain.aftercare import FollowUpOutcome
from continuum.domain.codec import format_instant, to_envelope
from continuum.domain.commands import (
    DecideStepUp,
    Discharge,
    OverridePlacement,
    PutOnHold,
    RecordAttendance,
    RecordFollowUpOutcome,
    RecordReviewOutcome,
    RequestFollowUp,
    Resume,
    ReverseStepUp,
    ScheduleSession,
)
from continuum.domain.episode import DischargeReason, EpisodeStatus, HoldReason, OverrideReason, ReviewOutcome
from continuum.domain.errors import CommandRejected
from continuum.domain.events import DomainEvent, EpisodeClosed, EpisodePutOnHold, EpisodeResumed
from continuum.domain.levels import LevelOfCare
from continuum.domain.services import Modality
from continuum.domain.testing import TestResult
from continuum.eventlog.export import (
    ASAM_LEVEL_CODES,
    DISCHARGE_REASON_CODES,
    LEVEL_OF_CARE_CODES,
    OVERRIDE_REASON_CODES,
    STAY_CAUSE_CODES,
    TEDS_DISCHARGE_CODES,
    fhir_bundle,
)
from continuum.eventlog.hashing import GENESIS_HASH, canonical_json, event_hash
from continuum.eventlog.records import EventMetadata, StoredEvent
from tests.fhir_bundles import linked_resources, of_type
from tests.unit.scenario import DAY, T0, WITHOUT_TESTING, Scenario, policy_with

IOP = (1, 1, 1, 1, 1, 1)  # mild ratings everywhere: intensive outpatient first
REVIEW = policy_with('positive_result_action = "automatic"', 'positive_result_action = "review"')


def stored(events: list[DomainEvent], episode_id: str = "ep-1") -> list[StoredEvent]:
    """The events as the log stores them: ids from their place in the stream, each hash linking to the last."""
    log: list[StoredEvent] = []
    previous = GENESIS_HASH
    for version, event in enumerate(events, start=1):
        envelope, metadata = to_envelope(event), EventMetadata(actor="staff:clin-1")
        event_id = uuid5(NAMESPACE_URL, f"test:{episode_id}/{version}")
        digest = event_hash(
            previous,
            position=version,
            stream_id=episode_id,
            stream_version=version,
            event_id=str(event_id),
            event_type=envelope.type,
            schema_version=envelope.schema_version,
            occurred_at=event.occurred_at,
            recorded_at=event.occurred_at,
            payload_json=canonical_json(envelope.data),
            metadata_json=canonical_json(metadata.as_dict()),
        )
        log.append(
            StoredEvent(
                version,
                episode_id,
                version,
                event_id,
                envelope.type,
                envelope.schema_version,
                dict(envelope.data),
                metadata,
                event.occurred_at,
                event.occurred_at,
                previous,
                digest,
            )
        )
        previous = digest
    return log


def export(scenario: Scenario) -> dict[str, Any]:
    return fhir_bundle(scenario.state.episode_id, stored(scenario.recorded))


def stays(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in of_type(bundle, "Encounter") if e["identifier"][0]["system"] == "urn:continuum:stay"]


def codes(concept: dict[str, Any], system: str) -> list[str]:
    return [coding["code"] for coding in concept["coding"] if coding["system"] == system]


def periods(history: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return [(h["status"], h["period"]["start"], h["period"].get("end")) for h in history]


def at(days: float) -> str:
    return format_instant(T0 + DAY * days)


def test_an_episode_exports_as_a_bundle_whose_references_all_resolve_and_whose_stays_are_coded() -> None:
    scenario = Scenario.opened(IOP)
    scenario.do(ScheduleSession("S1", "group", T0 + DAY, 180, "sched-1"))
    scenario.do(RecordAttendance("S1", 150, Modality.IN_PERSON, "clin-1"), after_days=1.5)
    scenario.do(PutOnHold(HoldReason.HOSPITALISED), after_days=1.5)  # day 3
    scenario.do(Resume(), after_days=2)  # day 5
    test_id = scenario.order()
    scenario.result(test_id, TestResult.POSITIVE, "cocaine")  # steps the client up to residential on day 5
    scenario.step_down()  # goals met: back to intensive outpatient
    stepped_down = scenario.at
    scenario.do(Discharge(DischargeReason.COMPLETED), after_days=1)
    closed = scenario.at

    bundle = export(scenario)
    resources = linked_resources(bundle)  # every resource valid, every reference to an entry
    [episode] = of_type(bundle, "EpisodeOfCare")
    [patient] = of_type(bundle, "Patient")
    [session] = [e for e in of_type(bundle, "Encounter") if e["identifier"][0]["value"] == "S1"]
    provenances = of_type(bundle, "Provenance")

    assert bundle["entry"][0]["resource"] is episode and episode["identifier"][0]["value"] == "ep-1"
    assert patient == {**patient, "identifier": [{"system": "urn:continuum:client", "value": "client-7"}]}
    assert set(patient) == {"resourceType", "id", "identifier"}  # the pseudonymous id alone
    assert resources[episode["patient"]["reference"]].__resource_type__ == "Patient"
    assert periods(episode["statusHistory"]) == [
        ("active", at(0), at(3)),
        ("onhold", at(3), at(5)),
        ("active", at(5), format_instant(closed)),
        ("finished", format_instant(closed), None),
    ]
    assert episode["status"] == "finished" and episode["period"] == {"start": at(0), "end": format_instant(closed)}
    assert [codes(t, LEVEL_OF_CARE_CODES) for t in episode["type"]] == [["intensive_outpatient"], ["residential"]]

    found = stays(bundle)
    assert [
        (
            codes(s["type"][0], LEVEL_OF_CARE_CODES),
            codes(s["type"][0], ASAM_LEVEL_CODES),
            s["class"]["code"],
            s["status"],
            (s["period"]["start"], s["period"].get("end")),
            codes(s["reasonCode"][0], STAY_CAUSE_CODES),
        )
        for s in found
    ] == [
        (["intensive_outpatient"], ["2.1", "2.1"], "AMB", "finished", (at(0), at(5)), ["placement"]),
        (["residential"], ["3.5", "3.5"], "IMP", "finished", (at(5), format_instant(stepped_down)), ["positive-test"]),
        (
            ["intensive_outpatient"],
            ["2.1", "2.1"],
            "AMB",
            "finished",
            (format_instant(stepped_down), format_instant(closed)),
            ["review-goals-met"],
        ),
    ]
    assert [c["version"] for c in found[1]["type"][0]["coding"] if c["system"] == ASAM_LEVEL_CODES] == ["3", "4"]
    assert "hospitalization" not in found[0] and "hospitalization" not in found[1]
    discharged = found[2]["hospitalization"]["dischargeDisposition"]
    assert (codes(discharged, DISCHARGE_REASON_CODES), codes(discharged, TEDS_DISCHARGE_CODES)) == (
        ["completed"],
        ["completed"],
    )
    assert periods(found[0]["statusHistory"]) == [
        ("in-progress", at(0), at(3)),
        ("onleave", at(3), at(5)),  # the hold, inside the stay
    ]
    assert found[1]["reasonCode"][0]["text"].startswith(f"test {test_id}: ")
    assert all(s["episodeOfCare"] == [{"reference": bundle["entry"][0]["fullUrl"]}] for s in found)

    # The session attended is part of the stay it fell in, at the level coded as the stays are.
    assert session["partOf"] == {"reference": f"urn:uuid:{found[0]['id']}"}
    assert codes(session["serviceType"], ASAM_LEVEL_CODES) == ["2.1", "2.1"]
    assert session["class"]["code"] == "AMB" and session["length"]["value"] == 150

    # A Provenance per event, its id the event's; a stay's first event names that stay too.
    events = stored(scenario.recorded)
    assert [p["id"] for p in provenances] == [str(e.event_id) for e in events]
    assert all(p["target"][0]["reference"] == bundle["entry"][0]["fullUrl"] for p in provenances)
    assert sum(len(p["target"]) > 1 for p in provenances) == len(found) + 2  # the session's two events


def test_the_same_log_exports_the_same_bundle_and_a_longer_log_keeps_every_id() -> None:
    scenario = Scenario.opened(IOP)
    scenario.do(PutOnHold(HoldReason.LEAVE), after_days=2)
    earlier = list(scenario.recorded)
    scenario.do(Resume(), after_days=1)
    scenario.do(Discharge(DischargeReason.TRANSFERRED), after_days=1)

    first, second = export(scenario), export(scenario)
    assert first == second  # nothing in the Bundle depends on when or how often it is exported
    urls = {e["fullUrl"] for e in first["entry"]}
    assert {e["fullUrl"] for e in fhir_bundle("ep-1", stored(earlier))["entry"]} <= urls  # ids hold as it grows
    other = fhir_bundle("ep-2", stored(scenario.recorded, "ep-2"))
    [patient] = of_type(first, "Patient")
    # Another episode's resources are its own; only the client is the same one (the same pseudonymous id).
    assert {e["fullUrl"] for e in other["entry"]} & urls == {f"urn:uuid:{patient['id']}"}


def test_a_stays_cause_is_coded_with_the_clinicians_coded_reason_and_never_the_clinicians_note() -> None:
    scenario = Scenario.opened(IOP)
    scenario.do(OverridePlacement(LevelOfCare.OUTPATIENT, OverrideReason.CLIENT_PREFERENCE, "", "clin-2"))
    test_id = scenario.order()
    scenario.result(test_id, TestResult.POSITIVE, "cocaine")  # outpatient steps up to intensive outpatient
    scenario.do(ReverseStepUp(test_id, "clin-2", "a confidential note about the client"), after_days=1)

    bundle = export(scenario)
    linked_resources(bundle)
    found = stays(bundle)
    assert [codes(s["reasonCode"][0], STAY_CAUSE_CODES) for s in found] == [
        ["placement"],
        ["placement-override"],
        ["positive-test"],
        ["step-up-reversal"],
    ]
    assert [codes(r, OVERRIDE_REASON_CODES) for r in found[1]["reasonCode"][1:]] == [["client_preference"]]
    assert found[3]["reasonCode"][0]["text"] == f"reversal of the step-up on test {test_id}"
    assert "confidential" not in str(bundle)


def test_a_directors_step_down_a_step_up_on_review_and_a_relapse_in_aftercare_are_coded_as_such() -> None:
    director = Scenario.opened(IOP)
    command = OverridePlacement(LevelOfCare.OUTPATIENT, OverrideReason.PAYER_DENIAL, "auth ended", "clin-2", "dir-1")
    director.do(command, after_days=2)
    reviewed = Scenario.opened(IOP, policy=REVIEW)
    test_id = reviewed.order()
    reviewed.result(test_id, TestResult.POSITIVE, "cocaine")  # waits for a clinician's review
    reviewed.do(DecideStepUp(test_id, True, "clin-2", "seen together"), after_days=1)
    relapsed = Scenario.opened(IOP, policy=WITHOUT_TESTING)
    relapsed.to_aftercare()
    follow_up = relapsed.clock()
    assert isinstance(follow_up, RequestFollowUp)
    relapsed.do(follow_up)
    relapsed.do(RecordFollowUpOutcome(follow_up.follow_up_id, FollowUpOutcome.USING, "outreach-1"))

    bundles = [export(director), export(reviewed), export(relapsed)]
    for bundle in bundles:
        linked_resources(bundle)
    [directors, on_review, relapse] = [stays(bundle)[-1] for bundle in bundles]
    assert codes(directors["reasonCode"][0], STAY_CAUSE_CODES) == ["director-step-down"]
    assert codes(directors["reasonCode"][1], OVERRIDE_REASON_CODES) == ["payer_denial"]
    assert codes(on_review["reasonCode"][0], STAY_CAUSE_CODES) == ["step-up-on-review"]
    assert codes(relapse["reasonCode"][0], STAY_CAUSE_CODES) == ["follow-up-relapse"]
    assert codes(relapse["type"][0], LEVEL_OF_CARE_CODES) == [relapsed.policy.re_entry_level.value]
    assert "auth ended" not in str(bundles[0]) and "seen together" not in str(bundles[1])  # notes stay out


# A history drawn at random: holds, resumes, positive results, reversals, step-downs, moves up, sessions and a
# discharge, each tried when the episode may take it (a command it refuses records nothing, as in the workflow).
actions = st.lists(
    st.tuples(
        st.sampled_from(["hold", "resume", "positive", "reverse", "step_down", "move_up", "session", "discharge"]),
        st.integers(min_value=0, max_value=5),  # days before it
    ),
    max_size=10,
)


@settings(max_examples=40, deadline=None)
@given(actions)
def test_any_history_exports_linked_valid_fhir_whose_status_history_is_its_holds_and_discharge(
    history: list[tuple[str, int]],
) -> None:
    scenario = Scenario.opened(IOP)
    for number, (action, days) in enumerate(history):
        scenario.wait(days)
        if scenario.state.status is EpisodeStatus.CLOSED:
            break
        try:
            _act(scenario, action, number)
        except CommandRejected:
            pass

    bundle = export(scenario)
    assert bundle == export(scenario)
    linked_resources(bundle)
    assert "not a relapse" not in str(bundle)  # a reversal's reason is the clinician's words
    [episode] = of_type(bundle, "EpisodeOfCare")
    history_ = periods(episode["statusHistory"])
    assert history_[0][1] == at(0) and history_[-1][2] is None and history_[-1][0] == episode["status"]
    assert all(a[2] == b[1] and a[0] != b[0] for a, b in zip(history_, history_[1:], strict=False))
    holds = [format_instant(e.occurred_at) for e in scenario.recorded if isinstance(e, EpisodePutOnHold)]
    resumes = [format_instant(e.occurred_at) for e in scenario.recorded if isinstance(e, EpisodeResumed)]
    closes = [format_instant(e.occurred_at) for e in scenario.recorded if isinstance(e, EpisodeClosed)]
    spells: list[tuple[str, str | None]] = []
    for start, end in zip(holds, [*resumes, *closes, None], strict=False):
        if spells and spells[-1][1] == start:  # resumed and held again in one instant: one hold
            start = spells.pop()[0]
        spells += [(start, end)] if start != end else []
    assert [(start, end) for status, start, end in history_ if status == "onhold"] == spells
    found = stays(bundle)
    for stay in found:  # each stay is on leave for the holds within it
        begun, ended = stay["period"]["start"], stay["period"].get("end")
        clipped = [(max(a, begun), b if ended is None or (b is not None and b < ended) else ended) for a, b in spells]
        expected = [(a, b) for a, b in clipped if (ended is None or a < ended) and (b is None or a < b)]
        history = periods(stay.get("statusHistory", []))
        assert [(a, b) for status, a, b in history if status == "onleave"] == expected
    assert [start for status, start, _ in history_ if status == "finished"] == closes
    assert all(a["period"]["end"] == b["period"]["start"] for a, b in zip(found, found[1:], strict=False))
    assert found[-1]["period"].get("end") == (closes[0] if closes else None)
    assert [bool(s.get("hospitalization")) for s in found] == [False] * (len(found) - 1) + [bool(closes)]


def _act(scenario: Scenario, action: str, number: int) -> None:
    match action:
        case "hold":
            scenario.do(PutOnHold(HoldReason.LEAVE))
        case "resume":
            scenario.do(Resume())
        case "positive":
            scenario.result(scenario.order(), TestResult.POSITIVE, "cocaine")
        case "reverse" if scenario.state.last_step_up is not None:
            scenario.do(ReverseStepUp(scenario.state.last_step_up.test_id, "clin-2", "not a relapse"))
        case "move_up":
            scenario.do(OverridePlacement(LevelOfCare.RESIDENTIAL, OverrideReason.CLINICAL_JUDGMENT, "", "clin-2"))
        case "step_down" if (state := scenario.state).review_after_days is not None and state.level_since:
            scenario.advance(max(scenario.at, state.level_since + DAY * state.review_after_days))
            if (review := scenario.state.pending_review) is not None:
                scenario.do(RecordReviewOutcome(review.review_id, ReviewOutcome.GOALS_MET, "ther-1"))
        case "session":
            session_id = f"S{number}"
            scenario.do(ScheduleSession(session_id, "group", scenario.at, 60, "sched-1"))
            scenario.do(RecordAttendance(session_id, 60, Modality.TELEHEALTH, "clin-1"), after_days=0.1)
        case "discharge":
            scenario.do(Discharge(DischargeReason.ADMINISTRATIVE))
