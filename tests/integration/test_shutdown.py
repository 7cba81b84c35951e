"""Ctrl-C and SIGTERM stop `continuum up` and `continuum worker` with requests in flight: the embedded servers
stop too, the requests still waiting are answered 503, and nothing on stderr shows a secret or a traceback.

The `wait(timeout=...)` bounds are hang guards, not timing assertions."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from continuum.api.commands import key_digest
from tests.integration.episodes import free_port

pytestmark = pytest.mark.integration
HANG_GUARD_SECONDS = 60


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    data_dir: Path
    env: dict[str, str]
    url: str
    key: tuple[str, str] = ("", "")  # key id and secret, once created

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key[1]}", "Content-Type": "application/json"}

    @property
    def stderr(self) -> str:
        return (self.data_dir / "stderr.log").read_text(errors="replace")

    def output(self) -> str:
        return (self.data_dir / "stdout.log").read_text(errors="replace")

    def send(self, sig: signal.Signals) -> None:
        """SIGINT as a terminal's Ctrl-C sends it (to the whole foreground group), SIGTERM as a supervisor does."""
        if sig is signal.SIGINT:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)

    def servers(self) -> list[psutil.Process]:
        """The embedded Temporal and PostgreSQL: every process whose command line names the data directory
        (PostgreSQL is daemonised, and Temporal outlives a parent that died), and any child."""
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        named = [p for p in psutil.process_iter(["cmdline"]) if str(self.data_dir) in " ".join(p.info["cmdline"] or [])]
        return list({p.pid: p for p in children + named}.values())


