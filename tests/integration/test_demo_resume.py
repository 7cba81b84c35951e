"""`continuum demo` as a person runs it: the simulated clinic keeps working after the summary, and Ctrl-C then a
second run on the same data takes up the same cohort, prints its summary and keeps working."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.integration.episodes import free_port

pytestmark = pytest.mark.integration

CLIENTS = 5
DEMO = ["demo", "--clients", str(CLIENTS), "--days", "20", "--day-seconds", "0.2", "--positive-rate", "0.2"]
SUMMARY_GUARD = 240.0  # hang guards only: a resumed run replays every episode's history before it answers
PROGRESS_GUARD = 120.0
STOP_GUARD = 60.0


class DemoProcess:
    """`continuum demo` in a subprocess; its stdout read line by line in a thread, its logs kept in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "continuum.cli", *DEMO], env=env, stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        self.lines: list[str] = []
        self._incoming: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._incoming.put(line.rstrip("\n"))
        self._incoming.put(None)

    def wait_for_line(self, start: str, guard: float) -> list[str]:
        """Every line up to the first that starts with `start` (the guard only stops a hung demo)."""
        deadline = time.monotonic() + guard
        while not any(line.startswith(start) for line in self.lines):
            try:
                line = self._incoming.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                pytest.fail(f"no line {start!r} within {guard:.0f} s; output so far:\n" + "\n".join(self.lines))
            if line is None:
                pytest.fail(f"the demo ended (exit {self.process.wait()}) before {start!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
        return self.lines

    def interrupt(self) -> int | None:
        """Ctrl-C, as a person stops it; the exit code, or None if it did not stop within the guard."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=STOP_GUARD)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture
def demo_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "DATABASE_URL", "CONTINUUM_"))}
    env |= {
        "CONTINUUM_DATA_DIR": str(tmp_path / "data"),
        "CONTINUUM_TEMPORAL_PORT": str(free_port()),
        "CONTINUUM_TEMPORAL_UI_PORT": str(free_port()),
        "CONTINUUM_API_PORT": str(free_port()),
        "CONTINUUM_LOG_FORMAT": "json",
    }
    yield env
    # A demo that did not stop leaves its embedded servers behind: end the ones serving this test's data.
    for process in psutil.process_iter(["cmdline"]):
        if env["CONTINUUM_DATA_DIR"] in " ".join(process.info["cmdline"] or []):
            process.kill()


def _director_key(env: dict[str, str]) -> str:
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "continuum.cli",
            "keys",
            "create",
            "--role",
            "director",
            "--name",
            "test-director",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return str(json.loads(created.stdout)["secret"])


def _cohort(api: httpx.Client) -> dict[str, dict[str, Any]]:
    """Every demo episode's state, from the API (the projection)."""
    listing = api.get("/api/v1/episodes", params={"page_size": 200}).json()
    ids = [e["episode_id"] for e in listing["items"] if e["episode_id"].startswith("DEMO-")]
    return {episode: api.get(f"/api/v1/episodes/{episode}").json()["state"] for episode in ids}


def _work_done(cohort: dict[str, dict[str, Any]]) -> int:
    """Results the lab reported and reviews the therapists completed, over the whole cohort."""
    results = sum(1 for s in cohort.values() for t in s["tests"] if t["confirmed"] or t["presumptive"])
    return results + sum(s["reviews_completed"] for s in cohort.values())


def _wait_until(condition: Callable[[], bool], guard: float, what: str) -> None:
    deadline = time.monotonic() + guard
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {guard:.0f} s")
        time.sleep(1)


def test_the_clinic_works_on_after_the_summary_and_a_second_run_takes_up_the_same_cohort(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{demo_env['CONTINUUM_API_PORT']}"
    first = DemoProcess(demo_env, tmp_path / "first.log")
    try:
        out = first.wait_for_line("Still serving", SUMMARY_GUARD)
        assert f"Cohort: {CLIENTS} episodes opened" in out
        key = _director_key(demo_env)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
            at_summary = _cohort(api)
            assert len(at_summary) == CLIENTS
            _wait_until(
                lambda: _work_done(_cohort(api)) > _work_done(at_summary),
                PROGRESS_GUARD,
                "the lab and the therapists record results and reviews after the summary",
            )
        first_stop = first.interrupt()
    finally:
        first.kill()

    second = DemoProcess(demo_env, tmp_path / "second.log")
    try:
        out = second.wait_for_line("Still serving", SUMMARY_GUARD)
        assert f"Cohort: {CLIENTS} episodes, resumed from the record (0 opened now)" in out
        assert any(line.startswith("event log:") and line.endswith("chain intact") for line in out)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as api:
            resumed = _cohort(api)
            assert sorted(resumed) == sorted(at_summary)  # the same episodes, none opened again
            assert all(s["opened_at"] == at_summary[e]["opened_at"] for e, s in resumed.items())
            _wait_until(
                lambda: _work_done(_cohort(api)) > _work_done(resumed),
                PROGRESS_GUARD,
                "the resumed clinic records results and reviews",
            )
        second_stop = second.interrupt()
    finally:
        second.kill()

    logs = (tmp_path / "first.log").read_text() + (tmp_path / "second.log").read_text()
    assert "Traceback" not in logs and "demo.pass_failed" not in logs
    waiting = [json.loads(line)["event"] for line in logs.splitlines() if '"Waiting for' in line]
    assert (first_stop, second_stop) == (0, 0), (
        f"Ctrl-C did not stop the demo cleanly (exit codes {first_stop}, {second_stop}; None: still running), uvicorn: "
        f"{waiting} (a request in flight waits for an update that the stopped worker no longer runs)"
    )
