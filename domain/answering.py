"""What an episode waits to hear from outside, and who may answer: a lab reports only on the tests it was sent,
a partner answers only the referrals disclosed to it."""

from __future__ import annotations

from continuum.domain.aftercare import Referral, ReferralStatus
from continuum.domain.episode import Episode
from continuum.domain.testing import DrugTest


def open_tests(state: Episode) -> tuple[DrugTest, ...]:
    """The tests still awaiting a result: neither cancelled nor reported."""
    return tuple(test for test in state.tests if test.awaiting_result)


def lab_may_report(state: Episode | None, lab_id: str | None, test_id: str) -> bool:
    """Whether `lab_id` was sent test `test_id` of this episode, and so may report on it."""
    return lab_was_sent(state.test(test_id) if state is not None else None, lab_id)


def lab_was_sent(test: DrugTest | None, lab_id: str | None) -> bool:
    """The same rule on the one test (None: the episode has no such test), as the API reads it alone."""
    return test is not None and test.lab_id == lab_id


def partner_may_answer(state: Episode | None, partner: str | None, referral_id: str) -> bool:
    """Whether referral `referral_id` was disclosed to `partner` (one awaiting consent was disclosed to no one)."""
    return disclosed_to(state.referral(referral_id) if state is not None else None, partner)


def disclosed_to(referral: Referral | None, partner: str | None) -> bool:
    """The same rule on the one referral (None: the episode has no such referral)."""
    return (
        referral is not None
        and referral.recipient == partner
        and referral.status is not ReferralStatus.AWAITING_CONSENT
    )
