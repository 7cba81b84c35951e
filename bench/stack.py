"""The embedded stack for benchmarks: Temporal dev server and PostgreSQL in a temporary directory (on ports
of their own, so a running `continuum up` is left alone), and `continuum` processes started against them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from continuum.bootstrap import build_store, connect
from continuum.eventlog.store import PostgresEventStore
from continuum.runtime.servers import EmbeddedPostgres, Endpoints, running_servers
from continuum.runtime.settings import Settings
from continuum.workflows.search_attributes import SEARCH_ATTRIBUTES


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class BenchStack:
    data_dir: Path
    temporal_address: str
    database_url: str
    settings: Settings

    async def client(self) -> Client:
        """A Temporal client, connected as the service connects (through bootstrap)."""
        return await connect(self.settings, Endpoints(self.temporal_address, self.database_url, None))

    def store(self) -> PostgresEventStore:
        """The event store, migrated and opened as the service opens it (through bootstrap)."""
        return build_store(self.database_url, self.settings)

    def env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "DATABASE_URL", "CONTINUUM_"))}
        self.settings.key_ring()  # the stack's payload key file exists before a process of it reads it
        return {
            **base,
            "TEMPORAL_ADDRESS": self.temporal_address,
            "DATABASE_URL": self.database_url,
            "CONTINUUM_DATA_DIR": str(self.data_dir),
            "CONTINUUM_PAYLOAD_KEYS_FILE": str(self.data_dir / "payload-keys"),
            "CONTINUUM_LOG_FORMAT": "json",
            "CONTINUUM_LOG_LEVEL": "WARNING",
            **extra,
        }

    @contextlib.contextmanager
    def process(
        self, *args: str, ready: str, log: list[str] | None = None, **extra: str
    ) -> Iterator[subprocess.Popen[str]]:
        """`continuum ARGS` as a process of its own; yields once a log line contains `ready`. Its log lines
        are kept in `log` if one is given."""
        env = self.env(**extra, CONTINUUM_LOG_LEVEL="INFO")
        process = subprocess.Popen(
            [sys.executable, "-m", "continuum.cli", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        kept = log if log is not None else []
        for line in process.stdout:
            if log is not None:
                kept.append(line)
            if ready in line:
                break
        else:
            raise RuntimeError(f"continuum {' '.join(args)} exited before it was ready")
        keep = kept.append if log is not None else (lambda _: None)
        drain = threading.Thread(target=lambda: [keep(line) for line in process.stdout], daemon=True)  # type: ignore[union-attr]
        drain.start()  # keep reading its log, or it blocks on a full pipe
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def bench_stack() -> Iterator[BenchStack]:
    with tempfile.TemporaryDirectory(prefix="continuum-bench-") as tmp:
        settings = Settings(
            data_dir=Path(tmp), embedded_temporal_port=free_port(), embedded_temporal_ui_port=free_port()
        )
        with running_servers(settings, SEARCH_ATTRIBUTES) as endpoints:
            yield BenchStack(Path(tmp), endpoints.temporal_address, endpoints.database_url, settings)


@contextlib.contextmanager
def embedded_postgres() -> Iterator[str]:
    """Only PostgreSQL, in a temporary directory; yields its URL."""
    with tempfile.TemporaryDirectory(prefix="continuum-bench-") as tmp:
        server = EmbeddedPostgres(Path(tmp))
        url = server.start()
        try:
            yield url
        finally:
            server.stop()


def publish(path: Path, report: dict[str, Any]) -> None:
    """Write a benchmark's JSON result and show it."""
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"written: {path}")


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def healthy(base_url: str) -> None:
    """Wait until the API at `base_url` answers /healthz with 200 (30 s at most)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as api:
        for _ in range(300):
            try:
                if (await api.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the API never answered")


def negative_result(test: str) -> tuple[dict[str, str], str]:
    """A lab's negative result for `test`, and the Idempotency-Key a lab would send it with."""
    body = {
        "result": "negative",
        "method": "confirmed",
        "collected_at": datetime.now(UTC).isoformat(),
        "lab_reference": f"L-{test}",
    }
    return body, f"result-{test}"
