"""Settings, read once from the environment at the edge of each process and passed inward."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from temporalio.service import TLSConfig

    from continuum.domain.facilities import Facilities, FacilityProgram
    from continuum.runtime.codec import KeyRing


class LogFormat(StrEnum):
    AUTO = "auto"  # console on a terminal, JSON otherwise
    JSON = "json"
    CONSOLE = "console"


class SettingsError(ValueError):
    """An environment variable holds a value Continuum cannot use."""


def _http_url(name: str, value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise SettingsError(f"{name} must be an http:// or https:// URL, not {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything a process needs to know about where it runs. `None` addresses mean "embedded"."""

    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_task_queue: str = "continuum"
    database_url: str | None = None
    database_role: str | None = "continuum_app"
    migrate_at_start: bool = True  # False: the schema must already be at head (`continuum migrate`, as its owner)
    data_dir: Path = Path(".continuum")
    log_format: LogFormat = LogFormat.AUTO
    log_level: str = "INFO"
    embedded_temporal_port: int = 7233
    embedded_temporal_ui_port: int = 8233
    policy_file: Path | None = None  # a program's own care-pathway policy; the default one if None
    day_seconds: float = 86400.0  # the length of a care-clock day for new episodes (demos compress it)
    lab_order_url: str | None = None  # where test orders are POSTed; None: orders are only recorded
    lab_id: str = "lab-1"  # the lab those orders go to; only a key for this lab may report their results
    directory_file: Path | None = None  # a program's own resource directory for referrals; the default one if None
    facilities_file: Path | None = None  # the operator's facilities (a section each); None: one, `main`, every level
    follow_up_url: str | None = None  # where follow-up requests are POSTed (an outreach service); None: recorded only
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    workflow_cache: int = (
        3000  # episodes a worker keeps in memory (about 350 KiB each); the rest replay on their next task
    )
    workflow_tasks: int = 8  # workflow tasks a worker takes at once (see worker.py)
    payload_keys: str | None = None  # `<id>:<base64 key>` lines (first encrypts); see runtime/codec.py
    payload_keys_file: Path | None = None  # a file of such lines; neither set: a key file in data_dir
    temporal_tls_cert: Path | None = None  # mTLS to the Temporal frontend: the client certificate (PEM)
    temporal_tls_key: Path | None = None  # ... its private key (PEM)
    temporal_tls_ca: Path | None = None  # ... the CA that signed the server's certificate (PEM; system roots if None)
    temporal_tls_server_name: str | None = None  # ... the name to expect in it (the address's host if None)
    checkpoint_key_file: Path | None = None  # the Ed25519 key that signs checkpoints; None: one in data_dir
    checkpoint_file: Path | None = None  # the append-only file of signed checkpoints; None: one in data_dir

    @property
    def embedded_temporal(self) -> bool:
        return self.temporal_address is None

    @property
    def embedded_postgres(self) -> bool:
        return self.database_url is None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (documented in README.md, "Configuration")."""
        env = os.environ if env is None else env

        def text(name: str, default: str | None) -> str | None:
            value = env.get(name, "").strip()
            return value or default

        def port(name: str, default: int) -> int:
            raw = text(name, str(default))
            assert raw is not None
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise SettingsError(f"{name} must be a TCP port number (1-65535), not {raw!r}")
            return int(raw)

        def count(name: str, default: int) -> int:
            raw = text(name, str(default))
            assert raw is not None
            if not raw.isdigit() or int(raw) < 1:
                raise SettingsError(f"{name} must be a whole number above 0, not {raw!r}")
            return int(raw)

        log_format = text("CONTINUUM_LOG_FORMAT", "auto") or "auto"
        try:
            fmt = LogFormat(log_format)
        except ValueError:
            allowed = ", ".join(f.value for f in LogFormat)
            raise SettingsError(f"CONTINUUM_LOG_FORMAT must be one of {allowed}, not {log_format!r}") from None
        level = (text("CONTINUUM_LOG_LEVEL", "INFO") or "INFO").upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise SettingsError(f"CONTINUUM_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {level!r}")
        day = text("CONTINUUM_DAY_SECONDS", "86400") or "86400"
        try:
            day_seconds = float(day)
        except ValueError:
            day_seconds = -1.0
        if not 0 < day_seconds <= 86400 * 7:
            raise SettingsError(f"CONTINUUM_DAY_SECONDS must be a number of seconds above 0, not {day!r}")
        policy = text("CONTINUUM_POLICY_FILE", None)
        directory = text("CONTINUUM_DIRECTORY_FILE", None)
        role = env.get("CONTINUUM_DATABASE_ROLE")
        migrate = text("CONTINUUM_MIGRATE", "at_start")
        if migrate not in {"at_start", "never"}:
            raise SettingsError(f"CONTINUUM_MIGRATE must be at_start or never, not {migrate!r}")
        keys_file = text("CONTINUUM_PAYLOAD_KEYS_FILE", None)

        def path(name: str) -> Path | None:
            value = text(name, None)
            return Path(value).expanduser().resolve() if value else None

        tls_cert, tls_key = path("TEMPORAL_TLS_CERT"), path("TEMPORAL_TLS_KEY")
        if (tls_cert is None) != (tls_key is None):
            raise SettingsError("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together (mTLS needs both)")
        return cls(
            temporal_address=text("TEMPORAL_ADDRESS", None),
            temporal_namespace=text("TEMPORAL_NAMESPACE", "default") or "default",
            temporal_task_queue=text("TEMPORAL_TASK_QUEUE", "continuum") or "continuum",
            database_url=text("DATABASE_URL", None),
            database_role="continuum_app" if role is None else (role.strip() or None),
            migrate_at_start=migrate == "at_start",
            data_dir=Path(text("CONTINUUM_DATA_DIR", ".continuum") or ".continuum").expanduser().resolve(),
            log_format=fmt,
            log_level=level,
            embedded_temporal_port=port("CONTINUUM_TEMPORAL_PORT", 7233),
            embedded_temporal_ui_port=port("CONTINUUM_TEMPORAL_UI_PORT", 8233),
            policy_file=Path(policy).expanduser().resolve() if policy else None,
            day_seconds=day_seconds,
            lab_order_url=_http_url("CONTINUUM_LAB_ORDER_URL", text("CONTINUUM_LAB_ORDER_URL", None)),
            lab_id=text("CONTINUUM_LAB_ID", "lab-1") or "lab-1",
            directory_file=Path(directory).expanduser().resolve() if directory else None,
            facilities_file=path("CONTINUUM_FACILITIES_FILE"),
            follow_up_url=_http_url("CONTINUUM_FOLLOW_UP_URL", text("CONTINUUM_FOLLOW_UP_URL", None)),
            api_host=text("CONTINUUM_API_HOST", "127.0.0.1") or "127.0.0.1",
            api_port=port("CONTINUUM_API_PORT", 8000),
            workflow_cache=count("CONTINUUM_WORKFLOW_CACHE", 3000),
            workflow_tasks=count("CONTINUUM_WORKFLOW_TASKS", 8),
            payload_keys=text("CONTINUUM_PAYLOAD_KEYS", None),
            payload_keys_file=Path(keys_file).expanduser().resolve() if keys_file else None,
            temporal_tls_cert=tls_cert,
            temporal_tls_key=tls_key,
            temporal_tls_ca=path("TEMPORAL_TLS_CA"),
            temporal_tls_server_name=text("TEMPORAL_TLS_SERVER_NAME", None),
            checkpoint_key_file=path("CONTINUUM_CHECKPOINT_KEY_FILE"),
            checkpoint_file=path("CONTINUUM_CHECKPOINT_FILE"),
        )

    def key_ring(self) -> KeyRing:
        """The payload keys (runtime/codec.py); a malformed key names where it came from."""
        from continuum.runtime.codec import PayloadKeyError, load_key_ring

        if not self.embedded_temporal and not (self.payload_keys or self.payload_keys_file):
            # A key file of each process's own would leave every worker unable to read the others' payloads.
            raise SettingsError(
                "with TEMPORAL_ADDRESS set, every process needs the same payload keys:"
                " set CONTINUUM_PAYLOAD_KEYS or CONTINUUM_PAYLOAD_KEYS_FILE (README, Confidentiality)"
            )
        try:
            return load_key_ring(self.payload_keys, self.payload_keys_file, self.data_dir)
        except PayloadKeyError as error:
            raise SettingsError(str(error)) from None

    def temporal_tls(self) -> TLSConfig | bool:
        """The TLS configuration of the Temporal connection: mTLS when a certificate is set, else plain."""
        from temporalio.service import TLSConfig

        if self.temporal_tls_cert is None and self.temporal_tls_ca is None:
            return False

        def read(name: str, file: Path | None) -> bytes | None:
            try:
                return file.read_bytes() if file is not None else None
            except OSError as error:
                raise SettingsError(f"{name} {file} cannot be read: {error.strerror}") from None

        return TLSConfig(
            server_root_ca_cert=read("TEMPORAL_TLS_CA", self.temporal_tls_ca),
            client_cert=read("TEMPORAL_TLS_CERT", self.temporal_tls_cert),
            client_private_key=read("TEMPORAL_TLS_KEY", self.temporal_tls_key),
            domain=self.temporal_tls_server_name,
        )

    def directory_text(self) -> str:
        """The resource directory's text (the packaged default if none is configured)."""
        from continuum.domain.directory import default_directory_text

        if self.directory_file is None:
            return default_directory_text()
        try:
            return self.directory_file.read_text(encoding="utf-8")
        except OSError as error:
            raise SettingsError(
                f"CONTINUUM_DIRECTORY_FILE {self.directory_file} cannot be read: {error.strerror}"
            ) from None

    def facilities(self) -> Facilities:
        """The facilities file, validated (FacilityError names the facility and the key); one `main` if unset."""
        from continuum.domain.facilities import load_facilities

        if self.facilities_file is None:
            return load_facilities(None)
        return load_facilities(self._read("CONTINUUM_FACILITIES_FILE", self.facilities_file))

    def facility_programs(self) -> dict[str, FacilityProgram]:
        """Each facility's policy, resource directory and lab (the program's where it names none), every policy
        validated here: an error names the facility and the key."""
        from continuum.domain.errors import FacilityError, PolicyError
        from continuum.domain.facilities import FacilityProgram
        from continuum.domain.policy import load_policy

        programs: dict[str, FacilityProgram] = {}
        base = self.facilities_file.parent if self.facilities_file is not None else Path.cwd()
        for facility in self.facilities().by_id.values():
            where = f"facility {facility.facility_id}"
            policy = (
                self._read(f"{where}: policy", base / facility.policy_file)
                if facility.policy_file
                else self.policy_text()
            )
            directory = (
                self._read(f"{where}: directory", base / facility.directory_file)
                if facility.directory_file
                else self.directory_text()
            )
            try:
                load_policy(policy, directory)
            except PolicyError as error:
                raise FacilityError(f"{where}: {error}") from None
            programs[facility.facility_id] = FacilityProgram(
                facility, policy, directory, facility.lab_id or self.lab_id
            )
        return programs

    def _read(self, name: str, file: Path) -> str:
        try:
            return file.read_text(encoding="utf-8")
        except OSError as error:
            raise SettingsError(f"{name} {file} cannot be read: {error.strerror}") from None

    def policy_text(self) -> str:
        """The policy file's text (the packaged default if none is configured)."""
        from continuum.domain.policy import default_policy_text

        if self.policy_file is None:
            return default_policy_text()
        try:
            return self.policy_file.read_text(encoding="utf-8")
        except OSError as error:
            raise SettingsError(f"CONTINUUM_POLICY_FILE {self.policy_file} cannot be read: {error.strerror}") from None


def load_settings() -> Settings:
    """A process's settings, read once from the environment at its edge, with logging configured by them."""
    from continuum.runtime.logs import configure_logging  # logs depends on this module, not the other way round

    settings = Settings.from_env()
    configure_logging(settings)
    return settings
