"""What a referral discloses: the value of each item its disclosure names (`policy.DISCLOSABLE`), nothing more."""

from __future__ import annotations

from typing import Any

from continuum.domain.episode import Episode
from continuum.domain.events import ReferralIssued


def disclosed_values(state: Episode, issued: ReferralIssued) -> dict[str, Any]:
    """The items the referral's partner receives, as sent; empty when nothing is disclosed."""
    if issued.disclosure is None:
        return {}
    values: dict[str, Any] = {
        "episode_id": state.episode_id,
        "referral_type": issued.resource_type.value,
        "level_of_care": state.level.value if state.level else None,
        "medications": list(state.medications),
    }
    return {item: values[item] for item in issued.disclosure.disclosed}
