"""Issue 20, items 9-11: the dashboard helps a clinical director triage. The alerts are one row per client with
a count, the longest overdue first, closed episodes out, every list whole on its own page; the episode list
shows flags as badges and the level since; the episode page reads in care days and words, an unknown episode
is a 404 page, and the summary prints. Over the API and a worker on the time-skipping server."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from continuum.workflows.episode import workflow_id
from tests.integration.episodes import DAY, eventually
from tests.integration.stacks import Stack, confirmed_positive

pytestmark = pytest.mark.integration
MICROSECONDS = re.compile(r"\d{2}:\d{2}:\d{2}\.\d{6}")


async def _order(stack: Stack, episode: str) -> str:
    ordered = await stack.post(f"/api/v1/episodes/{episode}/tests", {"ordered_by": "clin-1"})
    assert ordered.status_code == 201, ordered.text
    return str(ordered.json()["events"][0]["data"]["test_id"])


async def _forward(stack: Stack, episode: str, days: float) -> None:
    await stack.env.fast_forward(stack.env.client.get_workflow_handle(workflow_id(episode)), DAY * days)


def _rows(page: str, list_id: str) -> list[str]:
    """The episode ids of one alert list's rows, in the order shown."""
    block = page.split(f'id="alerts-{list_id}"', 1)[1].split("</ol>", 1)[0]
    return re.findall(r'<li class="alert-row" data-episode="([^"]+)"', block)


async def test_alerts_are_one_row_per_client_most_overdue_first_without_closed_episodes(stack: Stack) -> None:
    e1, e2, e3 = stack.e1, stack.e2, stack.e3
    assert (await stack.post("/api/v1/episodes", stack.episode(e1))).status_code == 201
    for _ in range(3):
        await _order(stack, e1)
    for episode in (e2, e3):  # opened after e1's tests were ordered: whatever they order falls due later
        assert (await stack.post("/api/v1/episodes", stack.episode(episode))).status_code == 201
    await _forward(stack, e2, 1)  # each episode has its own clock: e2's test is ordered a day later than e1's
    await _order(stack, e2)
    closing = await _order(stack, e3)
    for episode in (e1, e2, e3):
        await _forward(stack, episode, 3.5)
        await eventually(
            lambda episode=episode: stack.episodes.state(episode),  # type: ignore[misc]
            lambda s: any(f.startswith("result_missing:") for f in s["flags"]),
            f"a result of {episode} flagged missing",
        )
    assert (await stack.post(f"/api/v1/episodes/{e3}/discharge", {"reason": "transferred"})).status_code == 200
    state = await eventually(lambda: stack.episodes.state(e3), lambda s: s["status"] == "closed", "e3 closed")
    director = await stack.sign_in("director")
    auditor = await stack.sign_in("auditor")

    overview = (await stack.http.get("/dashboard", headers=director.headers)).text
    whole = await stack.http.get("/dashboard/alerts/missing_results", headers=director.headers)
    no_such_list = await stack.http.get("/dashboard/alerts/bogus", headers=director.headers)
    refused = await stack.http.get("/dashboard/alerts/missing_results", headers=auditor.headers)
    api = (await stack.get("/api/v1/alerts")).json()

    assert f"result_missing:{closing}" in state["flags"]  # the closed episode still carries its flag...
    assert e3 not in _rows(overview, "missing_results") and e3 not in whole.text  # ...and alerts nobody
    assert e3 not in {a["episode_id"] for a in api["missing_results"]}
    assert _rows(overview, "missing_results")[:2] == [e1, e2]  # one row each, the longest overdue first
    shown = overview.split('id="alerts-missing_results"', 1)[1].split("</ol>", 1)[0]
    counts = {
        e: int(n or 1)
        for e, n in re.findall(
            r'data-episode="([^"]+)">.*?(?:<span class="badge n">(\d+)</span>)?\s*<span class="age', shown
        )
    }
    total = int(re.findall(r'<span class="total">(\d+)</span>', shown)[0])
    assert counts[e1] >= 3 and total == sum(counts.values()) and f"for {len(counts)} clients" in shown
    row = shown.split(f'data-episode="{e1}"', 1)[1].split("</li>", 1)[0]
    assert "d overdue" in row and "intensive outpatient (IOP)" in row
    assert whole.status_code == 200 and 'id="alert-groups"' in whole.text and f">{counts[e1]}</td>" in whole.text
    assert no_such_list.status_code == 404 and "no alert list called" in no_such_list.text
    assert refused.status_code == 403


