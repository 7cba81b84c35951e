"""The outcomes page in headless Chromium over a real `continuum up`: a director signs in, reads the measures
drawn as inline SVG with the log position they were computed at, and checks that position against the chain;
a screenshot of the page is kept with the run's screenshots."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_dashboard_browser import Page, browser, screenshots
from tests.integration.stacks import RunningStack

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
__all__ = ["browser", "screenshots"]  # the fixtures, shared with the dashboard's own browser test
PERIOD = "start=2000-01-01&end=2099-12-31"


def _seed(stack: RunningStack) -> None:
    """Two episodes at intensive outpatient: one leaves against medical advice, one is discharged administratively."""
    auth = {"Authorization": f"Bearer {stack.keys['clinician']}"}
    for reason in ("against_medical_advice", "administrative"):
        episode = f"EP-OUT-{uuid.uuid4().hex[:6]}"
        body = {
            "episode_id": episode,
            "client_id": f"client-{episode[-6:]}",
            "assessment": {"ratings": [1] * 6, "assessed_by": "clin-1"},
        }
        assert httpx.post(f"{stack.url}/api/v1/episodes", json=body, headers=auth, timeout=60).status_code == 201
        closed = httpx.post(
            f"{stack.url}/api/v1/episodes/{episode}/discharge", json={"reason": reason}, headers=auth, timeout=60
        )
        assert closed.status_code == 200, closed.text


def test_a_director_reads_the_outcomes_as_charts_and_checks_them_against_the_chain(
    running_stack: RunningStack, browser: Page, screenshots: Path
) -> None:
    _seed(running_stack)
    base = running_stack.url
    browser.sign_in(running_stack)
    browser.until("location.pathname === '/dashboard'", "signed in")
    browser.js("document.querySelector('nav a[href=\"/dashboard/measures\"]').click()")
    browser.until("location.pathname === '/dashboard/measures'", "the nav link to the outcomes")
    browser.goto(f"{base}/dashboard/measures?{PERIOD}")
    provenance = browser.until(
        "document.getElementById('measures-provenance') && document.getElementById('measures-provenance').innerText",
        "the measures page",
    )
    outcome_parts = browser.js(
        "Array.from(document.querySelectorAll('#outcomes-chart rect[class^=outcome-] title')).map(t => t.textContent)"
    )
    charts = browser.js("document.querySelectorAll('#measures-charts svg').length")
    inline_scripts = browser.js("Array.from(document.scripts).filter(s => !s.src).length")
    table = browser.js("document.getElementById('measures-table').innerText")
    screenshot = browser.screenshot(screenshots, "measures")
    position = browser.js("document.getElementById('measures-position').innerText")
    api = httpx.get(
        f"{base}/api/v1/measures",
        params={"from": "2000-01-01", "to": "2099-12-31", "at": position},
        headers={"Authorization": f"Bearer {running_stack.keys['auditor']}"},
        timeout=60,
    ).json()

    browser.js("document.getElementById('measures-verify').click()")
    verdict = browser.until(
        "document.getElementById('anchor-verdict') && document.getElementById('anchor-verdict').innerText",
        "the chain check of the stated position",
    )

    assert f"computed at log position {position}" in provenance and api["episodes"] >= 2
    assert charts == 5 and inline_scripts == 0
    assert "intensive_outpatient · against_medical_advice: 1" in outcome_parts
    assert "intensive_outpatient · administrative: 1" in outcome_parts
    assert "Stays ended against medical advice" in table
    assert screenshot.stat().st_size > 10_000 and screenshot.read_bytes()[:4] == b"\x89PNG"
    assert f"position {int(position):,}" in verdict
