"""A measures report in the forms people read it: JSON, CSV (one row per group and measure), and a FHIR R4
`MeasureReport` (validated with `fhir.resources` R4B in the tests). Each states the log position, the chain
hash there and the policy versions, so whoever holds it can recompute and verify it."""

from __future__ import annotations

import csv
import io
from typing import Any

from continuum.domain.codec import format_instant
from continuum.domain.measures import MEASURES, MeasureGroup, Unit
from continuum.eventlog.measures import MeasuresReport

MEASURE_BASE = "https://continuum.example/fhir/Measure"
POSITION_EXTENSION = "https://continuum.example/fhir/StructureDefinition/log-position"
HASH_EXTENSION = "https://continuum.example/fhir/StructureDefinition/log-head-hash"
POLICY_EXTENSION = "https://continuum.example/fhir/StructureDefinition/policy-version"
DAY_EXTENSION = "https://continuum.example/fhir/StructureDefinition/care-day-seconds"
MEASURE_CODES = "https://continuum.example/fhir/CodeSystem/measure"
_UNITS = {Unit.PERCENT: "%", Unit.PER_100_CLIENT_WEEKS: "/100 client-weeks", Unit.DAYS: "d"}


def report_body(report: MeasuresReport) -> dict[str, Any]:
    """The report as JSON: where in the log it was computed, and every group's measures."""
    measures = report.measures
    return {
        "period": {"from": format_instant(measures.period.start), "to": format_instant(measures.period.end)},
        "by": [g.value for g in measures.by],
        "log_position": report.position,
        "log_head_hash": report.head_hash,
        "policy_versions": list(measures.policy_versions),
        "day_seconds": report.day_seconds,
        "observed_until": format_instant(measures.observed_until) if measures.observed_until else None,
        "episodes": measures.episodes,
        "step_up_causes": measures.step_up_causes,
        "definitions": {m.name: {"title": m.title, "unit": m.unit.value} for m in MEASURES},
        "groups": [_group_body(group) for group in measures.groups],
    }


def _group_body(group: MeasureGroup) -> dict[str, Any]:
    return {
        "key": {g.value: v for g, v in group.key},
        "label": group.label,
        "measures": {
            v.name: {"numerator": v.numerator, "denominator": v.denominator, "value": v.value} for v in group.values
        },
    }


CSV_COLUMNS = ("group", "measure", "unit", "numerator", "denominator", "value", "log_position", "log_head_hash")


def report_csv(report: MeasuresReport) -> str:
    """One row per group and measure, each with the log position and hash it was computed at."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for group in report.measures.groups:
        for v in group.values:
            value = "" if v.value is None else v.value
            row = (group.label, v.name, v.definition.unit.value, v.numerator, v.denominator, value)
            writer.writerow((*row, report.position, report.head_hash))
    return out.getvalue()


def fhir_measure_report(report: MeasuresReport) -> dict[str, Any]:
    """A FHIR R4 `MeasureReport` (type `summary`): one group per measure, the whole as the group's score and
    populations, each grouping's values as strata."""
    measures = report.measures
    groups = []
    for number, definition in enumerate(MEASURES):
        total = measures.total.values[number]
        group: dict[str, Any] = {
            "code": {"coding": [{"system": MEASURE_CODES, "code": definition.name}], "text": definition.title},
            **_scored(total.numerator, total.denominator, total.value, definition.unit),
        }
        strata = [
            {
                "value": {"text": g.label},
                **_scored(
                    g.values[number].numerator, g.values[number].denominator, g.values[number].value, definition.unit
                ),
            }
            for g in measures.groups[1:]
        ]
        if strata:
            group["stratifier"] = [{"code": [{"text": ", ".join(g.value for g in measures.by)}], "stratum": strata}]
        groups.append(group)
    extensions: list[dict[str, Any]] = [
        {"url": POSITION_EXTENSION, "valueInteger": report.position},
        {"url": HASH_EXTENSION, "valueString": report.head_hash},
        {"url": DAY_EXTENSION, "valueDecimal": report.day_seconds},
    ]
    extensions += [{"url": POLICY_EXTENSION, "valueString": version} for version in measures.policy_versions]
    body: dict[str, Any] = {
        "resourceType": "MeasureReport",
        "id": f"measures-{report.position}",
        "extension": extensions,
        "status": "complete",
        "type": "summary",
        "measure": f"{MEASURE_BASE}/continuum-outcomes",
        "period": {"start": format_instant(measures.period.start), "end": format_instant(measures.period.end)},
        "group": groups,
    }
    if measures.observed_until is not None:
        body["date"] = format_instant(measures.observed_until)
    return body


def _scored(numerator: float, denominator: float, value: float | None, unit: Unit) -> dict[str, Any]:
    """Populations where they are counts of things (a mean's days or client-weeks are not), and the score."""
    found: dict[str, Any] = {}
    populations = [
        (code, amount)
        for code, amount in (("numerator", numerator), ("denominator", denominator))
        if float(amount).is_integer()
        and not (unit is Unit.DAYS and code == "numerator")
        and not (unit is Unit.PER_100_CLIENT_WEEKS and code == "denominator")
    ]
    if populations:
        found["population"] = [
            {
                "code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-population", "code": c}]},
                "count": int(a),
            }
            for c, a in populations
        ]
    if value is not None:
        found["measureScore"] = {"value": value, "unit": _UNITS[unit]}
    return found
