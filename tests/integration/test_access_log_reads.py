"""Issue 19, finding 5: every read of identifiable data is in the access log, once per view."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from tests.integration.stacks import Stack

pytestmark = pytest.mark.integration


def _reads(stack: Stack, key_name: str) -> list[dict[str, Any]]:
    with stack.store.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.what, a.purpose, a.episode_id, a.episode_ids, a.row_count FROM record_access a"
                " JOIN api_keys k USING (key_id) WHERE k.name = :n ORDER BY a.access_id"
            ),
            {"n": key_name},
        ).mappings()
        return [dict(r) for r in rows]


async def test_api_reads_of_state_lists_census_and_alerts_are_recorded_once_per_view(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    for _ in range(3):  # a poller: one view
        assert (await stack.get(f"/api/v1/episodes/{stack.e1}")).status_code == 200
        assert (await stack.get("/api/v1/episodes", level="intensive_outpatient")).status_code == 200
        assert (await stack.get("/api/v1/census")).status_code == 200
        assert (await stack.get("/api/v1/alerts")).status_code == 200
    other_view = await stack.get("/api/v1/episodes", status="active")
    log = (await stack.get(f"/api/v1/episodes/{stack.e1}/access-log", role="auditor")).json()["reads"]

    assert other_view.status_code == 200
    assert _reads(stack, "director-1") == [
        {
            "what": "episode state",
            "purpose": "operations",
            "episode_id": stack.e1,
            "episode_ids": None,
            "row_count": None,
        },
        {
            "what": "episodes level=intensive_outpatient page=1 page_size=50",
            "purpose": "operations",
            "episode_id": None,
            "episode_ids": [stack.e1],
            "row_count": 1,
        },
        {"what": "census", "purpose": "operations", "episode_id": None, "episode_ids": None, "row_count": 1},
        {"what": "alerts days=7", "purpose": "operations", "episode_id": None, "episode_ids": [], "row_count": 0},
        {
            "what": "episodes status=active page=1 page_size=50",
            "purpose": "operations",
            "episode_id": None,
            "episode_ids": [stack.e1],
            "row_count": 1,
        },
    ]
    # the episode's own access log names the lists that showed it, not only the reads of its record
    assert [r["what"] for r in log if r["key_id"]].count("episode state") == 1
    assert sum(1 for r in log if r["episode_ids"] == [stack.e1]) == 2


async def test_dashboard_pages_are_recorded_once_per_view_however_often_they_refresh(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    signed_in = await stack.sign_in("director")
    for _ in range(4):  # the pages' auto-refresh
        assert (await stack.http.get("/dashboard", headers=signed_in.headers)).status_code == 200
        assert (await stack.http.get(f"/dashboard/episodes/{stack.e1}", headers=signed_in.headers)).status_code == 200
        searched = await stack.http.get(
            "/dashboard/episodes", params={"q": "EP-jane-doe-1980"}, headers=signed_in.headers
        )
        assert searched.status_code == 200
    reads = _reads(stack, "director-1")

    assert [(r["what"], r["episode_id"], r["episode_ids"], r["row_count"]) for r in reads] == [
        ("dashboard overview", None, [], 1),  # the page sign-in opens, then four refreshes: one view
        ("dashboard timeline and state", stack.e1, None, None),
        ("dashboard episodes q=given page=1", None, [], 0),  # the search's shape, never what was searched
    ]
    assert all(r["purpose"] == "dashboard" for r in reads)
    assert "jane" not in repr(reads)
