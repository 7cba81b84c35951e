"""`continuum simulate` refuses a bad period or policy in one line, exit 2, before any server starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from continuum.domain.policy import default_policy_text


def _continuum(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"TEMPORAL_ADDRESS", "DATABASE_URL"}}
    env["CONTINUUM_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "continuum.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--from", "2026-13-01"], "continuum: --from: '2026-13-01' is not a date (YYYY-MM-DD)"),
        (["--from", "2026-02-01", "--to", "2026-01-01"], "continuum: --to: 2026-01-01 is before from (2026-02-01)"),
        (["--policy-text", "[oops"], "the policy is not valid TOML"),
        (["--policy-text", "residential = -1"], "policy key stay_minimum_days.residential must be a positive number"),
        (["--missing-policy"], "--policy: "),
    ],
    ids=["bad-from", "to-before-from", "not-toml", "bad-key", "unreadable"],
)
def test_a_bad_simulation_is_one_line_and_exit_2(args: list[str], says: str, tmp_path: Path) -> None:
    policy = tmp_path / "proposed.toml"
    text = default_policy_text()
    if args[0] == "--policy-text":
        text = args[1] if args[1].startswith("[") else text.replace("residential = 30", args[1], 1)
        args = []
    policy.write_text(text)
    if args == ["--missing-policy"]:
        policy, args = tmp_path / "absent.toml", []
    result = _continuum("simulate", "--policy", str(policy), *args, data_dir=tmp_path)

    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "pgdata").exists()  # refused before anything started
