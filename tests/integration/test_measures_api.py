"""Outcome measures through the API on the real servers: known answers, the pure function's own numbers on the
same events, recomputing at a stated position, the chain check, FHIR, CSV, roles and bad parameters."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from continuum.access import Role
from continuum.domain.measures import Grouping, Period, compute_measures
from continuum.domain.policy import load_policy
from continuum.eventlog.measures import measures_at
from continuum.eventlog.projection import episode_event
from tests.integration.stacks import Stack

pytestmark = pytest.mark.integration
WIDE = {"from": "2000-01-01", "to": "2099-12-31"}  # the time-skipping server's clock runs ahead of ours


async def open_and_discharge(stack: Stack, episode_id: str, client_id: str, reason: str) -> None:
    opened = await stack.post("/api/v1/episodes", stack.episode(episode_id, client_id=client_id))
    assert opened.status_code in (200, 201), opened.text
    closed = await stack.post(f"/api/v1/episodes/{episode_id}/discharge", {"reason": reason, "note": ""})
    assert closed.status_code == 200, closed.text


def measure(body: dict[str, Any], name: str, label: str = "all") -> tuple[float, float, float | None]:
    group = next(g for g in body["groups"] if g["label"] == label)
    found = group["measures"][name]
    return found["numerator"], found["denominator"], found["value"]


async def test_measures_from_the_log_have_known_answers_and_match_the_pure_function(stack: Stack) -> None:
    await open_and_discharge(stack, stack.e1, "client-1", "against_medical_advice")
    await open_and_discharge(stack, stack.e2, "client-2", "administrative")
    answer = await stack.get("/api/v1/measures", role="director", by="level", **WIDE)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["episodes"] == 2 and body["by"] == ["level"] and body["day_seconds"] == 86400.0
    assert measure(body, "against_medical_advice") == (1, 2, 50.0)
    assert measure(body, "administrative", "level=intensive_outpatient") == (1, 2, 50.0)
    assert measure(body, "retention_30d") == (0, 2, 0.0)  # both left in their first days
    assert measure(body, "lost_to_follow_up") == (0, 2, 0.0)
    assert body["policy_versions"] == [load_policy(stack.episodes.policy_text).version]
    assert body["log_position"] == stack.store.head_position() and len(body["log_head_hash"]) == 64
    # the pure function on the same episodes' events, read by stream, gives the same numbers
    histories = [[episode_event(e) for e in stack.store.read_stream(sid)] for sid in (stack.e1, stack.e2)]
    period = Period.of_dates(date.fromisoformat(WIDE["from"]), date.fromisoformat(WIDE["to"]))
    direct = compute_measures(histories, period, by=[Grouping.LEVEL], day=stack.episodes.day)
    assert [g.values for g in direct.groups] == [
        g.values for g in measures_at(stack.store, period, by=[Grouping.LEVEL], day=stack.episodes.day).measures.groups
    ]
    assert measure(body, "completion") == (0, 2, 0.0) and direct.total.get("completion").denominator == 2


async def test_recomputing_at_the_stated_position_gives_identical_numbers_and_it_verifies(stack: Stack) -> None:
    await open_and_discharge(stack, stack.e1, "client-1", "against_medical_advice")
    first = (await stack.get("/api/v1/measures", role="auditor", by="level,cohort", **WIDE)).json()
    position, head_hash = first["log_position"], first["log_head_hash"]
    await open_and_discharge(stack, stack.e2, "client-1", "completed")  # the log moves on
    now = (await stack.get("/api/v1/measures", role="auditor", by="level,cohort", **WIDE)).json()
    again = (await stack.get("/api/v1/measures", role="auditor", by="level,cohort", at=position, **WIDE)).json()
    assert now["log_position"] > position and now["episodes"] == 2
    assert again == first
    assert measure(now, "readmission_30d") == (1, 1, 100.0)  # the same client, a new episode at once
    verified = (await stack.get("/api/v1/measures/verify", role="auditor", position=position, hash=head_hash)).json()
    assert verified["ok"] is True and verified["events_checked"] == now["log_position"]
    forged = "0" * 64
    refuted = (await stack.get("/api/v1/measures/verify", role="director", position=position, hash=forged)).json()
    assert refuted["ok"] is False and "does not match the measures report" in refuted["problems"][0]["problem"]


async def test_the_fhir_measure_report_validates_and_the_csv_states_the_position(stack: Stack) -> None:
    from fhir.resources.R4B.measurereport import MeasureReport

    await open_and_discharge(stack, stack.e1, "client-1", "against_medical_advice")
    fhir = await stack.get("/api/v1/measures", role="director", by="level", format="fhir", **WIDE)
    assert fhir.status_code == 200 and fhir.headers["content-type"].startswith("application/fhir+json")
    report = MeasureReport.model_validate(fhir.json())
    assert report.status == "complete" and report.type == "summary"
    ama = next(g for g in report.group if g.code.coding[0].code == "against_medical_advice")
    assert ama.measureScore.value == 100.0 and [p.count for p in ama.population] == [1, 1]
    assert ama.stratifier[0].stratum[0].value.text == "level=intensive_outpatient"
    position = next(e.valueInteger for e in report.extension if e.url.endswith("log-position"))
    table = await stack.get("/api/v1/measures", role="director", format="csv", **WIDE)
    rows = list(csv.DictReader(io.StringIO(table.text)))
    row = next(r for r in rows if r["measure"] == "against_medical_advice" and r["group"] == "all")
    assert (row["numerator"], row["denominator"], row["value"]) == ("1", "1", "100.0")
    assert {r["log_position"] for r in rows} == {str(position)}


async def test_only_directors_and_auditors_read_measures(stack: Stack) -> None:
    assert (await stack.http.get("/api/v1/measures")).status_code == 401
    for role in Role:
        answer = await stack.get("/api/v1/measures", role=role.value)
        allowed = role in (Role.DIRECTOR, Role.AUDITOR)
        assert answer.status_code == (200 if allowed else 403), (role, answer.text)
        verify = await stack.get("/api/v1/measures/verify", role=role.value, position=0, hash="0" * 64)
        assert (verify.status_code == 200) is allowed, role


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-13-01"}, "from"),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "to"),
        ({"by": "level,ward"}, "by"),
        ({"at": "999999999"}, "at"),
        ({"at": "-1"}, "at"),
        ({"format": "xml"}, "format"),
    ],
)
async def test_bad_parameters_are_problems_naming_the_field(stack: Stack, params: dict[str, str], field: str) -> None:
    answer = await stack.get("/api/v1/measures", role="director", **params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    detail = answer.json()["detail"]
    assert detail.startswith(f"{field}:") or detail.startswith(f"query.{field}:"), detail
    assert "Traceback" not in answer.text


def _continuum(*args: str, database_url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"TEMPORAL_ADDRESS", "DATABASE_URL"}}
    env.update({"DATABASE_URL": database_url, "CONTINUUM_DATA_DIR": str(data_dir)})
    return subprocess.run(
        [sys.executable, "-m", "continuum.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_the_cli_gives_the_apis_numbers_as_a_table_json_and_csv_and_checks_the_hash(
    stack: Stack, database_url: str, tmp_path: Path
) -> None:
    await open_and_discharge(stack, stack.e1, "client-1", "against_medical_advice")
    api = (await stack.get("/api/v1/measures", role="auditor", by="level", **WIDE)).json()
    period = ("--from", WIDE["from"], "--to", WIDE["to"], "--by", "level")
    as_json = _continuum("measures", *period, "--json", database_url=database_url, data_dir=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == api
    position, head_hash = str(api["log_position"]), api["log_head_hash"]
    human = _continuum(
        "measures", *period, "--at", position, "--check", head_hash, database_url=database_url, data_dir=tmp_path
    )
    assert human.returncode == 0, human.stderr
    assert f"log position {position}, hash {head_hash}" in human.stdout
    [ama] = [line for line in human.stdout.splitlines() if line.startswith("against_medical_advice")]
    assert ama.split()[1:4] == ["percent", "100.0", "100.0"]  # all, level=intensive_outpatient
    as_csv = _continuum("measures", *period, "--csv", database_url=database_url, data_dir=tmp_path)
    assert as_csv.stdout.splitlines()[0].startswith("group,measure,unit,numerator,denominator,value,log_position")
    forged = _continuum("measures", "--at", position, "--check", "f" * 64, database_url=database_url, data_dir=tmp_path)
    assert forged.returncode == 4 and forged.stderr.startswith("continuum: the report does not verify: position")
    beyond = _continuum("measures", "--at", "99999", database_url=database_url, data_dir=tmp_path)
    assert beyond.returncode == 2 and beyond.stderr.strip().splitlines() == [
        f"continuum: --at: the log holds positions up to {position}, not 99999"
    ]


async def test_the_outcomes_page_draws_inline_svg_and_names_a_bad_parameter(stack: Stack) -> None:
    await open_and_discharge(stack, stack.e1, "client-1", "against_medical_advice")
    cookie = (await stack.sign_in("auditor")).headers
    page = await stack.http.get(
        "/dashboard/measures", params={"start": "2000-01-01", "end": "2099-12-31"}, headers=cookie
    )
    assert page.status_code == 200 and page.text.count("<svg") == 5
    assert "intensive_outpatient · against_medical_advice: 1" in page.text and "<script>" not in page.text
    bad = await stack.http.get("/dashboard/measures", params={"start": "2026-02-30"}, headers=cookie)
    assert bad.status_code == 422 and "from: &#39;2026-02-30&#39; is not a date" in bad.text
    beyond = await stack.http.get("/dashboard/measures", params={"at": "999999"}, headers=cookie)
    assert beyond.status_code == 422 and "at: the log holds positions up to" in beyond.text
    lab = await stack.http.get("/dashboard/measures", headers={"Cookie": f"continuum_session={stack.keys['lab']}"})
    assert lab.status_code == 303 and lab.headers["location"] == "/dashboard/sign-in"
