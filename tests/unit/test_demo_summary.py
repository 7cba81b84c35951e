"""The demo's summary reads as a report: counts in words (no Python reprs), a cut list says what it cut."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from continuum.demo import print_summary

SUMMARY: dict[str, Any] = {
    "episodes": 200,
    "opened": 200,
    "resumed": False,
    "census": {
        "by_level_and_status": [{"level": "residential", "status": "active", "episodes": 120}],
        "by_facility": [
            {"facility": f, "levels": [{"level": "residential", "occupancy": n, "capacity": 24, "waitlisted": w}]}
            for f, n, w in (("nv-reno", 70, 0), ("ca-oakland", 50, 3))
        ],
    },
    "transfers": 4,
    "step_ups": 92,
    "step_up_causes": [(f"cause {n}", 20 - n) for n in range(5)],
    "step_up_cause_kinds": 17,
    "results": {"negative": 900, "positive": 100},
    "reviews_completed": 340,
    "reviews": {"continue": 30, "step_down": 4},
    "discharges": {},
    "referrals": {"accepted": 3, "awaiting_consent": 1},
    "follow_ups": {},
    "consents": 2,
    "authorizations": {"approved": 20, "partially_approved": 4, "denied": 3},
    "extensions": 5,
    "sessions": {"attended in_person": 30, "attended telehealth": 10, "missed unexcused": 2},
    "below_minimum_weeks": 3,
    "unanswered_referrals": 1,
    "overdue_reviews": 0,
    "overdue_plans": 2,
    "plans": 150,
    "missing_results": 4,
    "requests": 5000,
    "errors": {409: 3, 503: 1},
    "unanswered": 0,
    "resting": 0,
}


def test_the_summary_is_a_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log = tmp_path / "logs" / "continuum.log"
    print_summary(SUMMARY, SimpleNamespace(events_checked=12345, ok=True), "http://h:1", "http://h:2", log)
    out = capsys.readouterr().out

    assert "{" not in out and "}" not in out and "[(" not in out  # no dict, list or tuple reprs
    assert "Cohort: 200 episodes opened" in out
    assert "step-ups:         92; top 5 of 17 causes" in out
    assert "results reported: 1000: 900 negative, 100 positive" in out
    assert "review outcomes:  340 recorded (this run: 34: 30 continue, 4 step down)" in out
    assert "discharges:       none" in out and "referrals:        4: 3 accepted, 1 awaiting consent" in out
    assert "sessions:         42: 30 attended in person, 10 attended telehealth, 2 missed unexcused" in out
    assert "attendance:       3 care weeks below their level's minimum (flagged)" in out
    assert "refused requests: 3 answered 409" in out and "failed requests:  1 answered 503" in out
    assert any(line.startswith("event log:") and line.endswith("chain intact") for line in out.splitlines())
    assert f"Full log          {log}" in out
    assert "treatment plans:  150 on record" in out and "unanswered referrals, 2 overdue plans" in out
    assert "By facility (2 centers; transfers this run: 4):" in out
    assert any(line.split() == ["ca-oakland", "residential", "50", "24", "3"] for line in out.splitlines())
    assert "authorizations:   27: 20 approved, 4 partially approved, 3 denied; extensions: 5" in out


def test_an_uncut_list_does_not_say_top(capsys: pytest.CaptureFixture[str]) -> None:
    summary = {**SUMMARY, "step_up_causes": [("a positive result", 2)], "step_up_cause_kinds": 1, "step_ups": 2}
    print_summary(summary, SimpleNamespace(events_checked=1, ok=True), "http://h:1", None)
    out = capsys.readouterr().out

    assert "step-ups:         2: by cause" in out and "top" not in out and "Full log" not in out
