"""The rules are readable (issue 20, item 3): the policy a decision names by its `policy_version` is served
by that version, to every role that receives decisions, and only to them."""

from __future__ import annotations

import pytest

from continuum.domain.policy import default_policy_text
from continuum.eventlog.policies import PolicyRegistry
from tests.integration.stacks import Stack

pytestmark = pytest.mark.integration


async def test_the_policy_a_decision_names_is_served_by_its_version(stack: Stack) -> None:
    opened = await stack.post("/api/v1/episodes", stack.episode())
    placed = next(e for e in opened.json()["events"] if e["type"] == "PlacementDecided")
    version = placed["data"]["policy_version"]

    current = await stack.get("/api/v1/policy", role="lab")
    assert current.status_code == 200
    body = current.json()
    assert body["version"] == version and body["current"] is True and version in body["versions"]
    assert body["text"] == stack.episodes.policy_text
    assert body["rules"]["reviews"]["due_within_days"] > 0  # the TOML as JSON
    by_version = (await stack.get(f"/api/v1/policy/{version}", role="partner")).json()
    assert by_version["text"] == body["text"] and by_version["current"] is True


async def test_an_earlier_policy_stays_readable_after_the_current_one_changes(stack: Stack) -> None:
    registry = PolicyRegistry(stack.store.engine)
    earlier = default_policy_text().replace("due_within_days = ", "due_within_days = 1", 1)
    earlier_version = registry.register(earlier)
    assert registry.register(earlier) == earlier_version  # registering twice keeps one

    answer = (await stack.get(f"/api/v1/policy/{earlier_version}", role="auditor")).json()
    assert answer["current"] is False and answer["text"] == earlier
    assert earlier_version in (await stack.get("/api/v1/policy")).json()["versions"]


async def test_unknown_malformed_and_unauthorised_policy_reads_are_refused(stack: Stack) -> None:
    unknown = await stack.get("/api/v1/policy/sha256:0000000000000000")
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("application/problem+json")
    malformed = await stack.get("/api/v1/policy/latest")
    assert malformed.status_code == 422 and "version" in malformed.text
    assert (await stack.get("/api/v1/policy", role="admin")).status_code == 403
    assert (await stack.http.get("/api/v1/policy")).status_code == 401
