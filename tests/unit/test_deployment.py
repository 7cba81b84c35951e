"""docker-compose.yml and the Dockerfile, checked by reading them (CI has no Docker engine)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from continuum.runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def _settings_variables() -> set[str]:
    source = (ROOT / "runtime" / "settings.py").read_text()
    return set(re.findall(r'"((?:CONTINUUM|TEMPORAL)_[A-Z_]+|DATABASE_URL)"', source))


def test_the_services_follow_temporals_current_pattern() -> None:
    services = _compose()["services"]
    assert set(services) == {
        "postgresql",
        "temporal-schema",
        "temporal",
        "temporal-namespace",
        "temporal-ui",
        "continuum-migrate",
        "continuum-worker",
        "continuum-api",
    }
    assert services["temporal-schema"]["image"].startswith("temporalio/admin-tools:")
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert not any("auto-setup" in str(s.get("image", "")) for s in services.values())  # deprecated
    assert services["temporal"]["depends_on"]["temporal-schema"]["condition"] == "service_completed_successfully"
    assert services["temporal"]["environment"]["DYNAMIC_CONFIG_FILE_PATH"].endswith("production-sql.yaml")
    assert (ROOT / "deploy" / "temporal" / "dynamicconfig" / "production-sql.yaml").exists()
    script = (ROOT / "deploy" / "temporal" / "setup-schema.sh").read_text()
    assert "temporal_visibility" in script and "update-schema" in script


def test_continuum_services_are_wired_to_settings_it_reads() -> None:
    services = _compose()["services"]
    known = _settings_variables()
    for name in ("continuum-migrate", "continuum-worker", "continuum-api"):
        service = services[name]
        assert service["build"] == "."
        unknown = set(service["environment"]) - known
        assert not unknown, f"{name} sets variables Settings never reads: {unknown}"
        assert service["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
        assert service["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://continuum")
    defaults = re.compile(r"\$\{[A-Z_]+:-([^}]*)\}")  # ${NAME:-default}, as compose interpolates it unset
    env = {k: defaults.sub(r"\1", str(v)) for k, v in services["continuum-api"]["environment"].items()}
    settings = Settings.from_env(env)  # the values themselves parse
    assert settings.temporal_namespace == "continuum" and not settings.embedded_postgres
    assert services["continuum-worker"]["deploy"]["replicas"] >= 2
    for name in ("continuum-worker", "continuum-api"):
        assert services[name]["depends_on"]["continuum-migrate"]["condition"] == "service_completed_successfully"
    assert services["continuum-migrate"]["command"] == ["continuum", "migrate"]
    # the worker and the API log in as the role that owns nothing and never migrate; the migrate job is the owner
    for name in ("continuum-worker", "continuum-api"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql+psycopg://continuum_app:"), name
        assert environment["CONTINUUM_MIGRATE"] == "never" and environment["CONTINUUM_DATABASE_ROLE"] == "", name
    migrate = services["continuum-migrate"]["environment"]
    assert (
        migrate["DATABASE_URL"].startswith("postgresql+psycopg://continuum:")
        and migrate["CONTINUUM_MIGRATE"] == "at_start"
    )
    init = (ROOT / "deploy" / "postgres" / "init-continuum.sql").read_text()
    assert "CREATE ROLE continuum_app LOGIN" in init
    # the payload keys come from the operator's environment, never from the repository
    assert services["continuum-api"]["environment"]["CONTINUUM_PAYLOAD_KEYS"].startswith("${CONTINUUM_PAYLOAD_KEYS:?")


def test_ports_and_healthchecks() -> None:
    services = _compose()["services"]
    assert "8000:8000" in services["continuum-api"]["ports"] and "/healthz" in str(
        services["continuum-api"]["healthcheck"]
    )
    # Temporal publishes nothing: its gRPC reads every history and takes updates past the API's roles.
    assert "ports" not in services["temporal"]
    assert services["temporal-ui"]["ports"] == ["127.0.0.1:8080:8080"] and services["temporal-ui"]["profiles"] == [
        "ops"
    ]
    for name, service in services.items():
        assert all("7233" not in str(port) for port in service.get("ports", [])), name
    for name in ("postgresql", "temporal", "continuum-api"):
        assert "healthcheck" in services[name], name
    assert "pgdata" in _compose()["volumes"]


def test_the_image_installs_from_the_lock() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -r requirements.lock" in dockerfile
    assert "USER continuum" in dockerfile and 'CMD ["continuum", "api"' in dockerfile
