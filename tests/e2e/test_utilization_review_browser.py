"""The utilization review page in headless Chromium over a real `continuum up`: a utilization reviewer (a key made
with `continuum keys create --role utilization_reviewer`) records authorizations through the API, signs in, and
reads the authorizations ending soon, the stay beyond its authorization and the mismatches by reason and level;
a screenshot of the page is kept with the run's screenshots."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from continuum.domain.codec import format_instant
from tests.e2e.test_dashboard_browser import Page, browser, screenshots
from tests.integration.stacks import RunningStack

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
__all__ = ["browser", "screenshots"]  # the fixtures, shared with the dashboard's own browser test


def _post(stack: RunningStack, path: str, body: dict[str, Any], secret: str) -> httpx.Response:
    answer = httpx.post(f"{stack.url}{path}", json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=60)
    assert answer.status_code in (200, 201), answer.text
    return answer


def _seed(stack: RunningStack, reviewer: str) -> tuple[str, str]:
    """Two episodes at intensive outpatient: one approved until two days from now, one whose approval ended."""
    now = datetime.now(UTC)
    ending, ended = (f"EP-UR-{uuid.uuid4().hex[:6]}" for _ in range(2))
    for episode, start, days in ((ending, now - timedelta(hours=1), 2), (ended, now - timedelta(days=6), 5)):
        opened = {
            "episode_id": episode,
            "client_id": f"client-{episode[-6:]}",
            "assessment": {"ratings": [1] * 6, "assessed_by": "clin-1"},
        }
        _post(stack, "/api/v1/episodes", opened, stack.keys["clinician"])
        request = {"payer": "payer-1", "level": "intensive_outpatient", "requested_units": days, "requested_by": "ur-1"}
        location = _post(stack, f"/api/v1/episodes/{episode}/authorizations", request, reviewer).headers["location"]
        approval = {
            "decision": "approved",
            "decided_by": "ur-1",
            "authorization_number": f"PA-{episode[-6:]}",
            "start": format_instant(start),
            "end": format_instant(start + timedelta(days=days)),
            "units": days,
        }
        _post(stack, f"{location}/decisions", approval, reviewer)
    return ending, ended


def test_a_utilization_reviewer_reads_what_ends_soon_and_what_ran_past_its_authorization(
    running_stack: RunningStack, browser: Page, screenshots: Path
) -> None:
    created = running_stack.cli("keys", "create", "--role", "utilization_reviewer", "--name", "ur-1", "--json")
    assert created.returncode == 0, created.stderr
    reviewer = json.loads(created.stdout)["secret"]
    ending, ended = _seed(running_stack, reviewer)
    base = running_stack.url
    running_stack.keys["utilization_reviewer"] = reviewer
    browser.sign_in(running_stack, "utilization_reviewer")
    browser.until("location.pathname === '/dashboard/utilization-review'", "signed in to the utilization review")
    expiring = browser.until(
        "document.getElementById('expiring') && document.getElementById('expiring').innerText", "the expiring list"
    )
    beyond = browser.js("document.getElementById('beyond-authorization').innerText")
    mismatches = browser.js("document.getElementById('mismatches').innerText")
    nav = browser.js("Array.from(document.querySelectorAll('nav a')).map(a => a.getAttribute('href'))")
    inline_scripts = browser.js("Array.from(document.scripts).filter(s => !s.src).length")
    screenshot = browser.screenshot(screenshots, "utilization_review")
    browser.goto(f"{base}/dashboard")  # the census and the alerts are not the reviewer's to read
    census = browser.until("document.body && document.body.innerText", "the census refused")

    assert ending in expiring and ended not in expiring
    assert ended in beyond and ending not in beyond
    assert "expired" in mismatches and ended in mismatches
    assert "/dashboard/utilization-review" in nav and "/dashboard" not in nav and inline_scripts == 0
    assert "utilization_reviewer role may not do this" in census
    assert screenshot.stat().st_size > 10_000
