"""On a terminal a person sees warnings, not the log: the full structured log goes to a file under the data
directory. Piped (a service manager, a test), or with CONTINUUM_LOG_FORMAT set, every line goes to stderr."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

LOGGING = """
import logging, structlog
from continuum.runtime.logs import configure_logging, log_file
from continuum.runtime.settings import Settings
configure_logging(Settings.from_env())
structlog.get_logger("continuum.runtime.servers").info("postgres.ready", port=5432)
logging.getLogger("uvicorn.access").info('127.0.0.1:1 - "GET /api/v1/census HTTP/1.1" 200')
logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1/api/v1/census")
structlog.get_logger("continuum.demo").warning("demo.slow", behind_days=3)
print("log file", log_file())
"""


def _run(data_dir: Path, *, terminal: bool, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUUM_LOG")}
    environment.update({"CONTINUUM_DATA_DIR": str(data_dir), **env})
    if not terminal:
        result = subprocess.run([sys.executable, "-c", LOGGING], env=environment, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout + result.stderr
    leader, follower = pty.openpty()
    try:
        process = subprocess.run(
            [sys.executable, "-c", LOGGING], env=environment, stdout=follower, stderr=follower, timeout=60
        )
    finally:
        os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end is closed: everything is read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.returncode == 0
    return b"".join(chunks).decode()


def test_a_terminal_shows_warnings_and_the_file_keeps_everything(tmp_path: Path) -> None:
    shown = _run(tmp_path, terminal=True)

    assert "demo.slow" in shown
    assert "postgres.ready" not in shown and "GET /api/v1/census" not in shown
    written = [json.loads(line) for line in (tmp_path / "logs" / "continuum.log").read_text().splitlines()]
    assert [line["event"] for line in written][:1] == ["postgres.ready"] and written[0]["port"] == 5432
    assert sum("/api/v1/census" in line["event"] for line in written) == 1  # one line per request, not httpx's too
    assert "demo.slow" in {line["event"] for line in written}
    assert f"log file {tmp_path / 'logs' / 'continuum.log'}" in shown


def test_piped_every_line_goes_to_stderr_as_json(tmp_path: Path) -> None:
    shown = _run(tmp_path, terminal=False)

    events = [json.loads(line)["event"] for line in shown.splitlines() if line.startswith("{")]
    assert events[0] == "postgres.ready" and "demo.slow" in events
    assert not (tmp_path / "logs").exists()


def test_a_log_format_asked_for_shows_every_line_on_the_terminal(tmp_path: Path) -> None:
    shown = _run(tmp_path, terminal=True, CONTINUUM_LOG_FORMAT="console")

    assert "postgres.ready" in shown and "demo.slow" in shown
    assert not (tmp_path / "logs").exists()
