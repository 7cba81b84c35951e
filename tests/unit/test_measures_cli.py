"""`continuum measures` refuses a bad option in one line, exit 2, before it opens the database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--from", "2026-02-30"], "continuum: --from: '2026-02-30' is not a date (YYYY-MM-DD)"),
        (["--from", "2026-02-01", "--to", "2026-01-01"], "continuum: --to: the period ends (2026-01-01) before it"),
        (["--by", "ward"], "continuum: --by: 'ward' is not a grouping (one or more of: level, cohort, facility)"),
        (["--csv", "--json"], "continuum: --csv and --json: choose one"),
        (["--check", "ab"], "continuum: --check: give the report's position with --at"),
        (["--at", "-1"], "invalid value for '--at'"),
    ],
    ids=["bad-date", "backwards", "unknown-grouping", "two-formats", "check-without-at", "negative-at"],
)
def test_a_bad_option_is_one_line_and_exit_2(args: list[str], says: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"TEMPORAL_ADDRESS", "DATABASE_URL"}}
    env["CONTINUUM_DATA_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "continuum.cli", "measures", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert not (tmp_path / "pgdata").exists()  # refused before anything started
