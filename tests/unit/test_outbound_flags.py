"""When the program could not tell a lab of a test or a partner of a referral, the episode says so: pure domain.

The workflow issues `FlagLabNotNotified` / `FlagReferralNotSent` once the activity has failed for good
(tests/integration/test_outbound_refused.py drives that on the real servers); here the rules themselves.
"""

from __future__ import annotations

import pytest

from continuum.domain.aftercare import ReferralStatus
from continuum.domain.commands import FlagLabNotNotified, FlagReferralNotSent, RecordConsent, UpdateReferral
from continuum.domain.errors import CommandRejected
from continuum.domain.events import FlagRaised
from continuum.domain.fold import fold
from continuum.domain.testing import TestResult
from tests.unit.scenario import DAY, T0, WITHOUT_TESTING, Scenario

MILD = (1, 1, 1, 1, 1, 1)
UNSTABLE_HOME = (0, 0, 2, 0, 0, 3)  # residential; sober living (a partner with an endpoint) fits


def test_a_lab_that_could_not_be_told_of_a_test_raises_a_flag_naming_the_test() -> None:
    t = Scenario.opened(MILD)
    test_id = t.order()

    [flagged] = t.do(FlagLabNotNotified(test_id))

    assert isinstance(flagged, FlagRaised) and str(flagged.flag) == f"lab_not_notified:{test_id}"
    assert flagged.reason == f"the lab could not be told of test {test_id}"
    assert f"lab_not_notified:{test_id}" in t.flags()
    assert t.state.test(test_id) is not None and t.state.test(test_id).awaiting_result  # type: ignore[union-attr]
    t.result(test_id, TestResult.NEGATIVE)  # a result that arrives anyway is taken
    assert fold(t.recorded) == t.state
    with pytest.raises(CommandRejected, match="no test ep-1.T9 was ordered"):
        t.do(FlagLabNotNotified("ep-1.T9"))


def test_a_referral_its_partner_did_not_take_raises_a_flag_naming_the_referral() -> None:
    t = Scenario.opened(UNSTABLE_HOME, episode_id="E1", policy=WITHOUT_TESTING)
    t.do(RecordConsent("c-1", "harbor-house", "aftercare_referral", T0 + DAY * 400, "clin-1"))
    t.to_aftercare()
    referral = next(r for r in t.state.referrals if r.recipient == "harbor-house")
    assert referral.status is ReferralStatus.ISSUED

    [flagged] = t.do(FlagReferralNotSent(referral.referral_id))

    assert isinstance(flagged, FlagRaised) and str(flagged.flag) == f"referral_not_sent:{referral.referral_id}"
    assert flagged.reason == "the partner's endpoint did not take it"
    assert f"referral_not_sent:{referral.referral_id}" in t.flags()
    assert t.state.referral(referral.referral_id).status is ReferralStatus.ISSUED  # type: ignore[union-attr]
    t.do(UpdateReferral(referral.referral_id, ReferralStatus.ACCEPTED, "harbor-house"))  # answered by phone
    assert fold(t.recorded) == t.state
    with pytest.raises(CommandRejected, match="no referral E1.R99"):
        t.do(FlagReferralNotSent("E1.R99"))
