"""The sample facilities' own policy stays the default policy but for the keys it means to change."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

from continuum.domain.policy import load_policy

CHANGED = {
    ("stay_minimum_days", "intensive_outpatient"),
    ("stay_minimum_days", "outpatient"),
    ("reviews", "extend_default_days"),
}


def _sample(name: str) -> str:
    return resources.files("continuum.domain").joinpath(name).read_text(encoding="utf-8")


def _without_changed(policy: dict[str, Any]) -> dict[str, Any]:
    return {
        table: ({k: v for k, v in body.items() if (table, k) not in CHANGED} if isinstance(body, dict) else body)
        for table, body in policy.items()
    }


def test_the_austin_policy_is_the_default_but_for_its_stays_and_extensions() -> None:
    default, austin = tomllib.loads(_sample("policy.toml")), tomllib.loads(_sample("policy_tx_austin.toml"))

    assert _without_changed(austin) == _without_changed(default)
    assert [austin[t][k] for t, k in sorted(CHANGED)] == [21, 42, 45]
    load_policy(_sample("policy_tx_austin.toml"))  # valid as a policy