def _start(command: str, tmp_path: Path, ready: str) -> Running:
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"TEMPORAL_ADDRESS", "DATABASE_URL"}}
    env.update(
        {
            "CONTINUUM_DATA_DIR": str(tmp_path),
            "CONTINUUM_TEMPORAL_PORT": str(free_port()),
            "CONTINUUM_TEMPORAL_UI_PORT": str(free_port()),
            "CONTINUUM_API_PORT": str(api_port),
            "CONTINUUM_LOG_FORMAT": "console",
        }
    )  # the console renderer is the one that showed locals
    with open(tmp_path / "stdout.log", "wb") as out, open(tmp_path / "stderr.log", "wb") as err:
        # A process group of its own, like a terminal's foreground job: Ctrl-C reaches the whole group.
        process = subprocess.Popen(
            [sys.executable, "-m", "continuum.cli", command], env=env, stdout=out, stderr=err, start_new_session=True
        )
    running = Running(process, tmp_path, env, f"http://127.0.0.1:{api_port}")
    for _ in range(1200):  # a bounded wait for the servers to start
        if ready in running.output() + running.stderr:
            return running
        assert process.poll() is None, running.stderr[-3000:]
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"never ready: {running.stderr[-3000:]}")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Outside pytest's own temporary folder: pytest makes that 0700 again whenever a session starts, and the
    embedded PostgreSQL (run as its own user under root) must traverse every folder above its data."""
    path = Path(tempfile.mkdtemp(prefix="continuum-shutdown-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def stopped_at_the_end() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for running in started:  # only if a test failed midway
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()
        for server in running.servers():
            server.kill()


def _key(running: Running) -> tuple[str, str]:
    created = subprocess.run(
        [sys.executable, "-m", "continuum.cli", "keys", "create", "--role", "clinician", "--name", "ehr-1", "--json"],
        env=running.env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
        check=True,
    )
    key = json.loads(created.stdout)
    return key["key_id"], key["secret"]


def _claim_as_if_running(running: Running, key_id: str, idempotency_key: str, body: bytes) -> None:
    """A pending claim for this very request, as if the same request were running: the request then waits."""
    lines = (running.data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()
    request_hash = hashlib.sha256(b"POST/api/v1/episodes" + body).digest()
    with psycopg.connect(host=lines[4], port=lines[3], dbname="continuum", user="postgres", autocommit=True) as conn:
        conn.execute(
            "INSERT INTO api_idempotency (key_id, idempotency_key, request_hash, claim, claimed_at)"
            " VALUES (%s, %s, %s, %s, now())",
            (key_id, key_digest(idempotency_key), request_hash, uuid.uuid4()),  # the key is kept as its digest
        )


async def _healthy(url: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(600):
            try:
                if (await http.get(f"{url}/healthz", timeout=2)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the API never became healthy")


def _assert_gone_quietly(running: Running, servers: list[psutil.Process], secret: str | None) -> None:
    gone, alive = psutil.wait_procs(servers, timeout=HANG_GUARD_SECONDS)
    assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == [], "an embedded server outlived the stop"
    assert len(servers) >= 2  # Temporal and PostgreSQL were both there to stop
    stderr = running.stderr
    assert "Traceback" not in stderr and "locals" not in stderr, stderr[-3000:]
    assert secret is None or (secret not in stderr and secret not in running.output())
    assert "Bearer" not in stderr


async def _waiting_request(running: Running, http: httpx.AsyncClient) -> asyncio.Task[httpx.Response]:
    """A request that stays in flight: the same request holds its Idempotency-Key, so it waits for an answer."""
    key_id, _ = running.key
    body = json.dumps({"episode_id": "EP-waiting", "client_id": "client-1"}).encode()
    _claim_as_if_running(running, key_id, "waiting-1", body)
    return asyncio.create_task(http.post("/api/v1/episodes", content=body, headers={"Idempotency-Key": "waiting-1"}))


@pytest.mark.parametrize(("command", "stop_signal"), [("up", signal.SIGTERM), ("demo", signal.SIGINT)])
async def test_a_signal_stops_the_service_with_requests_in_flight(
    command: str, stop_signal: signal.Signals, data_dir: Path, stopped_at_the_end: list[Running]
) -> None:
    running = _start(command, data_dir, ready="Press Ctrl-C")
    stopped_at_the_end.append(running)
    await _healthy(running.url)
    running.key = _key(running)
    servers = running.servers()

    async with httpx.AsyncClient(base_url=running.url, headers=running.headers, timeout=HANG_GUARD_SECONDS) as http:
        waiting = await _waiting_request(running, http)
        burst = [
            asyncio.create_task(
                http.post("/api/v1/episodes", json={"episode_id": f"EP-{n}", "client_id": f"client-{n}"})
            )
            for n in range(30)
        ]
        await asyncio.wait(burst, return_when=asyncio.FIRST_COMPLETED)  # the API is at work
        running.send(stop_signal)
        code = await asyncio.to_thread(running.process.wait, HANG_GUARD_SECONDS)
        answers = await asyncio.gather(waiting, *burst, return_exceptions=True)

    assert code == 0, running.stderr[-3000:]
    assert isinstance(answers[0], httpx.Response), answers[0]
    assert answers[0].status_code == 503 and answers[0].headers["Retry-After"] == "5"
    statuses = [a.status_code if isinstance(a, httpx.Response) else type(a).__name__ for a in answers[1:]]
    assert all(s in (201, 503) or isinstance(s, str) for s in statuses), statuses  # never a 500
    assert 201 in statuses
    _assert_gone_quietly(running, servers, running.key[1])


async def test_a_second_ctrl_c_forces_the_stop_and_the_servers_still_stop(
    data_dir: Path, stopped_at_the_end: list[Running]
) -> None:
    running = _start("up", data_dir, ready="Press Ctrl-C")
    stopped_at_the_end.append(running)
    await _healthy(running.url)
    running.key = _key(running)
    servers = running.servers()

    async with httpx.AsyncClient(base_url=running.url, headers=running.headers, timeout=HANG_GUARD_SECONDS) as http:
        waiting = await _waiting_request(running, http)  # keeps the orderly stop busy for the API's grace period
        await _healthy(running.url)
        running.send(signal.SIGINT)
        for _ in range(300):  # a bounded wait for the first stop to begin
            if "Stopping (press Ctrl-C again to force)" in running.stderr:
                break
            await asyncio.sleep(0.05)
        running.send(signal.SIGINT)
        code = await asyncio.to_thread(running.process.wait, HANG_GUARD_SECONDS)
        await asyncio.gather(waiting, return_exceptions=True)

    assert code == 130 and "continuum: stopping now (a second signal)" in running.stderr, running.stderr[-3000:]
    _assert_gone_quietly(running, servers, running.key[1])


async def test_sigterm_stops_the_worker_and_its_servers(data_dir: Path, stopped_at_the_end: list[Running]) -> None:
    running = _start("worker", data_dir, ready="worker.started")
    stopped_at_the_end.append(running)
    servers = running.servers()

    running.send(signal.SIGTERM)
    code = await asyncio.to_thread(running.process.wait, HANG_GUARD_SECONDS)

    assert code == 0, running.stderr[-3000:]
    _assert_gone_quietly(running, servers, None)


async def test_sigterm_while_the_servers_start_stops_what_has_started(
    data_dir: Path, stopped_at_the_end: list[Running]
) -> None:
    running = _start("up", data_dir, ready="postgres.ready")  # Temporal, the migrations, the API: all still to come
    stopped_at_the_end.append(running)
    servers = running.servers()

    running.send(signal.SIGTERM)
    code = await asyncio.to_thread(running.process.wait, HANG_GUARD_SECONDS)

    assert code == 0, running.stderr[-3000:]
    gone, alive = psutil.wait_procs(servers + running.servers(), timeout=HANG_GUARD_SECONDS)
    assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
    assert "Traceback" not in running.stderr
