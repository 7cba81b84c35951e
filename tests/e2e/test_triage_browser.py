"""Issue 20, items 9-11, in headless Chromium over a real `continuum up` whose care day lasts one second, so
results go missing and plans fall overdue while the test watches. A director triages: the alerts are one row
per client with a count, the longest overdue first, a closed episode nowhere; the episode list shows badges
and the level since; the episode page reads in care days, local times and substances; the summary prints; an
unknown episode is a 404 page. Every page is kept as a screenshot (`<basetemp>/screenshots`)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import continuum_up
from tests.e2e.test_dashboard_browser import Page, browser, screenshots
from tests.integration.stacks import RunningStack, confirmed_positive

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
__all__ = ["browser", "screenshots"]
MILD = {"ratings": [1] * 6, "assessed_by": "clin-1"}
MICROSECONDS = re.compile(r"\d{2}:\d{2}:\d{2}\.\d{6}")


@pytest.fixture(scope="module")
def fast_stack(
    postgres: str, template_url: str, temporal_env: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    with continuum_up(postgres, temporal_env, tmp_path_factory, CONTINUUM_DAY_SECONDS="1") as stack:
        yield stack


class Api:
    def __init__(self, stack: RunningStack) -> None:
        self.stack = stack

    def post(self, path: str, body: dict[str, Any], role: str = "clinician") -> dict[str, Any]:
        answer = httpx.post(
            f"{self.stack.url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.stack.keys[role]}"},
            timeout=60,
        )
        assert answer.status_code in (200, 201), answer.text
        return answer.json()  # type: ignore[no-any-return]

    def get(self, path: str, role: str = "director") -> dict[str, Any]:
        answer = httpx.get(
            f"{self.stack.url}{path}", headers={"Authorization": f"Bearer {self.stack.keys[role]}"}, timeout=60
        )
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def open(self, episode: str) -> None:
        self.post(
            "/api/v1/episodes", {"episode_id": episode, "client_id": f"client-{episode[-6:]}", "assessment": MILD}
        )

    def order(self, episode: str) -> str:
        return str(
            self.post(f"/api/v1/episodes/{episode}/tests", {"ordered_by": "clin-1"})["events"][0]["data"]["test_id"]
        )

    def until(self, probe: Callable[[], Any], what: str) -> Any:
        """Poll until `probe` answers something truthy (a bounded wait for the compressed clock, not a timing check)."""
        for _ in range(600):
            found = probe()
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"never happened: {what}")


def _missing(api: Api, episode: str) -> list[str]:
    return [f for f in api.get(f"/api/v1/episodes/{episode}")["flags"] if f.startswith("result_missing:")]


def test_a_director_triages_the_alerts_the_list_and_an_episode(
    fast_stack: RunningStack, browser: Page, screenshots: Path
) -> None:
    api, run = Api(fast_stack), uuid.uuid4().hex[:6]
    first, positive, closed = f"EP-TRI-A-{run}", f"EP-TRI-B-{run}", f"EP-TRI-C-{run}"
    api.open(first)
    for _ in range(3):
        api.order(first)
    api.open(closed)
    api.order(closed)
    api.open(positive)
    test_id = api.order(positive)
    api.post(
        f"/api/v1/episodes/{positive}/tests/{test_id}/results",
        confirmed_positive("fentanyl", "cocaine", lab_reference="L-7"),
    )
    api.until(lambda: _missing(api, closed), "the closed-to-be episode's result flagged missing")
    api.post(f"/api/v1/episodes/{closed}/discharge", {"reason": "transferred"})
    api.until(lambda: len(_missing(api, first)) >= 3, "three missing results of one client")
    browser.call("Emulation.setTimezoneOverride", timezoneId="America/New_York")
    browser.call("Emulation.setLocaleOverride", locale="en-US")

    browser.sign_in(fast_stack)
    browser.until("location.pathname === '/dashboard' && !!document.getElementById('alerts')", "the overview")
    browser.screenshot(screenshots, "triage-overview")
    missing = browser.js(
        "Array.from(document.querySelectorAll('#alerts-missing_results li.alert-row')).map(li => ({"
        " episode: li.dataset.episode, count: (li.querySelector('.badge.n') || {innerText: '1'}).innerText,"
        " age: li.querySelector('.age').innerText }))"
    )
    positives = browser.js("document.getElementById('alerts-positives').innerText")
    step_ups = browser.js("document.getElementById('alerts-step_ups').innerText")
    overview_text = browser.js("document.getElementById('alerts').innerText")

    whole = browser.follow(
        "#alerts-missing_results h3 a",
        "/dashboard/alerts/missing_results",
        "!!document.getElementById('alert-groups')"
        " && Array.from(document.querySelectorAll('#alert-groups tbody tr')).map(r => r.dataset.episode)",
    )
    browser.screenshot(screenshots, "triage-missing-results")

    browser.goto(f"{fast_stack.url}/dashboard/episodes?q=EP-TRI-")
    browser.until("!!document.getElementById('episode-list')", "the episode list")
    browser.screenshot(screenshots, "triage-episode-list")
    row = browser.js(
        f"(r => ({{flags: r.querySelector('.flags').innerText, level: r.querySelector('.level').innerText,"
        f" since: r.querySelector('.since time').getAttribute('datetime')}}))"
        f"(document.querySelector('tr[data-episode=\"{positive}\"]'))"
    )
    badge = browser.js(
        f"(b => b && b.innerText)(document.querySelector('tr[data-episode=\"{first}\"] .badge.flag-result_missing'))"
    )
    list_text = browser.js("document.getElementById('episode-list').innerText")
    level_since = api.get(f"/api/v1/episodes/{positive}")["state"]["level_since"]

    browser.goto(f"{fast_stack.url}/dashboard/episodes/{positive}")
    browser.until("!!document.getElementById('timeline')", "the episode page")
    browser.screenshot(screenshots, "triage-episode")
    axis = browser.js("Array.from(document.querySelectorAll('#timeline text.axis')).map(t => t.textContent)")
    substances = browser.js("Array.from(document.querySelectorAll('#results td.substances')).map(t => t.innerText)")
    placement = browser.js("document.getElementById('placements').innerText")
    page_text = browser.js("document.body.innerText")
    opened = browser.js("document.querySelector('.facts time').innerText")

    browser.js("document.getElementById('print-summary').click()")
    browser.until(
        "document.readyState === 'complete' && !!document.getElementById('episode-summary')", "the print view"
    )
    browser.call("Emulation.setEmulatedMedia", media="print")
    on_paper = browser.until(  # the print styles apply once the emulated medium reaches the page's style
        "(() => { const shown = [getComputedStyle(document.querySelector('header')).display,"
        " getComputedStyle(document.querySelector('.screen-only')).display];"
        " return shown.every(d => d === 'none') && shown; })()",
        "the print styles hiding the screen's header and buttons",
    )
    browser.screenshot(screenshots, "triage-episode-print")
    browser.call("Emulation.setEmulatedMedia", media="")
    summary = browser.js("document.getElementById('episode-summary').innerText")

    browser.goto(f"{fast_stack.url}/dashboard/episodes/EP-NOBODY-{run}")
    not_found = browser.until(
        "document.getElementById('not-found') && document.getElementById('not-found').innerText", "the 404 page"
    )
    status = browser.js("performance.getEntriesByType('navigation')[0].responseStatus")
    browser.screenshot(screenshots, "triage-not-found")
    verdict = browser.follow(
        'nav a[href="/dashboard/verify"]', "/dashboard/verify", "(document.getElementById('verdict') || {}).innerText"
    )
    browser.screenshot(screenshots, "verify")

    # Alerts: one row per client with its count, the longest overdue first, the closed episode nowhere.
    episodes = [m["episode"] for m in missing]
    assert first in episodes and len(episodes) == len(set(episodes)) and closed not in episodes
    assert int(next(m["count"] for m in missing if m["episode"] == first)) >= 3
    ages = [float(m["age"].split(" d")[0]) for m in missing]
    assert all(age > 0 for age in ages) and ages == sorted(ages, reverse=True)
    assert closed not in overview_text and closed not in whole and whole[: len(episodes)] == episodes
    assert positive in positives and "positive: cocaine, fentanyl" in positives
    assert positive in step_ups and "intensive outpatient (IOP) → residential" in step_ups
    # The episode list: badges by family with counts, level names, the level since.
    assert badge and badge.startswith("result missing") and int(badge.split()[-1]) >= 3
    assert "result_missing:" not in list_text and row["level"] == "residential"
    assert row["since"] == datetime.fromisoformat(level_since).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    # The episode page: care days on the axis, local readable times, placements and substances named.
    assert axis[0] == "day 1" and len(axis) >= 3 and all(re.fullmatch(r"day \d+", a) for a in axis)
    assert not MICROSECONDS.search(page_text) and "EST" in opened and "UTC" not in opened
    assert substances == ["cocaine, fentanyl"]
    assert "baseline intensive_outpatient: no rule fired" in placement and "D6 recovery environment: 1" in placement
    # The print view: the summary, without the screen's header and buttons on paper.
    assert (
        on_paper == ["none", "none"] and "summary for a case conference" in summary and "cocaine, fentanyl" in summary
    )
    assert status == 404 and f"There is no episode EP-NOBODY-{run} on record." in not_found
    assert "chain intact" in verdict
