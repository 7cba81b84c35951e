"""A lab order or a referral that its receiver refuses: the workflow stops retrying and the episode says so
(`lab_not_notified:<test id>`, `referral_not_sent:<referral id>`), on the real Temporal and PostgreSQL.

The receiver answers 422, which the outbound activity treats as final; an unreachable endpoint ends the
same way, only after the retry policy's eight attempts (about a minute and a half).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from continuum.domain.commands import OpenEpisode, OrderTest, OverridePlacement, RecordAssessment, RecordConsent
from continuum.domain.episode import OverrideReason
from continuum.domain.levels import LevelOfCare
from continuum.eventlog.store import PostgresEventStore
from tests.integration.episodes import WITHOUT_TESTING, episode_worker, events_of, meta, projected_state
from tests.integration.lab_server import lab_server

pytestmark = pytest.mark.integration
MILD = (1, 1, 1, 1, 1, 1)
UNSTABLE_HOME = (0, 0, 1, 0, 0, 3)  # residential; sober living at Harbor House fits


async def test_a_lab_order_the_lab_refuses_is_flagged_lab_not_notified_and_the_test_stays_open(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    episode = f"ep-lab-refused-{uuid.uuid4().hex[:6]}"
    with lab_server(refuse=True) as lab:
        async with episode_worker(skipping_env, store, policy_text=WITHOUT_TESTING, lab_order_url=lab.url) as episodes:
            await episodes.open(meta(), OpenEpisode(episode, "client-l", assessment=RecordAssessment(MILD, "clin-1")))
            await episodes.send(episode, meta(), OrderTest("clin-1"))  # answered once the lab has been tried
            state = await episodes.state(episode)

    [ordered] = events_of(store, episode, "TestOrdered")
    test_id = ordered.payload["test_id"]
    assert [a["key"] for a in lab.attempts] == [test_id]  # refused: final, not retried
    assert [e.payload["flag"] for e in events_of(store, episode, "FlagRaised")] == [f"lab_not_notified:{test_id}"]
    assert state is not None and f"lab_not_notified:{test_id}" in state["flags"]
    assert f"lab_not_notified:{test_id}" in projected_state(store, episode)["flags"]  # the director sees it
    assert [t["test_id"] for t in state["tests"]] == [test_id]  # the order stands; a result is still awaited


def _directory(url: str) -> str:
    return f"""
[[resources]]
id = "harbor-house"
type = "sober_living"
name = "Harbor House"
partner = "harbor-house"
endpoint = "{url}"
narr_level = 3
eligibility = {{ ratings_at_least = {{ recovery_environment = 3 }} }}
"""


async def test_a_referral_its_partner_refuses_is_flagged_referral_not_sent(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    episode = f"ep-referral-refused-{uuid.uuid4().hex[:6]}"
    expires = datetime.now(UTC) + timedelta(days=400)
    with lab_server(refuse=True) as partner:
        async with episode_worker(
            skipping_env, store, policy_text=WITHOUT_TESTING, directory_text=_directory(partner.url)
        ) as episodes:
            await episodes.open(
                meta(), OpenEpisode(episode, "client-r", assessment=RecordAssessment(UNSTABLE_HOME, "clin-1"))
            )
            await episodes.send(
                episode, meta(), RecordConsent("c-1", "harbor-house", "aftercare_referral", expires, "clin-1")
            )
            await episodes.send(
                episode,
                meta(),
                OverridePlacement(LevelOfCare.AFTERCARE, OverrideReason.CLINICAL_JUDGMENT, "", "clin-1"),
            )
            state = await episodes.state(episode)

    [issued] = events_of(store, episode, "ReferralIssued")
    referral_id = issued.payload["referral_id"]
    assert issued.payload["disclosure"]["recipient"] == "harbor-house"  # disclosed under the consent, then refused
    assert [a["key"] for a in partner.attempts] == [referral_id] and partner.accepted == {}
    assert [e.payload["flag"] for e in events_of(store, episode, "FlagRaised")] == [f"referral_not_sent:{referral_id}"]
    assert state is not None and f"referral_not_sent:{referral_id}" in state["flags"]
    assert f"referral_not_sent:{referral_id}" in projected_state(store, episode)["flags"]
