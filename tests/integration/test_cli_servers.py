"""The `continuum` command as a person meets it: embedded servers, and one clear line when one is missing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.integration.episodes import free_port

pytestmark = pytest.mark.integration


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"TEMPORAL_ADDRESS", "DATABASE_URL"}}
    env.update({"CONTINUUM_LOG_FORMAT": "json", **overrides})
    return env


def _continuum(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "continuum.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_an_unreachable_temporal_is_one_line_naming_the_address(database_url: str, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = _continuum(
        "worker",
        env=_env(TEMPORAL_ADDRESS=f"127.0.0.1:{port}", DATABASE_URL=database_url, CONTINUUM_DATA_DIR=str(tmp_path)),
    )

    assert result.returncode == 3
    assert f"continuum: cannot reach Temporal at 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_an_unreachable_postgresql_is_one_line_naming_the_address(tmp_path: Path) -> None:
    port = free_port()
    result = _continuum(
        "migrate",
        env=_env(
            DATABASE_URL=f"postgresql+psycopg://continuum@127.0.0.1:{port}/continuum", CONTINUUM_DATA_DIR=str(tmp_path)
        ),
    )

    assert result.returncode == 3
    assert f"continuum: cannot reach PostgreSQL at 127.0.0.1:{port}/continuum" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_an_api_port_in_use_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _continuum("up", "--port", str(port), env=_env(CONTINUUM_DATA_DIR=str(tmp_path)))

    assert result.returncode == 3
    assert f"continuum: the API cannot listen on 127.0.0.1:{port} (Address already in use)" in result.stderr
    assert not (tmp_path / "pgdata").exists() and "Traceback" not in result.stderr


def test_a_malformed_setting_is_named(tmp_path: Path) -> None:
    result = _continuum("migrate", env=_env(CONTINUUM_LOG_FORMAT="xml", CONTINUUM_DATA_DIR=str(tmp_path)))

    assert result.returncode == 3
    assert "CONTINUUM_LOG_FORMAT must be one of auto, json, console, not 'xml'" in result.stderr


def test_a_malformed_policy_file_is_named_before_anything_starts(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        (Path(__file__).resolve().parents[2] / "domain" / "policy.toml")
        .read_text()
        .replace('outpatient = "aftercare"', 'outpatient = "nowhere"')
    )
    result = _continuum("worker", env=_env(CONTINUUM_POLICY_FILE=str(policy), CONTINUUM_DATA_DIR=str(tmp_path)))

    assert result.returncode == 3
    assert "continuum: policy key step_down.outpatient: 'nowhere' is not one of" in result.stderr
    assert not (tmp_path / "pgdata").exists()


def test_up_starts_the_embedded_servers_registers_attributes_and_stops_cleanly(
    tmp_path: Path, temporal_path: Path
) -> None:
    port, ui_port = free_port(), free_port()
    env = _env(
        CONTINUUM_DATA_DIR=str(tmp_path),
        CONTINUUM_TEMPORAL_PORT=str(port),
        CONTINUUM_TEMPORAL_UI_PORT=str(ui_port),
        CONTINUUM_API_PORT=str(free_port()),  # not the default 8000, which another run may hold
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "continuum.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        assert f"Temporal      127.0.0.1:{port} (namespace default)\n" in lines
        assert f"Temporal UI   http://127.0.0.1:{ui_port}\n" in lines
        listed = subprocess.run(
            [str(temporal_path), "operator", "search-attribute", "list", "--address", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert "ContinuumLevel" in listed and "ContinuumStatus" in listed
        children = psutil.Process(process.pid).children(recursive=True)
        assert (tmp_path / "temporal.db").exists() and (tmp_path / "pgdata" / "PG_VERSION").exists()
        # A process that once used this server and died without leaving (SIGKILL) must not keep it running.
        users = tmp_path / "pgdata" / ".handle_pids.json"
        dead = subprocess.Popen(["true"])
        dead.wait()
        users.write_text(json.dumps([*json.loads(users.read_text()), dead.pid]))
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    time.sleep(0.5)
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children)
    pg_running = [
        p for p in psutil.process_iter(["cmdline"]) if str(tmp_path / "pgdata") in " ".join(p.info["cmdline"] or [])
    ]
    assert pg_running == []


def test_the_demo_drives_a_cohort_through_the_api_and_reports_a_verified_log(tmp_path: Path) -> None:
    env = _env(
        CONTINUUM_DATA_DIR=str(tmp_path),
        CONTINUUM_TEMPORAL_PORT=str(free_port()),
        CONTINUUM_TEMPORAL_UI_PORT=str(free_port()),
        CONTINUUM_API_PORT=str(free_port()),
    )
    result = _continuum(
        "demo",
        "--clients",
        "6",
        "--days",
        "12",
        "--day-seconds",
        "0.3",
        "--positive-rate",
        "0.3",
        "--exit",
        env=env,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert "Cohort: 6 episodes opened" in result.stdout
    assert "chain intact" in result.stdout and "results reported:" in result.stdout
    assert "Traceback" not in result.stderr