async def test_the_episode_list_shows_flags_as_badges_and_the_level_since(stack: Stack) -> None:
    assert (await stack.post("/api/v1/episodes", stack.episode())).status_code == 201
    tests = [await _order(stack, stack.e1) for _ in range(2)]
    await _forward(stack, stack.e1, 3.5)
    state = await eventually(
        lambda: stack.episodes.state(stack.e1),
        lambda s: all(f"result_missing:{t}" in s["flags"] for t in tests),
        "both results flagged missing",
    )
    missing = sum(f.startswith("result_missing:") for f in state["flags"])
    director = await stack.sign_in("director")

    listed = (await stack.http.get("/dashboard/episodes", params={"q": stack.e1[:6]}, headers=director.headers)).text
    by_family = await stack.http.get("/dashboard/episodes", params={"flag": "result_missing"}, headers=director.headers)

    row = listed.split(f'<tr data-episode="{stack.e1}">', 1)[1].split("</tr>", 1)[0]
    assert "result_missing:" not in row  # no wall of flag spellings
    assert 'href="/dashboard/episodes?flag=result_missing"' in row and f'<span class="n">{missing}</span>' in row
    assert '<td class="level">intensive outpatient (IOP)</td>' in row
    level_since = datetime.fromisoformat(state["level_since"]).astimezone(UTC).replace(microsecond=0)
    assert f'datetime="{level_since.isoformat().replace("+00:00", "Z")}"' in row  # when the level began
    assert "<th>Level since</th>" in listed
    assert stack.e1 in by_family.text


async def test_the_episode_page_reads_in_care_days_and_names_substances(stack: Stack) -> None:
    residential = {"ratings": [0, 0, 1, 0, 0, 3], "assessed_by": "clin-1"}  # rule: unstable environment
    assert (await stack.post("/api/v1/episodes", stack.episode(assessment=residential))).status_code == 201
    test_id = await _order(stack, stack.e1)
    reported = await stack.post(
        f"/api/v1/episodes/{stack.e1}/tests/{test_id}/results",
        confirmed_positive("fentanyl", "cocaine", lab_reference="L-9"),
    )
    assert reported.status_code == 200, reported.text
    await _forward(stack, stack.e1, 9)
    director = await stack.sign_in("director")

    page = await stack.http.get(f"/dashboard/episodes/{stack.e1}", headers=director.headers)
    printed = await stack.http.get(f"/dashboard/episodes/{stack.e1}/print", headers=director.headers)
    unknown = await stack.http.get("/dashboard/episodes/EP-nobody", headers=director.headers)
    unknown_print = await stack.http.get("/dashboard/episodes/EP-nobody/print", headers=director.headers)
    auditor = await stack.sign_in("auditor")
    auditor_print = await stack.http.get(f"/dashboard/episodes/{stack.e1}/print", headers=auditor.headers)

    axis = re.findall(r'class="label axis"[^>]*>(day \d+)<', page.text)
    assert axis[0] == "day 1" and len(axis) >= 3 and all(a.startswith("day ") for a in axis)
    assert not MICROSECONDS.search(page.text) and not MICROSECONDS.search(printed.text)
    named = re.findall(r'<td class="substances">([^<]*)</td>', page.text)
    assert named == ["cocaine, fentanyl"] and '<td class="substances">cocaine, fentanyl</td>' in printed.text
    placements = page.text.split('id="placements"', 1)[1].split("</table>", 1)[0]
    assert "residential" in placements and "rules fired:" in placements and "D6 recovery environment: 3" in placements
    assert printed.status_code == 200 and "summary for a case conference" in printed.text
    assert (
        'id="stays"' in printed.text and "data-print" in printed.text and "D6 recovery environment: 3" in printed.text
    )
    for missing in (unknown, unknown_print):
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
        assert "There is no episode EP-nobody on record." in missing.text and 'id="not-found"' in missing.text
    assert auditor_print.status_code == 403  # the summary is the current state: as the API's GET /episodes/{id}
